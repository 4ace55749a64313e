"""Deploys infra/template.yaml into a local AWS emulator (MiniStack or LocalStack) the way
`sam deploy` would: the SAM transform expanded offline (infra/sam_transform.py), each function
binary zipped as `bootstrap` (the provided.al2023 layout) and uploaded to the emulator's S3, then CreateStack, or UpdateStack when the stack exists.

    python infra/deploy_local.py deploy --stack NAME --ingest BIN --worker BIN [--param KEY=VALUE ...]
    python infra/deploy_local.py delete --stack NAME

`deploy` prints one JSON object on stdout: the stack's outputs, the API id, the local API
URL, and how long the deploy took. Progress and failures (with the stack's failed events)
go to stderr. AWS_ENDPOINT_URL must name the emulator: this script refuses to run against
real AWS (use `sam deploy` there, docs/deploy.md).

Where the emulator differs from AWS, this script works around it here and nowhere else, so
the template stays right for AWS (docs/emulators.md lists each gap):
  - MiniStack hands a parameter that reaches ScalingConfig.MaximumConcurrency to its poller
    as a string, and the poller then fails on every poll: in each event source mapping, the
    expanded template gets every Number parameter's value as a literal number instead of
    the Ref (inside either branch of the poller mode's Fn::If too).
  - MiniStack keeps neither ProvisionedPollerConfig nor MetricsConfig of a mapping (it
    accepts and drops them): nothing to do here, but WorkerPollerMode provisioned runs as a
    mapping with MiniStack's default concurrency, and there are no mapping metrics.
  - MiniStack refuses an AWS::CloudWatch::Alarm with `Metrics` (metric math; the 5xx-rate
    alarm) and the whole create rolls back: such alarms are left out of the local stack.
"""

import argparse
import hashlib
import io
import json
import os
import sys
import time
import zipfile
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlparse

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, WaiterError

sys.path.insert(0, str(Path(__file__).resolve().parent))
from sam_transform import expand, load_template  # noqa: E402

FUNCTIONS = {"IngestFunction": "ingest", "WorkerFunction": "worker"}
ARTIFACT_BUCKET = "credit-score-pipeline-local-artifacts"
DONE = {"CREATE_COMPLETE", "UPDATE_COMPLETE"}
FAILED_SUFFIXES = ("_FAILED", "ROLLBACK_COMPLETE", "ROLLBACK_FAILED")


def log(message: str) -> None:
    print(f"[deploy-local] {message}", file=sys.stderr, flush=True)


def fail(message: str) -> NoReturn:
    log(f"error: {message}")
    sys.exit(1)


def endpoint() -> str:
    url = os.environ.get("AWS_ENDPOINT_URL", "")
    host = urlparse(url).hostname or ""
    if host not in ("127.0.0.1", "localhost", "::1"):
        fail(
            f"AWS_ENDPOINT_URL={url!r} is not a local emulator on loopback; "
            "deploy to AWS with `sam deploy` (docs/deploy.md)"
        )
    return url.rstrip("/")


def client(service: str):
    return boto3.client(
        service,
        endpoint_url=endpoint(),
        region_name=os.environ.get("AWS_REGION", "us-east-1"),
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"max_attempts": 3, "mode": "standard"}),
    )


def parse_params(pairs: list) -> dict:
    """KEY=VALUE pairs; KEY=@FILE reads the value from FILE (trailing newline dropped), so a
    secret such as the cursor key never shows in the process list."""
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            fail(f"--param takes KEY=VALUE or KEY=@FILE, got {pair.split('=')[0]!r}=...")
        if value.startswith("@"):
            try:
                value = Path(value[1:]).read_text(encoding="utf-8").rstrip("\n")
            except OSError as e:
                fail(f"--param {key}: cannot read {value[1:]}: {e.strerror}")
        params[key] = value
    return params


def bootstrap_zip(binary: Path) -> bytes:
    """The binary as `bootstrap`, executable, with a fixed timestamp: the same binary always
    gives the same bytes, so an unchanged function is not updated."""
    if not binary.is_file():
        fail(f"{binary} is missing; build it first (scripts/dev-lambda.sh does)")
    entry = zipfile.ZipInfo("bootstrap", date_time=(2020, 1, 1, 0, 0, 0))
    entry.external_attr = 0o100755 << 16
    entry.compress_type = zipfile.ZIP_DEFLATED
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        z.writestr(entry, binary.read_bytes(), compresslevel=1)
    return out.getvalue()


