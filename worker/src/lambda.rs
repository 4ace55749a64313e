//! The Lambda SQS handler: partial batch responses built from the failures only.
//!
//! The event source mapping must have `ReportBatchItemFailures` on; SQS then redelivers just
//! the listed message ids, and the redrive policy moves repeat offenders to the DLQ.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::time::{Duration, SystemTime};

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent, SqsMessage};
use lambda_runtime::LambdaEvent;
use serde::de::value::MapAccessDeserializer;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use tokio::time::Instant;

use crate::processor::Processor;
use crate::record::{parse_sent_timestamp, AttributeValue, InboundMessage, MessageAttribute};

/// Lambda's SQS event, read straight into [`InboundMessage`]s. aws_lambda_events' `SqsEvent`
/// keeps every field of every record as owned strings and maps (receipt handle, MD5s, ARNs,
/// all system attributes); the worker reads four of them, and a batch may hold 10,000
/// records, so this type reads the same JSON and skips the rest. [`From<SqsEvent>`] accepts
/// the library's type too.
///
/// Each record is read on its own terms: a field of the wrong type (a number for a body, a
/// string for the attributes, a record that is no object) is read as absent and logged, so
/// one odd record never fails its batch's deserialisation (that would fail the invocation,
/// and SQS would redeliver its valid neighbours until the redrive policy dead-lettered them).
#[derive(Debug, Default, Deserialize)]
pub struct SqsRecords {
    #[serde(rename = "Records", default)]
    records: Vec<Lenient<LambdaSqsRecord>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LambdaSqsRecord {
    message_id: Text,
    body: Text,
    attributes: Lenient<SystemAttributes>,
    message_attributes: Lenient<HashMap<String, Lenient<LambdaAttribute>>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase", default)]
struct SystemAttributes {
    sent_timestamp: Text,
    approximate_receive_count: Text,
    #[serde(rename = "AWSTraceHeader")]
    aws_trace_header: Text,
}

/// A message attribute as Lambda hands it over: String and Number values as text, Binary
/// ones base64-encoded.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", default)]
struct LambdaAttribute {
    string_value: Text,
    binary_value: Text,
    data_type: Text,
    /// A binary value already decoded (from aws_lambda_events' `SqsEvent`).
    #[serde(skip)]
    decoded_binary: Option<Vec<u8>>,
}

impl LambdaAttribute {
    fn is_unreadable(&self) -> bool {
        self.string_value.is_unreadable()
            || self.binary_value.is_unreadable()
            || self.data_type.is_unreadable()
    }

    /// `None` when it holds no value the worker can carry on (SQS's reserved list types, a
    /// binary value that is not base64: left out with a warning, never the batch).
    fn into_attribute(self) -> Option<MessageAttribute> {
        let data_type = self.data_type.into_option();
        let binary = match &data_type {
            Some(data_type) => data_type.starts_with("Binary"),
            None => self.decoded_binary.is_some() || matches!(self.binary_value, Text::Given(_)),
        };
        let value = if binary {
            let bytes = match self.decoded_binary {
                Some(bytes) => bytes,
                None => decode_base64(self.binary_value.into_option()?)?,
            };
            AttributeValue::Binary(bytes)
        } else {
            AttributeValue::Text(self.string_value.into_option()?)
        };
        let data_type =
            data_type.unwrap_or_else(|| if binary { "Binary" } else { "String" }.to_owned());
        Some(MessageAttribute { data_type, value })
    }
}

fn decode_base64(text: String) -> Option<Vec<u8>> {
    match serde_json::from_value::<Base64Data>(serde_json::Value::String(text)) {
        Ok(data) => Some(data.0),
        Err(e) => {
            tracing::warn!(error = %e, "a binary message attribute is not base64; it is left out");
            None
        }
    }
}

/// A string field of a record: absent (or `null`), given, or of another type.
#[derive(Debug, Default)]
enum Text {
    #[default]
    Absent,
    Given(String),
    Unreadable,
}

impl Text {
    fn into_option(self) -> Option<String> {
        match self {
            Self::Given(text) => Some(text),
            Self::Absent | Self::Unreadable => None,
        }
    }

    fn is_unreadable(&self) -> bool {
        matches!(self, Self::Unreadable)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyShape(PhantomData::<Text>))
    }
}

/// An object-valued field (or a whole record): `null` reads as empty, as aws_lambda_events
/// reads these maps; another type as empty and unreadable.
#[derive(Debug, Default)]
struct Lenient<T> {
    value: T,
    unreadable: bool,
}

impl<T> From<T> for Lenient<T> {
    fn from(value: T) -> Self {
        Self {
            value,
            unreadable: false,
        }
    }
}

impl<'de, T: Deserialize<'de> + Default> Deserialize<'de> for Lenient<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(AnyShape(PhantomData::<Lenient<T>>))
    }
}

