//! Reusing an `Idempotency-Key` (IETF draft): once the first write is stored, the same write
//! again is answered `202` with the same reportId and not queued again; a different write
//! under the same key is a `422` naming `Idempotency-Key`, and the stored score stays.

use std::time::Duration;

use pipeline_tests::fault_proxy::dynamodb;
use pipeline_tests::worker_harness::{process_all, processor, worker_settings};
use pipeline_tests::{score_body, spawn_app, spawn_app_through, FaultProxy, Faults, TestApp};
use serde_json::Value;

const KEY: &str = "bureau-file-2026-11-28-000042";

async fn post_keyed(app: &TestApp, body: &Value) -> reqwest::Response {
    app.http
        .post(app.url("/v1/users/alice/credit-scores"))
        .bearer_auth(app.token_for("alice"))
        .header("idempotency-key", KEY)
        .json(body)
        .send()
        .await
        .expect("request reaches ingest")
}

/// The first write, accepted and written by the real worker code.
async fn stored_first_write(app: &TestApp, body: &Value) {
    let first = post_keyed(app, body).await;
    assert_eq!(first.status(), 202);
    let settings = worker_settings(&app.resources);
    let outcome = process_all(
        &app.emulator,
        &app.resources.queue_url,
        &processor(&app.emulator, &settings),
    )
    .await;
    assert_eq!(outcome.written, 1, "{outcome:?}");
}

async fn stored_scores(app: &TestApp) -> Vec<u16> {
    app.emulator
        .reports(&app.resources.table_name)
        .await
        .iter()
        .map(|r| r.report.score.value())
        .collect()
}

#[tokio::test]
async fn rejects_a_reused_idempotency_key_with_a_different_body_with_422() {
    let app = spawn_app().await;
    let first = score_body("experian", 700);
    stored_first_write(&app, &first).await;

    let mut second = first.clone();
    second["score"] = 650.into();
    let response = post_keyed(&app, &second).await;
    assert_eq!(response.status(), 422);
    assert_eq!(
        response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok()),
        Some("application/problem+json")
    );
    let problem: Value = response.json().await.expect("a problem document");
    assert_eq!(problem["status"], 422);
    assert_eq!(
        problem["errors"][0]["field"], "Idempotency-Key",
        "{problem}"
    );

    // Nothing queued, and the stored score did not silently become the second.
    assert!(app.drain_queue().await.is_empty());
    assert_eq!(stored_scores(&app).await, [700]);
}

#[tokio::test]
async fn answers_the_same_write_again_with_202_and_the_same_report_id_without_queueing_it() {
    let app = spawn_app().await;
    let body = score_body("equifax", 812);
    stored_first_write(&app, &body).await;

    // The same write, reportedAt given in another offset: the normalised write is the same.
    let mut again = body.clone();
    let reported = time::OffsetDateTime::parse(
        body["reportedAt"].as_str().expect("a timestamp"),
        &time::format_description::well_known::Rfc3339,
    )
    .expect("RFC 3339")
    .to_offset(time::macros::offset!(+02:00));
    again["reportedAt"] = reported
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats")
        .into();
    let response = post_keyed(&app, &again).await;
    assert_eq!(response.status(), 202);
    let accepted: Value = response.json().await.expect("JSON");
    assert_eq!(accepted["reportId"], KEY);
    assert!(app.drain_queue().await.is_empty(), "not enqueued again");
    assert_eq!(stored_scores(&app).await, [812]);
}

#[tokio::test]
async fn queues_a_keyed_write_that_is_not_stored_yet_as_before() {
    let app = spawn_app().await;
    let body = score_body("transunion", 600);
    assert_eq!(post_keyed(&app, &body).await.status(), 202);
    // Not written yet: a retry is queued again (and lands on the same item).
    assert_eq!(post_keyed(&app, &body).await.status(), 202);
    assert_eq!(app.drain_queue().await.len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refuses_every_one_of_many_concurrent_reuses_of_a_key_though_they_share_lookups() {
    // Slow lookups make the reuses queue behind busy calls and leave together: one
    // BatchGetItem then carries the same key many times over, which DynamoDB refuses unless
    // ingest asks for each key once. A refused lookup would enqueue them (202), not 422.
    let proxy = FaultProxy::start(&pipeline_tests::Emulator::connect().await.endpoint).await;
    let app = spawn_app_through(&proxy.sdk_config().await, |_| {}).await;
    let first = score_body("experian", 700);
    stored_first_write(&app, &first).await;
    proxy.set_faults(
        &dynamodb("BatchGetItem"),
        Faults::latency(Duration::from_millis(50)),
    );

    let mut reuse = first.clone();
    reuse["score"] = 650.into();
    let answers = futures::future::join_all((0..24).map(|_| post_keyed(&app, &reuse))).await;
    let statuses: Vec<u16> = answers.iter().map(|r| r.status().as_u16()).collect();
    assert!(statuses.iter().all(|&s| s == 422), "{statuses:?}");

    let lookups = proxy.stats().op(&dynamodb("BatchGetItem")).calls;
    assert!(
        lookups < 24,
        "24 concurrent lookups took {lookups} BatchGetItem calls: none were shared"
    );
    assert!(app.drain_queue().await.is_empty());
    assert_eq!(stored_scores(&app).await, [700]);
}
