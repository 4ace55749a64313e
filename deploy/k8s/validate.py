#!/usr/bin/env python3
"""Renders deploy/k8s kustomizations and validates what they produce, offline.

    validate.py render KUSTOMIZATION_DIR            print the rendered manifests (YAML stream)
    validate.py keda CRD_DIR FILE...                KEDA kinds against the CRDs' openAPIV3Schema
    validate.py policy FILE...                      the project's rules (below) on a render
    validate.py split FILE CORE_OUT KEDA_OUT        core kinds and KEDA kinds apart

`render` is the subset of kustomize these manifests use (resources, namespace, labels,
configMapGenerator, images, JSON 6902 patches); anything else in a kustomization.yaml is an
error, so a feature it does not know is never skipped silently. It leaves generated names
without kustomize's hash suffix; deploy/k8s/lint.sh also validates `kubectl kustomize`'s own
render when kubectl is installed.

KEDA's CRD schemas are structural OpenAPI: an API server prunes unknown fields rather than
rejecting them. Like `kubectl apply --validate=strict`, unknown fields are errors here: every
object schema with properties and no additionalProperties or preserve-unknown-fields is
closed before validating.

`policy` checks what a schema cannot: every workload runs non-root, without privilege
escalation, on a read-only root, with resource requests and the app.kubernetes.io labels;
HPAs, PDBs and ScaledObjects point at Deployments of the render; an aws-sqs-queue trigger
has awsRegion, a whole-number queueLength and activationQueueLength, a queue URL (queueURL,
or queueURLFromEnv naming a variable the target's container sets), authenticates through a
TriggerAuthentication of the render using AWS pod identity, and does not use the deprecated
trigger-level identityOwner.
"""

import copy
import json
import pathlib
import sys

import jsonschema
import yaml

KUSTOMIZATION_KEYS = {
    "apiVersion",
    "kind",
    "namespace",
    "resources",
    "labels",
    "configMapGenerator",
    "images",
    "patches",
}
CLUSTER_SCOPED = {"Namespace"}


class Invalid(Exception):
    pass


def load_all(path):
    with open(path, encoding="utf-8") as f:
        return [d for d in yaml.safe_load_all(f) if d is not None]


# ------------------------------------------------------------------------------ render


def render(directory):
    directory = pathlib.Path(directory)
    kfile = directory / "kustomization.yaml"
    if not kfile.is_file():
        raise Invalid(f"{directory}: no kustomization.yaml")
    with open(kfile, encoding="utf-8") as f:
        k = yaml.safe_load(f) or {}
    unknown = set(k) - KUSTOMIZATION_KEYS
    if unknown:
        raise Invalid(f"{kfile}: fields this renderer does not implement: {sorted(unknown)}")
    docs = []
    for entry in k.get("resources", []):
        path = directory / entry
        docs.extend(render(path) if path.is_dir() else load_all(path))
    for gen in k.get("configMapGenerator", []):
        apply_generator(docs, gen, kfile)
    for label in k.get("labels", []):
        if label.get("includeSelectors", False) or label.get("includeTemplates", False):
            raise Invalid(f"{kfile}: labels with includeSelectors/includeTemplates not implemented")
        for d in docs:
            d.setdefault("metadata", {}).setdefault("labels", {}).update(label["pairs"])
    for image in k.get("images", []):
        for d in docs:
            for c in containers(d):
                name, _, _ = c.get("image", "").partition(":")
                if name == image["name"]:
                    c["image"] = f"{image.get('newName', name)}:{image['newTag']}"
    for patch in k.get("patches", []):
        apply_patch(docs, patch, kfile)
    if "namespace" in k:
        for d in docs:
            if d.get("kind") not in CLUSTER_SCOPED:
                d.setdefault("metadata", {})["namespace"] = k["namespace"]
    return docs


def apply_generator(docs, gen, kfile):
    data = {}
    for literal in gen.get("literals", []):
        key, sep, value = literal.partition("=")
        if not sep:
            raise Invalid(f"{kfile}: configMapGenerator literal without '=': {literal!r}")
        data[key] = value
    unknown = set(gen) - {"name", "literals", "behavior", "options"}
    if set(gen.get("options", {})) - {"labels"}:
        raise Invalid(f"{kfile}: configMapGenerator options other than labels not implemented")
    if unknown:
        raise Invalid(f"{kfile}: configMapGenerator fields not implemented: {sorted(unknown)}")
    existing = [d for d in docs if d.get("kind") == "ConfigMap" and d["metadata"]["name"] == gen["name"]]
    behavior = gen.get("behavior", "create")
    if behavior == "create":
        if existing:
            raise Invalid(f"{kfile}: ConfigMap {gen['name']} already exists")
        labels = dict(gen.get("options", {}).get("labels", {}))
        metadata = {"name": gen["name"], **({"labels": labels} if labels else {})}
        docs.append({"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": data})
    elif behavior == "merge":
        if not existing:
            raise Invalid(f"{kfile}: merge into ConfigMap {gen['name']}, which the bases do not generate")
        existing[0].setdefault("data", {}).update(data)
    else:
        raise Invalid(f"{kfile}: configMapGenerator behavior {behavior!r} not implemented")