/// Takes any JSON value (skipping what it does not read) and makes a `V` of it.
struct AnyShape<V>(PhantomData<V>);

/// What a value of the wrong type becomes.
trait Shapes: Default {
    fn unreadable() -> Self;
    fn from_str(_: &str) -> Self {
        Self::unreadable()
    }
}

impl Shapes for Text {
    fn unreadable() -> Self {
        Self::Unreadable
    }
    fn from_str(text: &str) -> Self {
        Self::Given(text.to_owned())
    }
}

impl<T: Default> Shapes for Lenient<T> {
    fn unreadable() -> Self {
        Self {
            value: T::default(),
            unreadable: true,
        }
    }
}

/// How a map becomes a `V`: a [`Text`] is unreadable, a [`Lenient`] reads its type from it.
trait FromMap<'de>: Sized {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error>;
}

impl<'de> FromMap<'de> for Text {
    fn from_map<A: MapAccess<'de>>(mut map: A) -> Result<Self, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Self::Unreadable)
    }
}

impl<'de, T: Deserialize<'de> + Default> FromMap<'de> for Lenient<T> {
    fn from_map<A: MapAccess<'de>>(map: A) -> Result<Self, A::Error> {
        T::deserialize(MapAccessDeserializer::new(map)).map(Self::from)
    }
}

