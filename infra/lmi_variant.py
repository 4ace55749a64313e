"""Derives infra/template-lmi.yaml, the Lambda Managed Instances (LMI) variant of the stack,
from infra/template.yaml, and checks that the file in the repository is what it derives.

Usage (with the tools venv's python, which has PyYAML and the SAM translator; infra/lint.sh
creates it):

    .venv-tools/bin/python infra/lmi_variant.py            # (re)write infra/template-lmi.yaml
    .venv-tools/bin/python infra/lmi_variant.py --check    # exit 1 if the file is stale

Why a second, generated template rather than a parameter of the first: a function's capacity
provider can only be chosen when the function is created, and the pinned SAM translator
refuses `CapacityProviderConfig: !If [...]` on an AWS::Serverless::Function (it must be a
literal mapping). A switch in one template would need a conditional copy of each function with
its alias, event source mapping, permission, dashboard references and outputs. So the variant
is derived from the standard template by the few edits below, and everything else stays
byte-for-byte the same, comments included:

* each function (IngestFunction, WorkerFunction): MemorySize at least 2048 (an LMI execution
  environment has at least 2 GB and 1 vCPU) and a CapacityProviderConfig naming the stack's
  capacity provider, with PerExecutionEnvironmentMaxConcurrency from a parameter (32 for
  ingest, 8 for the worker: docs/scaling.md, "Sizing");
* one capacity provider (CapacityProvider) in the VPC the new parameters name, with instances
  of the functions' Architecture and a vCPU cap, and its operator role
  (CapacityProviderOperatorRole, the AWS managed policy AWSLambdaManagedEC2ResourceOperator).
  It is an AWS::Lambda::CapacityProvider, not SAM's AWS::Serverless::CapacityProvider: the
  pinned translator expands either, but the pinned cfn-lint knows no attributes of the SAM
  type and fails `!GetAtt CapacityProvider.Arn` on the SAM form (E1010);
* what LMI functions may not or need not have, removed:
  - ReservedConcurrentExecutions on ingest (IngestReservedConcurrency and its condition go
    with it). An LMI function's concurrency is its execution environments times
    PerExecutionEnvironmentMaxConcurrency, and the environments are bounded by the capacity
    provider's instances, capped by CapacityProviderMaxVCpuCount: that cap, not a reservation
    of the account's per-environment concurrency, is what bounds a flood's cost here. Neither
    the pinned SAM translator nor cfn-lint refuses it beside CapacityProviderConfig, and we
    found no AWS statement either way, so the variant leaves it out rather than rely on it.
  - ProvisionedConcurrencyConfig and VpcConfig: SAM refuses either beside
    CapacityProviderConfig. The template sets neither; the script fails if one appears.
  - AutoPublishAlias stays: LMI runs published versions only, and SAM publishes one per deploy.
    For LMI functions SAM gives the versions DeletionPolicy Delete, so a deploy that publishes
    a new version deletes the one before (its environments would keep running): a rollback is
    a deploy of the previous code, not `aws lambda update-alias` (docs/deploy.md). The comment
    beside CapacityProviderConfig says so, as template.yaml's AutoPublishAlias comment does not.
* the checkov skips that change reason (CKV_AWS_117, no VPC on the function: it runs in the
  capacity provider's VPC; CKV_AWS_115 on ingest, no reserved concurrency: above).

The text is edited line by line (so comments survive), and then both templates are parsed and
the result must equal the standard template with exactly these edits made to its data: an edit
that touched anything else, or a template.yaml that changed where an edit applies, fails here
with the reason rather than producing a different stack.
"""

from __future__ import annotations

import copy
import difflib
import re
import sys
from pathlib import Path

try:
    # The SAM translator's YAML loader: CloudFormation's short tags (!Ref, !GetAtt, !Sub, !If...)
    # become their Fn:: mappings, as SAM and cfn-lint read them.
    from samtranslator.yaml_helper import yaml_parse
except ImportError:
    sys.exit("lmi_variant: run it with .venv-tools/bin/python; `make lint-infra` installs the tools")

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "infra" / "template.yaml"
TARGET = ROOT / "infra" / "template-lmi.yaml"
REGENERATE = "make lmi-template (or: .venv-tools/bin/python infra/lmi_variant.py)"

