//! Batch producers push straight onto SQS; the worker is then their only gatekeeper. Against
//! the emulator: whatever they send ends as exactly one table item or one DLQ message with
//! a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use pipeline_tests::fault_proxy::sqs;
use pipeline_tests::worker_harness::RunningPoller;
use pipeline_tests::worker_harness::{
    run_poller_until_drained, string_attributes, worker_settings,
};
use pipeline_tests::{Emulator, TestResources};
use pipeline_tests::{FaultProxy, Faults};
use platform::sqs_batch::OutgoingMessage;
use serde_json::json;
use worker::dlq::{
    DETAIL_ATTRIBUTE, FAILED_AT_ATTRIBUTE, ORIGINAL_MESSAGE_ID_ATTRIBUTE, REASON_ATTRIBUTE,
};
use worker::producer::{send_with_retries, RetryPolicy};

const QUEUES: usize = 4;
const PER_QUEUE: usize = 250;

/// One message a producer sends, and what must become of it.
struct Sent {
    body: String,
    /// `None`: it must be stored; `Some(reason)`: it must be in the DLQ with that reason.
    expected_reason: Option<&'static str>,
    report_id: String,
}

fn reported_at() -> String {
    contract::rfc3339::format_utc_millis(time::OffsetDateTime::now_utc() - time::Duration::hours(2))
}

/// Message `i` of the mix: six in ten valid, the rest broken in five different ways.
fn message(i: usize) -> Sent {
    let report_id = format!("producer-{i:04}");
    let bureau = ["experian", "equifax", "transunion"][i % 3];
    let valid = json!({
        "version": 1, "reportId": report_id, "userId": format!("user-{:02}", i % 40),
        "bureau": bureau, "score": 300 + i % 400,
        "reportedAt": reported_at(), "source": "batch:load-test",
    });
    let with = |key: &str, value: serde_json::Value| {
        let mut v = valid.clone();
        v[key] = value;
        v.to_string()
    };
    let (body, expected_reason) = match i % 10 {
        0..=5 => (valid.to_string(), None),
        6 => (
            format!(r#"{{"version":1,"reportId":"{report_id}","score":"#),
            Some("invalid_json"),
        ),
        7 => (
            with("score", json!(format!("{}", 700))),
            Some("contract_violation"),
        ),
        8 => (
            // transunion tops out at 710
            {
                let mut v = valid.clone();
                v["bureau"] = "transunion".into();
                v["score"] = 711.into();
                v.to_string()
            },
            Some("contract_violation"),
        ),
        _ if (i / 10).is_multiple_of(2) => (with("version", json!(2)), Some("unknown_version")),
        _ => (
            with("userId", json!("u".repeat(5_000))),
            Some("contract_violation"),
        ),
    };
    Sent {
        body,
        expected_reason,
        report_id,
    }
}

/// The DLQ copies of one original message.
struct Copies<'a> {
    body: &'a str,
    /// Each copy's `failedAt`: when the worker dead-lettered it.
    failed_at: Vec<String>,
}

/// DLQ messages grouped by the id their original had on the queue; panics if copies of one
/// id differ in body.
fn copies_by_original_id(dead: &[Message]) -> BTreeMap<String, Copies<'_>> {
    let mut copies: BTreeMap<String, Copies<'_>> = BTreeMap::new();
    for m in dead {
        let attributes = string_attributes(m);
        let body = m.body().unwrap_or_default();
        let id = attributes[ORIGINAL_MESSAGE_ID_ATTRIBUTE].clone();
        let entry = copies.entry(id.clone()).or_insert(Copies {
            body,
            failed_at: Vec::new(),
        });
        assert_eq!(entry.body, body, "copies of {id} carry one body");
        entry
            .failed_at
            .push(attributes[FAILED_AT_ATTRIBUTE].clone());
    }
    copies
}

