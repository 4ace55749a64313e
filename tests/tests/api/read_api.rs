//! The read API against the emulator: reports are written by the real worker `Processor`
//! into the test's own table, then read back through ingest over HTTP.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use pipeline_tests::{spawn_app, spawn_app_with, StubBehavior, TestApp};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::time::Instant;
use worker::processor::{BatchOutcome, Processor};
use worker::record::InboundMessage;
use worker::settings::WorkerSettings;

use crate::named_fields;

const SCORES: &str = "/v1/users/alice/credit-scores";
const SIGNING_KEY: &str = "test-signing-key-of-at-least-32-bytes!";

/// The worker's processor, writing into this app's table.
fn processor(app: &TestApp) -> Arc<Processor> {
    let env: HashMap<String, String> = app.resources.env(&app.emulator).into_iter().collect();
    let settings = WorkerSettings::from_source(&env).expect("worker settings");
    worker::build_processor(&settings, &app.emulator.sdk)
}

/// A v1 queue message body, as ingest or a batch producer sends it.
fn message_body(user: &str, report: &str, bureau: &str, score: u16, reported_at: &str) -> String {
    json!({"version": 1, "reportId": report, "userId": user, "bureau": bureau, "score": score,
        "reportedAt": reported_at, "source": "batch:read-tests"})
    .to_string()
}

fn inbound(body: String) -> InboundMessage {
    InboundMessage {
        trace_header: None,
        message_id: ulid::Ulid::new().to_string(),
        body: Some(body),
        sent_at: None,
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

/// Runs one batch through the worker and insists every message was written.
async fn process(processor: &Processor, bodies: Vec<String>) -> BatchOutcome {
    let count = bodies.len();
    let messages: Vec<InboundMessage> = bodies.into_iter().map(inbound).collect();
    let outcome = processor
        .process_batch(&messages, Instant::now() + Duration::from_secs(30))
        .await;
    assert!(outcome.failed.is_empty(), "worker left {outcome:?}");
    assert_eq!(outcome.written, count, "{outcome:?}");
    outcome
}

/// A report the tests write: its id, bureau and `reportedAt` (stored form).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Written {
    id: String,
    bureau: &'static str,
    reported_at: String,
}

const BUREAUS: [&str; 3] = ["experian", "equifax", "transunion"];

/// `count` reports for `user`, an hour apart, except that every fifth shares its timestamp
/// with the one before (ties must be ordered by id, not dropped or repeated).
async fn write_reports(processor: &Processor, user: &str, count: usize) -> Vec<Written> {
    let start = time::macros::datetime!(2026-10-01 00:00:00 UTC);
    let mut written = Vec::new();
    let mut hour = 0i64;
    for i in 0..count {
        if i % 5 != 4 {
            hour += 1;
        }
        let at = contract::rfc3339::format_utc_millis(start + time::Duration::hours(hour));
        written.push(Written {
            id: format!("{user}-report-{i:03}"),
            bureau: BUREAUS[i % 3],
            reported_at: at,
        });
    }
    let bodies = written
        .iter()
        .map(|w| message_body(user, &w.id, w.bureau, 500, &w.reported_at))
        .collect();
    process(processor, bodies).await;
    written
}

/// Newest `reportedAt` first, ties by report id descending: the order the API promises.
fn newest_first(mut reports: Vec<Written>) -> Vec<String> {
    reports.sort_by(|a, b| (&b.reported_at, &b.id).cmp(&(&a.reported_at, &a.id)));
    reports.into_iter().map(|w| w.id).collect()
}

async fn get_json(app: &TestApp, path: &str, token: &str) -> (StatusCode, Value) {
    let response = app.get(path, token).await;
    let status = response.status();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body)
}

fn ids(page: &Value) -> Vec<String> {
    page["items"]
        .as_array()
        .expect("items is an array")
        .iter()
        .map(|item| item["reportId"].as_str().unwrap().to_owned())
        .collect()
}

/// Follows `nextCursor` from `first` to the end; returns each page's ids.
async fn all_pages(app: &TestApp, first: &str, token: &str) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut path = first.to_owned();
    loop {
        let (status, page) = get_json(app, &path, token).await;
        assert_eq!(status, StatusCode::OK, "{path}: {page}");
        pages.push(ids(&page));
        assert!(pages.len() <= 20, "cursor loop: {pages:?}");
        match page["nextCursor"].as_str() {
            Some(cursor) => {
                let separator = if first.contains('?') { '&' } else { '?' };
                path = format!("{first}{separator}cursor={cursor}");
            }
            None => {
                assert!(
                    page["nextCursor"].is_null(),
                    "nextCursor is null at the end"
                );
                return pages;
            }
        }
    }
}