FUNCTIONS = {
    # logical id: (concurrency parameter, its default)
    "IngestFunction": ("IngestPerExecutionEnvironmentMaxConcurrency", 32),
    "WorkerFunction": ("WorkerPerExecutionEnvironmentMaxConcurrency", 8),
}
MIN_MEMORY_MB = 2048
# Properties SAM refuses beside CapacityProviderConfig (its validation rules).
REFUSED_WITH_CAPACITY_PROVIDER = ("ProvisionedConcurrencyConfig", "VpcConfig")
REMOVED_PARAMETER = "IngestReservedConcurrency"
REMOVED_CONDITION = "HasIngestReservedConcurrency"

HEADER = f"""\
# GENERATED FILE, do not edit: infra/lmi_variant.py derives it from infra/template.yaml.
# Regenerate it after changing either:
#   {REGENERATE}
# infra/lint.sh (`make lint-infra`) fails while this file is not what the script writes.
#
# The Lambda Managed Instances variant of the stack: both functions run on EC2 instances that
# Lambda launches in your VPC through one capacity provider, several invocations per execution
# environment. Everything but the edits listed in infra/lmi_variant.py is infra/template.yaml
# as it is. Deploy it as a new stack (docs/deploy.md, "Lambda Managed Instances").

"""

# A line of its own at the end of the folded Description (data: one more sentence).
DESCRIPTION_LINE = "  Lambda Managed Instances variant, generated by infra/lmi_variant.py."

# The standard template's note on LMI, replaced by one that fits this file.
SOURCE_NOTE = """\
# Invariants of this file are checked by tests/tests/infra/infra_template.rs and linted by
# infra/lint.sh (cfn-lint). Keep literal numbers where the test compares them (timeouts,
# visibility timeout, retention).
#
# Standard Lambda only. The binaries also serve Lambda Managed Instances (concurrent
# invocations), but SAM cannot make a function's CapacityProviderConfig conditional: see
# docs/scaling.md, "Lambda Managed Instances", for why and what a copy for it changes.
"""
VARIANT_NOTE = """\
# Linted by infra/lint.sh as infra/template.yaml is (cfn-lint, the SAM expansion, checkov).
# Its invariants are template.yaml's: tests/tests/infra/infra_template.rs checks that file.
#
# Lambda Managed Instances: see docs/scaling.md, "Lambda Managed Instances".
"""

NEW_PARAMETERS_TEXT = """\
  # Lambda Managed Instances (infra/lmi_variant.py; docs/scaling.md, "Lambda Managed Instances").
  CapacityProviderSubnetIds:
    Type: List<AWS::EC2::Subnet::Id>
    Description: >-
      Private subnets, in several Availability Zones, where Lambda launches the instances (at
      least three instances by default, one per zone). They need routes or VPC endpoints to
      SQS, DynamoDB, CloudWatch Logs, X-Ray and the User Service or JWKS URL.
  CapacityProviderSecurityGroupIds:
    Type: List<AWS::EC2::SecurityGroup::Id>
    Description: >-
      Security groups of the instances (1 to 5): outbound HTTPS to the endpoints above; no
      inbound rule is needed (invocations do not arrive through the VPC).
  CapacityProviderMaxVCpuCount:
    Type: Number
    Default: 16
    MinValue: 2
    MaxValue: 15000
    Description: >-
      Most vCPUs the capacity provider's instances may have together, for both functions: the
      ceiling of what the instances cost and, as each execution environment here has 1 vCPU
      (2048 MB), roughly of the two functions' environments together.
  IngestPerExecutionEnvironmentMaxConcurrency:
    Type: Number
    Default: 32
    MinValue: 1
    MaxValue: 1600
    Description: >-
      Requests one ingest execution environment handles at once (AWS_LAMBDA_MAX_CONCURRENCY).
      ingest mostly waits on the User Service and SQS: start around 32 and watch CPU.
  WorkerPerExecutionEnvironmentMaxConcurrency:
    Type: Number
    Default: 8
    MinValue: 1
    MaxValue: 1600
    Description: >-
      SQS batches one worker execution environment handles at once. Each has up to
      WRITE_CONCURRENCY BatchWriteItem requests in flight; WorkerMaximumConcurrency still caps
      the batches across all environments.

"""

