#!/usr/bin/env python3
"""Fails when a log captured during the test run holds a bearer token.

Every token the tests mint is appended to MINTED_TOKENS_FILE (tests/src/dev_tokens.rs,
tests/src/jwks_issuer.rs). After the suite, scripts/test.sh runs this over every log the run
produced:

  * target/<profile>/test-logs/: the binaries the tests start (ingest, worker, the dev User
    Service, Lambda-mode processes) and the in-process apps' tracing output;
  * the output of `cargo test` itself (what reaches the CI log: failing tests' captured
    output, eprintln!s, panics);
  * the emulator's own log and, with --cloudwatch-logs, every log event in the emulator's
    CloudWatch Logs: where MiniStack writes the output of the Lambda functions it runs for the
    deployed-stack tests (/aws/lambda/<function>). They are dumped to --dump-dir first, then
    scanned like any other log.

Any token, any token's signature (the part that makes it usable), a JWT-shaped Bearer value or
an `Authorization` header value in any of them fails `make test`.

    scan-test-logs.py [options] TOKENS_FILE SINCE_MARKER LOG_PATH...

LOG_PATH is a directory (its files written since SINCE_MARKER are scanned) or a file
(scanned when it exists). Options:

    --allow-no-tokens          an empty TOKENS_FILE is reported, not a failure (a filtered
                               run that minted none); the Bearer/Authorization patterns are
                               still looked for
    --cloudwatch-logs URL      dump the CloudWatch Logs of the emulator at URL and scan them
    --dump-dir DIR             where those dumps go (default: beside TOKENS_FILE)
    --require-function-logs    fail unless the CloudWatch dump held at least one event of a
                               /aws/lambda/ log group (the functions ran and were scanned)
"""

import json
import os
import re
import sys
import urllib.error
import urllib.request

# A JWT-shaped bearer value, whoever minted it.
BEARER = re.compile(r"(?i)bearer\s+[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]+")
AUTHORIZATION = re.compile(r'(?i)"authorization"\s*:\s*"[^"]+"')


def fail(message: str) -> int:
    print(f"scan-test-logs: {message}", file=sys.stderr)
    return 1


