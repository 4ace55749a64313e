//! The AWS emulator as tests see it: clients, unique resources per test, and readers.

use std::collections::HashMap;
use std::time::Duration;

use aws_config::{Region, SdkConfig};
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_sqs::types::{Message, MessageSystemAttributeName, QueueAttributeName};
use contract::report::StoredReport;
use platform::item::{read_report, SK};
use platform::provision::{provision, ProvisionRequest};

pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:4566";

#[derive(Clone)]
pub struct Emulator {
    pub endpoint: String,
    pub sdk: SdkConfig,
    pub sqs: aws_sdk_sqs::Client,
    pub dynamodb: aws_sdk_dynamodb::Client,
}

/// One test's own queue, DLQ and table.
#[derive(Debug, Clone)]
pub struct TestResources {
    pub queue_name: String,
    pub queue_url: String,
    pub dlq_url: String,
    pub table_name: String,
}

impl TestResources {
    /// The environment a worker or ingest process needs to use these resources.
    pub fn env(&self, emulator: &Emulator) -> Vec<(String, String)> {
        vec![
            ("AWS_ENDPOINT_URL".into(), emulator.endpoint.clone()),
            ("AWS_REGION".into(), "us-east-1".into()),
            ("AWS_ACCESS_KEY_ID".into(), "test".into()),
            ("AWS_SECRET_ACCESS_KEY".into(), "test".into()),
            ("QUEUE_URL".into(), self.queue_url.clone()),
            ("DLQ_URL".into(), self.dlq_url.clone()),
            ("TABLE_NAME".into(), self.table_name.clone()),
        ]
    }
}

/// The project's config loader pointed at `endpoint` (the emulator, or a proxy in front of
/// it) with the emulator's region and dummy credentials; add settings before `.load()`.
pub fn config_loader_at(endpoint: &str) -> aws_config::ConfigLoader {
    platform::aws::config_loader()
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(aws_sdk_sqs::config::Credentials::new(
            "test", "test", None, None, "tests",
        ))
}

/// A name no other test (or earlier run) uses.
pub fn unique_name(prefix: &str) -> String {
    format!("{prefix}-{}", ulid::Ulid::new().to_string().to_lowercase())
}

impl Emulator {
    /// Connects to `AWS_ENDPOINT_URL` (default 127.0.0.1:4566) with dummy credentials.
    pub async fn connect() -> Self {
        let endpoint =
            std::env::var("AWS_ENDPOINT_URL").unwrap_or_else(|_| DEFAULT_ENDPOINT.to_owned());
        Self::at(endpoint).await
    }

    /// Connects to the emulator (or a proxy in front of it) at `endpoint`.
    pub async fn at(endpoint: String) -> Self {
        let sdk = config_loader_at(&endpoint).load().await;
        let emulator = Self {
            sqs: aws_sdk_sqs::Client::new(&sdk),
            dynamodb: aws_sdk_dynamodb::Client::new(&sdk),
            endpoint,
            sdk,
        };
        if let Err(e) = emulator.sqs.list_queues().max_results(1).send().await {
            panic!(
                "no AWS emulator answers at {}: start one with `make emulator-up` (or run `make test`): {}",
                emulator.endpoint,
                aws_sdk_sqs::error::DisplayErrorContext(e)
            );
        }
        emulator
    }

    /// Fresh queue (30 s visibility), DLQ (redrive after 3 receives) and table.
    pub async fn create_resources(&self) -> TestResources {
        self.create_resources_with(30, 3).await
    }

    pub async fn create_resources_with(
        &self,
        visibility_timeout_seconds: u32,
        max_receive_count: u32,
    ) -> TestResources {
        let queue_name = unique_name("q");
        let request = ProvisionRequest {
            dlq_name: format!("{queue_name}-dlq"),
            queue_name: queue_name.clone(),
            table_name: unique_name("t"),
            max_receive_count,
            visibility_timeout_seconds,
        };
        let done = provision(&self.sqs, &self.dynamodb, &request)
            .await
            .expect("provisioning test resources in the emulator");
        TestResources {
            queue_name,
            queue_url: done.queue_url,
            dlq_url: done.dlq_url,
            table_name: done.table_name,
        }
    }