def apply_patch(docs, patch, kfile):
    target = patch.get("target", {})
    if set(target) - {"kind", "name"} or set(patch) - {"target", "patch"}:
        raise Invalid(f"{kfile}: patches other than JSON 6902 with a kind/name target")
    matches = [
        d
        for d in docs
        if d.get("kind") == target.get("kind") and d["metadata"].get("name") == target.get("name")
    ]
    if not matches:
        raise Invalid(f"{kfile}: patch target {target} matches nothing")
    for op in yaml.safe_load(patch["patch"]):
        for d in matches:
            json_patch(d, op, kfile)


def json_patch(doc, op, kfile):
    parts = [p.replace("~1", "/").replace("~0", "~") for p in op["path"].split("/")[1:]]
    parent = doc
    for p in parts[:-1]:
        parent = parent[int(p)] if isinstance(parent, list) else parent[p]
    last = parts[-1]
    if isinstance(parent, list):
        last = int(last)
    if op["op"] == "replace":
        if isinstance(parent, list) and last >= len(parent) or isinstance(parent, dict) and last not in parent:
            raise Invalid(f"{kfile}: replace of {op['path']}, which does not exist")
        parent[last] = op["value"]
    elif op["op"] == "add":
        if isinstance(parent, list):
            parent.insert(last, op["value"])
        else:
            parent[last] = op["value"]
    else:
        raise Invalid(f"{kfile}: JSON patch op {op['op']!r} not implemented")


def containers(doc):
    spec = doc.get("spec", {})
    pod = spec.get("template", {}).get("spec", {}) if doc.get("kind") in {"Deployment", "StatefulSet", "DaemonSet", "Job"} else {}
    return pod.get("containers", []) + pod.get("initContainers", [])


# -------------------------------------------------------------------------------- KEDA


def close(schema):
    """Unknown fields become errors (see the module doc)."""
    if isinstance(schema, dict):
        schema = {k: close(v) for k, v in schema.items()}
        if (
            schema.get("type") == "object"
            and "properties" in schema
            and "additionalProperties" not in schema
            and not schema.get("x-kubernetes-preserve-unknown-fields")
        ):
            schema["additionalProperties"] = False
        return schema
    if isinstance(schema, list):
        return [close(s) for s in schema]
    return schema


def crd_schemas(crd_dir):
    schemas = {}
    for path in sorted(pathlib.Path(crd_dir).glob("*.yaml")):
        for crd in load_all(path):
            if crd.get("kind") != "CustomResourceDefinition":
                continue
            group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
            for version in crd["spec"]["versions"]:
                schema = copy.deepcopy(version["schema"]["openAPIV3Schema"])
                # metadata is the API server's (ObjectMeta), not in the CRD.
                schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                schemas[(f"{group}/{version['name']}", kind)] = close(schema)
    if not schemas:
        raise Invalid(f"no CustomResourceDefinitions in {crd_dir}")
    return schemas


def validate_keda(crd_dir, files):
    schemas = crd_schemas(crd_dir)
    failures, checked = [], 0
    for path in files:
        for doc in load_all(path):
            key = (doc.get("apiVersion"), doc.get("kind"))
            if key not in schemas:
                failures.append(f"{path}: {key[1]} {key[0]}: no CRD schema for it in {crd_dir}")
                continue
            validator = jsonschema.Draft7Validator(schemas[key])
            name = doc.get("metadata", {}).get("name", "?")
            errors = sorted(validator.iter_errors(doc), key=lambda e: list(e.absolute_path))
            for e in errors:
                where = "/".join(str(p) for p in e.absolute_path) or "(root)"
                failures.append(f"{path}: {key[1]}/{name}: {where}: {e.message}")
            if not errors:
                checked += 1
                print(f"keda: {key[1]}/{name} ({key[0]}) matches the CRD schema")
    return checked, failures


# ------------------------------------------------------------------------------ policy


