//! Batch producers push straight onto SQS; the worker is then their only gatekeeper. Against
//! the emulator: whatever they send ends as exactly one table item or one DLQ message with
//! a reason.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use pipeline_tests::worker_harness::{
    run_poller_until_drained, string_attributes, worker_settings,
};
use pipeline_tests::{Emulator, TestResources};
use serde_json::json;
use shared::sqs_batch::OutgoingMessage;
use worker::dlq::{DETAIL_ATTRIBUTE, REASON_ATTRIBUTE};
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
    shared::domain::format_utc_millis(time::OffsetDateTime::now_utc() - time::Duration::hours(2))
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

#[tokio::test]
async fn a_thousand_producer_messages_end_as_exactly_the_valid_items_and_the_invalid_in_the_dlq() {
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

    let (mut stored_total, mut dead_total) = (0, 0);
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
        assert_eq!(
            dead.len(),
            expected_dead.len(),
            "one DLQ message per invalid one"
        );
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
            *reasons_seen.entry(expected.to_string()).or_default() += 1;
        }
        assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
        stored_total += stored.len();
        dead_total += dead.len();
    }
    assert_eq!(stored_total, 600);
    assert_eq!(dead_total, 400);
    assert_eq!(stored_total + dead_total, QUEUES * PER_QUEUE);
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
