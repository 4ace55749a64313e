#!/usr/bin/env python3
"""Generates the stable-toolchain build of the fuzz targets (scripts/fuzz.sh, FUZZ_ENGINE=stable).

    generate.py REPO_ROOT OUT_DIR      prints the target names, one a line

Every [[bin]] of fuzz/Cargo.toml (cargo-fuzz's list of targets: a new target is picked up
with no change here) becomes a plain binary, fuzz-<target>, from OUT_DIR/src/bin/<target>.rs: the target's source as it
is, `#![no_main]` dropped, followed by fuzz/stable/driver.rs, which supplies `main` (replay
the seeds and corpus, then mutate at random for FUZZ_SECONDS). libfuzzer-sys is built without
libFuzzer (`default-features = false`), so neither nightly nor a C++ compiler is needed.

The generated crate is its own workspace, built with CARGO_TARGET_DIR=target (the main
workspace's) so it reuses what `make test` already compiled: it depends on every member of
the main workspace (so each dependency gets the same features as in `cargo build --workspace
--bins`), uses the main workspace's dev profile (the members' own settings restored over the
`package."*"` override, since here they are not members) and starts from the main
Cargo.lock (the fuzz-only crates pinned from fuzz/Cargo.lock). The same crates, features and
profile hash to the same artifacts, so only the targets themselves are compiled.
"""

import json
import os
import sys

try:
    import tomllib
except ModuleNotFoundError:  # Python < 3.11
    sys.exit("generate.py needs Python 3.11 or newer (tomllib)")

# The dev profile's defaults, for the keys a `package."*"` override may change.
DEV_DEFAULTS = {
    "opt-level": 0,
    "debug": True,
    "debug-assertions": True,
    "overflow-checks": True,
    "codegen-units": 256,
    "strip": "none",
    "split-debuginfo": None,
}
OVERRIDABLE = set(DEV_DEFAULTS)


def toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
    raise TypeError(f"cannot write {value!r} as TOML")


def table(name: str, values: dict) -> str:
    lines = [f"[{name}]"]
    lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in values.items() if v is not None]
    return "\n".join(lines) + "\n"


def merged_lock(root_lock: dict, fuzz_lock: dict) -> str:
    """The main lock file plus the fuzz-only packages of fuzz/Cargo.lock."""
    names = {p["name"] for p in root_lock["package"]}
    packages = list(root_lock["package"])
    packages += [p for p in fuzz_lock.get("package", []) if p["name"] not in names]
    out = [f"version = {root_lock.get('version', 4)}\n"]
    for package in packages:
        out.append("[[package]]")
        for key in ("name", "version", "source", "checksum", "dependencies"):
            if key in package:
                out.append(f"{key} = {toml_value(package[key])}")
        out.append("")
    return "\n".join(out)


