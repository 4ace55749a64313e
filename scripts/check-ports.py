#!/usr/bin/env python3
"""`make lint`: the ports know no HTTP and no AWS SDK.

A port is a `pub trait Name: Send + Sync` in a crate's src folder (ScoreQueue, ScoreReader,
ScoreStore, ...). Its method signatures, and the definitions of the crate's own types they
name (their error enums, their records), may not mention an axum, http or AWS SDK type: the
adapters own those, and the API edge maps the ports' own errors to statuses in one place.
Text-level on purpose (no Rust parser to install): comments and string literals are dropped
first, and a finding names the file, the port and the word.

    scripts/check-ports.py ingest/src worker/src      exit 1 on a finding
"""

import re
import sys
from pathlib import Path

FORBIDDEN = re.compile(
    r"\b(axum|http|hyper|aws_sdk_[a-z]+|aws_smithy_[a-z_]+|lambda_http|lambda_runtime)::"
    r"|\b(HeaderMap|HeaderValue|StatusCode|AttributeValue|MessageAttributeValue|SdkError"
    r"|EntryFailure|Bytes)\b"
)
# Names a signature may use without a definition to look into.
KNOWN = {
    "Self", "Result", "Option", "Vec", "String", "Send", "Sync", "Box", "Arc", "Ok", "Err",
    "Some", "None", "HashMap", "BTreeMap", "Duration", "Instant", "OffsetDateTime",
}
PORT = re.compile(r"^\s*pub trait (\w+)\s*:\s*Send\s*\+\s*Sync\b", re.M)


def strip(text: str) -> str:
    """Rust source without comments and string literals (whose words are not types)."""
    text = re.sub(r'r#*"(?:.|\n)*?"#*', '""', text)
    text = re.sub(r'"(?:\\.|[^"\\])*"', '""', text)
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r"/\*(?:.|\n)*?\*/", "", text)


def block(text: str, start: int) -> str:
    """From `start` to the brace that closes the first `{` after it."""
    open_at = text.find("{", start)
    if open_at < 0:
        return text[start:]
    depth = 0
    for i in range(open_at, len(text)):
        if text[i] == "{":
            depth += 1
        elif text[i] == "}":
            depth -= 1
            if depth == 0:
                return text[start : i + 1]
    return text[start:]


def signatures(trait_block: str) -> str:
    """The trait's method signatures, default bodies left out."""
    out = []
    for match in re.finditer(r"\bfn\s+\w+", trait_block):
        end = len(trait_block)
        for stop in (";", "{"):
            at = trait_block.find(stop, match.start())
            if 0 <= at < end:
                end = at
        out.append(trait_block[match.start() : end])
    return "\n".join(out)


def definitions(sources: dict) -> dict:
    """`pub struct|enum|type Name` -> (file, its text), across one crate."""
    found = {}
    pattern = re.compile(r"^\s*pub(?:\([^)]*\))?\s+(struct|enum|type)\s+(\w+)", re.M)
    for path, text in sources.items():
        for match in pattern.finditer(text):
            kind, name = match.groups()
            semicolon = text.find(";", match.start())
            brace = text.find("{", match.start())
            # An alias, a unit or tuple struct ends at the `;` that comes before any `{`.
            ends_early = 0 <= semicolon and (brace < 0 or semicolon < brace)
            if kind == "type" or (kind == "struct" and ends_early):
                body = text[match.start() : semicolon + 1]
            else:
                body = block(text, match.start())
            found.setdefault(name, (path, body))
    return found


def check_crate(src: Path) -> list:
    sources = {p: strip(p.read_text()) for p in sorted(src.rglob("*.rs"))}
    defs = definitions(sources)
    findings = []
    for path, text in sources.items():
        for port in PORT.finditer(text):
            name = port.group(1)
            sig = signatures(block(text, port.start()))
            for bad in FORBIDDEN.finditer(sig):
                findings.append(f"{path}: port {name}: its signature names `{bad.group(0)}`")
            for used in sorted(set(re.findall(r"\b[A-Z]\w*\b", sig)) - KNOWN):
                if used not in defs:
                    continue
                def_path, body = defs[used]
                for bad in FORBIDDEN.finditer(body):
                    findings.append(
                        f"{def_path}: `{used}` (used by port {name}) names `{bad.group(0)}`"
                    )
    return findings


def main(argv: list) -> int:
    if not argv:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    findings, ports = [], 0
    for folder in argv:
        src = Path(folder)
        ports += sum(len(PORT.findall(strip(p.read_text()))) for p in src.rglob("*.rs"))
        findings += check_crate(src)
    if ports == 0:
        print(f"check-ports: no port found under {' '.join(argv)}: nothing was checked", file=sys.stderr)
        return 1
    for finding in findings:
        print(f"check-ports: {finding}", file=sys.stderr)
    if findings:
        return 1
    print(f"check-ports: {ports} ports under {' '.join(argv)} name no HTTP or AWS SDK type")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