def logs_call(endpoint: str, action: str, body: dict) -> dict:
    """One CloudWatch Logs JSON-protocol call. The emulator checks no signature; the
    Authorization header only names the service (the SDK's form, without a secret)."""
    request = urllib.request.Request(
        endpoint.rstrip("/") + "/",
        data=json.dumps(body).encode(),
        method="POST",
        headers={
            "Content-Type": "application/x-amz-json-1.1",
            "X-Amz-Target": f"Logs_20140328.{action}",
            "Authorization": "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/logs/"
            "aws4_request, SignedHeaders=host, Signature=0",
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read() or b"{}")


def paged(endpoint: str, action: str, body: dict, key: str):
    token = None
    seen = set()
    while True:
        page = logs_call(endpoint, action, dict(body, **({"nextToken": token} if token else {})))
        yield from page.get(key, [])
        token = page.get("nextToken")
        if not token or token in seen:
            return
        seen.add(token)


# MiniStack answers FilterLogEvents with at most this many events and no nextToken.
FILTER_PAGE_CAP = 10_000


def all_events(endpoint: str, group: str):
    """Every event of a log group. AWS pages FilterLogEvents with nextToken; MiniStack stops at
    FILTER_PAGE_CAP events without one, so a full tokenless answer is followed by another from
    its last timestamp, skipping the events already read."""
    start, seen = None, set()
    while True:
        body = {"logGroupName": group, **({"startTime": start} if start is not None else {})}
        got, last = 0, start
        for event in paged(endpoint, "FilterLogEvents", body, "events"):
            got += 1
            timestamp = event.get("timestamp")
            if isinstance(timestamp, int):
                last = timestamp if last is None else max(last, timestamp)
            key = event.get("eventId") or (timestamp, event.get("logStreamName"),
                                           event.get("message"))
            if key not in seen:
                seen.add(key)
                yield event
        if got < FILTER_PAGE_CAP:
            return
        if last is None or last == start:
            raise ValueError(f"{group}: over {FILTER_PAGE_CAP} events share one timestamp; "
                             "they cannot all be read")
        start = last


def dump_cloudwatch(endpoint: str, dump_dir: str) -> tuple[list[str], int, int]:
    """Writes each log group's events to a file in dump_dir; returns the files, the number of
    events and the number of events in /aws/lambda/ groups."""
    os.makedirs(dump_dir, exist_ok=True)
    for old in os.listdir(dump_dir):
        if old.startswith("cloudwatch-"):
            os.remove(os.path.join(dump_dir, old))
    files, events, function_events = [], 0, 0
    for group in paged(endpoint, "DescribeLogGroups", {}, "logGroups"):
        name = group["logGroupName"]
        path = os.path.join(dump_dir, "cloudwatch-" + re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".log")
        count = 0
        with open(path, "w", encoding="utf-8") as out:
            for event in all_events(endpoint, name):
                message = event.get("message", "")
                out.write(f"{event.get('logStreamName', '?')}\t{message}\n")
                count += 1
        files.append(path)
        events += count
        if name.startswith("/aws/lambda/"):
            function_events += count
    return files, events, function_events


def scan_file(path: str, secrets: re.Pattern | None, found: list[str]) -> None:
    with open(path, encoding="utf-8", errors="replace") as f:
        for number, line in enumerate(f, 1):
            leaked = secrets is not None and secrets.search(line)
            if leaked or BEARER.search(line) or AUTHORIZATION.search(line):
                found.append(f"{path}:{number}")


def main(argv: list[str]) -> int:
    allow_no_tokens = require_function_logs = False
    cloudwatch = dump_dir = None
    positional = []
    args = iter(argv)
    for arg in args:
        if arg == "--allow-no-tokens":
            allow_no_tokens = True
        elif arg == "--require-function-logs":
            require_function_logs = True
        elif arg == "--cloudwatch-logs":
            cloudwatch = next(args, None)
        elif arg == "--dump-dir":
            dump_dir = next(args, None)
        elif arg.startswith("--"):
            print(__doc__.strip(), file=sys.stderr)
            return 2
        else:
            positional.append(arg)
    if len(positional) < 3 or (require_function_logs and not cloudwatch):
        print(__doc__.strip(), file=sys.stderr)
        return 2
    tokens_file, marker, *log_paths = positional
    try:
        with open(tokens_file, encoding="utf-8") as f:
            tokens = {line.strip() for line in f if line.strip()}
    except FileNotFoundError:
        tokens = set()
    if not tokens:
        if not allow_no_tokens:
            return fail(f"no minted tokens were recorded in {tokens_file}; the scan would prove "
                        "nothing (is MINTED_TOKENS_FILE reaching the tests, and does recording work?)")
        print("scan-test-logs: this run minted no tokens; looking only for Bearer and "
              "Authorization values", file=sys.stderr)
    # One alternation instead of a substring test per token per line: a big deployed run has
    # hundreds of thousands of lines.
    secrets = tokens | {t.rsplit(".", 1)[-1] for t in tokens if t.count(".") == 2}
    secrets_pattern = (re.compile("|".join(map(re.escape, sorted(secrets, key=len, reverse=True))))
                       if secrets else None)
    since = os.stat(marker).st_mtime

    files = []
    for log_path in log_paths:
        if os.path.isdir(log_path):
            for name in sorted(os.listdir(log_path)):
                path = os.path.join(log_path, name)
                if os.path.isfile(path) and os.stat(path).st_mtime >= since:
                    files.append(path)
        elif os.path.isfile(log_path):
            files.append(log_path)
    cloudwatch_note = ""
    if cloudwatch:
        try:
            dumped, events, function_events = dump_cloudwatch(
                cloudwatch, dump_dir or os.path.dirname(os.path.abspath(tokens_file)))
        except (urllib.error.URLError, OSError, ValueError, KeyError) as e:
            return fail(f"could not read the CloudWatch Logs of {cloudwatch}: {e}")
        if require_function_logs and function_events == 0:
            return fail(f"the emulator at {cloudwatch} holds no Lambda function log event: the "
                        "functions' output (where a leak would be) was not captured, so it "
                        "cannot be scanned")
        files += dumped
        cloudwatch_note = (f", {events} CloudWatch log events ({function_events} from Lambda "
                           "functions)")

    found: list[str] = []
    for path in files:
        scan_file(path, secrets_pattern, found)
    if found:
        print(f"scan-test-logs: a token or Authorization value is in {len(found)} log line(s):",
              file=sys.stderr)
        for where in found[:20]:
            print(f"  {where}", file=sys.stderr)
        return 1
    print(f"scan-test-logs: {len(files)} logs of this run{cloudwatch_note} hold none of the "
          f"{len(tokens)} tokens the tests minted, and no Authorization value")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
