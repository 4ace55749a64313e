//! The Lambda SQS handler: partial batch responses built from the failures only.
//!
//! The event source mapping must have `ReportBatchItemFailures` on; SQS then redelivers just
//! the listed message ids, and the redrive policy moves repeat offenders to the DLQ.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde::Deserialize;
use tokio::time::Instant;

use crate::processor::Processor;
use crate::record::{parse_sent_timestamp, AttributeValue, InboundMessage, MessageAttribute};

/// Lambda's SQS event, read straight into [`InboundMessage`]s. aws_lambda_events' `SqsEvent`
/// keeps every field of every record as owned strings and maps (receipt handle, MD5s, ARNs,
/// all system attributes); the worker reads four of them, and a batch may hold 10,000
/// records, so this type reads the same JSON and skips the rest. [`From<SqsEvent>`] accepts
/// the library's type too.
#[derive(Debug, Default, Deserialize)]
pub struct SqsRecords {
    #[serde(rename = "Records", default)]
    records: Vec<LambdaSqsRecord>,
}

// A missing `Option` field reads as `None` without `#[serde(default)]`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaSqsRecord {
    message_id: Option<String>,
    body: Option<String>,
    #[serde(default, deserialize_with = "null_as_default")]
    attributes: SystemAttributes,
    #[serde(default, deserialize_with = "null_as_default")]
    message_attributes: HashMap<String, LambdaAttribute>,
}

/// `null` reads as empty, as aws_lambda_events reads these maps: one odd record must not fail
/// the whole batch's deserialisation.
fn null_as_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SystemAttributes {
    sent_timestamp: Option<String>,
    approximate_receive_count: Option<String>,
    #[serde(rename = "AWSTraceHeader")]
    aws_trace_header: Option<String>,
}

/// A message attribute as Lambda hands it over: String and Number values as text, Binary
/// ones base64-encoded.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LambdaAttribute {
    string_value: Option<String>,
    #[serde(default, deserialize_with = "lenient_base64")]
    binary_value: Option<Vec<u8>>,
    data_type: Option<String>,
}

impl LambdaAttribute {
    /// `None` when it holds no value the worker can carry on (SQS's reserved list types).
    fn into_attribute(self) -> Option<MessageAttribute> {
        let binary = match &self.data_type {
            Some(data_type) => data_type.starts_with("Binary"),
            None => self.binary_value.is_some(),
        };
        let value = if binary {
            AttributeValue::Binary(self.binary_value?)
        } else {
            AttributeValue::Text(self.string_value?)
        };
        let data_type = self
            .data_type
            .unwrap_or_else(|| if binary { "Binary" } else { "String" }.to_owned());
        Some(MessageAttribute { data_type, value })
    }
}

/// A binary value that is not base64 is left out of its record (with a warning) rather than
/// failing the whole batch's deserialisation.
fn lenient_base64<'de, D>(deserializer: D) -> Result<Option<Vec<u8>>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let Some(text) = Option::<String>::deserialize(deserializer)? else {
        return Ok(None);
    };
    match serde_json::from_value::<Base64Data>(serde_json::Value::String(text)) {
        Ok(data) => Ok(Some(data.0)),
        Err(e) => {
            tracing::warn!(error = %e, "a binary message attribute is not base64; it is left out");
            Ok(None)
        }
    }
}

impl SqsRecords {
    /// The records as the processor takes them; a record without an id cannot be reported
    /// back, so it is processed like any other and its fate logged.
    pub fn into_inbound(self) -> Vec<InboundMessage> {
        self.records
            .into_iter()
            .map(|record| InboundMessage {
                message_id: record.message_id.unwrap_or_default(),
                sent_at: record
                    .attributes
                    .sent_timestamp
                    .as_deref()
                    .and_then(parse_sent_timestamp),
                receive_count: record
                    .attributes
                    .approximate_receive_count
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(1),
                trace_header: record.attributes.aws_trace_header,
                body: record.body,
                attributes: record
                    .message_attributes
                    .into_iter()
                    .filter_map(|(k, v)| v.into_attribute().map(|a| (k, a)))
                    .collect(),
            })
            .collect()
    }
}

impl From<SqsEvent> for SqsRecords {
    fn from(event: SqsEvent) -> Self {
        let records = event.records.into_iter().map(lean_record).collect();
        Self { records }
    }
}

