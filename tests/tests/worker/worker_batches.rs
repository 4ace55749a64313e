//! The worker's batch processor against the emulator's DynamoDB and DLQ.

use std::collections::HashMap;
use std::time::Duration;

use contract::UserId;
use ingest::reads::{DynamoScoreReader, ScoreReader};
use pipeline_tests::Emulator;
use tokio::time::Instant;
use worker::processor::Processor;
use worker::record::InboundMessage;
use worker::settings::WorkerSettings;

struct Harness {
    emulator: Emulator,
    resources: pipeline_tests::TestResources,
    processor: std::sync::Arc<Processor>,
}

async fn harness() -> Harness {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let env: HashMap<String, String> = resources.env(&emulator).into_iter().collect();
    let settings = WorkerSettings::from_source(&env).expect("worker settings");
    let processor = worker::build_processor(&settings, &emulator.sdk);
    Harness {
        emulator,
        resources,
        processor,
    }
}

fn message(id: &str, body: String) -> InboundMessage {
    InboundMessage {
        trace_header: None,
        message_id: id.to_owned(),
        body: Some(body),
        sent_at: None,
        receive_count: 1,
        attributes: HashMap::new(),
    }
}

fn score(user: &str, report: &str, bureau: &str, score: u16, reported_at: &str) -> String {
    serde_json::json!({"version":1,"reportId":report,"userId":user,"bureau":bureau,"score":score,
        "reportedAt":reported_at,"source":"batch:test"})
    .to_string()
}

fn deadline() -> Instant {
    Instant::now() + Duration::from_secs(20)
}

