//! SendMessageBatch with a result per entry: used by ingest's batch endpoint, the producer
//! example and DLQ redrive, so all three split, send and classify failures the same way.
//!
//! SQS answers a batch call in three ways: entries it took, entries it refused (with a code
//! and whether the sender was at fault), and a whole-call error. Each becomes one
//! [`EntryResult`] per message, in the order given.

use std::collections::HashMap;

use aws_sdk_sqs::error::{BuildError, ProvideErrorMetadata, SdkError};
use aws_sdk_sqs::types::{
    DeleteMessageBatchRequestEntry, MessageAttributeValue, SendMessageBatchRequestEntry,
};
use futures::stream::{self, StreamExt};

/// The most entries one SendMessageBatch call may carry.
pub const MAX_BATCH_ENTRIES: usize = 10;
/// The most payload bytes (bodies and attributes) one call may carry. AWS allows 1 MiB per
/// message and per batch since 2025; 256 KiB keeps older endpoints and emulators happy.
pub const MAX_BATCH_BYTES: usize = 256 * 1024;

/// One message to send: a body and string message attributes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct OutgoingMessage {
    pub body: String,
    pub attributes: HashMap<String, String>,
    /// The X-Ray trace header, sent as the `AWSTraceHeader` system attribute.
    pub trace_header: Option<String>,
}

impl OutgoingMessage {
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            attributes: HashMap::new(),
            trace_header: None,
        }
    }

    pub fn with_trace_header(mut self, header: Option<String>) -> Self {
        self.trace_header = header;
        self
    }

    pub fn with_attribute(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.attributes.insert(name.into(), value.into());
        self
    }

    /// What SQS counts against the batch size limit.
    pub fn payload_bytes(&self) -> usize {
        self.body.len()
            + self
                .attributes
                .iter()
                .map(|(k, v)| k.len() + v.len() + "String".len())
                .sum::<usize>()
    }
}

/// A message SendMessageBatch can carry: an [`OutgoingMessage`] (String attributes), or one
/// that keeps each attribute's data type (a DLQ redrive).
pub trait BatchEntry {
    /// What SQS counts against the batch size limit.
    fn payload_bytes(&self) -> usize;
    /// The message as the entry with this id.
    fn to_entry(&self, id: String) -> Result<SendMessageBatchRequestEntry, BuildError>;
}

impl BatchEntry for OutgoingMessage {
    fn payload_bytes(&self) -> usize {
        OutgoingMessage::payload_bytes(self)
    }

    fn to_entry(&self, id: String) -> Result<SendMessageBatchRequestEntry, BuildError> {
        // SQS refuses empty attribute values; they carry nothing anyway.
        let attributes: HashMap<String, MessageAttributeValue> = self
            .attributes
            .iter()
            .filter(|(_, v)| !v.is_empty())
            .filter_map(|(k, v)| string_attribute(v).map(|a| (k.clone(), a)))
            .collect();
        SendMessageBatchRequestEntry::builder()
            .id(id)
            .message_body(&self.body)
            .set_message_attributes((!attributes.is_empty()).then_some(attributes))
            .set_message_system_attributes(self.trace_header.as_deref().and_then(trace_attribute))
            .build()
    }
}

/// Why SQS did not take one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryFailure {
    /// The SQS error code (`InternalError`, `InvalidMessageContents`, ...), or `RequestFailed`
    /// when the call never got an answer.
    pub code: String,
    pub message: String,
    /// True when sending the same entry again may succeed (not the sender's fault).
    pub retryable: bool,
}

/// The fate of one message, in the order the messages were given.
pub type EntryResult = Result<String, EntryFailure>;

