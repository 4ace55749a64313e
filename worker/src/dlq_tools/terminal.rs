//! `worker dlq ...` run from a shell: progress on stderr (redrawn in place on a terminal),
//! results on stdout.

use time::OffsetDateTime;
use tokio::sync::watch;

use super::command::DlqCommand;
use super::redrive::RedriveOptions;
use super::report::{progress_line, RedriveReport};
use super::sqs::DlqTools;
use crate::producer::RetryPolicy;

/// `worker dlq ...`: reads DLQ_URL (and QUEUE_URL for redrive) from the environment.
pub async fn run(command: DlqCommand, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    use platform::settings::{required, Env, Source};
    use std::io::{IsTerminal, Write};

    let dlq_url = required(&Env, "DLQ_URL")?;
    let sdk = platform::aws::sdk_config().await;
    let tools = DlqTools::new(
        platform::aws::sqs_client(&sdk),
        dlq_url,
        Env.get("QUEUE_URL"),
    );
    let now = OffsetDateTime::now_utc();
    let tty = std::io::stderr().is_terminal();
    match command {
        DlqCommand::Stats { limit } => {
            // Reading a deep DLQ takes seconds: show how far it got, on a terminal only.
            let mut progress = |read: usize, depth: u64| {
                if tty {
                    let _ = write!(
                        std::io::stderr(),
                        "\rscanning the DLQ: {read} read of ~{depth}"
                    );
                }
            };
            let stats = tools.stats_with_progress(limit, &mut progress).await;
            if tty {
                eprintln!();
            }
            print!("{}", stats?.render(now));
        }
        DlqCommand::Peek { limit } => {
            for m in tools.peek(limit).await? {
                println!("{}", m.to_json_line());
            }
        }
        DlqCommand::Redrive {
            dry_run,
            limit,
            include_poison,
        } => {
            if !dry_run {
                required(&Env, "QUEUE_URL")?;
            }
            let mut progress = |r: &RedriveReport| {
                let line = progress_line(r.redriven, r.budget, r.failed);
                let mut err = std::io::stderr();
                // A terminal gets one line redrawn in place; a log gets one line per batch.
                let _ = if tty {
                    write!(err, "\r{line}")
                } else {
                    writeln!(err, "{line}")
                };
            };
            let options = RedriveOptions {
                dry_run,
                limit,
                include_poison,
            };
            let report = tools
                .redrive(&options, shutdown, &RetryPolicy::default(), &mut progress)
                .await;
            if tty {
                eprintln!();
            }
            print!(
                "{}",
                report?.render(tools.queue_url.as_deref().unwrap_or_default(), dry_run)
            );
        }
    }
    Ok(())
}