def upload_code(binaries: dict, stack: str) -> dict:
    """Uploads each function's zip under a content-addressed key (a changed binary is a
    changed CodeUri, so UpdateStack updates the function) and returns the CodeUri of each."""
    s3 = client("s3")
    try:
        s3.head_bucket(Bucket=ARTIFACT_BUCKET)
    except ClientError:
        s3.create_bucket(Bucket=ARTIFACT_BUCKET)
    code = {}
    for logical_id, name in FUNCTIONS.items():
        data = bootstrap_zip(Path(binaries[name]))
        key = f"{stack}/{name}/{hashlib.sha256(data).hexdigest()[:16]}.zip"
        s3.put_object(Bucket=ARTIFACT_BUCKET, Key=key, Body=data)
        code[logical_id] = {"Bucket": ARTIFACT_BUCKET, "Key": key}
        log(f"uploaded {binaries[name]} as s3://{ARTIFACT_BUCKET}/{key} ({len(data):,} bytes)")
    return code


def parameter_value(template: dict, params: dict, name: str):
    if name in params:
        return params[name]
    default = template.get("Parameters", {}).get(name, {}).get("Default")
    if default is None:
        fail(f"parameter {name} has no default; pass --param {name}=VALUE")
    return default


def literal_numbers(value, template: dict, params: dict):
    """`value` with every {"Ref": P} of a Number parameter P replaced by its value as an int,
    at any depth (Fn::If branches included)."""
    if isinstance(value, dict):
        ref = value.get("Ref") if len(value) == 1 else None
        declared = template.get("Parameters", {}).get(ref, {}) if isinstance(ref, str) else {}
        if declared.get("Type") == "Number":
            return int(parameter_value(template, params, ref))
        return {k: literal_numbers(v, template, params) for k, v in value.items()}
    if isinstance(value, list):
        return [literal_numbers(v, template, params) for v in value]
    return value


def literal_maximum_concurrency(expanded: dict, template: dict, params: dict) -> None:
    """The MiniStack gap: ScalingConfig.MaximumConcurrency (and any other Number parameter of
    an event source mapping) as a number, not a Ref."""
    for resource in expanded.get("Resources", {}).values():
        if resource.get("Type") != "AWS::Lambda::EventSourceMapping":
            continue
        resource["Properties"] = literal_numbers(resource.get("Properties", {}), template, params)


def without_metric_math_alarms(expanded: dict) -> None:
    """The MiniStack gap: no metric-math alarms; the other alarms deploy as written."""
    resources = expanded.get("Resources", {})
    for logical_id in [
        k
        for k, r in resources.items()
        if r.get("Type") == "AWS::CloudWatch::Alarm" and "Metrics" in r.get("Properties", {})
    ]:
        log(f"leaving out {logical_id}: the emulator has no metric-math alarms")
        del resources[logical_id]


def stack_status(cfn, stack: str):
    try:
        stacks = cfn.describe_stacks(StackName=stack)["Stacks"]
    except ClientError as e:
        if "does not exist" in str(e):
            return None
        raise
    return stacks[0]["StackStatus"] if stacks else None


def failed_events(cfn, stack: str) -> list:
    try:
        events = cfn.describe_stack_events(StackName=stack)["StackEvents"]
    except ClientError:
        return []
    return [
        f"{e.get('LogicalResourceId')}: {e.get('ResourceStatus')}: {e.get('ResourceStatusReason', '')}"
        for e in events
        if str(e.get("ResourceStatus", "")).endswith("FAILED")
    ]


