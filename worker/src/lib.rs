//! The worker: drains SQS batches of score messages into DynamoDB.
//!
//! Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) it is an SQS event handler returning partial
//! batch failures; anywhere else it is a long-polling consumer. Both drive the same
//! [`processor::Processor`].

pub mod dlq;
pub mod dlq_tools;
pub mod lambda;
pub mod poller;
pub mod processor;
pub mod producer;
pub mod record;
pub mod settings;
pub mod store;

use std::sync::Arc;

use anyhow::Context;
use aws_config::SdkConfig;
use lambda_runtime::{service_fn, LambdaEvent};
use shared::provision::{provision, ProvisionRequest};
use shared::settings::{optional, parsed, Env};
use tokio::sync::watch;

use crate::dlq::SqsDeadLetterQueue;
use crate::poller::{Poller, PollerConfig};
use crate::processor::Processor;
use crate::settings::WorkerSettings;
use crate::store::DynamoScoreStore;

pub const USAGE: &str = "\
usage: worker [COMMAND]

Commands:
  run         (default) process the queue: the Lambda SQS handler when AWS_LAMBDA_RUNTIME_API
              is set, otherwise a long-polling consumer of QUEUE_URL
  provision   create the queue, its DLQ (with redrive policy) and the table when missing, and
              print QUEUE_URL=, DLQ_URL= and TABLE_NAME= lines (QUEUE_NAME, DLQ_NAME,
              TABLE_NAME, MAX_RECEIVE_COUNT, VISIBILITY_TIMEOUT_SECONDS override the defaults)
  dlq         operate the dead-letter queue: `worker dlq stats|peek|redrive` (`worker dlq help`)
  schema      print the JSON Schema of the v1 queue message (schemas/score-message-v1.schema.json)
  help        print this text

Environment: DLQ_URL and TABLE_NAME (required), QUEUE_URL (poller), WRITE_CONCURRENCY,
RETRY_BASE_DELAY_MS, RETRY_MAX_DELAY_MS, DEADLINE_MARGIN_MS, DYNAMODB_ATTEMPT_TIMEOUT_MS,
POLLER_RECEIVE_LOOPS, FAILURE_VISIBILITY_BASE_SECONDS, plus the standard AWS variables.";

/// Dispatches the command line.
pub async fn main_with_args(args: &[String]) -> anyhow::Result<()> {
    match args.first().map(String::as_str) {
        None | Some("run") => run().await,
        Some("provision") => provision_from_env().await,
        Some("dlq") => dlq_tools::run(&args[1..], shutdown_signal()).await,
        Some("schema") => {
            print!("{}", shared::message::json_schema_text());
            Ok(())
        }
        Some("help" | "--help" | "-h") => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}\n\n{USAGE}"),
    }
}

/// Builds the processor once, with clients from one `SdkConfig`.
pub fn build_processor(settings: &WorkerSettings, sdk: &SdkConfig) -> Arc<Processor> {
    let store = DynamoScoreStore {
        client: shared::aws::dynamodb_client_single_attempt(sdk, settings.dynamodb_attempt_timeout),
        table_name: settings.table_name.clone(),
    };
    let dlq = SqsDeadLetterQueue {
        client: shared::aws::sqs_client(sdk),
        queue_url: settings.dlq_url.clone(),
    };
    Arc::new(Processor::new(
        Arc::new(store),
        Arc::new(dlq),
        settings.processor.clone(),
    ))
}

async fn run() -> anyhow::Result<()> {
    let settings = WorkerSettings::from_source(&Env)?;
    let sdk = shared::aws::sdk_config().await;
    let processor = build_processor(&settings, &sdk);
    if shared::telemetry::running_in_lambda() {
        let margin = settings.deadline_margin;
        lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| {
            let processor = processor.clone();
            async move { lambda::handle_sqs_event(&processor, margin, event).await }
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e))
    } else {
        let config = PollerConfig {
            queue_url: settings.require_queue_url()?.to_owned(),
            receive_loops: settings.receive_loops,
            wait_time_seconds: 20,
            max_messages: 10,
            deadline_margin: settings.deadline_margin,
            failure_visibility_base: settings.failure_visibility_base,
        };
        let poller = Poller::new(shared::aws::sqs_client(&sdk), processor, config);
        poller.run(shutdown_signal()).await
    }
}

/// Turns true on SIGTERM or Ctrl-C.
pub fn shutdown_signal() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    tokio::spawn(async move {
        wait_for_signal().await;
        tracing::info!("shutdown requested; finishing the batches in hand");
        let _ = tx.send(true);
    });
    rx
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

async fn provision_from_env() -> anyhow::Result<()> {
    let request = ProvisionRequest {
        queue_name: optional(&Env, "QUEUE_NAME", "credit-scores"),
        dlq_name: optional(&Env, "DLQ_NAME", "credit-scores-dlq"),
        table_name: optional(&Env, "TABLE_NAME", "credit-scores"),
        max_receive_count: parsed(&Env, "MAX_RECEIVE_COUNT", 5u32)?,
        visibility_timeout_seconds: parsed(&Env, "VISIBILITY_TIMEOUT_SECONDS", 60u32)?,
    };
    let sdk = shared::aws::sdk_config().await;
    let done = provision(
        &shared::aws::sqs_client(&sdk),
        &shared::aws::dynamodb_client(&sdk),
        &request,
    )
    .await
    .context("provisioning the queue, DLQ and table")?;
    println!("QUEUE_URL={}", done.queue_url);
    println!("DLQ_URL={}", done.dlq_url);
    println!("TABLE_NAME={}", done.table_name);
    Ok(())
}
