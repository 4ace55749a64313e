//! A batch producer: sends an NDJSON file of v1 score messages straight to the queue.
//!
//! ```text
//! QUEUE_URL=... cargo run -p worker --example producer -- examples/scores.ndjson
//! QUEUE_URL=... cargo run -p worker --example producer -- --no-validate file.ndjson
//! ```
//!
//! Each line is validated with the worker's own parser first (a line that breaks the
//! contract would only end in the DLQ), the rest go out with SendMessageBatch in groups of
//! 10, and entries SQS did not take but may take later (throttling, its own faults) are sent
//! again with exponential backoff and jitter (backon). Every message carries one
//! correlationId per run, so the whole file can be followed through the logs and the DLQ.
//! Sending a line twice is harmless: its reportId maps to one table item.
//!
//! Exit status: 0 when every line was sent, 1 when some were invalid or could not be sent.

use std::process::ExitCode;

use platform::sqs_batch::OutgoingMessage;
use worker::producer::{read_ndjson, send_with_retries, NdjsonLine, RetryPolicy};

#[tokio::main]
async fn main() -> ExitCode {
    match run().await {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("producer: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> anyhow::Result<bool> {
    let mut validate = true;
    let mut path = None;
    for arg in std::env::args().skip(1) {
        match arg.as_str() {
            "--no-validate" => validate = false,
            _ if path.is_none() => path = Some(arg),
            other => anyhow::bail!("unexpected argument {other:?}"),
        }
    }
    let path = path.ok_or_else(|| {
        anyhow::anyhow!(
            "usage: producer [--no-validate] FILE.ndjson (QUEUE_URL in the environment)"
        )
    })?;
    let queue_url = std::env::var("QUEUE_URL")
        .map_err(|_| anyhow::anyhow!("environment variable QUEUE_URL is required"))?;
    let text =
        std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("reading {path}: {e}"))?;

    let correlation_id = format!("producer-{}", ulid::Ulid::new());
    let now = time::OffsetDateTime::now_utc();
    let mut lines = Vec::new();
    let mut messages: Vec<OutgoingMessage> = Vec::new();
    let mut invalid = 0;
    for line in read_ndjson(&text, validate, &correlation_id, now) {
        match line {
            NdjsonLine::Ready { line, message } => {
                lines.push(line);
                messages.push(message);
            }
            NdjsonLine::Invalid { line, reason } => {
                invalid += 1;
                eprintln!("{path}:{line}: not sent: {reason}");
            }
        }
    }

    let sdk = platform::aws::sdk_config().await;
    let sqs = platform::aws::sqs_client(&sdk);
    let results = send_with_retries(&sqs, &queue_url, &messages, &RetryPolicy::default()).await;
    let mut failed = 0;
    for (line, result) in lines.iter().zip(&results) {
        if let Err(f) = result {
            failed += 1;
            eprintln!(
                "{path}:{line}: SQS did not take it: {} ({})",
                f.code, f.message
            );
        }
    }
    println!(
        "sent {} of {} lines to the queue ({invalid} invalid, {failed} failed; correlationId {correlation_id})",
        results.len() - failed,
        lines.len() + invalid
    );
    Ok(invalid == 0 && failed == 0)
}