def wait_for(cfn, stack: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        described = cfn.describe_stacks(StackName=stack)["Stacks"][0]
        status = described["StackStatus"]
        if status in DONE:
            return described
        if status.endswith(FAILED_SUFFIXES):
            reasons = "\n  ".join(failed_events(cfn, stack)) or "(no failed events reported)"
            fail(f"stack {stack} ended {status}:\n  {reasons}")
        if time.monotonic() > deadline:
            fail(f"stack {stack} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def local_api_url(api_id: str) -> str:
    # The emulator's LocalStack-compatible path to an API's `$default` stage; the function
    # sees the path after it, as behind a real `$default` stage.
    return f"{endpoint()}/_aws/execute-api/{api_id}/$default"


def deploy(args) -> None:
    started = time.monotonic()
    params = parse_params(args.param)
    template = load_template(args.template)
    code = upload_code({"ingest": args.ingest, "worker": args.worker}, args.stack)
    expanded = expand(template, code)
    literal_maximum_concurrency(expanded, template, params)
    without_metric_math_alarms(expanded)
    body = json.dumps(expanded)
    cfn = client("cloudformation")
    cfn_params = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(params.items())]
    status = stack_status(cfn, args.stack)
    if status == "ROLLBACK_COMPLETE":
        log(f"stack {args.stack} is ROLLBACK_COMPLETE from a failed create; deleting it first")
        delete_stack(cfn, args.stack)
        status = None
    capabilities = ["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM", "CAPABILITY_AUTO_EXPAND"]
    if status is None:
        log(f"creating stack {args.stack}")
        cfn.create_stack(
            StackName=args.stack, TemplateBody=body, Parameters=cfn_params, Capabilities=capabilities
        )
    else:
        log(f"updating stack {args.stack} (was {status})")
        try:
            cfn.update_stack(
                StackName=args.stack,
                TemplateBody=body,
                Parameters=cfn_params,
                Capabilities=capabilities,
            )
        except ClientError as e:
            if "No updates are to be performed" not in str(e):
                raise
            log("no changes to deploy")
    described = wait_for(cfn, args.stack, args.timeout)
    outputs = {o["OutputKey"]: o["OutputValue"] for o in described.get("Outputs", [])}
    api_id = physical_id(cfn, args.stack, "HttpApi")
    result = {
        "stack": args.stack,
        "status": described["StackStatus"],
        "apiId": api_id,
        "apiUrl": local_api_url(api_id),
        "outputs": outputs,
        "deploySeconds": round(time.monotonic() - started, 1),
    }
    log(f"stack {args.stack} {described['StackStatus']} in {result['deploySeconds']} s")
    print(json.dumps(result, indent=1))


def physical_id(cfn, stack: str, logical_id: str) -> str:
    resources = cfn.describe_stack_resources(StackName=stack, LogicalResourceId=logical_id)
    found = resources.get("StackResources", [])
    if not found:
        fail(f"stack {stack} has no resource {logical_id}")
    return found[0]["PhysicalResourceId"]


def delete_stack(cfn, stack: str, timeout: float = 120) -> None:
    cfn.delete_stack(StackName=stack)
    deadline = time.monotonic() + timeout
    while (status := stack_status(cfn, stack)) not in (None, "DELETE_COMPLETE"):
        if status == "DELETE_FAILED":
            fail(f"deleting stack {stack} failed:\n  " + "\n  ".join(failed_events(cfn, stack)))
        if time.monotonic() > deadline:
            fail(f"stack {stack} still {status} after {timeout:.0f} s")
        time.sleep(0.5)


def delete(args) -> None:
    cfn = client("cloudformation")
    if stack_status(cfn, args.stack) is None:
        log(f"stack {args.stack} does not exist; nothing to delete")
        return
    log(f"deleting stack {args.stack} (the table is retained)")
    delete_stack(cfn, args.stack, args.timeout)
    log(f"stack {args.stack} deleted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    d = sub.add_parser("deploy", help="create or update the stack")
    d.add_argument("--stack", required=True)
    d.add_argument("--ingest", required=True, help="the ingest binary (zipped as bootstrap)")
    d.add_argument("--worker", required=True, help="the worker binary (zipped as bootstrap)")
    d.add_argument("--template", default=str(Path(__file__).resolve().parent / "template.yaml"))
    d.add_argument("--param", action="append", default=[], metavar="KEY=VALUE|KEY=@FILE")
    d.add_argument("--timeout", type=float, default=180)
    d.set_defaults(run=deploy)
    x = sub.add_parser("delete", help="delete the stack (the table is retained)")
    x.add_argument("--stack", required=True)
    x.add_argument("--timeout", type=float, default=120)
    x.set_defaults(run=delete)
    args = parser.parse_args()
    try:
        args.run(args)
    except (ClientError, WaiterError, BotoCoreError) as e:
        # BotoCoreError covers an emulator that is not there (EndpointConnectionError).
        fail(f"{type(e).__name__}: {e}")


if __name__ == "__main__":
    main()