    /// Receives every message now visible on `queue_url` (they stay in flight, undeleted).
    pub async fn receive_all(&self, queue_url: &str) -> Vec<Message> {
        let mut all = Vec::new();
        let mut empty_rounds = 0;
        while empty_rounds < 2 {
            let out = self
                .sqs
                .receive_message()
                .queue_url(queue_url)
                .max_number_of_messages(10)
                .wait_time_seconds(0)
                .visibility_timeout(120)
                .message_attribute_names("All")
                .message_system_attribute_names(MessageSystemAttributeName::All)
                .send()
                .await
                .expect("ReceiveMessage on the emulator");
            let batch = out.messages.unwrap_or_default();
            if batch.is_empty() {
                empty_rounds += 1;
            } else {
                empty_rounds = 0;
                all.extend(batch);
            }
        }
        all
    }

    /// (visible, in flight) message counts.
    pub async fn queue_depth(&self, queue_url: &str) -> (u64, u64) {
        let out = self
            .sqs
            .get_queue_attributes()
            .queue_url(queue_url)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessages)
            .attribute_names(QueueAttributeName::ApproximateNumberOfMessagesNotVisible)
            .send()
            .await
            .expect("GetQueueAttributes on the emulator");
        let attrs = out.attributes.unwrap_or_default();
        let read = |k: &QueueAttributeName| {
            attrs
                .get(k)
                .and_then(|v| v.parse().ok())
                .unwrap_or_default()
        };
        (
            read(&QueueAttributeName::ApproximateNumberOfMessages),
            read(&QueueAttributeName::ApproximateNumberOfMessagesNotVisible),
        )
    }

    /// Every item in `table`.
    pub async fn scan(&self, table: &str) -> Vec<HashMap<String, AttributeValue>> {
        let mut items = Vec::new();
        let mut start = None;
        loop {
            let out = self
                .dynamodb
                .scan()
                .table_name(table)
                .set_exclusive_start_key(start)
                .send()
                .await
                .expect("Scan on the emulator");
            items.extend(out.items.unwrap_or_default());
            start = out.last_evaluated_key;
            if start.is_none() {
                return items;
            }
        }
    }

    /// The report items in `table`.
    pub async fn reports(&self, table: &str) -> Vec<StoredReport> {
        self.scan(table)
            .await
            .iter()
            .filter(|item| matches!(item.get(SK), Some(AttributeValue::S(sk)) if sk.starts_with("REPORT#")))
            .map(|item| read_report(item).expect("items written by the worker read back"))
            .collect()
    }

    /// Sends raw bodies straight to a queue, as a batch producer would.
    pub async fn send_bodies(&self, queue_url: &str, bodies: &[String]) {
        for chunk in bodies.chunks(platform::sqs_batch::MAX_BATCH_ENTRIES) {
            let entries = chunk
                .iter()
                .enumerate()
                .map(|(i, body)| {
                    aws_sdk_sqs::types::SendMessageBatchRequestEntry::builder()
                        .id(i.to_string())
                        .message_body(body)
                        .build()
                        .expect("valid batch entry")
                })
                .collect();
            let out = self
                .sqs
                .send_message_batch()
                .queue_url(queue_url)
                .set_entries(Some(entries))
                .send()
                .await
                .expect("SendMessageBatch on the emulator");
            assert!(
                out.failed.is_empty(),
                "emulator refused entries: {:?}",
                out.failed
            );
        }
    }

    /// Waits until `table` holds `expected` reports or `timeout` passes; returns what it holds.
    pub async fn wait_for_reports(
        &self,
        table: &str,
        expected: usize,
        timeout: Duration,
    ) -> Vec<StoredReport> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let reports = self.reports(table).await;
            if reports.len() >= expected || tokio::time::Instant::now() >= deadline {
                return reports;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}