/// Splits messages (by their payload sizes) into consecutive groups of at most
/// [`MAX_BATCH_ENTRIES`] entries and `max_bytes` bytes. A message larger than `max_bytes` gets
/// a group of its own (SQS then refuses it, and says so).
pub fn group_ranges(sizes: &[usize], max_bytes: usize) -> Vec<std::ops::Range<usize>> {
    let mut groups = Vec::new();
    let mut start = 0;
    let mut bytes = 0;
    for (i, &size) in sizes.iter().enumerate() {
        let full = i - start == MAX_BATCH_ENTRIES || (i > start && bytes + size > max_bytes);
        if full {
            groups.push(start..i);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < sizes.len() {
        groups.push(start..sizes.len());
    }
    groups
}

/// The entries of one DeleteMessageBatch call (at most [`MAX_BATCH_ENTRIES`] receipts), each
/// with its position as the entry id.
pub fn delete_entries<'a>(
    receipts: impl IntoIterator<Item = &'a str>,
) -> Vec<DeleteMessageBatchRequestEntry> {
    receipts
        .into_iter()
        .enumerate()
        .filter_map(|(i, receipt)| {
            DeleteMessageBatchRequestEntry::builder()
                .id(i.to_string())
                .receipt_handle(receipt)
                .build()
                .ok()
        })
        .collect()
}

/// The trace header of the Lambda invocation in progress, when there is one. Read from the
/// invocation's own context ([`crate::invocation`]), not from `_X_AMZN_TRACE_ID`: with
/// concurrent invocations the runtime sets no such variable, and it would be shared.
pub fn current_trace_header() -> Option<String> {
    crate::invocation::trace_header()
}

/// `AWSTraceHeader` as SQS takes it. The SDK also sends the header as `X-Amzn-Trace-Id`,
/// which SQS records itself; setting the attribute makes the link explicit, so every SQS
/// implementation keeps it, and a test can read it back.
pub fn trace_attribute(
    header: &str,
) -> Option<
    HashMap<
        aws_sdk_sqs::types::MessageSystemAttributeNameForSends,
        aws_sdk_sqs::types::MessageSystemAttributeValue,
    >,
> {
    let value = aws_sdk_sqs::types::MessageSystemAttributeValue::builder()
        .data_type("String")
        .string_value(header)
        .build()
        .ok()?;
    Some(HashMap::from([(
        aws_sdk_sqs::types::MessageSystemAttributeNameForSends::AwsTraceHeader,
        value,
    )]))
}

/// Sends every message, in groups, with at most `concurrency` calls in flight. Returns one
/// result per message, in order: the SQS message id, or why it was not taken.
pub async fn send_all<M: BatchEntry>(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[M],
    concurrency: usize,
) -> Vec<EntryResult> {
    let sizes: Vec<usize> = messages.iter().map(BatchEntry::payload_bytes).collect();
    let groups = group_ranges(&sizes, MAX_BATCH_BYTES);
    let mut results: Vec<Option<EntryResult>> = vec![None; messages.len()];
    let sent = stream::iter(groups)
        .map(|range| async move {
            let out = send_group(client, queue_url, &messages[range.clone()]).await;
            (range, out)
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    for (range, out) in sent {
        for (slot, result) in results[range].iter_mut().zip(out) {
            *slot = Some(result);
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(missing_result())))
        .collect()
}

fn missing_result() -> EntryFailure {
    EntryFailure {
        code: "MissingResult".into(),
        message: "SQS reported neither success nor failure for this entry".into(),
        retryable: true,
    }
}

/// A message attribute of data type String.
pub fn string_attribute(value: &str) -> Option<MessageAttributeValue> {
    MessageAttributeValue::builder()
        .data_type("String")
        .string_value(value)
        .build()
        .ok()
}

/// One SendMessageBatch call of at most [`MAX_BATCH_ENTRIES`] messages. Entry ids are the
/// positions in `group`, so results map back without guesswork.
pub async fn send_group<M: BatchEntry>(
    client: &aws_sdk_sqs::Client,
    queue_url: &str,
    group: &[M],
) -> Vec<EntryResult> {
    let mut results: Vec<Option<EntryResult>> = vec![None; group.len()];
    let mut entries = Vec::with_capacity(group.len());
    for (i, message) in group.iter().enumerate() {
        match message.to_entry(i.to_string()) {
            Ok(entry) => entries.push(entry),
            Err(e) => {
                results[i] = Some(Err(EntryFailure {
                    code: "InvalidEntry".into(),
                    message: e.to_string(),
                    retryable: false,
                }))
            }
        }
    }
    if !entries.is_empty() {
        match client
            .send_message_batch()
            .queue_url(queue_url)
            .set_entries(Some(entries))
            .send()
            .await
        {
            Ok(out) => {
                for ok in out.successful {
                    if let Some(slot) = slot_of(&mut results, &ok.id) {
                        *slot = Some(Ok(ok.message_id));
                    }
                }
                for failed in out.failed {
                    if let Some(slot) = slot_of(&mut results, &failed.id) {
                        *slot = Some(Err(EntryFailure {
                            code: failed.code,
                            message: failed.message.unwrap_or_default(),
                            retryable: !failed.sender_fault,
                        }));
                    }
                }
            }
            Err(e) => {
                let failure = whole_call_failure(&e);
                for slot in results.iter_mut().filter(|s| s.is_none()) {
                    *slot = Some(Err(failure.clone()));
                }
            }
        }
    }
    results
        .into_iter()
        .map(|r| r.unwrap_or_else(|| Err(missing_result())))
        .collect()
}

fn slot_of<'a>(
    results: &'a mut [Option<EntryResult>],
    id: &str,
) -> Option<&'a mut Option<EntryResult>> {
    id.parse::<usize>().ok().and_then(|i| results.get_mut(i))
}

fn whole_call_failure<E, R>(error: &SdkError<E, R>) -> EntryFailure
where
    E: ProvideErrorMetadata + std::error::Error,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(service) => {
            let code = service.err().code().unwrap_or("ServiceError").to_owned();
            EntryFailure {
                retryable: is_retryable_code(&code),
                message: service
                    .err()
                    .message()
                    .unwrap_or("SQS refused the request")
                    .to_owned(),
                code,
            }
        }
        SdkError::TimeoutError(_) => EntryFailure {
            code: "Timeout".into(),
            message: "SQS did not answer in time".into(),
            retryable: true,
        },
        _ => EntryFailure {
            code: "RequestFailed".into(),
            message: "the request did not reach SQS or its answer was unreadable".into(),
            retryable: true,
        },
    }
}