#[tokio::test]
async fn a_mixed_batch_writes_the_valid_and_dead_letters_the_poison_with_reasons() {
    let h = harness().await;
    let batch = vec![
        message("ok-1", score("alice", "r1", "experian", 800, "2026-11-01T00:00:00Z")),
        message("ok-2", score("bob", "r2", "equifax", 1000, "2026-11-02T00:00:00Z")),
        message("bad-json", "{\"version\":1,".into()),
        message("bad-range", score("carol", "r3", "transunion", 711, "2026-11-01T00:00:00Z")),
        message("bad-version", r#"{"version":3,"reportId":"x"}"#.into()),
        message("bad-field", r#"{"version":1,"reportId":"r4","userId":"dan","bureau":"experian","score":1,"reportedAt":"2026-11-01T00:00:00Z","source":"api","extra":true}"#.into()),
    ];
    let outcome = h.processor.process_batch(&batch, deadline()).await;
    assert!(
        outcome.failed.is_empty(),
        "no poison message is reported as a failure: {outcome:?}"
    );
    assert_eq!((outcome.written, outcome.dead_lettered), (2, 4));

    let reports = h.emulator.reports(&h.resources.table_name).await;
    let mut users: Vec<&str> = reports.iter().map(|r| r.report.user_id.as_str()).collect();
    users.sort_unstable();
    assert_eq!(users, ["alice", "bob"]);

    let dead = h.emulator.receive_all(&h.resources.dlq_url).await;
    let by_origin: HashMap<String, (String, String)> = dead
        .iter()
        .map(|m| {
            let a = m.message_attributes().unwrap();
            let get = |k: &str| a[k].string_value().unwrap().to_owned();
            (
                get("originalMessageId"),
                (get("failureReason"), get("failureDetail")),
            )
        })
        .collect();
    assert_eq!(by_origin["bad-json"].0, "invalid_json");
    assert_eq!(by_origin["bad-range"].0, "contract_violation");
    assert!(
        by_origin["bad-range"].1.contains("score"),
        "{:?}",
        by_origin["bad-range"]
    );
    assert_eq!(by_origin["bad-version"].0, "unknown_version");
    assert!(
        by_origin["bad-field"].1.contains("extra"),
        "{:?}",
        by_origin["bad-field"]
    );
    let bodies: Vec<&str> = dead.iter().filter_map(|m| m.body()).collect();
    assert!(
        bodies.contains(&"{\"version\":1,"),
        "the original body is kept as it was"
    );
}

#[tokio::test]
async fn sixty_records_are_written_in_three_batch_requests() {
    let h = harness().await;
    let batch: Vec<InboundMessage> = (0..60)
        .map(|i| {
            message(
                &format!("m{i}"),
                score(
                    &format!("u{}", i % 9),
                    &format!("r{i}"),
                    "experian",
                    700,
                    "2026-11-01T00:00:00Z",
                ),
            )
        })
        .collect();
    let outcome = h.processor.process_batch(&batch, deadline()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        outcome.write_requests, 3,
        "ceil(60/25) requests, never one per record"
    );
    assert_eq!(h.emulator.reports(&h.resources.table_name).await.len(), 60);
}

#[tokio::test]
async fn duplicate_keys_in_one_batch_are_folded_and_the_newest_wins() {
    let h = harness().await;
    let batch = vec![
        message(
            "a",
            score("alice", "same", "experian", 600, "2026-11-01T00:00:00Z"),
        ),
        message(
            "b",
            score("alice", "same", "experian", 650, "2026-11-03T00:00:00Z"),
        ),
        message(
            "c",
            score("alice", "same", "experian", 620, "2026-11-02T00:00:00Z"),
        ),
    ];
    let outcome = h.processor.process_batch(&batch, deadline()).await;
    assert!(
        outcome.failed.is_empty(),
        "no ValidationException for duplicate keys: {outcome:?}"
    );
    let reports = h.emulator.reports(&h.resources.table_name).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(reports[0].report.score.value(), 650);
}

#[tokio::test]
async fn a_redelivered_message_leaves_one_item_not_two() {
    let h = harness().await;
    let body = score("alice", "once", "equifax", 777, "2026-11-01T00:00:00Z");
    for attempt in 0..3 {
        let mut m = message("same-message", body.clone());
        m.receive_count = attempt + 1;
        let outcome = h.processor.process_batch(&[m], deadline()).await;
        assert!(outcome.failed.is_empty());
    }
    let reports = h.emulator.reports(&h.resources.table_name).await;
    assert_eq!(reports.len(), 1);
    assert_eq!(
        h.emulator.scan(&h.resources.table_name).await.len(),
        1,
        "the write path writes the report item and nothing else"
    );
}

/// What `GET .../latest` answers for `user`: ingest's reader on the same table.
async fn latest_of(h: &Harness, user: &str) -> Vec<(String, String)> {
    let reader = DynamoScoreReader {
        client: h.emulator.dynamodb.clone(),
        table_name: h.resources.table_name.clone(),
    };
    let user = UserId::parse(user).expect("test user id");
    reader
        .latest(&user)
        .await
        .expect("latest reads")
        .into_iter()
        .map(|s| (s.report.bureau.to_string(), s.report.report_id.to_string()))
        .collect()
}

#[tokio::test]
async fn latest_never_moves_back_when_an_older_report_arrives_later() {
    let h = harness().await;
    let newer = message(
        "n",
        score("alice", "newer", "transunion", 700, "2026-11-10T00:00:00Z"),
    );
    let older = message(
        "o",
        score("alice", "older", "transunion", 500, "2026-11-01T00:00:00Z"),
    );
    h.processor.process_batch(&[newer], deadline()).await;
    let outcome = h.processor.process_batch(&[older], deadline()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        latest_of(&h, "alice").await,
        [("transunion".to_owned(), "newer".to_owned())]
    );
    assert_eq!(
        h.emulator.reports(&h.resources.table_name).await.len(),
        2,
        "both reports are kept"
    );
}

#[tokio::test]
async fn latest_is_the_newest_report_of_each_bureau_whatever_the_arrival_order() {
    let h = harness().await;
    let first = vec![
        message(
            "a1",
            score("alice", "x-new", "experian", 800, "2026-11-10T00:00:00Z"),
        ),
        message(
            "a2",
            score("alice", "q-old", "equifax", 500, "2026-11-01T00:00:00Z"),
        ),
    ];
    h.processor.process_batch(&first, deadline()).await;
    // An older experian report arrives after a newer one; equifax moves forward; transunion
    // gets its first report; bob's report never shows in alice's answer.
    let second = vec![
        message(
            "b1",
            score("alice", "x-old", "experian", 400, "2026-11-02T00:00:00Z"),
        ),
        message(
            "b2",
            score("alice", "q-new", "equifax", 650, "2026-11-12T00:00:00Z"),
        ),
        message(
            "b3",
            score(
                "alice",
                "t-first",
                "transunion",
                700,
                "2026-11-05T00:00:00Z",
            ),
        ),
        message(
            "b4",
            score("bob", "bob-1", "experian", 700, "2026-11-30T00:00:00Z"),
        ),
    ];
    let outcome = h.processor.process_batch(&second, deadline()).await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(
        latest_of(&h, "alice").await,
        [
            ("experian".to_owned(), "x-new".to_owned()),
            ("equifax".to_owned(), "q-new".to_owned()),
            ("transunion".to_owned(), "t-first".to_owned())
        ]
    );
    assert!(latest_of(&h, "carol").await.is_empty());
}