fn assert_problem_naming(status: StatusCode, problem: &Value, field: &str) {
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert_eq!(problem["status"], 400);
    assert_eq!(named_fields(problem), [field], "{problem}");
}

#[tokio::test]
async fn pages_through_45_reports_twenty_at_a_time_newest_first_without_gaps_or_duplicates() {
    let app = spawn_app().await;
    let worker = processor(&app);
    let alice = write_reports(&worker, "alice", 45).await;
    // Another user's reports share the table and must never show up.
    write_reports(&worker, "bob", 7).await;

    let pages = all_pages(&app, &format!("{SCORES}?limit=20"), &app.token_for("alice")).await;

    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [20, 20, 5]);
    let listed: Vec<String> = pages.concat();
    assert_eq!(listed, newest_first(alice), "order, gaps or duplicates");
    assert_eq!(listed.iter().collect::<HashSet<_>>().len(), 45);
}

#[tokio::test]
async fn a_list_that_divides_evenly_ends_without_an_empty_page() {
    let app = spawn_app().await;
    let written = write_reports(&processor(&app), "alice", 40).await;

    let pages = all_pages(&app, &format!("{SCORES}?limit=20"), &app.token_for("alice")).await;

    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [20, 20]);
    assert_eq!(pages.concat(), newest_first(written));
}

#[tokio::test]
async fn lists_twenty_by_default_and_items_carry_the_stored_fields() {
    let app = spawn_app().await;
    let worker = processor(&app);
    write_reports(&worker, "alice", 21).await;
    process(
        &worker,
        vec![message_body(
            "alice",
            "the-newest",
            "transunion",
            710,
            "2026-11-28T10:00:00.5+01:00",
        )],
    )
    .await;

    let (status, page) = get_json(&app, SCORES, &app.token_for("alice")).await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(page["items"].as_array().unwrap().len(), 20);
    assert!(page["nextCursor"].is_string());
    let first = &page["items"][0];
    assert_eq!(first["reportId"], "the-newest");
    assert_eq!(first["userId"], "alice");
    assert_eq!(first["bureau"], "transunion");
    assert_eq!(first["score"], 710);
    assert_eq!(first["reportedAt"], "2026-11-28T09:00:00.500Z");
    assert_eq!(first["source"], "batch:read-tests");
    assert!(first["receivedAt"].as_str().unwrap().ends_with('Z'));
}

#[tokio::test]
async fn the_bureau_filter_lists_only_that_bureau_newest_first_across_pages() {
    let app = spawn_app().await;
    let written = write_reports(&processor(&app), "alice", 45).await;
    let equifax: Vec<Written> = written
        .into_iter()
        .filter(|w| w.bureau == "equifax")
        .collect();
    assert_eq!(equifax.len(), 15);

    let pages = all_pages(
        &app,
        &format!("{SCORES}?bureau=equifax&limit=7"),
        &app.token_for("alice"),
    )
    .await;

    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [7, 7, 1]);
    assert_eq!(pages.concat(), newest_first(equifax));
}

/// Two users' first pages, each with a cursor.
async fn cursors_of_alice_and_bob(app: &TestApp) -> (String, String) {
    let worker = processor(app);
    write_reports(&worker, "alice", 5).await;
    write_reports(&worker, "bob", 5).await;
    let mut cursors = Vec::new();
    for user in ["alice", "bob"] {
        let (status, page) = get_json(
            app,
            &format!("/v1/users/{user}/credit-scores?limit=2"),
            &app.service_token(),
        )
        .await;
        assert_eq!(status, StatusCode::OK);
        cursors.push(page["nextCursor"].as_str().unwrap().to_owned());
    }
    (cursors.remove(0), cursors.remove(0))
}

#[tokio::test]
async fn another_users_cursor_is_refused_and_reveals_nothing() {
    let app = spawn_app().await;
    let (_, bobs_cursor) = cursors_of_alice_and_bob(&app).await;

    // Alice, on her own list, with Bob's cursor; and a service caller doing the same.
    for token in [app.token_for("alice"), app.service_token()] {
        let (status, problem) =
            get_json(&app, &format!("{SCORES}?cursor={bobs_cursor}"), &token).await;
        assert_problem_naming(status, &problem, "cursor");
        assert!(!problem.to_string().contains("bob-report"), "{problem}");
    }
}

