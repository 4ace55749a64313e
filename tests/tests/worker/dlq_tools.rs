//! `worker dlq stats | peek | redrive` against the emulator: looking consumes nothing, and a
//! redrive (whole, limited, interrupted or half-done) stores every message exactly once.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::Duration;

use aws_sdk_sqs::primitives::Blob;
use aws_sdk_sqs::types::{Message, MessageAttributeValue};
use pipeline_tests::worker_harness::{
    process_messages, processor, run_poller_until_drained, string_attributes, typed_attributes,
    worker_settings, RunningPoller,
};
use pipeline_tests::{run_with_timeout, workspace_binary, Emulator, TestResources};
use serde_json::json;
use tokio::sync::watch;
use worker::dlq::{DeadLetter, DeadLetterQueue, SqsDeadLetterQueue, REASON_ATTRIBUTE};
use worker::dlq_tools::{DlqTools, RedriveOptions, RedriveReport, EXHAUSTED_RETRIES};
use worker::producer::RetryPolicy;

fn reported_at() -> String {
    contract::rfc3339::format_utc_millis(time::OffsetDateTime::now_utc() - time::Duration::hours(1))
}

fn valid_body(report_id: &str) -> String {
    json!({"version": 1, "reportId": report_id, "userId": format!("user-{report_id}"),
        "bureau": "equifax", "score": 640, "reportedAt": reported_at(), "source": "batch:replay"})
    .to_string()
}

fn tools(emulator: &Emulator, resources: &TestResources) -> DlqTools {
    DlqTools::new(
        emulator.sqs.clone(),
        resources.dlq_url.clone(),
        Some(resources.queue_url.clone()),
    )
}

/// Puts messages in the DLQ the way the worker does, with a reason.
async fn dead_letter(
    emulator: &Emulator,
    resources: &TestResources,
    bodies: &[String],
    reason: &'static str,
) {
    let dlq = SqsDeadLetterQueue::new(emulator.sqs.clone(), resources.dlq_url.clone());
    for (i, body) in bodies.iter().enumerate() {
        dlq.send(&DeadLetter {
            original_message_id: format!("orig-{i}"),
            body: body.clone(),
            reason_code: reason,
            detail: format!("{reason}: seeded by the test"),
            correlation_id: Some(format!("corr-{i}")),
            redrive_run_id: None,
            attributes: HashMap::new(),
        })
        .await
        .unwrap();
    }
}

/// A redrive that sends poison too (the tests' messages were dead-lettered for reasons the
/// test then "fixes").
async fn redrive(
    tools: &DlqTools,
    limit: Option<usize>,
    shutdown: watch::Receiver<bool>,
) -> RedriveReport {
    let options = RedriveOptions {
        limit,
        include_poison: true,
        ..RedriveOptions::default()
    };
    tools
        .redrive(&options, shutdown, &RetryPolicy::default(), &mut |_| {})
        .await
        .expect("redrive runs")
}

fn never() -> watch::Receiver<bool> {
    watch::channel(false).1
}