NEW_RESOURCES_TEXT = """\
  # ---------------------------------------------------------------- Lambda Managed Instances

  # What Lambda needs to launch, patch and retire the capacity provider's EC2 instances: the
  # AWS managed policy made for it (what SAM's AWS::Serverless::CapacityProvider would attach
  # to a role of its own).
  CapacityProviderOperatorRole:
    Type: AWS::IAM::Role
    Properties:
      Description: Lets Lambda manage the EC2 instances of this stack's capacity provider.
      AssumeRolePolicyDocument:
        Version: "2012-10-17"
        Statement:
          - Effect: Allow
            Principal: {Service: lambda.amazonaws.com}
            Action: sts:AssumeRole
      ManagedPolicyArns:
        - !Sub arn:${AWS::Partition}:iam::aws:policy/AWSLambdaManagedEC2ResourceOperator

  # Both functions' execution environments run on its instances, so both share its vCPU cap
  # and trust boundary. Plain CloudFormation rather than AWS::Serverless::CapacityProvider:
  # cfn-lint knows no attributes of the SAM type, so the functions' `!GetAtt
  # CapacityProvider.Arn` would not lint, and SAM would add nothing but a tag and the role
  # above. Unnamed: CloudFormation names it. ScalingMode Auto: Lambda adds instances as CPU
  # use grows, up to MaxVCpuCount.
  CapacityProvider:
    Type: AWS::Lambda::CapacityProvider
    Properties:
      PermissionsConfig:
        CapacityProviderOperatorRoleArn: !GetAtt CapacityProviderOperatorRole.Arn
      VpcConfig:
        SubnetIds: !Ref CapacityProviderSubnetIds
        SecurityGroupIds: !Ref CapacityProviderSecurityGroupIds
      InstanceRequirements:
        Architectures: [!Ref Architecture]
      CapacityProviderScalingConfig:
        ScalingMode: Auto
        MaxVCpuCount: !Ref CapacityProviderMaxVCpuCount

"""

CAPACITY_PROVIDER_CONFIG_TEXT = """\
      # Lambda Managed Instances: runs on CapacityProvider's instances, several invocations
      # per execution environment at once (AWS_LAMBDA_MAX_CONCURRENCY, from the parameter).
      # SAM deletes the previous version on each deploy that publishes one (its environments
      # would keep running), so roll back by deploying the previous code, not update-alias.
      CapacityProviderConfig:
        Arn: !GetAtt CapacityProvider.Arn
        PerExecutionEnvironmentMaxConcurrency: !Ref {param}
"""

SKIP_117_COMMENT = (
    "Runs on the capacity provider's instances in the VPC of CapacityProviderSubnetIds; "
    "Lambda refuses a function VpcConfig beside CapacityProviderConfig."
)
SKIP_115_COMMENT = (
    "Lambda Managed Instances - bounded by the capacity provider's CapacityProviderMaxVCpuCount "
    "times IngestPerExecutionEnvironmentMaxConcurrency, not by reserved concurrency "
    "(infra/lmi_variant.py)."
)


class VariantError(Exception):
    """template.yaml is not shaped as the edits expect: the script needs updating."""


