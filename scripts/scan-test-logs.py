#!/usr/bin/env python3
"""Fails when a log captured during the test run holds a bearer token.

Every token the tests mint is appended to MINTED_TOKENS_FILE (tests/src/dev_tokens.rs);
every binary a test starts writes its output under target/<profile>/test-logs/. After the
suite, scripts/test.sh runs this over the logs written since the run began: any token, or
any token's signature (the part that makes it usable), or an `Authorization` header value
in any of them fails `make test`.

    scan-test-logs.py TOKENS_FILE SINCE_MARKER LOG_DIR...
"""

import os
import re
import sys

# A JWT-shaped bearer value, whoever minted it.
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
AUTHORIZATION = re.compile(r'(?i)"authorization"\s*:\s*"[^"]+"')


def main() -> int:
    if len(sys.argv) < 4:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tokens_file, marker, *log_dirs = sys.argv[1:]
    try:
        with open(tokens_file, encoding="utf-8") as f:
            tokens = {line.strip() for line in f if line.strip()}
    except FileNotFoundError:
        tokens = set()
    if not tokens:
        print("scan-test-logs: no minted tokens were recorded; the scan would prove nothing",
              file=sys.stderr)
        return 1
    secrets = tokens | {t.rsplit(".", 1)[-1] for t in tokens if t.count(".") == 2}
    since = os.stat(marker).st_mtime
    scanned, found = 0, []
    for log_dir in log_dirs:
        if not os.path.isdir(log_dir):
            continue
        for name in sorted(os.listdir(log_dir)):
            path = os.path.join(log_dir, name)
            if not os.path.isfile(path) or os.stat(path).st_mtime < since:
                continue
            scanned += 1
            with open(path, encoding="utf-8", errors="replace") as f:
                for number, line in enumerate(f, 1):
                    leaked = [s for s in secrets if s in line]
                    if leaked or BEARER.search(line) or AUTHORIZATION.search(line):
                        found.append(f"{path}:{number}")
    if found:
        print(f"scan-test-logs: a token or Authorization value is in {len(found)} log line(s):",
              file=sys.stderr)
        for where in found[:20]:
            print(f"  {where}", file=sys.stderr)
        return 1
    print(f"scan-test-logs: {scanned} logs of this run hold none of the {len(tokens)} tokens "
          "the tests minted, and no Authorization value")
    return 0


if __name__ == "__main__":
    sys.exit(main())
