//! The clap commands of `worker dlq`.

use clap::Subcommand;
use contract::message::PoisonReason;

/// `worker dlq ...` (DLQ_URL required; redrive also needs QUEUE_URL).
#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
pub enum DlqCommand {
    /// depth, counts by failureReason, oldest message age (reads the messages and releases
    /// them; progress on stderr when it is a terminal)
    Stats {
        /// read up to N messages
        #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = positive)]
        limit: usize,
    },
    /// up to N sample messages as JSON lines with their reasons; nothing is deleted
    Peek {
        /// how many messages to show
        #[arg(long, value_name = "N", default_value_t = 10, value_parser = positive)]
        limit: usize,
    },
    /// send messages back to QUEUE_URL, each deleted from the DLQ only after the send
    /// succeeded; progress on stderr, summary on stdout; safe to interrupt (Ctrl-C) and run
    /// again
    #[command(after_help = redrive_help())]
    Redrive {
        /// count what would be redriven and skipped, by reason; move nothing
        #[arg(long)]
        dry_run: bool,
        /// redrive at most N messages
        #[arg(long, value_name = "N", value_parser = positive)]
        limit: Option<usize>,
        /// send poison back too (say, after widening a rule that rejected it)
        #[arg(long)]
        include_poison: bool,
    },
}

/// What `worker dlq redrive --help` adds below the options: which reasons count as poison.
fn redrive_help() -> String {
    let reasons: Vec<&str> = PoisonReason::ALL.map(PoisonReason::code).to_vec();
    format!(
        "A run takes at most the messages in the DLQ when it starts (or --limit) and never one \
         it already sent back. Poison (failureReason {}) is skipped and left in the DLQ unless \
         --include-poison is given.",
        reasons.join(", ")
    )
}

fn positive(value: &str) -> Result<usize, String> {
    match value.parse::<usize>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!("must be a whole number above 0, not {value:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, clap::Parser)]
    struct Dlq {
        #[command(subcommand)]
        command: DlqCommand,
    }

    fn parse(words: &[&str]) -> Result<DlqCommand, clap::Error> {
        use clap::Parser;
        Dlq::try_parse_from(std::iter::once("dlq").chain(words.iter().copied())).map(|d| d.command)
    }

    #[test]
    fn parses_each_command_with_its_options() {
        assert_eq!(
            parse(&["stats"]).unwrap(),
            DlqCommand::Stats { limit: 10_000 }
        );
        assert_eq!(
            parse(&["peek", "--limit", "3"]).unwrap(),
            DlqCommand::Peek { limit: 3 }
        );
        assert_eq!(
            parse(&["redrive", "--dry-run", "--limit=25"]).unwrap(),
            DlqCommand::Redrive {
                dry_run: true,
                limit: Some(25),
                include_poison: false,
            }
        );
        assert_eq!(
            parse(&["redrive", "--include-poison"]).unwrap(),
            DlqCommand::Redrive {
                dry_run: false,
                limit: None,
                include_poison: true,
            }
        );
    }

    #[test]
    fn rejects_bad_options_naming_them() {
        let message = |words: &[&str]| parse(words).unwrap_err().to_string();
        assert!(message(&["peek", "--limit", "0"]).contains("--limit"));
        assert!(parse(&["peek", "--limit"]).is_err());
        assert!(message(&["peek", "--dry-run"]).contains("--dry-run"));
        assert!(message(&["purge"]).contains("purge"));
        assert!(parse(&[]).is_err());
    }
}
