//! Every bad input we document, tried for real: HTTP requests against ingest on a socket (its
//! own queue in the emulator, the User Service stub), and queue messages through the worker's
//! processor into the emulator's DLQ. Each row states the answer it must get; the test fails
//! when the real answer differs, and when `docs/bad-inputs.md` is not exactly the table
//! rendered from these rows, so the doc cannot drift.
//!
//! After changing a row: `UPDATE_DOCS=1 cargo test -p pipeline-tests --test api bad_inputs::`.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use pipeline_tests::{spawn_app, StubBehavior, TestApp};
use serde_json::Value;
use worker::dlq::{DETAIL_ATTRIBUTE, ORIGINAL_MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE};

const DOC: &str = "docs/bad-inputs.md";

/// What a request carries as its token.
#[derive(Clone, Copy)]
enum Auth {
    None,
    /// The header value as given.
    Header(&'static str),
    /// A valid token for this user.
    For(&'static str),
    /// A validly shaped JWT whose claims are these (base64url-encoded by the test).
    Claims(&'static str),
}

struct HttpRow {
    input: &'static str,
    method: &'static str,
    /// The path's user; the request goes to `/v1/users/{user}/credit-scores` unless
    /// `path` is given.
    user: &'static str,
    path: Option<&'static str>,
    auth: Auth,
    content_type: Option<&'static str>,
    headers: &'static [(&'static str, &'static str)],
    body: Body,
    user_service: StubBehavior,
    status: u16,
    problem: &'static str,
    fields: &'static [&'static str],
}

enum Body {
    Text(&'static str),
    Bytes(&'static [u8]),
    /// A generated body (too long to write out).
    Made(fn() -> Vec<u8>),
}

const OK: StubBehavior = StubBehavior::Status(204);
const VALID: &str = r#"{"bureau":"experian","score":700,"reportedAt":"2026-01-01T00:00:00Z"}"#;

const fn row(
    input: &'static str,
    body: Body,
    status: u16,
    problem: &'static str,
    fields: &'static [&'static str],
) -> HttpRow {
    HttpRow {
        input,
        method: "POST",
        user: "alice",
        path: None,
        auth: Auth::For("alice"),
        content_type: Some("application/json"),
        headers: &[],
        body,
        user_service: OK,
        status,
        problem,
        fields,
    }
}

fn http_rows() -> Vec<HttpRow> {
    use Body::{Bytes, Made, Text};
    vec![
        // --- authentication and authorization
        HttpRow {
            auth: Auth::None,
            ..row(
                "no `Authorization` header",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            auth: Auth::Header("Basic YWxpY2U6cHc="),
            ..row(
                "`Authorization: Basic ...`",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            auth: Auth::Header("Bearer"),
            ..row(
                "`Authorization: Bearer` with no token",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            auth: Auth::Header("Bearer not-a-jwt"),
            ..row(
                "a Bearer token that is not a JWT",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            auth: Auth::Claims(r#"{"name":"alice"}"#),
            ..row(
                "a JWT without a `sub` claim",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            user_service: StubBehavior::Status(401),
            ..row(
                "a token the User Service rejects (401)",
                Text(VALID),
                401,
                "unauthorized",
                &[],
            )
        },
        HttpRow {
            user_service: StubBehavior::Status(403),
            ..row(
                "a token the User Service refuses (403)",
                Text(VALID),
                403,
                "forbidden",
                &[],
            )
        },
        HttpRow {
            auth: Auth::For("mallory"),
            ..row(
                "a valid token of another user",
                Text(VALID),
                403,
                "forbidden",
                &[],
            )
        },
        HttpRow {
            user_service: StubBehavior::Status(500),
            ..row(
                "User Service answers 500",
                Text(VALID),
                503,
                "service-unavailable",
                &[],
            )
        },
        HttpRow {
            user_service: StubBehavior::Slow(Duration::from_secs(3), 204),
            ..row(
                "User Service slower than its timeout",
                Text(VALID),
                503,
                "service-unavailable",
                &[],
            )
        },
        // --- path, method, headers
        HttpRow {
            user: "al.ice",
            auth: Auth::For("al.ice"),
            ..row(
                "`userId` with a character outside `[A-Za-z0-9_-]` (`al.ice`)",
                Text(VALID),
                400,
                "bad-request",
                &["userId"],
            )
        },
        HttpRow {
            user: "USER%23x",
            auth: Auth::For("USER#x"),
            ..row(
                "`userId` that would forge a key (`USER%23x`)",
                Text(VALID),
                400,
                "bad-request",
                &["userId"],
            )
        },
        HttpRow {
            user: "%FF",
            ..row(
                "`userId` that is not UTF-8 (`%FF`)",
                Text(VALID),
                400,
                "bad-request",
                &["userId"],
            )
        },
        HttpRow {
            method: "PUT",
            ..row(
                "`PUT` on the write route",
                Text(VALID),
                405,
                "method-not-allowed",
                &[],
            )
        },
        HttpRow {
            path: Some("/v1/user/alice/credit-scores"),
            ..row("an unknown path", Text(VALID), 404, "not-found", &[])
        },
        HttpRow {
            content_type: None,
            ..row(
                "no `Content-Type`",
                Text(VALID),
                415,
                "unsupported-media-type",
                &[],
            )
        },
        HttpRow {
            content_type: Some("text/plain"),
            ..row(
                "`Content-Type: text/plain`",
                Text(VALID),
                415,
                "unsupported-media-type",
                &[],
            )
        },
        HttpRow {
            content_type: Some("application/x-www-form-urlencoded"),
            ..row(
                "`Content-Type: application/x-www-form-urlencoded`",
                Text("bureau=experian"),
                415,
                "unsupported-media-type",
                &[],
            )
        },
        HttpRow {
            headers: &[("idempotency-key", "a/b")],
            ..row(
                "`Idempotency-Key` with `/`",
                Text(VALID),
                400,
                "bad-request",
                &["Idempotency-Key"],
            )
        },
        HttpRow {
            headers: &[(
                "idempotency-key",
                "kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk",
            )],
            ..row(
                "`Idempotency-Key` of 65 characters",
                Text(VALID),
                400,
                "bad-request",
                &["Idempotency-Key"],
            )
        },
        HttpRow {
            headers: &[("idempotency-key", "key-1")],
            ..row(
                "body `reportId` differs from the `Idempotency-Key`",
                Text(
                    r#"{"bureau":"experian","score":700,"reportedAt":"2026-01-01T00:00:00Z","reportId":"key-2"}"#,
                ),
                422,
                "validation-error",
                &["reportId"],
            )
        },
        // --- the body as a whole
        row(
            "body over 64 KiB",
            Made(|| {
                format!(r#"{{"bureau":"experian","score":700,"reportedAt":"2026-01-01T00:00:00Z","pad":"{}"}}"#, "x".repeat(70_000)).into_bytes()
            }),
            413,
            "payload-too-large",
            &[],
        ),
        row("empty body", Text(""), 400, "bad-request", &["body"]),
        row(
            "body that is not JSON (`{`)",
            Text("{"),
            400,
            "bad-request",
            &["body"],
        ),
        row(
            "body that is not UTF-8",
            Bytes(b"{\"bureau\":\"\xff\"}"),
            400,
            "bad-request",
            &["body"],
        ),
        row("JSON array", Text("[]"), 400, "bad-request", &["body"]),
        row("JSON `null`", Text("null"), 400, "bad-request", &["body"]),
        row(
            "JSON nested 1,000 deep",
            Made(|| format!("{}{}", "[".repeat(1000), "]".repeat(1000)).into_bytes()),
            400,
            "bad-request",
            &["body"],
        ),
        row(
            "a number beyond f64 (`1e400`)",
            Text(r#"{"bureau":"experian","score":1e400,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            400,
            "bad-request",
            &["body"],
        ),
        // --- fields
        row(
            "`{}`",
            Text("{}"),
            422,
            "validation-error",
            &["bureau", "score", "reportedAt"],
        ),
        row(
            "unknown field (`scroe` for `score`)",
            Text(r#"{"bureau":"experian","scroe":700,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["scroe", "score"],
        ),
        row(
            "several bad fields at once",
            Text(r#"{"bureau":7,"score":"700","reportedAt":"soon","x":1}"#),
            422,
            "validation-error",
            &["x", "bureau", "score", "reportedAt"],
        ),
        row(
            "`bureau` unknown (`fico`)",
            Text(r#"{"bureau":"fico","score":700,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["bureau"],
        ),
        row(
            "`bureau` in another case (`Experian`)",
            Text(r#"{"bureau":"Experian","score":700,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["bureau"],
        ),
        row(
            "`bureau` null",
            Text(r#"{"bureau":null,"score":700,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["bureau"],
        ),
        row(
            "`score` 1000 for experian (max 999)",
            Text(r#"{"bureau":"experian","score":1000,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` 1001 for equifax (max 1000)",
            Text(r#"{"bureau":"equifax","score":1001,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` 711 for transunion (max 710)",
            Text(r#"{"bureau":"transunion","score":711,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` negative",
            Text(r#"{"bureau":"experian","score":-1,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` fractional (`812.5`)",
            Text(r#"{"bureau":"experian","score":812.5,"reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` as a string (`\"812\"`)",
            Text(r#"{"bureau":"experian","score":"812","reportedAt":"2026-01-01T00:00:00Z"}"#),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`score` beyond u64",
            Text(
                r#"{"bureau":"experian","score":18446744073709551616,"reportedAt":"2026-01-01T00:00:00Z"}"#,
            ),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "duplicate key: the last one counts (`score` 1, then 2000)",
            Text(
                r#"{"bureau":"experian","score":1,"score":2000,"reportedAt":"2026-01-01T00:00:00Z"}"#,
            ),
            422,
            "validation-error",
            &["score"],
        ),
        row(
            "`reportedAt` not a timestamp (`yesterday`)",
            Text(r#"{"bureau":"experian","score":700,"reportedAt":"yesterday"}"#),
            422,
            "validation-error",
            &["reportedAt"],
        ),
        row(
            "`reportedAt` a date only",
            Text(r#"{"bureau":"experian","score":700,"reportedAt":"2026-01-01"}"#),
            422,
            "validation-error",
            &["reportedAt"],
        ),
        row(
            "`reportedAt` epoch seconds",
            Text(r#"{"bureau":"experian","score":700,"reportedAt":1700000000}"#),
            422,
            "validation-error",
            &["reportedAt"],
        ),
        row(
            "`reportedAt` more than 5 minutes ahead",
            Made(|| {
                format!(
                    r#"{{"bureau":"experian","score":700,"reportedAt":"{}"}}"#,
                    contract::rfc3339::format_utc_millis(
                        time::OffsetDateTime::now_utc() + time::Duration::minutes(6)
                    )
                )
                .into_bytes()
            }),
            422,
            "validation-error",
            &["reportedAt"],
        ),
        row(
            "`reportedAt` past year 9999 in UTC (`9999-12-31T10:11:00-13:49`)",
            Text(r#"{"bureau":"experian","score":700,"reportedAt":"9999-12-31T10:11:00-13:49"}"#),
            422,
            "validation-error",
            &["reportedAt"],
        ),
        row(
            "`reportId` with a space",
            Text(
                r#"{"bureau":"experian","score":700,"reportedAt":"2026-01-01T00:00:00Z","reportId":"a b"}"#,
            ),
            422,
            "validation-error",
            &["reportId"],
        ),
        row(
            "`reportId` with `#` (key separator)",
            Text(
                r##"{"bureau":"experian","score":700,"reportedAt":"2026-01-01T00:00:00Z","reportId":"r#1"}"##,
            ),
            422,
            "validation-error",
            &["reportId"],
        ),
    ]
}

struct QueueRow {
    input: &'static str,
    body: fn() -> String,
    reason: &'static str,
    fields: &'static [&'static str],
}

fn message(edit: impl FnOnce(&mut serde_json::Map<String, Value>)) -> String {
    let mut v = serde_json::json!({"version":1,"reportId":"r-1","userId":"alice","bureau":"experian",
        "score":812,"reportedAt":"2026-11-01T10:00:00Z","source":"batch:nightly"});
    if let Some(o) = v.as_object_mut() {
        edit(o);
    }
    v.to_string()
}

fn set(field: &'static str, value: Value) -> impl FnOnce(&mut serde_json::Map<String, Value>) {
    move |o| {
        o.insert(field.to_owned(), value);
    }
}

fn queue_rows() -> Vec<QueueRow> {
    vec![
        QueueRow {
            input: "whitespace only",
            body: || "  ".into(),
            reason: "empty_body",
            fields: &[],
        },
        QueueRow {
            input: "not JSON",
            body: || "score=812".into(),
            reason: "invalid_json",
            fields: &[],
        },
        QueueRow {
            input: "JSON array",
            body: || "[1,2]".into(),
            reason: "not_an_object",
            fields: &[],
        },
        QueueRow {
            input: "`version` 2",
            body: || message(set("version", 2.into())),
            reason: "unknown_version",
            fields: &[],
        },
        QueueRow {
            input: "`version` as a string (`\"1\"`)",
            body: || message(set("version", "1".into())),
            reason: "unknown_version",
            fields: &[],
        },
        QueueRow {
            input: "no `version`",
            body: || {
                message(|o| {
                    o.remove("version");
                })
            },
            reason: "contract_violation",
            fields: &["version"],
        },
        QueueRow {
            input: "no `reportId`",
            body: || {
                message(|o| {
                    o.remove("reportId");
                })
            },
            reason: "contract_violation",
            fields: &["reportId"],
        },
        QueueRow {
            input: "`userId` with `#` (would forge a key)",
            body: || message(set("userId", "alice#LATEST".into())),
            reason: "contract_violation",
            fields: &["userId"],
        },
        QueueRow {
            input: "`bureau` unknown",
            body: || message(set("bureau", "fico".into())),
            reason: "contract_violation",
            fields: &["bureau"],
        },
        QueueRow {
            input: "`score` 711 for transunion",
            body: || {
                message(|o| {
                    o.insert("bureau".into(), "transunion".into());
                    o.insert("score".into(), 711.into());
                })
            },
            reason: "contract_violation",
            fields: &["score"],
        },
        QueueRow {
            input: "`reportedAt` more than 5 minutes ahead",
            body: || {
                message(set(
                    "reportedAt",
                    contract::rfc3339::format_utc_millis(
                        time::OffsetDateTime::now_utc() + time::Duration::minutes(6),
                    )
                    .into(),
                ))
            },
            reason: "contract_violation",
            fields: &["reportedAt"],
        },
        QueueRow {
            input: "`reportedAt` past year 9999 in UTC",
            body: || message(set("reportedAt", "9999-12-31T10:11:00-13:49".into())),
            reason: "contract_violation",
            fields: &["reportedAt"],
        },
        QueueRow {
            input: "`receivedAt` past year 9999 in UTC",
            body: || message(set("receivedAt", "9999-12-31T23:00:00-05:00".into())),
            reason: "contract_violation",
            fields: &["receivedAt"],
        },
        QueueRow {
            input: "`source` neither `api` nor `batch:<name>`",
            body: || message(set("source", "ftp".into())),
            reason: "contract_violation",
            fields: &["source"],
        },
        QueueRow {
            input: "`source` `batch:` with no name",
            body: || message(set("source", "batch:".into())),
            reason: "contract_violation",
            fields: &["source"],
        },
        QueueRow {
            input: "unknown field",
            body: || message(set("priority", "high".into())),
            reason: "contract_violation",
            fields: &["priority"],
        },
        QueueRow {
            input: "unknown field named `\\uffff` (SQS refuses U+FFFF in attributes: shown as `?`)",
            // As a producer can send it: the JSON escape, six ASCII characters. SQS refuses
            // the raw character in a body (only #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD and
            // #x10000-#x10FFFF pass), so the key decodes to U+FFFF only in the worker.
            body: || message(set("\u{ffff}", 1.into())).replace('\u{ffff}', "\\uffff"),
            reason: "contract_violation",
            fields: &["?"],
        },
        QueueRow {
            input: "every field wrong",
            body: || {
                r#"{"version":1,"reportId":"a b","userId":"","bureau":"fico","score":-1,"reportedAt":"soon","source":"ftp","extra":1}"#.into()
            },
            reason: "contract_violation",
            fields: &[
                "extra",
                "reportId",
                "userId",
                "bureau",
                "score",
                "reportedAt",
                "source",
            ],
        },
    ]
}

fn encode(claims: &str) -> String {
    use base64::Engine;
    let enc = |s: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s);
    format!("{}.{}.c2ln", enc(r#"{"alg":"HS256"}"#), enc(claims))
}

/// (status, problem type slug, fields named) as ingest really answered.
async fn send(app: &TestApp, r: &HttpRow) -> (u16, String, Vec<String>) {
    app.user_service.set(r.user_service);
    let path = r.path.map_or_else(
        || format!("/v1/users/{}/credit-scores", r.user),
        str::to_owned,
    );
    let method = reqwest::Method::from_bytes(r.method.as_bytes()).expect("a method");
    let mut request = app.http.request(method, app.url(&path));
    match r.auth {
        Auth::None => {}
        Auth::Header(value) => request = request.header("authorization", value),
        Auth::For(user) => request = request.bearer_auth(app.token_for(user)),
        Auth::Claims(claims) => request = request.bearer_auth(encode(claims)),
    }
    if let Some(ct) = r.content_type {
        request = request.header("content-type", ct);
    }
    for (name, value) in r.headers {
        request = request.header(*name, *value);
    }
    let body = match &r.body {
        Body::Text(t) => t.as_bytes().to_vec(),
        Body::Bytes(b) => b.to_vec(),
        Body::Made(f) => f(),
    };
    let response = request.body(body).send().await.expect("ingest answers");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let problem: Value = response.json().await.unwrap_or(Value::Null);
    app.user_service.set(OK);
    assert_eq!(
        content_type, "application/problem+json",
        "{}: {problem}",
        r.input
    );
    assert_eq!(
        problem["status"].as_u64(),
        Some(u64::from(status)),
        "{}: body status differs from HTTP status: {problem}",
        r.input
    );
    let slug = problem["type"]
        .as_str()
        .and_then(|t| t.strip_prefix("urn:credit-scores:problem:"))
        .unwrap_or("(none)")
        .to_owned();
    let fields = problem["errors"]
        .as_array()
        .map(|errors| {
            errors
                .iter()
                .map(|e| e["field"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default();
    (status, slug, fields)
}

/// The field names in a DLQ `failureDetail` (`contract violation: f: why; g: why`).
fn detail_fields(detail: &str) -> Vec<String> {
    detail
        .strip_prefix("contract violation: ")
        .map(|list| {
            list.split("; ")
                .filter_map(|part| part.split_once(": ").map(|(f, _)| f.to_owned()))
                .collect()
        })
        .unwrap_or_default()
}

/// (reason code, fields named) for each queue row, as the worker really dead-lettered them.
async fn dead_letter_all(app: &TestApp, rows: &[QueueRow]) -> Vec<(String, Vec<String>)> {
    let emulator = &app.emulator;
    let resources = &app.resources;
    let mut row_of_message = HashMap::new();
    for (i, r) in rows.iter().enumerate() {
        let sent = emulator
            .sqs
            .send_message()
            .queue_url(&resources.queue_url)
            .message_body((r.body)())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: SQS refused the body: {e:?}", r.input));
        row_of_message.insert(sent.message_id.expect("a message id"), i);
    }
    let env = [
        ("DLQ_URL", resources.dlq_url.as_str()),
        ("TABLE_NAME", resources.table_name.as_str()),
    ];
    let settings = worker::settings::WorkerSettings::from_source(&env).expect("worker settings");
    let processor = worker::build_processor(&settings, &emulator.sdk);
    let inbound: Vec<_> = emulator
        .receive_all(&resources.queue_url)
        .await
        .iter()
        .map(worker::poller::inbound_from_sqs)
        .collect();
    assert_eq!(inbound.len(), rows.len(), "every message was received");
    let outcome = processor
        .process_batch(
            &inbound,
            tokio::time::Instant::now() + Duration::from_secs(30),
        )
        .await;
    assert_eq!(outcome.dead_lettered, rows.len(), "{outcome:?}");
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert!(
        emulator.scan(&resources.table_name).await.is_empty(),
        "a bad message was written"
    );

    let mut answers = vec![(String::new(), Vec::new()); rows.len()];
    let letters = emulator.receive_all(&resources.dlq_url).await;
    assert_eq!(letters.len(), rows.len(), "every bad message is in the DLQ");
    for letter in letters {
        let attrs = letter.message_attributes.unwrap_or_default();
        let text = |name: &str| {
            attrs
                .get(name)
                .and_then(|a| a.string_value.clone())
                .unwrap_or_default()
        };
        let row = row_of_message[&text(ORIGINAL_MESSAGE_ID_ATTRIBUTE)];
        answers[row] = (
            text(REASON_ATTRIBUTE),
            detail_fields(&text(DETAIL_ATTRIBUTE)),
        );
    }
    answers
}

fn cell(fields: &[impl AsRef<str>]) -> String {
    if fields.is_empty() {
        "—".to_owned()
    } else {
        fields
            .iter()
            .map(|f| format!("`{}`", f.as_ref()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn render(http: &[HttpRow], queue: &[QueueRow]) -> String {
    let mut doc = String::from(
        "# Bad inputs and the answers they get\n\n\
         Generated by `tests/tests/api/bad_inputs.rs`, which sends every row for real (HTTP to ingest on\n\
         a socket; queue messages through the worker's processor into the emulator's DLQ) and fails when\n\
         an answer or this file differs. Regenerate after changing a row:\n\
         `UPDATE_DOCS=1 cargo test -p pipeline-tests --test api bad_inputs::`.\n\n\
         Every HTTP refusal is `application/problem+json` (RFC 9457) with `type`\n\
         `urn:credit-scores:problem:<type>`, a `status` equal to the HTTP status and, for 400/422, an\n\
         `errors` list of `{field, message}` (listed below in the order returned). Checks run in this\n\
         order: token, path, owner, body size, `Content-Type`, `Idempotency-Key`, body. No bad input\n\
         gets a 5xx; 503 means the User Service (or the queue) could not answer, with `Retry-After`.\n\n\
         Beyond these rows, property tests (`*/tests/prop_*.rs`, `worker/src/processor/prop_tests.rs`)\n\
         and the fuzz targets (`fuzz/`, `scripts/fuzz.sh`) feed arbitrary bytes, JSON and requests to the\n\
         same parsers.\n\n\
         ## HTTP: `POST /v1/users/{userId}/credit-scores`\n\n\
         | input | status | problem type | fields named |\n\
         | --- | --- | --- | --- |\n",
    );
    for r in http {
        let _ = writeln!(
            doc,
            "| {} | {} | `{}` | {} |",
            r.input,
            r.status,
            r.problem,
            cell(r.fields)
        );
    }
    doc.push_str(
        "\n## Queue: a v1 message on the score queue\n\n\
         A message that can never succeed goes to the DLQ at once with message attributes\n\
         `failureReason` (the code below), `failureDetail` (naming each field), `originalMessageId`,\n\
         `failedAt` and `correlationId`; it is not retried and not written. Valid rows are written as\n\
         usual (not listed).\n\n\
         | input | `failureReason` | fields named in `failureDetail` |\n\
         | --- | --- | --- |\n",
    );
    for r in queue {
        let _ = writeln!(doc, "| {} | `{}` | {} |", r.input, r.reason, cell(r.fields));
    }
    doc
}

#[tokio::test]
async fn every_documented_bad_input_gets_its_documented_answer() {
    let app = spawn_app().await;
    let http = http_rows();
    let queue = queue_rows();

    let mut wrong = Vec::new();
    for r in &http {
        // The User Service's own answers do not exist in jwks mode (auth_jwks.rs covers it).
        if pipeline_tests::jwks_mode_under_test() && r.user_service != OK {
            continue;
        }
        let (status, slug, fields) = send(&app, r).await;
        let expected: Vec<String> = r.fields.iter().map(|f| (*f).to_owned()).collect();
        if (status, slug.as_str(), &fields) != (r.status, r.problem, &expected) {
            wrong.push(format!(
                "HTTP {:?}: documented {} {} {:?}, got {status} {slug} {fields:?}",
                r.input, r.status, r.problem, r.fields
            ));
        }
    }
    assert_eq!(
        app.drain_queue().await.len(),
        0,
        "a bad request was enqueued"
    );

    let answers = dead_letter_all(&app, &queue).await;
    for (r, (reason, fields)) in queue.iter().zip(answers) {
        let expected: Vec<String> = r.fields.iter().map(|f| (*f).to_owned()).collect();
        if (reason.as_str(), &fields) != (r.reason, &expected) {
            wrong.push(format!(
                "queue {:?}: documented {} {:?}, got {reason} {fields:?}",
                r.input, r.reason, r.fields
            ));
        }
    }
    assert!(
        wrong.is_empty(),
        "answers differ from the table:\n{}",
        wrong.join("\n")
    );

    let doc_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join(DOC);
    let rendered = render(&http, &queue);
    if std::env::var_os("UPDATE_DOCS").is_some() {
        std::fs::write(&doc_path, &rendered).expect("write the doc");
    }
    let on_disk = std::fs::read_to_string(&doc_path).unwrap_or_default();
    assert!(
        on_disk == rendered,
        "{DOC} is out of date: run \
         `UPDATE_DOCS=1 cargo test -p pipeline-tests --test api bad_inputs::`"
    );
}