fn lean_record(record: SqsMessage) -> LambdaSqsRecord {
    LambdaSqsRecord {
        message_id: record.message_id,
        body: record.body,
        attributes: SystemAttributes {
            sent_timestamp: record.attributes.get("SentTimestamp").cloned(),
            approximate_receive_count: record.attributes.get("ApproximateReceiveCount").cloned(),
            aws_trace_header: record.attributes.get("AWSTraceHeader").cloned(),
        },
        message_attributes: record
            .message_attributes
            .into_iter()
            .map(|(k, v)| {
                let attribute = LambdaAttribute {
                    string_value: v.string_value,
                    binary_value: v.binary_value.map(|b| b.0),
                    data_type: v.data_type,
                };
                (k, attribute)
            })
            .collect(),
    }
}

/// The time left in this invocation, less a margin for answering.
pub fn deadline_from(lambda_deadline: SystemTime, margin: Duration) -> Instant {
    let left = lambda_deadline
        .duration_since(SystemTime::now())
        .unwrap_or_default()
        .saturating_sub(margin);
    Instant::now() + left
}

pub async fn handle_sqs_event(
    processor: &Processor,
    margin: Duration,
    event: LambdaEvent<SqsRecords>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = deadline_from(event.context.deadline(), margin);
    let messages = event.payload.into_inbound();
    let outcome = processor.process_batch(&messages, deadline).await;
    outcome.report();
    // Lambda may freeze the process once the response is sent: the metrics go out now.
    shared::metrics::flush();
    let mut response = SqsBatchResponse::default();
    response.batch_item_failures = outcome
        .failed
        .into_iter()
        .filter(|id| !id.is_empty())
        .map(|id| {
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            failure
        })
        .collect();
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURE: &str = include_str!("../../tests/tests/fixtures/sqs_mixed_batch.json");

    #[test]
    fn reads_lambdas_sqs_event_exactly_as_aws_lambda_events_does() {
        let lean: SqsRecords = serde_json::from_str(FIXTURE).expect("the fixture is an SQS event");
        let full: SqsEvent = serde_json::from_str(FIXTURE).expect("the fixture is an SQS event");
        let ours = lean.into_inbound();
        assert_eq!(ours.len(), 5);
        assert_eq!(ours, SqsRecords::from(full).into_inbound());

        let first = &ours[0];
        assert_eq!(first.message_id, "059f36b4-87a3-44ab-83d2-661975830a7d");
        assert_eq!(first.receive_count, 1);
        assert_eq!(
            first.sent_at.map(|t| t.unix_timestamp()),
            Some(1_795_860_001)
        );
        assert_eq!(
            first
                .attributes
                .get("correlationId")
                .and_then(MessageAttribute::as_str),
            Some("corr-1")
        );
        assert!(first
            .body
            .as_deref()
            .is_some_and(|b| b.contains("fixture-valid-1")));
    }

    #[test]
    fn keeps_number_and_binary_attributes_with_their_data_types() {
        let event = r#"{"Records":[{"messageId":"m-1","body":"{}","messageAttributes":{
            "tenant":{"stringValue":"acme","dataType":"String"},
            "attempt":{"stringValue":"3","dataType":"Number.int"},
            "blob":{"binaryValue":"AAH/","dataType":"Binary"},
            "broken":{"binaryValue":"not base64!","dataType":"Binary"},
            "list":{"stringListValues":["a"],"dataType":"String"}}}]}"#;
        for records in [
            serde_json::from_str::<SqsRecords>(event).expect("reads"),
            SqsRecords::from(
                serde_json::from_str::<SqsEvent>(&event.replace("not base64!", "AA=="))
                    .expect("reads"),
            ),
        ] {
            let inbound = records.into_inbound();
            let attributes = &inbound[0].attributes;
            assert_eq!(attributes["tenant"], MessageAttribute::string("acme"));
            assert_eq!(attributes["attempt"].data_type, "Number.int");
            assert_eq!(attributes["attempt"].as_str(), Some("3"));
            assert_eq!(
                attributes["blob"].value,
                AttributeValue::Binary(vec![0, 1, 255])
            );
            assert!(!attributes.contains_key("list"), "{attributes:?}");
        }
        let lean: SqsRecords = serde_json::from_str(event).expect("reads");
        assert!(
            !lean.into_inbound()[0].attributes.contains_key("broken"),
            "a value that is not base64 is left out, not the batch"
        );
    }

    #[test]
    fn a_record_missing_optional_fields_still_reads() {
        let lean: SqsRecords = serde_json::from_str(
            r#"{"Records":[{"messageId":"m-1"},{"messageId":"m-2","attributes":null,"messageAttributes":null}]}"#,
        )
        .expect("reads");
        let inbound = lean.into_inbound();
        assert_eq!(inbound.len(), 2);
        assert!(inbound[1].attributes.is_empty());
        assert_eq!(inbound[0].receive_count, 1);
        assert_eq!(inbound[0].body, None);
        assert_eq!(inbound[0].sent_at, None);
    }
}
