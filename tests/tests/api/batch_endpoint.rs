//! `POST /v1/credit-scores/batch` against the emulator: per-entry verdicts, SendMessageBatch
//! into a real queue, the entry and body limits, and the service-scope rule.

use std::collections::{BTreeMap, BTreeSet};

use contract::message::CORRELATION_ID_ATTRIBUTE;
use contract::ScoreMessage;
use pipeline_tests::{spawn_app, spawn_app_with, TestApp};
use serde_json::{json, Value};

const BATCH_PATH: &str = "/v1/credit-scores/batch";

fn reported_at() -> String {
    contract::rfc3339::format_utc_millis(time::OffsetDateTime::now_utc() - time::Duration::hours(1))
}

fn valid_entry(i: usize) -> Value {
    let bureaus = ["experian", "equifax", "transunion"];
    json!({
        "userId": format!("user-{:04}", i % 97),
        "bureau": bureaus[i % 3],
        "score": 300 + (i % 400),
        "reportedAt": reported_at(),
        "reportId": format!("batch-endpoint-report-{i:04}"),
    })
}

/// The seven broken entries of the 500, by position, with the field each must be blamed on.
fn broken_entries() -> BTreeMap<usize, (Value, &'static str)> {
    let mut broken = BTreeMap::new();
    let mut with = |i: usize, field: &'static str, change: &dyn Fn(&mut Value)| {
        let mut e = valid_entry(i);
        change(&mut e);
        broken.insert(i, (e, field));
    };
    with(3, "score", &|e| {
        e["bureau"] = "experian".into();
        e["score"] = 1000.into();
    });
    with(50, "bureau", &|e| e["bureau"] = "fico".into());
    with(120, "userId", &|e| e["userId"] = "user#120".into());
    with(200, "reportedAt", &|e| e["reportedAt"] = "yesterday".into());
    with(333, "score", &|e| e["score"] = "700".into());
    with(404, "scroe", &|e| e["scroe"] = 1.into());
    with(499, "userId", &|e| {
        e.as_object_mut().map(|o| o.remove("userId"));
    });
    broken
}

async fn post_batch(app: &TestApp, token: &str, body: String) -> reqwest::Response {
    app.http
        .post(app.url(BATCH_PATH))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .header("x-correlation-id", "batch-corr-1")
        .body(body)
        .send()
        .await
        .expect("request reaches ingest")
}

#[tokio::test]
async fn accepts_493_of_500_and_names_the_7_invalid_entries_with_reasons() {
    let app = spawn_app().await;
    let broken = broken_entries();
    let items: Vec<Value> = (0..500)
        .map(|i| {
            broken
                .get(&i)
                .map_or_else(|| valid_entry(i), |(e, _)| e.clone())
        })
        .collect();
    let body = json!({ "items": items }).to_string();
    assert!(
        body.len() > ingest::MAX_BODY_BYTES,
        "the batch must exceed the usual 64 KiB limit to prove the route's own limit ({} bytes)",
        body.len()
    );

    let started = std::time::Instant::now();
    let response = post_batch(&app, &app.service_token(), body).await;
    eprintln!("500-entry batch answered in {:?}", started.elapsed());

    assert_eq!(response.status().as_u16(), 207);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["accepted"], 493);
    assert_eq!(result["rejected"], 7);
    assert_eq!(result["failed"], 0);
    let items = result["items"].as_array().unwrap();
    assert_eq!(items.len(), 500);
    let mut accepted_ids = BTreeSet::new();
    for (i, item) in items.iter().enumerate() {
        assert_eq!(item["index"], i);
        match broken.get(&i) {
            Some((_, field)) => {
                assert_eq!(item["status"], "rejected", "entry {i}: {item}");
                let fields: Vec<&str> = item["errors"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|e| e["field"].as_str().unwrap())
                    .collect();
                assert_eq!(fields, [*field], "entry {i}: {item}");
                assert!(
                    !item["errors"][0]["message"].as_str().unwrap().is_empty(),
                    "entry {i} has no reason"
                );
            }
            None => {
                assert_eq!(item["status"], "accepted", "entry {i}: {item}");
                assert_eq!(item["reportId"], format!("batch-endpoint-report-{i:04}"));
                accepted_ids.insert(item["reportId"].as_str().unwrap().to_owned());
            }
        }
    }

    let started = std::time::Instant::now();
    let messages = app.drain_queue().await;
    eprintln!("queue drained in {:?}", started.elapsed());
    assert_eq!(
        messages.len(),
        493,
        "exactly the accepted entries are queued"
    );
    let now = time::OffsetDateTime::now_utc();
    let queued: BTreeSet<String> = messages
        .iter()
        .map(|m| {
            let parsed = ScoreMessage::parse(m.body().unwrap(), now).expect("a valid v1 message");
            assert_eq!(parsed.source.to_string(), "batch:batch-importer");
            let correlation = m
                .message_attributes()
                .and_then(|a| a.get(CORRELATION_ID_ATTRIBUTE))
                .and_then(|v| v.string_value());
            assert_eq!(correlation, Some("batch-corr-1"));
            parsed.report.report_id.to_string()
        })
        .collect();
    assert_eq!(queued, accepted_ids);
}

