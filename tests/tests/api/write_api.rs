//! The write path through ingest on a real socket, against the emulator's SQS and a User
//! Service stub on loopback.

use std::time::{Duration, Instant};

use contract::ScoreMessage;
use pipeline_tests::fault_proxy::sqs;
use pipeline_tests::{
    score_body, spawn_app, spawn_app_through, spawn_app_with, Emulator, FaultProxy, Faults,
    StubBehavior,
};
use serde_json::{json, Value};

use crate::named_fields;

async fn problem(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let body: Value = response.json().await.expect("problem body is JSON");
    assert_eq!(content_type, "application/problem+json", "{body}");
    assert_eq!(body["status"], status, "{body}");
    (status, body)
}

#[tokio::test]
async fn a_valid_score_is_accepted_and_put_on_the_queue_with_the_v1_contract() {
    let app = spawn_app().await;
    let response = app.post_score("alice", &score_body("experian", 742)).await;
    assert_eq!(response.status(), 202);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let correlation = response.headers()["x-correlation-id"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = response.json().await.unwrap();
    let report_id = body["reportId"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "accepted");
    assert_eq!(
        location,
        format!("/v1/users/alice/credit-scores/{report_id}")
    );

    let messages = app.drain_queue().await;
    assert_eq!(messages.len(), 1, "exactly one message");
    let raw: Value = serde_json::from_str(messages[0].body().unwrap()).unwrap();
    assert_eq!(raw["version"], 1);
    assert_eq!(raw["source"], "api");
    assert_eq!(raw["userId"], "alice");
    assert_eq!(raw["bureau"], "experian");
    assert_eq!(raw["score"], 742);
    assert_eq!(raw["reportId"], report_id.as_str());
    assert!(raw["receivedAt"].is_string());
    let parsed = ScoreMessage::parse(messages[0].body().unwrap(), time::OffsetDateTime::now_utc());
    assert!(
        parsed.is_ok(),
        "the worker's parser accepts what ingest sends: {parsed:?}"
    );
    let attrs = messages[0].message_attributes().unwrap();
    assert_eq!(
        attrs["correlationId"].string_value(),
        Some(correlation.as_str())
    );
    let expected_calls = usize::from(!pipeline_tests::jwks_mode_under_test());
    assert_eq!(app.user_service.calls(), expected_calls);
}

#[tokio::test]
async fn the_callers_authorization_header_is_passed_to_the_user_service_unchanged() {
    if pipeline_tests::skip_unless_user_service_mode(
        "the_callers_authorization_header_is_passed_to_the_user_service_unchanged",
    ) {
        return;
    }
    let app = spawn_app().await;
    let token = app.token_for("alice");
    app.post_score_raw(
        "alice",
        &token,
        "application/json",
        score_body("equifax", 1).to_string(),
    )
    .await;
    assert_eq!(
        app.user_service.last_authorization(),
        Some(format!("Bearer {token}"))
    );
}

#[tokio::test]
async fn idempotency_key_becomes_the_report_id() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/users/alice/credit-scores"))
        .bearer_auth(app.token_for("alice"))
        .header("Idempotency-Key", "import-2026-11-28-0001")
        .json(&score_body("transunion", 650))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 202);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["reportId"], "import-2026-11-28-0001");
}