def indent_of(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def find_one(lines: list[str], pattern: str, start: int = 0, end: int | None = None) -> int:
    """Index of the one line in lines[start:end] that fully matches pattern."""
    end = len(lines) if end is None else end
    hits = [i for i in range(start, end) if re.fullmatch(pattern, lines[i])]
    if len(hits) != 1:
        raise VariantError(f"expected one line matching {pattern!r}, found {len(hits)}")
    return hits[0]


def block_end(lines: list[str], start: int) -> int:
    """End (exclusive) of the mapping entry at lines[start]: the next non-blank line, comments
    included, indented no deeper than it."""
    own = indent_of(lines[start])
    for i in range(start + 1, len(lines)):
        if lines[i].strip() and indent_of(lines[i]) <= own:
            return i
    return len(lines)


def top_level_section(lines: list[str], key: str) -> tuple[int, int]:
    start = find_one(lines, re.escape(key) + ":")
    return start, block_end(lines, start)


def edit_text(source: str) -> str:
    if not source.startswith('AWSTemplateFormatVersion: "2010-09-09"\n'):
        raise VariantError("template.yaml no longer starts with AWSTemplateFormatVersion")
    if SOURCE_NOTE not in source:
        raise VariantError("template.yaml's note on Lambda Managed Instances changed")
    source = source.replace(SOURCE_NOTE, VARIANT_NOTE, 1)
    lines = source.splitlines(keepends=False)

    # Description: the folded scalar's last line gets the suffix.
    d = find_one(lines, r"Description: >-")
    last = block_end(lines, d) - 1
    while not lines[last].strip():
        last -= 1
    lines.insert(last + 1, DESCRIPTION_LINE)

    # Resources first (below the others, so earlier indices stay valid).
    r_start, r_end = top_level_section(lines, "Resources")
    for name, (param, _default) in reversed(list(FUNCTIONS.items())):
        f = find_one(lines, "  " + re.escape(name) + ":", r_start, r_end)
        f_end = block_end(lines, f)
        find_one(lines, r"    Type: AWS::Serverless::Function", f, f_end)
        props = find_one(lines, r"    Properties:", f, f_end)
        for refused in REFUSED_WITH_CAPACITY_PROVIDER:
            if any(re.match(r"      " + refused + ":", line) for line in lines[props:f_end]):
                raise VariantError(f"{name} has {refused}, which LMI functions cannot have")

        # ReservedConcurrentExecutions (ingest only, today): removed with its lines.
        rc = [
            i for i in range(props, f_end)
            if lines[i].startswith("      ReservedConcurrentExecutions:")
        ]
        if name == "IngestFunction" and len(rc) != 1:
            raise VariantError("IngestFunction's ReservedConcurrentExecutions moved")
        for i in rc:
            del lines[i : block_end(lines, i)]
        f_end = block_end(lines, f)

        m = find_one(lines, r"      MemorySize: (\d+)", props, f_end)
        memory = int(lines[m].split(":")[1])
        lines[m] = f"      MemorySize: {max(memory, MIN_MEMORY_MB)}"
        lines[m + 1 : m + 1] = CAPACITY_PROVIDER_CONFIG_TEXT.format(param=param).splitlines()

        # checkov skips in Metadata.
        s117 = find_one(lines, r"          - id: CKV_AWS_117", f, props)
        if not lines[s117 + 1].startswith("            comment: "):
            raise VariantError(f"{name}'s CKV_AWS_117 skip has no comment on the next line")
        lines[s117 + 1] = "            comment: " + SKIP_117_COMMENT
        if name == "IngestFunction":
            if any("CKV_AWS_115" in line for line in lines[f:props]):
                raise VariantError("IngestFunction already skips CKV_AWS_115")
            lines[s117 + 2 : s117 + 2] = [
                "          - id: CKV_AWS_115",
                "            comment: " + SKIP_115_COMMENT,
            ]

    r_start = find_one(lines, "Resources:")
    lines[r_start + 1 : r_start + 1] = NEW_RESOURCES_TEXT.splitlines()

    # Conditions: the reserved-concurrency condition goes.
    c_start, c_end = top_level_section(lines, "Conditions")
    c = find_one(lines, "  " + REMOVED_CONDITION + r": .*", c_start, c_end)
    del lines[c : block_end(lines, c)]

    # Parameters: the reserved-concurrency parameter goes, the LMI ones come last.
    p_start, p_end = top_level_section(lines, "Parameters")
    p = find_one(lines, "  " + REMOVED_PARAMETER + ":", p_start, p_end)
    del lines[p : block_end(lines, p)]
    p_start, p_end = top_level_section(lines, "Parameters")
    while not lines[p_end - 1].strip():
        p_end -= 1
    lines[p_end:p_end] = [""] + NEW_PARAMETERS_TEXT.rstrip("\n").splitlines()

    text = "\n".join(lines) + "\n"
    if re.search(r"\b" + REMOVED_PARAMETER + r"\b|\b" + REMOVED_CONDITION + r"\b", text):
        raise VariantError(f"{REMOVED_PARAMETER} or {REMOVED_CONDITION} is still referenced")
    return HEADER + text


def expected_data(source: dict) -> dict:
    """The standard template's data with the variant's edits made to it, the same edits as
    edit_text makes to the text, made independently."""
    t = copy.deepcopy(source)
    t["Description"] = t["Description"] + " " + DESCRIPTION_LINE.strip()
    del t["Parameters"][REMOVED_PARAMETER]
    del t["Conditions"][REMOVED_CONDITION]
    t["Parameters"].update(yaml_parse(NEW_PARAMETERS_TEXT.replace("\n  ", "\n").lstrip()))
    new_resources = yaml_parse(re.sub(r"(?m)^  ", "", NEW_RESOURCES_TEXT))
    assert not set(new_resources) & set(t["Resources"])
    t["Resources"].update(new_resources)
    for name, (param, _default) in FUNCTIONS.items():
        fn = t["Resources"][name]
        props = fn["Properties"]
        props.pop("ReservedConcurrentExecutions", None)
        props["MemorySize"] = max(props["MemorySize"], MIN_MEMORY_MB)
        props["CapacityProviderConfig"] = {
            "Arn": {"Fn::GetAtt": ["CapacityProvider", "Arn"]},
            "PerExecutionEnvironmentMaxConcurrency": {"Ref": param},
        }
        skips = fn["Metadata"]["checkov"]["skip"]
        for skip in skips:
            if skip["id"] == "CKV_AWS_117":
                skip["comment"] = SKIP_117_COMMENT
        if name == "IngestFunction":
            at = [s["id"] for s in skips].index("CKV_AWS_117") + 1
            skips.insert(at, {"id": "CKV_AWS_115", "comment": SKIP_115_COMMENT})
    return t


def generate() -> str:
    source_text = SOURCE.read_text(encoding="utf-8")
    variant_text = edit_text(source_text)
    got, want = yaml_parse(variant_text), expected_data(yaml_parse(source_text))
    if got != want:
        raise VariantError(
            "the edited text does not parse to template.yaml with only the variant's edits:\n"
            + "\n".join(_data_diff(want, got))
        )
    for name, (param, default) in FUNCTIONS.items():
        if got["Parameters"][param]["Default"] != default:
            raise VariantError(f"{param} should default to {default}")
    return variant_text


def _data_diff(want: object, got: object, path: str = "") -> list[str]:
    if isinstance(want, dict) and isinstance(got, dict):
        out = []
        for k in sorted(set(want) | set(got), key=str):
            if k not in got:
                out.append(f"  missing {path}/{k}")
            elif k not in want:
                out.append(f"  unexpected {path}/{k}")
            else:
                out += _data_diff(want[k], got[k], f"{path}/{k}")
        return out
    return [] if want == got else [f"  {path}: expected {want!r}, got {got!r}"]


def main(argv: list[str]) -> int:
    if argv not in ([], ["--check"]):
        print(__doc__, file=sys.stderr)
        return 2
    try:
        text = generate()
    except VariantError as e:
        print(f"lmi_variant: {e}", file=sys.stderr)
        print("lmi_variant: update infra/lmi_variant.py to match infra/template.yaml", file=sys.stderr)
        return 1
    rel = TARGET.relative_to(ROOT)
    if argv == ["--check"]:
        have = TARGET.read_text(encoding="utf-8") if TARGET.exists() else ""
        if have != text:
            diff = difflib.unified_diff(
                have.splitlines(keepends=True), text.splitlines(keepends=True),
                f"{rel} (in the repository)", f"{rel} (as infra/lmi_variant.py derives it)",
            )
            sys.stderr.writelines(list(diff)[:60])
            print(f"lmi_variant: {rel} is not what infra/template.yaml gives; regenerate it:",
                  REGENERATE, file=sys.stderr)
            return 1
        print(f"lmi_variant: {rel} is up to date", file=sys.stderr)
        return 0
    TARGET.write_text(text, encoding="utf-8")
    print(f"lmi_variant: wrote {rel}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