#[tokio::test]
async fn a_thousand_producer_messages_end_as_exactly_the_valid_items_and_the_invalid_in_the_dlq() {
    let _alone = crate::EMULATOR_LOAD.lock().await;
    // The worker's warnings (a dead-lettered record's line names its receive count) go to the
    // test's output: shown when it fails, or with --nocapture. Set for this test's thread only,
    // where its pollers run: the other tests in this binary keep the process's subscriber
    // (`pipeline_tests::capture_in_process_logs`, whose file the log scan reads).
    let _subscriber = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::WARN)
            .with_test_writer()
            .finish(),
    );
    let emulator = Emulator::connect().await;
    let mut sets: Vec<(TestResources, Vec<Sent>)> = Vec::new();
    for q in 0..QUEUES {
        let resources = emulator.create_resources().await;
        let sent: Vec<Sent> = (q * PER_QUEUE..(q + 1) * PER_QUEUE).map(message).collect();
        sets.push((resources, sent));
    }

    // Producers send concurrently, one per queue, with the producer's own retrying sender.
    let sends = sets.iter().map(|(resources, sent)| {
        let outgoing: Vec<OutgoingMessage> = sent
            .iter()
            .map(|s| OutgoingMessage::new(s.body.clone()).with_attribute("correlationId", "load-1"))
            .collect();
        let sqs = emulator.sqs.clone();
        let url = resources.queue_url.clone();
        async move { send_with_retries(&sqs, &url, &outgoing, &RetryPolicy::default()).await }
    });
    for results in futures::future::join_all(sends).await {
        assert_eq!(results.len(), PER_QUEUE);
        assert!(
            results.iter().all(Result::is_ok),
            "the emulator took every message"
        );
    }

    let drains = sets.iter().map(|(resources, _)| {
        let settings = worker_settings(resources);
        let emulator = emulator.clone();
        async move {
            run_poller_until_drained(
                &emulator,
                &settings,
                &settings.queue_url.clone().unwrap(),
                Duration::from_secs(240),
            )
            .await
        }
    });
    assert!(
        futures::future::join_all(drains)
            .await
            .into_iter()
            .all(|d| d),
        "every queue drained"
    );

    let (mut stored_total, mut dead_total, mut copies_total) = (0, 0, 0);
    let mut reasons_seen: BTreeMap<String, usize> = BTreeMap::new();
    for (resources, sent) in &sets {
        let expected_stored: BTreeSet<String> = sent
            .iter()
            .filter(|s| s.expected_reason.is_none())
            .map(|s| s.report_id.clone())
            .collect();
        let stored: Vec<String> = emulator
            .reports(&resources.table_name)
            .await
            .iter()
            .map(|r| r.report.report_id.to_string())
            .collect();
        assert_eq!(
            stored.len(),
            expected_stored.len(),
            "one item per valid message"
        );
        assert_eq!(
            stored.iter().cloned().collect::<BTreeSet<_>>(),
            expected_stored
        );

        let expected_dead: BTreeMap<&str, &str> = sent
            .iter()
            .filter_map(|s| s.expected_reason.map(|r| (s.body.as_str(), r)))
            .collect();
        let dead = emulator.receive_all(&resources.dlq_url).await;
        // Every copy in the DLQ is one of the invalid messages, with its reason.
        for m in &dead {
            let attributes = string_attributes(m);
            let body = m.body().unwrap_or_default();
            let expected = expected_dead
                .get(body)
                .unwrap_or_else(|| panic!("unexpected DLQ message {body:.80}"));
            assert_eq!(
                attributes.get(REASON_ATTRIBUTE).map(String::as_str),
                Some(*expected),
                "{body:.80}"
            );
            assert!(!attributes[DETAIL_ATTRIBUTE].is_empty());
            assert_eq!(attributes["correlationId"], "load-1");
        }
        // SQS delivers at least once: a message whose delete was lost, or whose visibility
        // ran out before the delete, is received and dead-lettered again. So each invalid
        // message is in the DLQ at least once; copies of one message share its id.
        let copies = copies_by_original_id(&dead);
        let bodies: BTreeSet<&str> = copies.values().map(|c| c.body).collect();
        assert_eq!(
            bodies,
            expected_dead.keys().copied().collect::<BTreeSet<_>>(),
            "every invalid message is in the DLQ"
        );
        assert_eq!(copies.len(), expected_dead.len(), "one original id each");
        for (id, copy) in &copies {
            if copy.failed_at.len() > 1 {
                eprintln!(
                    "{id} was dead-lettered {} times, at {:?}",
                    copy.failed_at.len(),
                    copy.failed_at
                );
            }
            *reasons_seen
                .entry(expected_dead[copy.body].to_string())
                .or_default() += 1;
        }
        assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
        stored_total += stored.len();
        dead_total += copies.len();
        copies_total += dead.len();
    }
    assert_eq!(stored_total, 600);
    assert_eq!(dead_total, 400);
    assert_eq!(stored_total + dead_total, QUEUES * PER_QUEUE);
    if copies_total > dead_total {
        eprintln!(
            "{} redelivered message(s) dead-lettered again: {copies_total} DLQ copies of {dead_total} invalid messages",
            copies_total - dead_total
        );
    }
    assert_eq!(
        reasons_seen,
        BTreeMap::from([
            ("contract_violation".to_owned(), 250),
            ("invalid_json".to_owned(), 100),
            ("unknown_version".to_owned(), 50),
        ])
    );
}