#[tokio::test]
async fn redrive_after_the_table_exists_stores_every_dead_lettered_message_exactly_once() {
    let emulator = Emulator::connect().await;
    // Short visibility and two receives: failing messages reach the DLQ in seconds.
    let resources = emulator.create_resources_with(4, 2).await;
    let ids: Vec<String> = (0..24).map(|i| format!("late-table-{i:02}")).collect();
    let bodies: Vec<String> = ids.iter().map(|id| valid_body(id)).collect();
    emulator.send_bodies(&resources.queue_url, &bodies).await;

    // The cause: the worker points at a table that does not exist yet. Every write fails,
    // and after maxReceiveCount the queue's redrive policy moves the messages to the DLQ.
    let mut broken = worker_settings(&resources);
    let late_table = format!("{}-late", resources.table_name);
    broken.table_name = late_table.clone();
    assert!(
        run_poller_until_drained(
            &emulator,
            &broken,
            &resources.queue_url,
            Duration::from_secs(120)
        )
        .await
    );
    let tools = tools(&emulator, &resources);
    let stats = tools.stats(10_000).await.unwrap();
    assert_eq!(stats.scanned, 24);
    assert_eq!(stats.by_reason.get(EXHAUSTED_RETRIES), Some(&24));

    // Fix the cause, then redrive in two goes (a limited run, then the rest).
    platform::provision::ensure_table(&emulator.dynamodb, &late_table)
        .await
        .unwrap();
    let first = redrive(&tools, Some(10), never()).await;
    assert_eq!(first.redriven, 10);
    let rest = redrive(&tools, None, never()).await;
    assert_eq!(rest.redriven, 14);
    assert_eq!((first.failed, rest.failed), (0, 0));
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (0, 0));

    assert!(
        run_poller_until_drained(
            &emulator,
            &broken,
            &resources.queue_url,
            Duration::from_secs(120)
        )
        .await
    );
    let stored = emulator.reports(&late_table).await;
    let stored_ids: Vec<String> = stored
        .iter()
        .map(|r| r.report.report_id.to_string())
        .collect();
    assert_eq!(stored_ids.len(), 24, "exactly one item per message");
    assert_eq!(
        stored_ids.into_iter().collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (0, 0));
}

#[tokio::test]
async fn an_interrupted_redrive_rerun_loses_and_duplicates_nothing() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let ids: Vec<String> = (0..25).map(|i| format!("replay-{i:02}")).collect();
    let bodies: Vec<String> = ids.iter().map(|id| valid_body(id)).collect();
    // Dead-lettered when a producer's clock ran ahead; an hour later they are valid.
    dead_letter(&emulator, &resources, &bodies, "contract_violation").await;
    let tools = tools(&emulator, &resources);

    // A redrive that crashed between send and delete: one message is on both queues.
    let held = emulator
        .sqs
        .receive_message()
        .queue_url(&resources.dlq_url)
        .visibility_timeout(1)
        .send()
        .await
        .unwrap()
        .messages
        .unwrap_or_default();
    assert_eq!(held.len(), 1);
    emulator
        .send_bodies(&resources.queue_url, &[held[0].body().unwrap().to_owned()])
        .await;

    // Ctrl-C during a run: it finishes the batch in hand and stops.
    let (stop, stopped) = watch::channel(false);
    let everything = RedriveOptions {
        include_poison: true,
        ..RedriveOptions::default()
    };
    let interrupted = tools
        .redrive(&everything, stopped, &RetryPolicy::default(), &mut |_| {
            let _ = stop.send(true);
        })
        .await
        .unwrap();
    assert!(interrupted.interrupted);
    assert!((1..=10).contains(&interrupted.redriven), "{interrupted:?}");
    // A run with a limit, then the rest once the crashed run's message is visible again.
    let limited = redrive(&tools, Some(5), never()).await;
    assert_eq!(limited.redriven, 5);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rest = redrive(&tools, None, never()).await;
    assert_eq!(
        interrupted.redriven + limited.redriven + rest.redriven,
        25,
        "each DLQ message redriven once"
    );
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (0, 0));

    let queued = emulator.receive_all(&resources.queue_url).await;
    assert_eq!(queued.len(), 26, "25 redriven plus the crashed run's copy");
    let mut redriven_with_attributes = 0;
    for m in &queued {
        let attributes = string_attributes(m);
        assert!(
            attributes
                .keys()
                .all(|k| !k.starts_with("failure") && k != "failedAt" && k != "originalMessageId"),
            "failure attributes dropped: {attributes:?}"
        );
        if attributes.contains_key("correlationId") {
            redriven_with_attributes += 1;
        }
    }
    assert_eq!(
        redriven_with_attributes, 25,
        "the correlation id travels on"
    );

    let settings = worker_settings(&resources);
    let outcome = process_messages(
        &emulator,
        &resources.queue_url,
        &queued,
        &processor(&emulator, &settings),
    )
    .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.dead_lettered, 0);
    let stored: Vec<String> = emulator
        .reports(&resources.table_name)
        .await
        .iter()
        .map(|r| r.report.report_id.to_string())
        .collect();
    assert_eq!(
        stored.len(),
        25,
        "the duplicate message rewrote the same item"
    );
    assert_eq!(
        stored.into_iter().collect::<BTreeSet<_>>(),
        ids.into_iter().collect::<BTreeSet<_>>()
    );
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
}

