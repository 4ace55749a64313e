//! The worker: drains SQS batches of score messages into DynamoDB.
//!
//! Under Lambda (`AWS_LAMBDA_RUNTIME_API` set) it is an SQS event handler returning partial
//! batch failures; anywhere else it is a long-polling consumer. Both drive the same
//! [`processor::Processor`]. The command line is [`Cli`] (clap).
//!
//! * [`record`]: one SQS record decoded and validated on its own;
//! * [`processor`]: a batch deduplicated, written, dead-lettered, its failures reported;
//! * ports with their adapters: [`store`] (`ScoreStore`, DynamoDB `BatchWriteItem`) and
//!   [`dlq`] (`DeadLetterQueue`, SQS);
//! * front ends: [`lambda`] (SQS event handler) and [`poller`] (long polling);
//! * tools: [`dlq_tools`] (`worker dlq ...`), [`producer`] (the NDJSON batch producer);
//!   [`settings`] reads the environment.

pub mod dlq;
pub mod dlq_tools;
pub mod health;
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
use clap::{Parser, Subcommand};
use lambda_runtime::{service_fn, LambdaEvent};
use platform::provision::{provision, ProvisionRequest};
use platform::settings::Env;
use tokio::sync::watch;

use crate::dlq::SqsDeadLetterQueue;
use crate::dlq_tools::DlqCommand;
use crate::health::Health;
use crate::poller::{Poller, PollerConfig};
use crate::processor::Processor;
use crate::settings::{ProvisionEnv, WorkerSettings};
use crate::store::DynamoScoreStore;

/// The worker's command line (`worker --help`; every subcommand answers `--help` too).
#[derive(Debug, Parser)]
#[command(
    name = "worker",
    about = "Drains credit-score messages from SQS into DynamoDB; provisioning and DLQ tools.",
    after_help = settings::environment_help()
)]
pub struct Cli {
    /// What to do; `run` when left out.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The process's command line. With no arguments, which is how Lambda and the containers
    /// start the worker, it is `run`, without building the command tree and its help texts:
    /// that work would count against every cold start.
    pub fn from_command_line() -> Self {
        if std::env::args_os().len() <= 1 {
            return Self { command: None };
        }
        Self::parse()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum Command {
    /// (default) process the queue: the Lambda SQS handler when AWS_LAMBDA_RUNTIME_API is
    /// set, otherwise a long-polling consumer of QUEUE_URL
    Run,
    /// create the queue, its DLQ (with redrive policy) and the table when missing, and print
    /// QUEUE_URL=, DLQ_URL= and TABLE_NAME= lines
    #[command(after_help = settings::provision_help())]
    Provision,
    /// operate the dead-letter queue: `worker dlq stats|peek|redrive`
    Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    },
    /// print the JSON Schema of the v1 queue message (schemas/score-message-v1.schema.json)
    Schema,
}

/// Runs a parsed command line.
pub async fn main_with(cli: Cli) -> anyhow::Result<()> {
    match cli.command.unwrap_or(Command::Run) {
        Command::Run => run().await,
        Command::Provision => provision_from_env().await,
        Command::Dlq { command } => dlq_tools::run(command, shutdown_signal()).await,
        Command::Schema => {
            print!("{}", contract::message::json_schema_text());
            Ok(())
        }
    }
}

/// Builds the processor once, with clients from one `SdkConfig`.
pub fn build_processor(settings: &WorkerSettings, sdk: &SdkConfig) -> Arc<Processor> {
    let store = DynamoScoreStore {
        client: platform::aws::dynamodb_client_single_attempt(
            sdk,
            settings.dynamodb_attempt_timeout,
        ),
        table_name: settings.table_name.clone(),
    };
    let dlq = SqsDeadLetterQueue::on_first_use(sdk, settings.dlq_url.clone());
    Arc::new(Processor::new(
        Arc::new(store),
        Arc::new(dlq),
        settings.processor.clone(),
    ))
}

async fn run() -> anyhow::Result<()> {
    let settings = WorkerSettings::from_source(&Env)?;
    let metrics = platform::metrics::MetricsSettings::from_source(&Env, "worker")?;
    platform::metrics::init(&metrics)?;
    let sdk = platform::aws::sdk_config().await;
    let processor = build_processor(&settings, &sdk);
    if platform::telemetry::running_in_lambda() {
        let margin = settings.deadline_margin;
        // AWS_LAMBDA_MAX_CONCURRENCY batches at once under Lambda Managed Instances, one at a
        // time under standard Lambda. They share the processor (clients, settings; no
        // per-batch state), and each batch's deadline and metrics are its own.
        lambda_runtime::run_concurrent(service_fn(move |event: LambdaEvent<_>| {
            let processor = processor.clone();
            async move { lambda::handle_sqs_event(&processor, margin, event).await }
        }))
        .await
        .map_err(|e| anyhow::anyhow!(e))
    } else {
        let config = PollerConfig::from_settings(settings.require_queue_url()?, &settings);
        let poller = Poller::new(platform::aws::sqs_client(&sdk), processor, config)
            .with_shutdown_grace(settings.shutdown_grace);
        // Batches here are many: their metrics go out on a timer, and the last
        // partial interval on the way out.
        platform::metrics::spawn_periodic_flush(metrics.flush_interval);
        let Some(port) = settings.health_port else {
            let result = poller.run(shutdown_signal()).await;
            platform::metrics::flush();
            return result;
        };
        let health = Health::new();
        let (stop_health, health_stopped) = watch::channel(false);
        let addr = std::net::SocketAddr::from(([0, 0, 0, 0], port));
        let server = health::serve(addr, health.clone(), health_stopped).await?;
        let result = poller.with_health(health).run(shutdown_signal()).await;
        platform::metrics::flush();
        // Probes keep their answers until the batches are done, then the process ends.
        let _ = stop_health.send(true);
        let _ = server.await;
        result
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
    let request: ProvisionRequest = platform::settings::parse::<ProvisionEnv>(&Env)?.into();
    let sdk = platform::aws::sdk_config().await;
    let done = provision(
        &platform::aws::sqs_client(&sdk),
        &platform::aws::dynamodb_client(&sdk),
        &request,
    )
    .await
    .context("provisioning the queue, DLQ and table")?;
    println!("QUEUE_URL={}", done.queue_url);
    println!("DLQ_URL={}", done.dlq_url);
    println!("TABLE_NAME={}", done.table_name);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_means_run() {
        let cli = Cli::try_parse_from(["worker"]).unwrap();
        assert_eq!(cli.command, None);
        let cli = Cli::try_parse_from(["worker", "dlq", "peek", "--limit", "3"]).unwrap();
        assert_eq!(
            cli.command,
            Some(Command::Dlq {
                command: DlqCommand::Peek { limit: 3 }
            })
        );
    }
}
