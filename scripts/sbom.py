"""Writes a CycloneDX 1.5 bill of materials (JSON) for each deployed function, from cargo's
own metadata: no extra tool to install, nothing fetched, the same output for the same lock file.

Usage: python3 scripts/sbom.py OUT_DIR [TARGET_TRIPLE]

Each BOM lists what the function's binary is built from: the crates reachable through normal
(non-dev, non-build) dependencies for the target (default aarch64-unknown-linux-gnu, the
Lambda architecture), with version, purl, licence expression and the crates.io SHA-256 from
Cargo.lock, and the dependency graph between them. Features are resolved for the workspace as
a whole (as cargo metadata reports them), so a crate another member enables may appear.
"""

import json
import os
import subprocess
import sys
import tomllib
import uuid

FUNCTIONS = ["ingest", "worker"]
DEFAULT_TARGET = "aarch64-unknown-linux-gnu"


def cargo_metadata(root: str, target: str) -> dict:
    out = subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--locked", "--filter-platform", target],
        cwd=root,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    return json.loads(out)


def lock_checksums(root: str) -> dict:
    with open(os.path.join(root, "Cargo.lock"), "rb") as f:
        lock = tomllib.load(f)
    return {
        (p["name"], p["version"]): p["checksum"] for p in lock.get("package", []) if "checksum" in p
    }


def purl(package: dict) -> str:
    return f"pkg:cargo/{package['name']}@{package['version']}"


def spdx_expression(licence: str) -> str:
    # Old crates write `MIT/Apache-2.0`; SPDX spells that `MIT OR Apache-2.0`.
    return " OR ".join(part.strip() for part in licence.split("/"))


def component(package: dict, checksums: dict, kind: str = "library") -> dict:
    c = {
        "type": kind,
        "bom-ref": purl(package),
        "name": package["name"],
        "version": package["version"],
        "purl": purl(package),
    }
    if package.get("description"):
        c["description"] = " ".join(package["description"].split())
    if package.get("license"):
        c["licenses"] = [{"expression": spdx_expression(package["license"])}]
    checksum = checksums.get((package["name"], package["version"]))
    if checksum:
        c["hashes"] = [{"alg": "SHA-256", "content": checksum}]
    refs = []
    if package.get("repository"):
        refs.append({"type": "vcs", "url": package["repository"]})
    if (package.get("source") or "").startswith("registry+"):
        refs.append(
            {
                "type": "distribution",
                "url": f"https://crates.io/crates/{package['name']}/{package['version']}",
            }
        )
    if refs:
        c["externalReferences"] = refs
    return c


def runtime_closure(meta: dict, root_id: str) -> dict:
    """package id -> ids of its normal dependencies, for everything reachable from root_id."""
    nodes = {n["id"]: n for n in meta["resolve"]["nodes"]}
    graph, todo = {}, [root_id]
    while todo:
        pid = todo.pop()
        if pid in graph:
            continue
        deps = [
            d["pkg"]
            for d in nodes[pid]["deps"]
            if any(k["kind"] is None for k in d["dep_kinds"])
        ]
        graph[pid] = sorted(set(deps))
        todo.extend(deps)
    return graph


def bom(meta: dict, checksums: dict, function: str, target: str) -> dict:
    packages = {p["id"]: p for p in meta["packages"]}
    members = set(meta["workspace_members"])
    root_id = next(
        pid for pid in members if packages[pid]["name"] == function
    )
    graph = runtime_closure(meta, root_id)
    ref = {pid: purl(packages[pid]) for pid in graph}
    main = component(packages[root_id], checksums, kind="application")
    components = sorted(
        (component(packages[pid], checksums) for pid in graph if pid != root_id),
        key=lambda c: (c["name"], c["version"]),
    )
    dependencies = sorted(
        ({"ref": ref[pid], "dependsOn": sorted(ref[d] for d in deps)} for pid, deps in graph.items()),
        key=lambda d: d["ref"],
    )
    document = {
        "bomFormat": "CycloneDX",
        "specVersion": "1.5",
        "version": 1,
        "metadata": {
            "tools": {
                "components": [
                    {"type": "application", "name": "scripts/sbom.py (from cargo metadata)"}
                ]
            },
            "component": main,
            "properties": [{"name": "cargo:target", "value": target}],
        },
        "components": components,
        "dependencies": dependencies,
    }
    # A serial number derived from the content: the same inputs give the same file.
    digest = json.dumps(document, sort_keys=True)
    document["serialNumber"] = f"urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, digest)}"
    return document


def main(out_dir: str, target: str) -> None:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    meta = cargo_metadata(root, target)
    checksums = lock_checksums(root)
    os.makedirs(out_dir, exist_ok=True)
    for function in FUNCTIONS:
        document = bom(meta, checksums, function, target)
        path = os.path.join(out_dir, f"{function}.cdx.json")
        with open(path, "w", encoding="utf-8") as f:
            json.dump(document, f, indent=2, sort_keys=True)
            f.write("\n")
        print(f"sbom: {path} ({len(document['components'])} components)")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else DEFAULT_TARGET)