def policy(files):
    docs = [d for path in files for d in load_all(path)]
    failures = []
    by_kind = {}
    for d in docs:
        by_kind.setdefault(d.get("kind"), {})[d.get("metadata", {}).get("name")] = d

    def fail(doc, message):
        failures.append(f"{doc.get('kind')}/{doc.get('metadata', {}).get('name')}: {message}")

    deployments = by_kind.get("Deployment", {})
    for d in docs:
        labels = d.get("metadata", {}).get("labels", {})
        if d.get("kind") != "Namespace":
            for required in ("app.kubernetes.io/name", "app.kubernetes.io/part-of", "app.kubernetes.io/component"):
                if required not in labels:
                    fail(d, f"no {required} label")
    for name, d in deployments.items():
        pod = d["spec"]["template"]["spec"]
        pod_sc = pod.get("securityContext", {})
        for c in containers(d):
            sc = c.get("securityContext", {})
            if not (sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")) is True):
                fail(d, f"container {c['name']}: runAsNonRoot is not true")
            if sc.get("allowPrivilegeEscalation") is not False:
                fail(d, f"container {c['name']}: allowPrivilegeEscalation is not false")
            if sc.get("readOnlyRootFilesystem") is not True:
                fail(d, f"container {c['name']}: readOnlyRootFilesystem is not true")
            if sc.get("privileged"):
                fail(d, f"container {c['name']}: privileged")
            requests = c.get("resources", {}).get("requests", {})
            if not {"cpu", "memory"} <= set(requests):
                fail(d, f"container {c['name']}: no cpu and memory requests")
            if "memory" not in c.get("resources", {}).get("limits", {}):
                fail(d, f"container {c['name']}: no memory limit")
            if "livenessProbe" not in c or "readinessProbe" not in c:
                fail(d, f"container {c['name']}: no liveness and readiness probes")
        pod_labels = d["spec"]["template"]["metadata"].get("labels", {})
        selector = d["spec"]["selector"].get("matchLabels", {})
        if not selector.items() <= pod_labels.items():
            fail(d, "selector does not match the pod template's labels")
    for kind in ("HorizontalPodAutoscaler", "ScaledObject"):
        for d in by_kind.get(kind, {}).values():
            ref = d["spec"]["scaleTargetRef"]
            if ref.get("kind", "Deployment") != "Deployment" or ref["name"] not in deployments:
                fail(d, f"scaleTargetRef {ref} is not a Deployment of this render")
    for d in by_kind.get("PodDisruptionBudget", {}).values():
        selector = d["spec"]["selector"].get("matchLabels", {})
        if not any(
            selector.items() <= dep["spec"]["template"]["metadata"].get("labels", {}).items()
            for dep in deployments.values()
        ):
            fail(d, "selects no Deployment's pods")
    auths = by_kind.get("TriggerAuthentication", {})
    for so in by_kind.get("ScaledObject", {}).values():
        target = deployments.get(so["spec"]["scaleTargetRef"]["name"])
        for trigger in so["spec"].get("triggers", []):
            if trigger.get("type") != "aws-sqs-queue":
                continue
            meta = trigger.get("metadata", {})
            check_sqs_trigger(so, meta, target, by_kind.get("ConfigMap", {}), fail)
            auth = auths.get(trigger.get("authenticationRef", {}).get("name"))
            if auth is None:
                fail(so, "aws-sqs-queue trigger without a TriggerAuthentication of this render")
            elif auth["spec"].get("podIdentity", {}).get("provider") != "aws":
                fail(auth, "podIdentity.provider is not aws")
    return failures


def check_sqs_trigger(so, meta, target, configmaps, fail):
    if "identityOwner" in meta:
        fail(so, "trigger metadata identityOwner is deprecated: use TriggerAuthentication podIdentity")
    if not meta.get("awsRegion"):
        fail(so, "aws-sqs-queue trigger without awsRegion")
    for key in ("queueLength", "activationQueueLength"):
        if not str(meta.get(key, "")).isdigit():
            fail(so, f"aws-sqs-queue trigger {key} is not a whole number: {meta.get(key)!r}")
    if meta.get("queueURL"):
        return
    env_name = meta.get("queueURLFromEnv")
    if not env_name:
        fail(so, "aws-sqs-queue trigger with neither queueURL nor queueURLFromEnv")
        return
    if target is None:
        return
    for c in containers(target):
        if any(e.get("name") == env_name for e in c.get("env", [])):
            return
        for source in c.get("envFrom", []):
            cm = configmaps.get(source.get("configMapRef", {}).get("name"))
            if cm is not None and env_name in cm.get("data", {}):
                return
    fail(so, f"queueURLFromEnv {env_name}: no container of the target sets it")


# -------------------------------------------------------------------------------- main


def main(argv):
    if len(argv) >= 2 and argv[0] == "render":
        yaml.safe_dump_all(render(argv[1]), sys.stdout, sort_keys=False)
        return 0
    if len(argv) >= 3 and argv[0] == "keda":
        checked, failures = validate_keda(argv[1], argv[2:])
        for f in failures:
            print(f"keda: INVALID {f}", file=sys.stderr)
        if not checked and not failures:
            print("keda: no KEDA resources found", file=sys.stderr)
            return 1
        return 1 if failures else 0
    if len(argv) >= 2 and argv[0] == "policy":
        failures = policy(argv[1:])
        for f in failures:
            print(f"policy: {f}", file=sys.stderr)
        return 1 if failures else 0
    if len(argv) == 4 and argv[0] == "split":
        docs = load_all(argv[1])
        keda = [d for d in docs if str(d.get("apiVersion", "")).startswith("keda.sh/")]
        core = [d for d in docs if d not in keda]
        for path, part in ((argv[2], core), (argv[3], keda)):
            with open(path, "w", encoding="utf-8") as f:
                yaml.safe_dump_all(part, f, sort_keys=False)
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except (Invalid, KeyError, TypeError, ValueError, IndexError, json.JSONDecodeError) as e:
        print(f"validate.py: {type(e).__name__}: {e}", file=sys.stderr)
        sys.exit(1)