#[tokio::test]
async fn accepts_a_fully_valid_batch_with_202_and_generates_missing_report_ids() {
    let app = spawn_app().await;
    let mut items: Vec<Value> = (0..12).map(valid_entry).collect();
    items[5].as_object_mut().map(|o| o.remove("reportId"));
    let response = post_batch(
        &app,
        &app.service_token(),
        json!({ "items": items }).to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 202);
    let result: Value = response.json().await.unwrap();
    assert_eq!(result["accepted"], 12);
    let generated = result["items"][5]["reportId"].as_str().unwrap();
    assert_eq!(generated.len(), 26, "a ULID: {generated}");
    let queued: Vec<String> = app
        .drain_queue()
        .await
        .iter()
        .map(|m| m.body().unwrap().to_owned())
        .collect();
    assert_eq!(queued.len(), 12);
    assert!(queued.iter().any(|b| b.contains(generated)));
}

#[tokio::test]
async fn rejects_501_entries_with_422_naming_items_and_queues_nothing() {
    let app = spawn_app().await;
    let items: Vec<Value> = (0..501).map(valid_entry).collect();
    let response = post_batch(
        &app,
        &app.service_token(),
        json!({ "items": items }).to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 422);
    assert_eq!(
        response.headers()["content-type"],
        "application/problem+json"
    );
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "items");
    assert!(problem["detail"].as_str().unwrap().contains("500"));
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn rejects_an_empty_batch_with_422() {
    let app = spawn_app().await;
    let response = post_batch(&app, &app.service_token(), r#"{"items":[]}"#.into()).await;
    assert_eq!(response.status().as_u16(), 422);
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["errors"][0]["field"], "items");
}

#[tokio::test]
async fn refuses_a_user_token_without_the_service_scope_with_403() {
    let app = spawn_app().await;
    let items: Vec<Value> = (0..3).map(valid_entry).collect();
    let response = post_batch(
        &app,
        &app.token_for("user-0000"),
        json!({ "items": items }).to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 403);
    assert!(app.drain_queue().await.is_empty());
}

#[tokio::test]
async fn refuses_a_body_over_one_mebibyte_with_413() {
    let app = spawn_app().await;
    let padding = "x".repeat(ingest::api::batch::MAX_BATCH_BODY_BYTES);
    let body = json!({ "items": [valid_entry(0)], "pad": padding }).to_string();
    let response = post_batch(&app, &app.service_token(), body).await;
    assert_eq!(response.status().as_u16(), 413);
    let problem: Value = response.json().await.unwrap();
    assert!(
        problem["detail"].as_str().unwrap().contains("1048576"),
        "{problem}"
    );
}

#[tokio::test]
async fn reports_entries_the_queue_refused_as_refused_and_no_retry_for_a_missing_queue() {
    let app = spawn_app_with(|settings| {
        settings.queue_url = format!("{}-gone", settings.queue_url);
    })
    .await;
    let mut items: Vec<Value> = (0..4).map(valid_entry).collect();
    items[2]["score"] = 5000.into();
    let response = post_batch(
        &app,
        &app.service_token(),
        json!({ "items": items }).to_string(),
    )
    .await;
    assert_eq!(response.status().as_u16(), 207);
    let result: Value = response.json().await.unwrap();
    assert_eq!(
        (
            result["accepted"].as_u64(),
            result["rejected"].as_u64(),
            result["failed"].as_u64()
        ),
        (Some(0), Some(1), Some(3))
    );
    for i in [0, 1, 3] {
        let item = &result["items"][i];
        assert_eq!(item["status"], "failed", "{item}");
        assert_eq!(item["code"], "QueueRefused", "{item}");
        assert_eq!(item["retryable"], false, "{item}");
        assert_eq!(item["reportId"], format!("batch-endpoint-report-{i:04}"));
    }
    assert_eq!(result["items"][2]["status"], "rejected");
}

#[tokio::test]
async fn a_batch_whose_every_entry_is_invalid_is_422_naming_each_entry_and_queues_nothing() {
    let app = spawn_app().await;
    let body = serde_json::json!({"items": [[null, null], {"userId": "alice", "bureau": "fico",
        "score": 1, "reportedAt": "2026-11-01T00:00:00Z"}]});
    let response = post_batch(&app, &app.service_token(), body.to_string()).await;
    assert_eq!(response.status(), 422);
    let problem: serde_json::Value = response.json().await.unwrap();
    let fields: Vec<&str> = problem["errors"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["field"].as_str())
        .collect();
    assert!(
        fields.iter().any(|f| f.starts_with("items[0].")),
        "{problem}"
    );
    assert!(fields.contains(&"items[1].bureau"), "{problem}");
    assert!(app.drain_queue().await.is_empty());
}