#[tokio::test]
async fn stats_peek_and_dry_run_report_reasons_and_consume_nothing() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    dead_letter(
        &emulator,
        &resources,
        &["{".into(), "x".into(), "[".into()],
        "invalid_json",
    )
    .await;
    dead_letter(
        &emulator,
        &resources,
        &vec![r#"{"version":2}"#.to_owned(); 2],
        "unknown_version",
    )
    .await;
    dead_letter(
        &emulator,
        &resources,
        &[r#"{"version":1}"#.into()],
        "contract_violation",
    )
    .await;
    // What the queue's redrive policy moves carries no reason.
    emulator
        .send_bodies(&resources.dlq_url, &[valid_body("a"), valid_body("b")])
        .await;
    let tools = tools(&emulator, &resources);

    let stats = tools.stats(10_000).await.unwrap();
    assert_eq!(stats.scanned, 8);
    assert_eq!(stats.visible, 8);
    let counts: Vec<(&str, usize)> = stats
        .by_reason
        .iter()
        .map(|(k, v)| (k.as_str(), *v))
        .collect();
    assert_eq!(
        counts,
        [
            ("contract_violation", 1),
            ("exhausted_retries", 2),
            ("invalid_json", 3),
            ("unknown_version", 2)
        ]
    );
    let oldest = stats.oldest_sent_at.expect("an oldest message");
    assert!(oldest <= time::OffsetDateTime::now_utc());
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (8, 0));

    let peeked = tools.peek(3).await.unwrap();
    assert_eq!(peeked.len(), 3);
    for m in &peeked {
        let line: serde_json::Value = serde_json::from_str(&m.to_json_line()).unwrap();
        assert!(line["failureReason"]
            .as_str()
            .is_some_and(|r| !r.is_empty()));
        assert_eq!(line["body"], m.body);
    }
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (8, 0));

    let dry_run = RedriveOptions {
        dry_run: true,
        ..RedriveOptions::default()
    };
    let dry = tools
        .redrive(&dry_run, never(), &RetryPolicy::default(), &mut |_| {})
        .await
        .unwrap();
    // Only the two without a reason would go; the six poison messages would be skipped.
    assert_eq!(dry.would_redrive.values().sum::<usize>(), 2);
    assert_eq!(dry.skipped(), 6);
    assert_eq!(dry.redriven, 0);
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (8, 0));
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
}

#[tokio::test]
async fn the_worker_binary_prints_stats_and_redrives_with_progress() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let bodies: Vec<String> = (0..12).map(|i| valid_body(&format!("cli-{i}"))).collect();
    dead_letter(&emulator, &resources, &bodies, "contract_violation").await;
    let run = |args: &[&str]| {
        std::process::Command::new(workspace_binary("worker"))
            .args(args)
            .envs(resources.env(&emulator))
            .env_remove("AWS_LAMBDA_RUNTIME_API")
            .output()
            .expect("the worker binary runs")
    };

    let stats = run(&["dlq", "stats"]);
    let stdout = String::from_utf8_lossy(&stats.stdout);
    assert!(stats.status.success(), "{stdout}");
    assert!(stdout.contains("scanned: 12"), "{stdout}");
    assert!(stdout.contains("contract_violation  12"), "{stdout}");
    assert!(stdout.contains("oldest: "), "{stdout}");

    let peek = run(&["dlq", "peek", "--limit", "2"]);
    assert_eq!(String::from_utf8_lossy(&peek.stdout).lines().count(), 2);

    // Poison stays put without --include-poison.
    let skipping = run(&["dlq", "redrive"]);
    let stdout = String::from_utf8_lossy(&skipping.stdout);
    assert!(skipping.status.success(), "{stdout}");
    assert!(stdout.contains("redriven 0 messages"), "{stdout}");
    assert!(stdout.contains("skipped 12 (poison"), "{stdout}");
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (12, 0));

    let redrive = run(&["dlq", "redrive", "--include-poison"]);
    let stdout = String::from_utf8_lossy(&redrive.stdout);
    let stderr = String::from_utf8_lossy(&redrive.stderr);
    assert!(redrive.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("redriven 12 messages"), "{stdout}");
    assert!(stderr.contains("12/12 redriven"), "{stderr}");
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (12, 0));
    assert_eq!(emulator.queue_depth(&resources.dlq_url).await, (0, 0));

    let dead = emulator.receive_all(&resources.queue_url).await;
    assert!(dead
        .iter()
        .all(|m| !string_attributes(m).contains_key(REASON_ATTRIBUTE)));
}