#[tokio::test]
async fn a_cursor_issued_for_another_bureau_filter_is_refused() {
    let app = spawn_app().await;
    let (alices_cursor, _) = cursors_of_alice_and_bob(&app).await;

    let (status, problem) = get_json(
        &app,
        &format!("{SCORES}?bureau=experian&cursor={alices_cursor}"),
        &app.token_for("alice"),
    )
    .await;

    assert_problem_naming(status, &problem, "cursor");
}

#[tokio::test]
async fn an_edited_cursor_is_refused_never_a_500() {
    let app = spawn_app().await;
    let (alices_cursor, _) = cursors_of_alice_and_bob(&app).await;
    let token = app.token_for("alice");
    let (payload, tag) = alices_cursor.split_once('.').unwrap();
    // The payload rewritten to point elsewhere, under the original signature.
    let mut decoded: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap())
        .expect("the payload is JSON (opaque to clients, but ours)");
    decoded["t"] = json!("2030-01-01T00:00:00.000Z");
    let moved = format!(
        "{}.{tag}",
        URL_SAFE_NO_PAD.encode(decoded.to_string().as_bytes())
    );
    let mut flipped = alices_cursor.clone().into_bytes();
    flipped[5] = if flipped[5] == b'A' { b'B' } else { b'A' };
    let flipped = String::from_utf8(flipped).unwrap();
    let edits = [
        moved,
        flipped,
        format!("{payload}.{}", &tag[..tag.len() - 2]),
        format!("{payload}."),
        payload.to_owned(),
        "not-a-cursor".to_owned(),
        "%00%ff".to_owned(),
        "x".repeat(2000),
    ];

    for edited in edits {
        let (status, problem) = get_json(&app, &format!("{SCORES}?cursor={edited}"), &token).await;
        assert_problem_naming(status, &problem, "cursor");
    }
}

#[tokio::test]
async fn cursors_work_on_every_instance_sharing_the_signing_key() {
    let first = spawn_app_with(|s| {
        s.cursor_signing_key = Some(ingest::cursor::CursorKey::from_secret(SIGNING_KEY).unwrap());
    })
    .await;
    let written = write_reports(&processor(&first), "alice", 6).await;
    let table = first.resources.table_name.clone();
    let same_key = spawn_app_with(|s| {
        s.table_name = table.clone();
        s.cursor_signing_key = Some(ingest::cursor::CursorKey::from_secret(SIGNING_KEY).unwrap());
    })
    .await;
    let other_key = spawn_app_with(|s| {
        s.table_name = table.clone();
        s.cursor_signing_key = Some(
            ingest::cursor::CursorKey::from_secret("a different key, also 32 bytes long").unwrap(),
        );
    })
    .await;
    let token = first.token_for("alice");
    let (_, page) = get_json(&first, &format!("{SCORES}?limit=4"), &token).await;
    let cursor = page["nextCursor"].as_str().unwrap();

    // Each instance's own token: in jwks mode each test app trusts its own issuer.
    let (status, rest) = get_json(
        &same_key,
        &format!("{SCORES}?limit=4&cursor={cursor}"),
        &same_key.token_for("alice"),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{rest}");
    assert_eq!([ids(&page), ids(&rest)].concat(), newest_first(written));

    let (status, problem) = get_json(
        &other_key,
        &format!("{SCORES}?limit=4&cursor={cursor}"),
        &other_key.token_for("alice"),
    )
    .await;
    assert_problem_naming(status, &problem, "cursor");
}

#[tokio::test]
async fn bad_limit_bureau_and_unknown_parameters_are_each_named() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    let cases = [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=twenty", "limit"),
        ("limit=", "limit"),
        ("bureau=fico", "bureau"),
        ("bureau=Experian", "bureau"),
        ("page=2", "page"),
        ("limit=5&limit=6", "limit"),
        ("cursor=", "cursor"),
    ];
    for (query, field) in cases {
        let (status, problem) = get_json(&app, &format!("{SCORES}?{query}"), &token).await;
        assert_problem_naming(status, &problem, field);
    }
    let (status, problem) = get_json(
        &app,
        &format!("{SCORES}?limit=0&bureau=fico&sort=asc"),
        &token,
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(named_fields(&problem), ["limit", "bureau", "sort"]);
}

async fn latest_by_bureau(app: &TestApp, user: &str) -> HashMap<String, (String, u64)> {
    let (status, body) = get_json(
        app,
        &format!("/v1/users/{user}/credit-scores/latest"),
        &app.token_for(user),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["userId"], user);
    body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| {
            (
                i["bureau"].as_str().unwrap().to_owned(),
                (
                    i["reportId"].as_str().unwrap().to_owned(),
                    i["score"].as_u64().unwrap(),
                ),
            )
        })
        .collect()
}

