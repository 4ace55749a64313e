//! Reading the CloudWatch Embedded Metric Format lines a process writes on stdout
//! (`METRICS=emf`, see `platform::metrics`), for tests that chart or check what it recorded.
//!
//! An EMF document is one JSON object a line with an `_aws` member; the metric values are
//! top-level members: a counter a number, a distribution an array of values. Any other line
//! (a log line, text or JSON) is not a document and is skipped.

use std::io::{BufRead, BufReader, Read};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use platform::metrics::names;
use serde_json::Value;

/// What one EMF document says about the write path.
#[derive(Debug, Clone, PartialEq)]
pub struct EmfRecord {
    /// `_aws.Timestamp`: when the document was flushed, in Unix milliseconds.
    pub timestamp_ms: u64,
    /// The `Written` counter, when the document carries it.
    pub written: Option<f64>,
    /// The `EndToEndLag` values (ms): those observed, or quantiles of them (see
    /// `platform::metrics::summarise`).
    pub lag_ms: Vec<f64>,
}

/// The record in `line`, or `None` when the line is not an EMF document.
pub fn parse_line(line: &str) -> Option<EmfRecord> {
    let line = line.trim();
    // Cheap test first: most lines on a busy poller's stdout are not documents.
    if !line.starts_with('{') || !line.contains("\"_aws\"") {
        return None;
    }
    let document: Value = serde_json::from_str(line).ok()?;
    let timestamp_ms = document.get("_aws")?.get("Timestamp")?.as_u64()?;
    Some(EmfRecord {
        timestamp_ms,
        // A counter is a number; an array is summed in case it was written as values.
        written: document.get(names::WRITTEN).and_then(|v| match v {
            Value::Array(values) => Some(values.iter().filter_map(Value::as_f64).sum()),
            other => other.as_f64(),
        }),
        lag_ms: match document.get(names::END_TO_END_LAG) {
            Some(Value::Array(values)) => values.iter().filter_map(Value::as_f64).collect(),
            Some(single) => single.as_f64().into_iter().collect(),
            None => Vec::new(),
        },
    })
}

/// Reads `stream` to its end on a thread of its own (so the writer never blocks on a full
/// pipe), pushing every EMF document into `into`.
pub fn collect<R: Read + Send + 'static>(
    stream: R,
    into: Arc<Mutex<Vec<EmfRecord>>>,
) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for line in BufReader::new(stream).lines() {
            // A read error ends the stream as EOF does: the process is gone.
            let Ok(line) = line else { break };
            if let Some(record) = parse_line(&line) {
                into.lock()
                    .unwrap_or_else(|poisoned| poisoned.into_inner())
                    .push(record);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const WORKER_DOCUMENT: &str = r#"{"_aws":{"Timestamp":1764635400123,"CloudWatchMetrics":[{"Namespace":"CreditScorePipeline","Dimensions":[["Service"]],"Metrics":[{"Name":"EndToEndLag","Unit":"Milliseconds"},{"Name":"Written"}]}]},"Service":"worker","EndToEndLag":[12.0,40.5,97.25],"Written":250}"#;

    #[test]
    fn a_worker_document_gives_its_timestamp_written_count_and_lag_values() {
        let record = parse_line(WORKER_DOCUMENT).expect("an EMF document");
        assert_eq!(
            record,
            EmfRecord {
                timestamp_ms: 1_764_635_400_123,
                written: Some(250.0),
                lag_ms: vec![12.0, 40.5, 97.25],
            }
        );
    }

    #[test]
    fn a_single_lag_value_and_a_document_without_the_write_metrics_are_read() {
        let single = r#"{"_aws":{"Timestamp":5,"CloudWatchMetrics":[]},"EndToEndLag":7.5}"#;
        assert_eq!(parse_line(single).expect("a document").lag_ms, vec![7.5]);
        let other =
            r#"{"_aws":{"Timestamp":5,"CloudWatchMetrics":[]},"Reason":"x","DeadLettered":1}"#;
        let other = parse_line(other).expect("a document");
        assert_eq!((other.written, other.lag_ms.len()), (None, 0));
    }

    #[test]
    fn log_lines_and_broken_documents_are_not_records() {
        for line in [
            "",
            "2026-12-02T00:00:00Z WARN worker: slow batch",
            r#"{"level":"WARN","message":"slow batch","fields":{"Written":3}}"#,
            r#"{"_aws":{"CloudWatchMetrics":[]},"Written":3}"#,
            r#"{"_aws":{"Timestamp":1,"#,
        ] {
            assert_eq!(parse_line(line), None, "{line:?}");
        }
    }

    #[test]
    fn collect_keeps_only_the_documents_of_a_stream() {
        let stream = format!("starting\n{WORKER_DOCUMENT}\n{{\"level\":\"INFO\"}}\n");
        let records = Arc::new(Mutex::new(Vec::new()));
        collect(std::io::Cursor::new(stream.into_bytes()), records.clone())
            .join()
            .expect("the reader thread");
        let records = records.lock().expect("records");
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].written, Some(250.0));
    }
}