#[tokio::test]
async fn redrive_without_a_limit_ends_while_a_worker_dead_letters_poison_again() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    // Poison that no retry can fix, and messages that only ran out of retries.
    dead_letter(
        &emulator,
        &resources,
        &["{".into(), "not json".into(), "[1,".into()],
        "invalid_json",
    )
    .await;
    dead_letter(
        &emulator,
        &resources,
        &vec![r#"{"version":9}"#.to_owned(); 2],
        "unknown_version",
    )
    .await;
    let ids: Vec<String> = (0..4).map(|i| format!("retry-{i}")).collect();
    let valid: Vec<String> = ids.iter().map(|id| valid_body(id)).collect();
    emulator.send_bodies(&resources.dlq_url, &valid).await;

    // A worker drains the queue meanwhile: whatever poison it gets, it dead-letters again.
    let poller = RunningPoller::start(
        &emulator,
        &worker_settings(&resources),
        &resources.queue_url,
    );
    let mut command = std::process::Command::new(workspace_binary("worker"));
    command
        .args(["dlq", "redrive"])
        .envs(resources.env(&emulator))
        .env("RUST_LOG", "warn")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(std::process::Stdio::null());
    let output = run_with_timeout(command, Duration::from_secs(90));
    let stored = emulator
        .wait_for_reports(&resources.table_name, 4, Duration::from_secs(30))
        .await;
    poller.stop().await;
    let output = output.expect("redrive ends by itself");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("redriven 4 messages"), "{stdout}");
    assert!(stdout.contains("skipped 5 (poison"), "{stdout}");
    assert!(stdout.contains("invalid_json  3"), "{stdout}");
    assert!(stdout.contains("unknown_version  2"), "{stdout}");

    // Nothing lost: the valid ones are stored, the poison is still in the DLQ, untouched.
    assert_eq!(stored.len(), 4, "{stored:?}");
    let left = emulator.receive_all(&resources.dlq_url).await;
    let mut reasons: Vec<String> = left
        .iter()
        .map(|m| {
            string_attributes(m)
                .get(REASON_ATTRIBUTE)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        [
            "invalid_json",
            "invalid_json",
            "invalid_json",
            "unknown_version",
            "unknown_version"
        ]
    );
}