impl<'de, V: Shapes + FromMap<'de>> Visitor<'de> for AnyShape<V> {
    type Value = V;

    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<V, E> {
        Ok(V::from_str(v))
    }
    fn visit_unit<E: de::Error>(self) -> Result<V, E> {
        Ok(V::default())
    }
    fn visit_none<E: de::Error>(self) -> Result<V, E> {
        Ok(V::default())
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<V, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<V, E> {
        Ok(V::unreadable())
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<V, E> {
        Ok(V::unreadable())
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<V, E> {
        Ok(V::unreadable())
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<V, E> {
        Ok(V::unreadable())
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<V, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(V::unreadable())
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<V, A::Error> {
        V::from_map(map)
    }
}

impl LambdaSqsRecord {
    /// The fields read as absent because they had the wrong type.
    fn unreadable_fields(&self) -> Vec<&'static str> {
        let attributes = &self.attributes;
        let system = &attributes.value;
        let message_attributes = &self.message_attributes;
        [
            ("messageId", self.message_id.is_unreadable()),
            ("body", self.body.is_unreadable()),
            (
                "attributes",
                attributes.unreadable
                    || system.sent_timestamp.is_unreadable()
                    || system.approximate_receive_count.is_unreadable()
                    || system.aws_trace_header.is_unreadable(),
            ),
            (
                "messageAttributes",
                message_attributes.unreadable
                    || message_attributes
                        .value
                        .values()
                        .any(|a| a.unreadable || a.value.is_unreadable()),
            ),
        ]
        .into_iter()
        .filter_map(|(field, bad)| bad.then_some(field))
        .collect()
    }
}

impl SqsRecords {
    /// The records as the processor takes them; a record without an id cannot be reported
    /// back, so it is processed like any other and its fate logged. A record of the wrong
    /// shape is logged here, naming its fields; without a readable body it is poison.
    pub fn into_inbound(self) -> Vec<InboundMessage> {
        self.records
            .into_iter()
            .enumerate()
            .map(|(index, record)| {
                let whole_record_unreadable = record.unreadable;
                let record = record.value;
                let mut unreadable = record.unreadable_fields();
                if whole_record_unreadable {
                    unreadable.insert(0, "the record (not an object)");
                }
                let message_id = record.message_id.into_option().unwrap_or_default();
                if !unreadable.is_empty() {
                    tracing::warn!(
                        messageId = %message_id,
                        record = index,
                        fields = %unreadable.join(", "),
                        "SQS record fields of the wrong type were read as absent"
                    );
                }
                let system = record.attributes.value;
                InboundMessage {
                    message_id,
                    sent_at: system
                        .sent_timestamp
                        .into_option()
                        .as_deref()
                        .and_then(parse_sent_timestamp),
                    receive_count: system
                        .approximate_receive_count
                        .into_option()
                        .and_then(|v| v.parse().ok())
                        .unwrap_or(1),
                    trace_header: system.aws_trace_header.into_option(),
                    body: record.body.into_option(),
                    attributes: record
                        .message_attributes
                        .value
                        .into_iter()
                        .filter_map(|(k, v)| v.value.into_attribute().map(|a| (k, a)))
                        .collect(),
                }
            })
            .collect()
    }
}

impl From<SqsEvent> for SqsRecords {
    fn from(event: SqsEvent) -> Self {
        let records = event
            .records
            .into_iter()
            .map(|r| lean_record(r).into())
            .collect();
        Self { records }
    }
}

fn text(value: Option<String>) -> Text {
    value.map_or(Text::Absent, Text::Given)
}

fn lean_record(record: SqsMessage) -> LambdaSqsRecord {
    let attribute = |name: &str| text(record.attributes.get(name).cloned());
    let attributes = SystemAttributes {
        sent_timestamp: attribute("SentTimestamp"),
        approximate_receive_count: attribute("ApproximateReceiveCount"),
        aws_trace_header: attribute("AWSTraceHeader"),
    };
    LambdaSqsRecord {
        message_id: text(record.message_id),
        body: text(record.body),
        attributes: attributes.into(),
        message_attributes: record
            .message_attributes
            .into_iter()
            .map(|(k, v)| {
                let attribute = LambdaAttribute {
                    string_value: text(v.string_value),
                    binary_value: Text::Absent,
                    data_type: text(v.data_type),
                    decoded_binary: v.binary_value.map(|b| b.0),
                };
                (k, attribute.into())
            })
            .collect::<HashMap<_, _>>()
            .into(),
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

/// One batch: its own deadline (the invocation's, less `margin`) and its own metrics, written
/// when it ends and before the response is sent, since Lambda may freeze the process then.
/// Under Lambda Managed Instances several run at once; nothing of one reaches another's.
pub async fn handle_sqs_event(
    processor: &Processor,
    margin: Duration,
    event: LambdaEvent<SqsRecords>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let request_id = event.context.request_id.clone();
    let trace_id = event.context.xray_trace_id.clone();
    platform::invocation::scope(request_id, trace_id, handle_batch(processor, margin, event)).await
}

async fn handle_batch(
    processor: &Processor,
    margin: Duration,
    event: LambdaEvent<SqsRecords>,
) -> Result<SqsBatchResponse, lambda_runtime::Error> {
    let deadline = deadline_from(event.context.deadline(), margin);
    let messages = event.payload.into_inbound();
    let outcome = processor.process_batch(&messages, deadline).await;
    outcome.report();
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
    const MALFORMED: &str = include_str!("../../tests/tests/fixtures/sqs_malformed_records.json");

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
    fn records_with_fields_of_the_wrong_type_read_with_those_fields_absent() {
        let lean: SqsRecords = serde_json::from_str(MALFORMED).expect("every record shape reads");
        let unreadable: Vec<Vec<&str>> = lean
            .records
            .iter()
            .map(|r| r.value.unreadable_fields())
            .collect();
        assert_eq!(
            unreadable,
            [
                vec![],
                vec!["body"],
                vec!["attributes"],
                vec!["attributes"],
                vec!["messageAttributes"],
                vec![],
                vec!["messageId"],
            ]
        );
        assert!(lean.records[5].unreadable, "7 is no record");

        let inbound = lean.into_inbound();
        assert_eq!(inbound.len(), 7, "every record reaches the processor");
        assert!(inbound[0]
            .body
            .as_deref()
            .is_some_and(|b| b.contains("odd-neighbour-valid")));
        assert_eq!(
            inbound[0].attributes["correlationId"].as_str(),
            Some("corr-1")
        );
        assert_eq!(inbound[1].body, None, "a number is no body: poison");
        assert_eq!(inbound[2].sent_at, None);
        assert!(inbound[2].body.is_some(), "the report itself still reads");
        assert_eq!(inbound[3].receive_count, 1);
        assert!(inbound[4].attributes.is_empty());
        assert_eq!(
            (inbound[5].message_id.as_str(), &inbound[5].body),
            ("", &None)
        );
        assert_eq!(inbound[6].message_id, "");
    }

    #[test]
    fn an_event_that_is_not_an_sqs_event_still_fails_to_read() {
        // Nothing to salvage: the runtime reports the invocation as failed.
        for event in [
            r#"{"Records":5}"#,
            r#"[1]"#,
            r#"{"Records":[{"body":"a","body":"b"}]}"#,
        ] {
            assert!(
                serde_json::from_str::<SqsRecords>(event).is_err(),
                "{event}"
            );
        }
    }
}