#[tokio::test]
async fn missing_or_malformed_authorization_is_401_without_calling_the_user_service() {
    let app = spawn_app().await;
    let body = score_body("experian", 700).to_string();
    let no_header = app
        .http
        .post(app.url("/v1/users/alice/credit-scores"))
        .header("content-type", "application/json")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(no_header.headers()["www-authenticate"], "Bearer");
    assert_eq!(problem(no_header).await.0, 401);
    for header in ["Basic YWxpY2U6cHc=", "Bearer", "Bearer a b c", "Token abc"] {
        let response = app
            .http
            .post(app.url("/v1/users/alice/credit-scores"))
            .header("authorization", header)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await
            .unwrap();
        assert_eq!(problem(response).await.0, 401, "{header}");
    }
    let undecodable = app
        .post_score_raw("alice", "not-a-jwt", "application/json", body)
        .await;
    assert_eq!(problem(undecodable).await.0, 401);
    assert_eq!(
        app.user_service.calls(),
        0,
        "the User Service is never called"
    );
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn user_service_answers_map_to_client_statuses() {
    if pipeline_tests::skip_unless_user_service_mode("user_service_answers_map_to_client_statuses")
    {
        return;
    }
    let app = spawn_app().await;
    for (stub, expected) in [
        (401, 401),
        (403, 403),
        (500, 503),
        (404, 503),
        (302, 503),
        (200, 202),
        (204, 202),
    ] {
        app.user_service.set(StubBehavior::Status(stub));
        let response = app.post_score("alice", &score_body("experian", 700)).await;
        let status = response.status().as_u16();
        assert_eq!(status, expected, "User Service {stub}");
        if expected == 503 {
            assert_eq!(response.headers()["retry-after"], "1");
            let (_, body) = problem(response).await;
            let detail = body["detail"].as_str().unwrap();
            assert!(
                !detail.contains("500") && !detail.contains("127.0.0.1"),
                "no internals: {detail}"
            );
        }
    }
    assert_eq!(
        app.drain_queue().await.len(),
        2,
        "only the two accepted writes were enqueued"
    );
}

#[tokio::test]
async fn a_slow_user_service_is_503_within_the_timeout() {
    if pipeline_tests::skip_unless_user_service_mode(
        "a_slow_user_service_is_503_within_the_timeout",
    ) {
        return;
    }
    let app = spawn_app().await; // USER_SERVICE_TIMEOUT_MS=500 in tests
    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    let started = Instant::now();
    let response = app.post_score("alice", &score_body("experian", 700)).await;
    assert_eq!(response.status(), 503);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "fails closed at the timeout, took {:?}",
        started.elapsed()
    );
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn an_unreachable_user_service_is_503() {
    if pipeline_tests::skip_unless_user_service_mode("an_unreachable_user_service_is_503") {
        return;
    }
    let url = pipeline_tests::user_service_stub::unreachable_url().await;
    let app = spawn_app_with(|s| s.user_service_url = url).await;
    let response = app.post_score("alice", &score_body("experian", 700)).await;
    assert_eq!(problem(response).await.0, 503);
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn a_token_for_another_user_is_403() {
    let app = spawn_app().await;
    let response = app
        .post_score_raw(
            "bob",
            &app.token_for("alice"),
            "application/json",
            score_body("experian", 700).to_string(),
        )
        .await;
    assert_eq!(problem(response).await.0, 403);
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn a_service_token_may_write_for_any_user() {
    let app = spawn_app().await;
    let response = app
        .post_score_raw(
            "bob",
            &app.service_token(),
            "application/json",
            score_body("experian", 700).to_string(),
        )
        .await;
    assert_eq!(response.status(), 202);
}

#[tokio::test]
async fn each_invalid_field_is_a_4xx_naming_it_and_nothing_is_enqueued() {
    let app = spawn_app().await;
    let now = time::OffsetDateTime::now_utc();
    let future = contract::rfc3339::format_utc_millis(now + time::Duration::minutes(10));
    let ok_time = contract::rfc3339::format_utc_millis(now - time::Duration::hours(1));
    let cases: Vec<(&str, Value, u16, &str)> = vec![
        (
            "unknown bureau",
            json!({"bureau":"fico","score":700,"reportedAt":ok_time}),
            422,
            "bureau",
        ),
        (
            "experian above 999",
            json!({"bureau":"experian","score":1000,"reportedAt":ok_time}),
            422,
            "score",
        ),
        (
            "transunion above 710",
            json!({"bureau":"transunion","score":711,"reportedAt":ok_time}),
            422,
            "score",
        ),
        (
            "negative score",
            json!({"bureau":"equifax","score":-1,"reportedAt":ok_time}),
            422,
            "score",
        ),
        (
            "fractional score",
            json!({"bureau":"equifax","score":700.5,"reportedAt":ok_time}),
            422,
            "score",
        ),
        (
            "score as string",
            json!({"bureau":"equifax","score":"700","reportedAt":ok_time}),
            422,
            "score",
        ),
        (
            "bad timestamp",
            json!({"bureau":"equifax","score":700,"reportedAt":"28/11/2026"}),
            422,
            "reportedAt",
        ),
        (
            "future timestamp",
            json!({"bureau":"equifax","score":700,"reportedAt":future}),
            422,
            "reportedAt",
        ),
        (
            "missing timestamp",
            json!({"bureau":"equifax","score":700}),
            422,
            "reportedAt",
        ),
        (
            "unknown field",
            json!({"bureau":"equifax","score":700,"reportedAt":ok_time,"sccore":1}),
            422,
            "sccore",
        ),
        (
            "bad report id",
            json!({"bureau":"equifax","score":700,"reportedAt":ok_time,"reportId":"a/b"}),
            422,
            "reportId",
        ),
        (
            "bureau wrong type",
            json!({"bureau":["equifax"],"score":700,"reportedAt":ok_time}),
            422,
            "bureau",
        ),
        ("array body", json!([1, 2]), 400, "body"),
    ];
    for (name, body, status, field) in cases {
        let response = app.post_score("alice", &body).await;
        let (got, problem) = problem(response).await;
        assert_eq!(got, status, "{name}: {problem}");
        assert!(
            named_fields(&problem).iter().any(|f| f == field),
            "{name} names {field}: {problem}"
        );
    }
    for (name, raw) in [("empty body", ""), ("not JSON", "{\"bureau\":")] {
        let response = app
            .post_score_raw(
                "alice",
                &app.token_for("alice"),
                "application/json",
                raw.into(),
            )
            .await;
        let (got, problem) = problem(response).await;
        assert_eq!(got, 400, "{name}");
        assert_eq!(named_fields(&problem), ["body"], "{name}");
    }
    assert!(
        app.drain_queue().await.is_empty(),
        "nothing invalid was enqueued"
    );
}

#[tokio::test]
async fn a_bad_user_id_in_the_path_is_400_naming_it() {
    let app = spawn_app().await;
    let response = app
        .post_score_raw(
            "al%20ice",
            &app.service_token(),
            "application/json",
            score_body("experian", 1).to_string(),
        )
        .await;
    let (status, problem) = problem(response).await;
    assert_eq!(status, 400);
    assert_eq!(named_fields(&problem), ["userId"]);
}

#[tokio::test]
async fn a_bad_idempotency_key_is_400_naming_the_header() {
    let app = spawn_app().await;
    let response = app
        .http
        .post(app.url("/v1/users/alice/credit-scores"))
        .bearer_auth(app.token_for("alice"))
        .header("Idempotency-Key", "has spaces in it")
        .json(&score_body("experian", 1))
        .send()
        .await
        .unwrap();
    let (status, problem) = problem(response).await;
    assert_eq!(status, 400);
    assert_eq!(named_fields(&problem), ["Idempotency-Key"]);
}

#[tokio::test]
async fn non_json_content_type_is_415() {
    let app = spawn_app().await;
    let response = app
        .post_score_raw(
            "alice",
            &app.token_for("alice"),
            "text/plain",
            score_body("experian", 1).to_string(),
        )
        .await;
    assert_eq!(problem(response).await.0, 415);
}

#[tokio::test]
async fn bodies_over_64_kib_are_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(70 * 1024);
    let body =
        json!({"bureau":"experian","score":1,"reportedAt":"2026-01-01T00:00:00Z","pad":padding});
    let response = app.post_score("alice", &body).await;
    assert_eq!(problem(response).await.0, 413);
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn a_queue_that_cannot_be_reached_is_503_never_202() {
    let app = spawn_app_with(|s| {
        s.queue_url = "http://127.0.0.1:4566/000000000000/no-such-queue-anywhere".into();
    })
    .await;
    let response = app.post_score("alice", &score_body("experian", 700)).await;
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(problem(response).await.0, 503);
}

#[tokio::test]
async fn unknown_routes_and_methods_get_problem_documents() {
    let app = spawn_app().await;
    let response = app.get("/v2/nothing", &app.token_for("alice")).await;
    assert_eq!(problem(response).await.0, 404);
    let response = app
        .http
        .delete(app.url("/v1/users/alice/credit-scores"))
        .send()
        .await
        .unwrap();
    assert_eq!(problem(response).await.0, 405);
}

#[tokio::test]
async fn health_answers_without_auth() {
    let app = spawn_app().await;
    let response = app.http.get(app.url("/health")).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.json::<Value>().await.unwrap()["status"], "ok");
}

/// SQS refuses U+FFFE and U+FFFF in a message; HTTP and JSON carry them. Such a body must be
/// refused by field, never turned into a message SQS rejects (a 5xx), and nothing enqueued.
#[tokio::test]
async fn characters_sqs_refuses_are_a_422_naming_the_field_and_never_reach_the_queue() {
    let app = spawn_app().await;
    let mut unknown_key = score_body("experian", 742);
    unknown_key["\u{ffff}"] = json!(1);
    let mut in_a_value = score_body("experian", 742);
    in_a_value["bureau"] = json!("experian\u{fffe}");
    for (body, field) in [(unknown_key, "\u{ffff}"), (in_a_value, "bureau")] {
        let response = app.post_score("alice", &body).await;
        let (status, problem) = problem(response).await;
        assert_eq!(status, 422, "{problem}");
        assert_eq!(named_fields(&problem), [field], "{problem}");
    }
    assert!(app.drain_queue().await.is_empty(), "nothing was enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_arriving_together_share_send_message_batch_calls_and_each_is_queued_once() {
    // 20 ms a call, as an AWS round trip: writes arriving while every send is in flight wait
    // for the next call and leave in it together, each still answered only once SQS has it.
    let proxy = FaultProxy::start(&Emulator::connect().await.endpoint).await;
    let app = spawn_app_through(&proxy.sdk_config().await, |_| {}).await;
    proxy.set_faults(
        &sqs("SendMessageBatch"),
        Faults::latency(Duration::from_millis(20)),
    );
    const WRITES: usize = 60;
    let answers = futures::future::join_all((0..WRITES).map(|i| {
        let user = format!("together-{i}");
        let app = &app;
        async move { app.post_score(&user, &score_body("equifax", 700)).await }
    }))
    .await;
    let mut report_ids = Vec::new();
    for answer in answers {
        assert_eq!(answer.status(), 202);
        let body: Value = answer.json().await.expect("JSON");
        report_ids.push(body["reportId"].as_str().expect("a reportId").to_owned());
    }

    let mut queued: Vec<String> = app
        .drain_queue()
        .await
        .iter()
        .map(|m| {
            let raw: Value = serde_json::from_str(m.body().expect("a body")).expect("JSON");
            raw["reportId"].as_str().expect("a reportId").to_owned()
        })
        .collect();
    queued.sort();
    report_ids.sort();
    assert_eq!(
        queued, report_ids,
        "every accepted write queued exactly once"
    );

    let stats = proxy.stats();
    let batch_calls = stats.op(&sqs("SendMessageBatch")).calls;
    assert_eq!(stats.op(&sqs("SendMessage")).calls, 0);
    // One call a write would be 60; ten to a call, 6 (plus the calls that left alone while
    // slots were free).
    assert!(
        batch_calls <= (WRITES / 3) as u64,
        "{WRITES} concurrent writes took {batch_calls} SendMessageBatch calls"
    );
    println!("{WRITES} concurrent writes: {batch_calls} SendMessageBatch calls");
}