/// Moves everything that reaches `queue_url` straight back to the DLQ, attributes and all, as
/// SQS's redrive policy does with a message that keeps failing: the loop a redrive must not
/// chase. Runs until `stop` turns true (bounded by the test's own timeout).
async fn bounce_back_to_the_dlq(
    emulator: Emulator,
    resources: TestResources,
    stop: watch::Receiver<bool>,
) -> usize {
    let mut bounced = 0;
    while !*stop.borrow() {
        let out = emulator
            .sqs
            .receive_message()
            .queue_url(&resources.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .message_attribute_names("All")
            .send()
            .await
            .expect("ReceiveMessage on the emulator");
        for m in out.messages.unwrap_or_default() {
            emulator
                .sqs
                .send_message()
                .queue_url(&resources.dlq_url)
                .message_body(m.body().unwrap_or_default())
                .set_message_attributes(m.message_attributes().cloned())
                .send()
                .await
                .expect("SendMessage to the DLQ");
            emulator
                .sqs
                .delete_message()
                .queue_url(&resources.queue_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("DeleteMessage");
            bounced += 1;
        }
    }
    bounced
}

#[tokio::test]
async fn redrive_ends_when_what_it_sends_comes_straight_back_and_loses_nothing() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    // Valid messages that ran out of retries (the table is still broken, say): no reason, so
    // every run takes them.
    let bodies: Vec<String> = (0..6).map(|i| valid_body(&format!("bounce-{i}"))).collect();
    emulator.send_bodies(&resources.dlq_url, &bodies).await;

    let (stop, stopped) = watch::channel(false);
    let bouncer = tokio::spawn(bounce_back_to_the_dlq(
        emulator.clone(),
        resources.clone(),
        stopped,
    ));
    let mut command = std::process::Command::new(workspace_binary("worker"));
    command
        .args(["dlq", "redrive"])
        .envs(resources.env(&emulator))
        .env("RUST_LOG", "warn")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdin(std::process::Stdio::null());
    let output =
        tokio::task::spawn_blocking(move || run_with_timeout(command, Duration::from_secs(60)))
            .await
            .expect("the runner thread does not panic");
    // Let the bouncer put back whatever is still on the queue, then stop it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let _ = stop.send(true);
    let bounced = bouncer.await.expect("the bouncer does not panic");

    let output = output.expect("redrive ends although every message it sends comes back");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "{stdout}{stderr}");
    assert!(
        stdout.contains("redriven 6 messages"),
        "each sent once: {stdout}"
    );
    assert_eq!(bounced, 6, "{stdout}");
    // Nothing lost: all six are back in the DLQ, none on the queue.
    assert_eq!(emulator.queue_depth(&resources.queue_url).await, (0, 0));
    let left = emulator.receive_all(&resources.dlq_url).await;
    assert_eq!(left.len(), 6, "{stdout}");
}

#[tokio::test]
async fn redrive_with_poison_included_sends_each_once_while_the_worker_dead_letters_them_again() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    dead_letter(
        &emulator,
        &resources,
        &["{".into(), "nope".into(), "[".into()],
        "invalid_json",
    )
    .await;
    let valid: Vec<String> = (0..2)
        .map(|i| valid_body(&format!("with-poison-{i}")))
        .collect();
    emulator.send_bodies(&resources.dlq_url, &valid).await;

    let poller = RunningPoller::start(
        &emulator,
        &worker_settings(&resources),
        &resources.queue_url,
    );
    let options = RedriveOptions {
        include_poison: true,
        ..RedriveOptions::default()
    };
    let tools = tools(&emulator, &resources);
    let report = tokio::time::timeout(
        Duration::from_secs(60),
        tools.redrive(&options, never(), &RetryPolicy::default(), &mut |_| {}),
    )
    .await
    .expect("redrive ends")
    .expect("redrive runs");
    let stored = emulator
        .wait_for_reports(&resources.table_name, 2, Duration::from_secs(30))
        .await;
    poller.stop().await;

    assert_eq!(report.budget, 5);
    assert_eq!(report.redriven, 5, "{report:?}");
    assert_eq!(report.redriven_by_reason.get("invalid_json"), Some(&3));
    assert!(report.came_back <= 3, "{report:?}");
    assert_eq!(stored.len(), 2);
    // The three are back in the DLQ, dead-lettered afresh and tagged with the run that sent them.
    let left = emulator.receive_all(&resources.dlq_url).await;
    assert_eq!(left.len(), 3);
    for m in &left {
        let attributes = string_attributes(m);
        assert_eq!(
            attributes.get(REASON_ATTRIBUTE).map(String::as_str),
            Some("invalid_json")
        );
        assert_eq!(attributes.get("redriveRunId"), Some(&report.run_id));
    }
}

