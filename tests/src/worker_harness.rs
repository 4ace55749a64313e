//! Running the real worker code against a test's own queue, DLQ and table: the long-polling
//! consumer until the queue is drained, or receive-process-delete by hand.

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use tokio::sync::watch;
use worker::poller::{inbound_from_sqs, Poller, PollerConfig};
use worker::processor::{BatchOutcome, Processor};
use worker::settings::WorkerSettings;

use crate::emulator::{Emulator, TestResources};

/// Worker settings for `resources`, with quick retries so failures show up fast.
pub fn worker_settings(resources: &TestResources) -> WorkerSettings {
    let env = [
        ("QUEUE_URL", resources.queue_url.as_str()),
        ("DLQ_URL", resources.dlq_url.as_str()),
        ("TABLE_NAME", resources.table_name.as_str()),
        ("RETRY_BASE_DELAY_MS", "10"),
        ("RETRY_MAX_DELAY_MS", "100"),
        ("DYNAMODB_ATTEMPT_TIMEOUT_MS", "2000"),
        ("FAILURE_VISIBILITY_BASE_SECONDS", "0"),
    ];
    WorkerSettings::from_source(&env).expect("test worker settings are valid")
}

/// The production poller shape with 1 s receives, so a test's poller notices shutdown and
/// an empty queue quickly.
pub fn quick_poller_config(queue_url: &str, settings: &WorkerSettings) -> PollerConfig {
    PollerConfig {
        wait_time_seconds: LONG_POLL.as_secs() as i32,
        ..PollerConfig::from_settings(queue_url, settings)
    }
}

pub fn processor(emulator: &Emulator, settings: &WorkerSettings) -> Arc<Processor> {
    worker::build_processor(settings, &emulator.sdk)
}

/// Runs the long-polling consumer on `queue_url` until the queue has been empty (nothing
/// visible, nothing in flight) for two checks in a row, or `timeout` passes; then stops it
/// the graceful way. Returns whether the queue was drained.
pub async fn run_poller_until_drained(
    emulator: &Emulator,
    settings: &WorkerSettings,
    queue_url: &str,
    timeout: Duration,
) -> bool {
    let poller = poller(emulator.sqs.clone(), emulator, settings, queue_url);
    let (stop, stopped) = watch::channel(false);
    let running = tokio::spawn(poller.run(stopped));
    let deadline = tokio::time::Instant::now() + timeout;
    let mut empty_checks = 0;
    while empty_checks < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        empty_checks = if emulator.queue_depth(queue_url).await == (0, 0) {
            empty_checks + 1
        } else {
            0
        };
    }
    let _ = stop.send(true);
    running
        .await
        .expect("the poller task does not panic")
        .expect("the poller stops cleanly");
    // A receive cut short by the stop is still open on the emulator's side until its long
    // poll (1 s) ends; a message sent meanwhile (a redrive right after this) would go to it
    // and stay invisible for the visibility timeout. Let it end first.
    tokio::time::sleep(LONG_POLL + Duration::from_millis(500)).await;
    empty_checks >= 2
}

/// The harness pollers' long-poll wait.
const LONG_POLL: Duration = Duration::from_secs(1);

/// Receives every visible message of `queue_url`, processes them in batches of 10 with
/// `processor`, and deletes those the processor finished. Returns the summed outcome.
pub async fn process_all(
    emulator: &Emulator,
    queue_url: &str,
    processor: &Processor,
) -> BatchOutcome {
    let messages = emulator.receive_all(queue_url).await;
    process_messages(emulator, queue_url, &messages, processor).await
}

/// Processes messages already received from `queue_url` (batches of 10) and deletes those
/// the processor finished.
pub async fn process_messages(
    emulator: &Emulator,
    queue_url: &str,
    messages: &[aws_sdk_sqs::types::Message],
    processor: &Processor,
) -> BatchOutcome {
    let mut total = BatchOutcome::default();
    for chunk in messages.chunks(platform::sqs_batch::MAX_BATCH_ENTRIES) {
        let inbound: Vec<_> = chunk.iter().map(inbound_from_sqs).collect();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        let outcome = processor.process_batch(&inbound, deadline).await;
        let done: Vec<DeleteMessageBatchRequestEntry> = chunk
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                !outcome
                    .failed
                    .iter()
                    .any(|f| Some(f.as_str()) == m.message_id())
            })
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("valid delete entry")
            })
            .collect();
        if !done.is_empty() {
            let out = emulator
                .sqs
                .delete_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(done))
                .send()
                .await
                .expect("DeleteMessageBatch on the emulator");
            assert!(out.failed.is_empty(), "deletes failed: {:?}", out.failed);
        }
        total.failed.extend(outcome.failed);
        total.written += outcome.written;
        total.dead_lettered += outcome.dead_lettered;
        total.deduplicated += outcome.deduplicated;
        total.write_requests += outcome.write_requests;
    }
    total
}

/// The real poller on `queue_url` (quick receives), its receives and deletes sent with `sqs`;
/// the processor's own clients (DLQ, table) talk to the emulator directly.
fn poller(
    sqs: aws_sdk_sqs::Client,
    emulator: &Emulator,
    settings: &WorkerSettings,
    queue_url: &str,
) -> Poller {
    let config = quick_poller_config(queue_url, settings);
    Poller::new(sqs, processor(emulator, settings), config)
}

/// Every message attribute of an SQS message as (data type, value bytes): a String or Number
/// value's text, a Binary value's bytes.
pub fn typed_attributes(
    message: &aws_sdk_sqs::types::Message,
) -> std::collections::BTreeMap<String, (String, Vec<u8>)> {
    message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .map(|(k, v)| {
                    let value = match (v.string_value(), v.binary_value()) {
                        (Some(text), _) => text.as_bytes().to_vec(),
                        (None, Some(bytes)) => bytes.as_ref().to_vec(),
                        (None, None) => Vec::new(),
                    };
                    (k.clone(), (v.data_type().to_owned(), value))
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The string message attributes of an SQS message.
pub fn string_attributes(
    message: &aws_sdk_sqs::types::Message,
) -> std::collections::HashMap<String, String> {
    message
        .message_attributes()
        .map(|attrs| {
            attrs
                .iter()
                .filter_map(|(k, v)| v.string_value().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// A long-polling consumer running in the background until [`RunningPoller::stop`].
pub struct RunningPoller {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl RunningPoller {
    /// Starts the real poller on `queue_url` with `settings` (quick receives).
    pub fn start(emulator: &Emulator, settings: &WorkerSettings, queue_url: &str) -> Self {
        Self::start_receiving_with(emulator.sqs.clone(), emulator, settings, queue_url)
    }

    /// Like [`RunningPoller::start`], but the poller receives and deletes with `sqs` (a
    /// client going through a [`crate::FaultProxy`], say).
    pub fn start_receiving_with(
        sqs: aws_sdk_sqs::Client,
        emulator: &Emulator,
        settings: &WorkerSettings,
        queue_url: &str,
    ) -> Self {
        let poller = poller(sqs, emulator, settings, queue_url);
        let (stop, stopped) = watch::channel(false);
        Self {
            stop,
            task: tokio::spawn(poller.run(stopped)),
        }
    }

    /// Stops it the graceful way (it finishes the batches in hand).
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        self.task
            .await
            .expect("the poller task does not panic")
            .expect("the poller stops cleanly");
    }
}