#[tokio::test]
async fn latest_per_bureau_stays_put_when_an_older_report_is_processed_after_a_newer_one() {
    let app = spawn_app().await;
    let worker = processor(&app);
    let newer = message_body("alice", "exp-new", "experian", 800, "2026-11-20T10:00:00Z");
    let older = message_body("alice", "exp-old", "experian", 600, "2026-11-10T10:00:00Z");
    let equifax = message_body("alice", "eqf-1", "equifax", 900, "2026-11-01T10:00:00Z");

    process(&worker, vec![newer.clone(), equifax]).await;
    process(&worker, vec![older]).await;
    // A redelivered copy of the newer one changes nothing either.
    process(&worker, vec![newer]).await;

    let latest = latest_by_bureau(&app, "alice").await;
    assert_eq!(
        latest,
        HashMap::from([
            ("experian".to_owned(), ("exp-new".to_owned(), 800)),
            ("equifax".to_owned(), ("eqf-1".to_owned(), 900)),
        ])
    );
    // The older report is still stored and listed; it just is not the latest.
    let (_, page) = get_json(&app, SCORES, &app.token_for("alice")).await;
    assert_eq!(ids(&page), ["exp-new", "exp-old", "eqf-1"]);
}

#[tokio::test]
async fn latest_moves_forward_when_a_newer_report_arrives() {
    let app = spawn_app().await;
    let worker = processor(&app);
    process(
        &worker,
        vec![message_body(
            "alice",
            "tu-1",
            "transunion",
            600,
            "2026-11-01T10:00:00Z",
        )],
    )
    .await;
    process(
        &worker,
        vec![message_body(
            "alice",
            "tu-2",
            "transunion",
            650,
            "2026-11-02T10:00:00Z",
        )],
    )
    .await;

    let (status, body) = get_json(
        &app,
        "/v1/users/alice/credit-scores/latest",
        &app.token_for("alice"),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["items"].as_array().unwrap().len(), 1);
    assert_eq!(body["items"][0]["reportId"], "tu-2");
    assert_eq!(body["items"][0]["score"], 650);
}

#[tokio::test]
async fn latest_of_a_user_with_no_scores_is_an_empty_list() {
    let app = spawn_app().await;

    let (status, body) = get_json(
        &app,
        "/v1/users/nobody-yet/credit-scores/latest",
        &app.token_for("nobody-yet"),
    )
    .await;

    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, json!({"userId": "nobody-yet", "items": []}));
}

#[tokio::test]
async fn a_posted_report_is_404_until_the_worker_writes_it_then_200_at_its_location() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    let accepted = app
        .post_score("alice", &pipeline_tests::score_body("equifax", 777))
        .await;
    assert_eq!(accepted.status(), StatusCode::ACCEPTED);
    let location = accepted.headers()["location"].to_str().unwrap().to_owned();
    let report_id = location.rsplit('/').next().unwrap().to_owned();

    let (status, problem) = get_json(&app, &location, &token).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{problem}");
    assert_eq!(problem["status"], 404);
    assert!(problem["detail"].as_str().unwrap().contains(&report_id));

    let queued = app.drain_queue().await;
    assert_eq!(queued.len(), 1);
    let messages: Vec<InboundMessage> = queued
        .iter()
        .map(worker::poller::inbound_from_sqs)
        .collect();
    let outcome = processor(&app)
        .process_batch(&messages, Instant::now() + Duration::from_secs(30))
        .await;
    assert_eq!(outcome.written, 1, "{outcome:?}");

    let response = app.get(&location, &token).await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let report: Value = response.json().await.unwrap();
    assert_eq!(report["reportId"], report_id.as_str());
    assert_eq!(report["userId"], "alice");
    assert_eq!(report["bureau"], "equifax");
    assert_eq!(report["score"], 777);
    assert_eq!(report["source"], "api");
}