/// An attribute as a producer sends it: `(data type, text)`, or a Binary one's bytes.
fn attribute(data_type: &str, value: &[u8]) -> MessageAttributeValue {
    let builder = MessageAttributeValue::builder().data_type(data_type);
    let builder = if data_type.starts_with("Binary") {
        builder.binary_value(Blob::new(value.to_vec()))
    } else {
        builder.string_value(String::from_utf8_lossy(value))
    };
    builder.build().expect("a data type is set")
}

/// Sends one message the way a batch producer would, with its own message attributes.
async fn send_with_attributes(
    emulator: &Emulator,
    queue_url: &str,
    body: &str,
    attributes: &BTreeMap<String, (String, Vec<u8>)>,
) {
    let attributes: HashMap<String, MessageAttributeValue> = attributes
        .iter()
        .map(|(name, (data_type, value))| (name.clone(), attribute(data_type, value)))
        .collect();
    emulator
        .sqs
        .send_message()
        .queue_url(queue_url)
        .message_body(body)
        .set_message_attributes(Some(attributes))
        .send()
        .await
        .expect("SendMessage on the emulator");
}

/// Looks at what is on `queue_url` and leaves it there, visible again.
async fn look_at(emulator: &Emulator, queue_url: &str) -> Vec<Message> {
    let messages = emulator.receive_all(queue_url).await;
    for m in &messages {
        emulator
            .sqs
            .change_message_visibility()
            .queue_url(queue_url)
            .receipt_handle(m.receipt_handle().unwrap_or_default())
            .visibility_timeout(0)
            .send()
            .await
            .expect("ChangeMessageVisibility on the emulator");
    }
    messages
}

fn named(attributes: &[(&str, &str, &[u8])]) -> BTreeMap<String, (String, Vec<u8>)> {
    attributes
        .iter()
        .map(|(name, data_type, value)| {
            (
                (*name).to_owned(),
                ((*data_type).to_owned(), value.to_vec()),
            )
        })
        .collect()
}

fn names(attributes: &BTreeMap<String, (String, Vec<u8>)>) -> Vec<&str> {
    attributes.keys().map(String::as_str).collect()
}

const OURS: [&str; 4] = [
    "failedAt",
    "failureDetail",
    "failureReason",
    "originalMessageId",
];