/// Whole-call SQS errors worth another try: throttling and the service's own faults. A
/// missing queue, a denied call or a malformed request fails the same way every time.
pub fn is_retryable_code(code: &str) -> bool {
    const RETRYABLE: [&str; 6] = [
        "InternalError",
        "InternalFailure",
        "ServiceUnavailable",
        "RequestThrottled",
        "ThrottlingException",
        "KmsThrottled",
    ];
    RETRYABLE.contains(&code) || code.contains("Throttl")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn groups_by_ten_entries() {
        let sizes = vec![100; 25];
        let groups = group_ranges(&sizes, MAX_BATCH_BYTES);
        assert_eq!(groups, [0..10, 10..20, 20..25]);
    }

    #[test]
    fn groups_by_payload_bytes_before_ten_entries() {
        let sizes = [100_000, 100_000, 100_000, 10, 10];
        assert_eq!(group_ranges(&sizes, 256 * 1024), [0..2, 2..5]);
    }

    #[test]
    fn an_oversized_message_gets_a_group_of_its_own() {
        let sizes = [10, 300_000, 10];
        assert_eq!(group_ranges(&sizes, 256 * 1024), [0..1, 1..2, 2..3]);
    }

    #[test]
    fn no_messages_no_groups() {
        assert!(group_ranges(&[], MAX_BATCH_BYTES).is_empty());
    }

    #[test]
    fn counts_attributes_in_the_payload() {
        let m = OutgoingMessage::new("abc").with_attribute("k", "vv");
        assert_eq!(m.payload_bytes(), 3 + 1 + 2 + 6);
    }

    #[test]
    fn retries_throttling_and_service_faults_only() {
        assert!(is_retryable_code("InternalError"));
        assert!(is_retryable_code("RequestThrottled"));
        assert!(!is_retryable_code(
            "AWS.SimpleQueueService.NonExistentQueue"
        ));
        assert!(!is_retryable_code("AccessDenied"));
        assert!(!is_retryable_code("BatchRequestTooLong"));
    }
}