#[tokio::test]
async fn an_unknown_report_id_is_a_404_problem_and_a_bad_one_a_400_naming_it() {
    let app = spawn_app().await;
    let token = app.token_for("alice");

    let response = app.get(&format!("{SCORES}/no-such-report"), &token).await;
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );

    let (status, problem) = get_json(&app, &format!("{SCORES}/has%20space"), &token).await;
    assert_problem_naming(status, &problem, "reportId");
    let (status, problem) = get_json(&app, &format!("{SCORES}/{}", "r".repeat(65)), &token).await;
    assert_problem_naming(status, &problem, "reportId");
}

#[tokio::test]
async fn reads_take_no_unknown_query_parameters() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    for path in [
        format!("{SCORES}/latest?bureau=experian"),
        format!("{SCORES}/some-report?verbose=1"),
    ] {
        let (status, problem) = get_json(&app, &path, &token).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}: {problem}");
        assert_eq!(named_fields(&problem).len(), 1, "{problem}");
    }
}

const READ_PATHS: [&str; 3] = [
    "/v1/users/alice/credit-scores",
    "/v1/users/alice/credit-scores/latest",
    "/v1/users/alice/credit-scores/some-report",
];

#[tokio::test]
async fn reads_without_a_token_are_401_and_never_reach_the_user_service() {
    let app = spawn_app().await;
    for path in READ_PATHS {
        let response = app.http.get(app.url(path)).send().await.unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{path}");
        assert_eq!(response.headers()["www-authenticate"], "Bearer");
    }
    assert_eq!(app.user_service.calls(), 0);
}

#[tokio::test]
async fn a_user_may_not_read_another_users_scores_but_a_service_caller_may() {
    let app = spawn_app().await;
    write_reports(&processor(&app), "alice", 3).await;
    let bob = app.token_for("bob");
    for path in READ_PATHS {
        let (status, problem) = get_json(&app, path, &bob).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {problem}");
    }

    let service = app.service_token();
    let (status, page) = get_json(&app, READ_PATHS[0], &service).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ids(&page).len(), 3);
    let (status, _) = get_json(&app, READ_PATHS[1], &service).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = get_json(
        &app,
        "/v1/users/alice/credit-scores/alice-report-000",
        &service,
    )
    .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test]
async fn a_token_the_user_service_rejects_cannot_read() {
    if pipeline_tests::skip_unless_user_service_mode("a_token_the_user_service_rejects_cannot_read")
    {
        return;
    }
    let app = spawn_app().await;
    app.user_service.set(StubBehavior::Status(401));
    let (status, _) = get_json(&app, SCORES, &app.token_for("alice")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    app.user_service.set(StubBehavior::Status(500));
    let response = app.get(SCORES, &app.token_for("alice")).await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
}

#[tokio::test]
async fn a_table_that_cannot_be_read_is_a_503_with_retry_after_and_no_internals() {
    let app = spawn_app_with(|s| {
        s.table_name = "no-such-table-for-reads".to_owned();
    })
    .await;
    let token = app.token_for("alice");
    for path in READ_PATHS {
        let response = app.get(path, &token).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        assert_eq!(response.headers()["retry-after"], "1");
        let problem: Value = response.json().await.unwrap();
        let text = problem.to_string();
        assert!(
            !text.contains("no-such-table") && !text.contains("ResourceNotFound"),
            "internals leaked: {text}"
        );
    }
}

#[tokio::test]
async fn ingest_under_lambda_refuses_to_start_without_a_cursor_signing_key() {
    let emulator = pipeline_tests::Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let mut env = resources.env(&emulator);
    // Nothing listens here: start-up must fail before the runtime is ever polled.
    env.extend(pipeline_tests::lambda_env("127.0.0.1:9"));
    env.push(("USER_SERVICE_URL".into(), "http://127.0.0.1:9".into()));
    let mut process = pipeline_tests::spawn_binary("ingest", &[], &env);

    let exited = pipeline_tests::eventually(Duration::from_secs(15), || {
        let status = process.child.try_wait().ok().flatten();
        async move { status }
    })
    .await;

    let status = exited.expect("ingest kept running without CURSOR_SIGNING_KEY under Lambda");
    assert!(!status.success());
    assert!(
        process.log().contains("CURSOR_SIGNING_KEY"),
        "{}",
        process.log()
    );
}