def write_if_changed(path: str, text: str) -> None:
    """Leaves an unchanged file alone, so cargo does not rebuild what did not change."""
    try:
        with open(path, encoding="utf-8") as f:
            if f.read() == text:
                return
    except FileNotFoundError:
        pass
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def main() -> int:
    if len(sys.argv) != 3:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    root, out = (os.path.abspath(a) for a in sys.argv[1:])
    fuzz = os.path.join(root, "fuzz")
    with open(os.path.join(root, "Cargo.toml"), "rb") as f:
        workspace = tomllib.load(f)
    with open(os.path.join(fuzz, "Cargo.toml"), "rb") as f:
        fuzz_manifest = tomllib.load(f)
    bins = fuzz_manifest.get("bin", [])
    if not bins:
        print("fuzz/Cargo.toml lists no [[bin]] (no fuzz target)", file=sys.stderr)
        return 1

    # A target file without its [[bin]] would be run by no engine: say so instead.
    listed = {os.path.normpath(os.path.join(fuzz, b.get("path", f"fuzz_targets/{b['name']}.rs")))
              for b in bins}
    targets_dir = os.path.join(fuzz, "fuzz_targets")
    unlisted = sorted(f for f in os.listdir(targets_dir)
                      if f.endswith(".rs") and os.path.join(targets_dir, f) not in listed)
    if unlisted:
        print(f"fuzz/fuzz_targets/ has {', '.join(unlisted)} with no [[bin]] in fuzz/Cargo.toml "
              "(cargo fuzz add writes one): it would never run", file=sys.stderr)
        return 1

    dependencies = {}
    for name, spec in fuzz_manifest.get("dependencies", {}).items():
        spec = dict(spec) if isinstance(spec, dict) else {"version": spec}
        if "path" in spec:
            spec["path"] = os.path.normpath(os.path.join(fuzz, spec["path"]))
        if name == "libfuzzer-sys":
            # No libFuzzer: the driver is the main. (link_libfuzzer is its only default.)
            spec["default-features"] = False
        dependencies[name] = spec
    members = workspace["workspace"]["members"]
    for member in members:
        with open(os.path.join(root, member, "Cargo.toml"), "rb") as f:
            package = tomllib.load(f)["package"]["name"]
        dependencies.setdefault(package, {"path": os.path.join(root, member)})

    dev = workspace.get("profile", {}).get("dev", {})
    overrides = dict(dev.get("package", {}))
    base = {k: v for k, v in dev.items() if k != "package"}
    everything = overrides.get("*", {})
    member_profile = {
        k: base.get(k, DEV_DEFAULTS[k]) for k in everything if k in OVERRIDABLE
    }

    manifest = [
        "# Generated by fuzz/stable/generate.py from fuzz/Cargo.toml and the main Cargo.toml; "
        "do not edit.",
        table("package", {
            "name": "pipeline-fuzz-stable",
            "version": "0.0.0",
            "edition": fuzz_manifest["package"].get("edition", "2021"),
            "publish": False,
            "autobins": False,
        }),
        table("dependencies", dependencies),
        "[workspace]\n",
        table("profile.dev", base),
    ]
    for package, values in overrides.items():
        manifest.append(table(f'profile.dev.package.{json.dumps(package)}', values))
    if member_profile:
        for member in members:
            with open(os.path.join(root, member, "Cargo.toml"), "rb") as f:
                package = tomllib.load(f)["package"]["name"]
            if package not in overrides:
                manifest.append(table(f"profile.dev.package.{json.dumps(package)}", member_profile))
    with open(os.path.join(fuzz, "stable", "driver.rs"), encoding="utf-8") as f:
        driver = f.read()

    bin_dir = os.path.join(out, "src", "bin")
    os.makedirs(bin_dir, exist_ok=True)
    wanted = {f"{entry['name']}.rs" for entry in bins}
    for old in os.listdir(bin_dir):
        if old not in wanted:
            os.remove(os.path.join(bin_dir, old))
    for entry in bins:
        name = entry["name"]
        source_path = os.path.join(fuzz, entry.get("path", f"fuzz_targets/{name}.rs"))
        with open(source_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        # Same line count, so a panic's line number is the target's own.
        lines = ["// #![no_main]: the stable driver below supplies main" if line.strip() == "#![no_main]"
                 else line for line in lines]
        generated = ("\n".join(lines) + "\n\n" + driver
                     + f"\nconst STABLE_FUZZ_DIR: &str = {json.dumps(fuzz)};\n"
                     + f"const STABLE_FUZZ_TARGET: &str = {json.dumps(name)};\n")
        write_if_changed(os.path.join(bin_dir, f"{name}.rs"), generated)
        # Prefixed: the binaries land in the main target directory beside ingest and worker.
        manifest.append(table("[bin]", {"name": f"fuzz-{name}", "path": f"src/bin/{name}.rs", "test": False,
                                        "bench": False, "doc": False}))

    write_if_changed(os.path.join(out, "Cargo.toml"), "\n".join(manifest))
    with open(os.path.join(root, "Cargo.lock"), "rb") as f:
        root_lock = tomllib.load(f)
    try:
        with open(os.path.join(fuzz, "Cargo.lock"), "rb") as f:
            fuzz_lock = tomllib.load(f)
    except FileNotFoundError:
        fuzz_lock = {}
    # cargo rewrites the lock (adding this crate); regenerate it only when an input changed.
    lock_path = os.path.join(out, "Cargo.lock")
    inputs = json.dumps([root_lock, fuzz_lock], sort_keys=True)
    stamp = os.path.join(out, "Cargo.lock.inputs")
    try:
        with open(stamp, encoding="utf-8") as f:
            fresh = f.read() == inputs and os.path.exists(lock_path)
    except FileNotFoundError:
        fresh = False
    if not fresh:
        with open(lock_path, "w", encoding="utf-8") as f:
            f.write(merged_lock(root_lock, fuzz_lock))
        with open(stamp, "w", encoding="utf-8") as f:
            f.write(inputs)
    for entry in bins:
        print(entry["name"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