#[tokio::test]
async fn the_producers_attributes_reach_the_dlq_copy_and_go_back_on_redrive_with_their_data_types()
{
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let producers = named(&[
        ("correlationId", "String", b"run-2026-12-06"),
        ("tenant", "String", b"acme"),
        ("attempt", "Number", b"3"),
        ("fileLine", "Number.int", b"42"),
        ("signature", "Binary", &[0, 1, 2, 255]),
    ]);
    let poison = r#"{"version":1,"reportId":"typed-1""#;
    send_with_attributes(&emulator, &resources.queue_url, poison, &producers).await;

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

    // The DLQ copy: the producer's five, each with its data type, beside our own four.
    let dead = look_at(&emulator, &resources.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let copy = typed_attributes(&dead[0]);
    assert_eq!(copy["failureReason"].1, b"invalid_json");
    for (name, sent) in &producers {
        assert_eq!(
            copy.get(name),
            Some(sent),
            "{name} kept as sent; the copy has {:?}",
            names(&copy)
        );
    }
    assert_eq!(copy.len(), producers.len() + OURS.len(), "{copy:?}");

    // Redriven (the producer fixed nothing, but an operator sends it back anyway): the
    // producer's attributes as they were, our reasons gone, the run's id added.
    let report = redrive(&tools(&emulator, &resources), None, never()).await;
    assert_eq!(report.redriven, 1);
    let back = emulator.receive_all(&resources.queue_url).await;
    assert_eq!(back.len(), 1);
    assert_eq!(back[0].body(), Some(poison));
    let mut expected = producers.clone();
    expected.insert(
        "redriveRunId".to_owned(),
        ("String".to_owned(), report.run_id.clone().into_bytes()),
    );
    assert_eq!(typed_attributes(&back[0]), expected);
}

#[tokio::test]
async fn with_ten_producer_attributes_the_dlq_copy_keeps_its_own_and_the_producers_first_by_name() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    // Ten, the most SQS takes: the correlation id and nine more, named to show the order
    // (byte order of the name: capitals first).
    let mut producers = named(&[("correlationId", "String", b"ten-1")]);
    for name in [
        "theta", "Zone", "alpha", "iota", "Beta", "eta", "delta", "gamma", "epsilon",
    ] {
        producers.insert(
            name.to_owned(),
            ("String".to_owned(), format!("v-{name}").into_bytes()),
        );
    }
    assert_eq!(producers.len(), 10);
    let poison = r#"{"version":1,"reportId":"ten-1"}"#;
    send_with_attributes(&emulator, &resources.queue_url, poison, &producers).await;

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

    // Our four and the correlation id take five of the ten; the producer's other nine get
    // the five left, in order of name: eta, gamma, iota and theta are dropped.
    let dead = look_at(&emulator, &resources.dlq_url).await;
    assert_eq!(dead.len(), 1);
    let copy = typed_attributes(&dead[0]);
    assert_eq!(copy["failureReason"].1, b"contract_violation");
    assert_eq!(
        names(&copy),
        [
            "Beta",
            "Zone",
            "alpha",
            "correlationId",
            "delta",
            "epsilon",
            "failedAt",
            "failureDetail",
            "failureReason",
            "originalMessageId"
        ]
    );
    for name in ["Beta", "Zone", "alpha", "correlationId", "delta", "epsilon"] {
        assert_eq!(copy[name], producers[name], "{name}");
    }

    // What the DLQ copy kept goes back on redrive.
    let report = redrive(&tools(&emulator, &resources), None, never()).await;
    assert_eq!(report.redriven, 1);
    let back = emulator.receive_all(&resources.queue_url).await;
    assert_eq!(back.len(), 1);
    assert_eq!(
        names(&typed_attributes(&back[0])),
        [
            "Beta",
            "Zone",
            "alpha",
            "correlationId",
            "delta",
            "epsilon",
            "redriveRunId"
        ]
    );
}

#[tokio::test]
async fn a_message_with_ten_attributes_moved_by_the_redrive_policy_goes_back_with_the_run_id_in_the_tenth_slot(
) {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    // What SQS's redrive policy moves is the message as the producer sent it: here with all
    // ten attributes SQS allows, so the run's id can only take the place of one of them.
    let producers: BTreeMap<String, (String, Vec<u8>)> = (0..10)
        .map(|i| {
            (
                format!("attr-{i}"),
                ("Number".to_owned(), i.to_string().into_bytes()),
            )
        })
        .collect();
    send_with_attributes(
        &emulator,
        &resources.dlq_url,
        &valid_body("ten-exhausted"),
        &producers,
    )
    .await;

    let report = redrive(&tools(&emulator, &resources), None, never()).await;
    assert_eq!(report.redriven, 1, "{report:?}");
    let back = emulator.receive_all(&resources.queue_url).await;
    assert_eq!(back.len(), 1);
    let attributes = typed_attributes(&back[0]);
    assert_eq!(attributes.len(), 10, "{attributes:?}");
    assert_eq!(
        attributes["redriveRunId"].1,
        report.run_id.clone().into_bytes()
    );
    assert!(
        !attributes.contains_key("attr-9"),
        "the last by name gives way"
    );
    for i in 0..9 {
        let name = format!("attr-{i}");
        assert_eq!(attributes[&name], producers[&name], "{name}");
    }

    // And it is stored once.
    let settings = worker_settings(&resources);
    let outcome = process_messages(
        &emulator,
        &resources.queue_url,
        &back,
        &processor(&emulator, &settings),
    )
    .await;
    assert_eq!(outcome.written, 1, "{outcome:?}");
}
