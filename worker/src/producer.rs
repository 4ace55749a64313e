//! Sending messages straight to SQS as a batch producer does: SendMessageBatch in groups of
//! 10, then the entries SQS did not take (and may take later) sent again with exponential
//! backoff and jitter. The producer example (`examples/producer.rs`) and `worker dlq redrive`
//! both send this way.

use std::future::Future;
use std::time::Duration;

use backon::{BackoffBuilder, ExponentialBuilder};
use contract::message::CORRELATION_ID_ATTRIBUTE;
use contract::ScoreMessage;
use platform::sqs_batch::{send_all, BatchEntry, EntryResult, OutgoingMessage};
use time::OffsetDateTime;

/// How failed entries are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: usize,
    pub min_delay: Duration,
    pub max_delay: Duration,
    /// SendMessageBatch calls in flight at once.
    pub concurrency: usize,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            retries: 5,
            min_delay: Duration::from_millis(100),
            max_delay: Duration::from_secs(5),
            concurrency: 4,
        }
    }
}

/// Sends `messages` and retries the retryable failures; one result per message, in order.
pub async fn send_with_retries<M: BatchEntry + Clone>(
    sqs: &aws_sdk_sqs::Client,
    queue_url: &str,
    messages: &[M],
    policy: &RetryPolicy,
) -> Vec<EntryResult> {
    retry_failed_entries(messages, policy, |batch| async move {
        send_all(sqs, queue_url, &batch, policy.concurrency).await
    })
    .await
}

/// The retry loop on its own: `send` gets the messages still to send and answers one result
/// each. Only failures marked retryable are sent again; the rest are final.
pub async fn retry_failed_entries<M: Clone, F, Fut>(
    messages: &[M],
    policy: &RetryPolicy,
    mut send: F,
) -> Vec<EntryResult>
where
    F: FnMut(Vec<M>) -> Fut,
    Fut: Future<Output = Vec<EntryResult>>,
{
    let mut results = send(messages.to_vec()).await;
    let mut delays = ExponentialBuilder::default()
        .with_min_delay(policy.min_delay)
        .with_max_delay(policy.max_delay)
        .with_max_times(policy.retries)
        .with_jitter()
        .build();
    loop {
        let pending: Vec<usize> = results
            .iter()
            .enumerate()
            .filter(|(_, r)| matches!(r, Err(f) if f.retryable))
            .map(|(i, _)| i)
            .collect();
        if pending.is_empty() {
            break;
        }
        let Some(delay) = delays.next() else {
            break;
        };
        tracing::debug!(
            entries = pending.len(),
            delay_ms = delay.as_millis() as u64,
            "retrying entries SQS did not take"
        );
        tokio::time::sleep(delay).await;
        let retry: Vec<M> = pending.iter().map(|&i| messages[i].clone()).collect();
        let again = send(retry).await;
        for (i, result) in pending.into_iter().zip(again) {
            results[i] = result;
        }
    }
    results
}

/// One line of an NDJSON file, ready to send or refused before sending.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NdjsonLine {
    Ready {
        line: usize,
        message: OutgoingMessage,
    },
    /// The line breaks the v1 contract; sending it would only put it in the DLQ.
    Invalid { line: usize, reason: String },
}

/// Reads NDJSON (one v1 message per line; blank lines skipped), validating each line with
/// the worker's own parser unless `validate` is false. Every message carries
/// `correlation_id` as its correlationId attribute.
pub fn read_ndjson(
    text: &str,
    validate: bool,
    correlation_id: &str,
    now: OffsetDateTime,
) -> Vec<NdjsonLine> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let line = i + 1;
            if validate {
                if let Err(e) = ScoreMessage::parse(l, now) {
                    return NdjsonLine::Invalid {
                        line,
                        reason: format!("{} ({e})", e.reason_code()),
                    };
                }
            }
            NdjsonLine::Ready {
                line,
                message: OutgoingMessage::new(l.trim())
                    .with_attribute(CORRELATION_ID_ATTRIBUTE, correlation_id),
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use platform::sqs_batch::EntryFailure;
    use time::macros::datetime;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retries: 3,
            min_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
            concurrency: 1,
        }
    }

    fn failure(retryable: bool) -> EntryFailure {
        EntryFailure {
            code: if retryable {
                "InternalError"
            } else {
                "InvalidMessageContents"
            }
            .into(),
            message: String::new(),
            retryable,
        }
    }

    #[tokio::test]
    async fn resends_only_retryable_failures_until_they_pass() {
        let messages: Vec<OutgoingMessage> = ["a", "b", "c"].map(OutgoingMessage::new).to_vec();
        let calls = AtomicUsize::new(0);
        let results = retry_failed_entries(&messages, &policy(), |batch| {
            let call = calls.fetch_add(1, Ordering::SeqCst);
            async move {
                batch
                    .iter()
                    .map(|m| match (call, m.body.as_str()) {
                        (0, "b") => Err(failure(true)),
                        (0, "c") => Err(failure(false)),
                        (1, "b") => Err(failure(true)),
                        (_, body) => Ok(format!("id-{body}")),
                    })
                    .collect()
            }
        })
        .await;
        assert_eq!(results[0], Ok("id-a".into()));
        assert_eq!(results[1], Ok("id-b".into()));
        assert_eq!(results[2], Err(failure(false)));
        assert_eq!(calls.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_policy_s_retries() {
        let messages = vec![OutgoingMessage::new("x")];
        let calls = AtomicUsize::new(0);
        let results = retry_failed_entries(&messages, &policy(), |batch| {
            calls.fetch_add(1, Ordering::SeqCst);
            async move { batch.iter().map(|_| Err(failure(true))).collect() }
        })
        .await;
        assert!(results[0].is_err());
        assert_eq!(calls.load(Ordering::SeqCst), 4, "one try and three retries");
    }

    #[test]
    fn reads_ndjson_validating_each_line_and_naming_bad_ones() {
        let text = concat!(
            r#"{"version":1,"reportId":"r1","userId":"u1","bureau":"equifax","score":700,"reportedAt":"2026-11-28T09:00:00Z","source":"batch:t"}"#,
            "\n\n",
            r#"{"version":2}"#,
            "\n",
            "not json\n"
        );
        let lines = read_ndjson(text, true, "c-1", datetime!(2026-11-28 10:00 UTC));
        assert_eq!(lines.len(), 3);
        match &lines[0] {
            NdjsonLine::Ready { line, message } => {
                assert_eq!(*line, 1);
                assert_eq!(message.attributes[CORRELATION_ID_ATTRIBUTE], "c-1");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(&lines[1], NdjsonLine::Invalid { line: 3, reason } if reason.starts_with("unknown_version"))
        );
        assert!(
            matches!(&lines[2], NdjsonLine::Invalid { line: 4, reason } if reason.starts_with("invalid_json"))
        );
        let unvalidated = read_ndjson(text, false, "c-1", datetime!(2026-11-28 10:00 UTC));
        assert!(unvalidated
            .iter()
            .all(|l| matches!(l, NdjsonLine::Ready { .. })));
    }
}