#[tokio::test]
async fn an_unknown_version_goes_to_the_dlq_with_its_reason_and_is_never_retried() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let v2 = json!({"version": 2, "reportId": "future-1", "userId": "alice",
        "bureau": "experian", "score": 700, "reportedAt": reported_at(), "source": "batch:next-gen",
        "confidence": 0.9});
    let v1 = json!({"version": 1, "reportId": "today-1", "userId": "alice",
        "bureau": "experian", "score": 700, "reportedAt": reported_at(), "source": "batch:current"});
    emulator
        .send_bodies(&resources.queue_url, &[v2.to_string(), v1.to_string()])
        .await;

    let settings = worker_settings(&resources);
    assert!(
        run_poller_until_drained(
            &emulator,
            &settings,
            &resources.queue_url,
            Duration::from_secs(60)
        )
        .await
    );

    let dead = emulator.receive_all(&resources.dlq_url).await;
    assert_eq!(dead.len(), 1, "dead-lettered once, not once per retry");
    let attributes = string_attributes(&dead[0]);
    assert_eq!(attributes[REASON_ATTRIBUTE], "unknown_version");
    assert!(
        attributes[DETAIL_ATTRIBUTE].contains("version 2"),
        "{attributes:?}"
    );
    assert_eq!(dead[0].body(), Some(v2.to_string().as_str()));
    let receives: u32 = dead[0]
        .attributes()
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::MessageSystemAttributeName::ApproximateReceiveCount)
        })
        .and_then(|v| v.parse().ok())
        .unwrap_or_default();
    assert_eq!(receives, 1, "the DLQ copy was read only by this test");
    // Taken off the main queue at once: not left there to be received again and again.
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
    let stored = emulator.reports(&resources.table_name).await;
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].report.report_id.as_str(), "today-1");
}

#[tokio::test]
async fn a_poison_message_whose_delete_is_lost_is_dead_lettered_again_and_every_copy_names_it() {
    let emulator = Emulator::connect().await;
    // A short visibility timeout, so an undeleted message is back at once; receives to spare,
    // so SQS's own redrive policy stays out of it.
    let resources = emulator.create_resources_with(1, 50).await;
    let poison = json!({"version": 1, "reportId": "lost-delete"}).to_string();
    emulator
        .sqs
        .send_message()
        .queue_url(&resources.queue_url)
        .message_body(&poison)
        .message_attributes(
            "correlationId",
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value("lost-delete-1")
                .build()
                .expect("a data type is set"),
        )
        .send()
        .await
        .expect("SendMessage on the emulator");

    // The worker's deletes fail (as when DeleteMessageBatch times out, or the visibility
    // timeout runs out before it): the DLQ send went through each time.
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    proxy.set_faults(
        &sqs("DeleteMessageBatch"),
        Faults {
            server_error: 1.0,
            ..Faults::default()
        },
    );
    let through_proxy = aws_sdk_sqs::Client::new(&proxy.sdk_config().await);
    let settings = worker_settings(&resources);
    let poller = RunningPoller::start_receiving_with(
        through_proxy,
        &emulator,
        &settings,
        &resources.queue_url,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while emulator.queue_depth(&resources.dlq_url).await.0 < 2
        && tokio::time::Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    proxy.clear_faults();
    let drained_by = tokio::time::Instant::now() + Duration::from_secs(30);
    while emulator.queue_depth(&resources.queue_url).await != (0, 0)
        && tokio::time::Instant::now() < drained_by
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    poller.stop().await;
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
    assert!(proxy.stats().op(&sqs("DeleteMessageBatch")).server_errors > 0);

    // Two or more copies, all of the one message: same body, same original id, each with
    // its reason and the producer's correlation id, each dead-lettered at its own time.
    let dead = emulator.receive_all(&resources.dlq_url).await;
    assert!(dead.len() >= 2, "dead-lettered on each receive: {dead:?}");
    let copies = copies_by_original_id(&dead);
    assert_eq!(copies.len(), 1, "one original message");
    let copy = copies.values().next().expect("one entry");
    assert_eq!(copy.body, poison);
    assert_eq!(
        copy.failed_at.iter().collect::<BTreeSet<_>>().len(),
        dead.len(),
        "each copy from its own receive: {:?}",
        copy.failed_at
    );
    for m in &dead {
        let attributes = string_attributes(m);
        assert_eq!(attributes[REASON_ATTRIBUTE], "contract_violation");
        assert_eq!(attributes["correlationId"], "lost-delete-1");
    }
    assert!(emulator.reports(&resources.table_name).await.is_empty());
}
