//! What the DLQ commands print: the stats, the redrive summary, its progress bar.

use std::collections::BTreeMap;

use time::OffsetDateTime;

use super::message::DlqMessage;

/// What `dlq stats` reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DlqStats {
    /// SQS's approximate counts before the scan.
    pub visible: u64,
    pub in_flight: u64,
    /// Messages actually read.
    pub scanned: usize,
    pub by_reason: BTreeMap<String, usize>,
    pub oldest_sent_at: Option<OffsetDateTime>,
}

impl DlqStats {
    pub fn from_messages(visible: u64, in_flight: u64, messages: &[DlqMessage]) -> Self {
        let mut by_reason = BTreeMap::new();
        for m in messages {
            *by_reason.entry(m.reason().to_owned()).or_insert(0) += 1;
        }
        Self {
            visible,
            in_flight,
            scanned: messages.len(),
            by_reason,
            oldest_sent_at: messages.iter().filter_map(|m| m.sent_at).min(),
        }
    }

    pub fn render(&self, now: OffsetDateTime) -> String {
        let mut out = format!(
            "depth: {} visible, {} in flight (approximate)\nscanned: {}\n",
            self.visible, self.in_flight, self.scanned
        );
        if self.by_reason.is_empty() {
            out.push_str("by reason: (none)\n");
        } else {
            out.push_str("by reason:\n");
            let width = self.by_reason.keys().map(String::len).max().unwrap_or(0);
            for (reason, count) in &self.by_reason {
                out.push_str(&format!("  {reason:<width$}  {count}\n"));
            }
        }
        match self.oldest_sent_at {
            Some(t) => out.push_str(&format!(
                "oldest: {} ago ({})\n",
                format_age(now - t),
                contract::rfc3339::format_utc_millis(t)
            )),
            None => out.push_str("oldest: -\n"),
        }
        out
    }
}

/// `2d 3h`, `3h 12m`, `4m 5s`, `9s`: the two largest units.
pub fn format_age(age: time::Duration) -> String {
    let s = age.whole_seconds().max(0);
    let (d, h, m, sec) = (s / 86_400, s % 86_400 / 3600, s % 3600 / 60, s % 60);
    if d > 0 {
        format!("{d}d {h}h")
    } else if h > 0 {
        format!("{h}h {m}m")
    } else if m > 0 {
        format!("{m}m {sec}s")
    } else {
        format!("{sec}s")
    }
}

/// How far a redrive got.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RedriveReport {
    /// This run's id, carried by every message it sent (`redriveRunId`).
    pub run_id: String,
    /// How many messages the run would take at most: the DLQ's depth at the start, or the
    /// limit when smaller.
    pub budget: usize,
    /// Sent to QUEUE_URL and deleted from the DLQ.
    pub redriven: usize,
    /// What was redriven, by reason.
    pub redriven_by_reason: BTreeMap<String, usize>,
    /// Sent, but the delete failed: they stay in the DLQ and a rerun sends them again
    /// (harmless: same reportId, same item).
    pub sent_not_deleted: usize,
    /// Not sent; left in the DLQ.
    pub failed: usize,
    /// Poison left in the DLQ (no `--include-poison`), by reason.
    pub skipped_by_reason: BTreeMap<String, usize>,
    /// Messages this run sent that were dead-lettered again while it ran: left in the DLQ.
    pub came_back: usize,
    /// For --dry-run: what would be redriven, by reason.
    pub would_redrive: BTreeMap<String, usize>,
    /// True when a shutdown signal stopped the run early.
    pub interrupted: bool,
}

impl RedriveReport {
    pub fn skipped(&self) -> usize {
        self.skipped_by_reason.values().sum()
    }

    /// The summary `worker dlq redrive` prints on stdout.
    pub fn render(&self, queue_url: &str, dry_run: bool) -> String {
        let mut out = String::new();
        let by_reason = |out: &mut String, counts: &BTreeMap<String, usize>| {
            for (reason, n) in counts {
                out.push_str(&format!("  {reason}  {n}\n"));
            }
        };
        if dry_run {
            let count: usize = self.would_redrive.values().sum();
            out.push_str(&format!("dry run: would redrive {count} messages\n"));
            by_reason(&mut out, &self.would_redrive);
        } else {
            out.push_str(&format!(
                "redriven {} messages to {queue_url}{}\n",
                self.redriven,
                if self.interrupted {
                    " (interrupted; run again to continue)"
                } else {
                    ""
                }
            ));
            by_reason(&mut out, &self.redriven_by_reason);
        }
        if self.skipped() > 0 {
            out.push_str(&format!(
                "{} {} (poison, left in the DLQ; --include-poison sends them too)\n",
                if dry_run { "would skip" } else { "skipped" },
                self.skipped()
            ));
            by_reason(&mut out, &self.skipped_by_reason);
        }
        if self.came_back > 0 {
            out.push_str(&format!(
                "left {} that this run sent and the worker dead-lettered again (see `worker dlq stats`)\n",
                self.came_back
            ));
        }
        if self.sent_not_deleted > 0 || self.failed > 0 {
            out.push_str(&format!(
                "left {} sent but not deleted (a rerun sends them again; same reportId, same item), {} not sent\n",
                self.sent_not_deleted, self.failed
            ));
        }
        out
    }
}

/// `[#######.............]  120/400 redriven`: the total is SQS's approximate count, so the
/// bar never claims more than it knows.
pub fn progress_line(done: usize, total: usize, failed: usize) -> String {
    const WIDTH: usize = 20;
    let total = total.max(done);
    let filled = (done * WIDTH).checked_div(total).unwrap_or(WIDTH);
    let mut line = format!(
        "[{}{}] {done}/{total} redriven",
        "#".repeat(filled),
        ".".repeat(WIDTH - filled)
    );
    if failed > 0 {
        line.push_str(&format!(", {failed} failed"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dlq_tools::message::tests::message;
    use crate::dlq_tools::message::EXHAUSTED_RETRIES;
    use time::macros::datetime;

    #[test]
    fn the_summary_counts_redriven_skipped_and_left_by_reason() {
        let report = RedriveReport {
            redriven: 4,
            redriven_by_reason: BTreeMap::from([(EXHAUSTED_RETRIES.to_owned(), 4)]),
            skipped_by_reason: BTreeMap::from([
                ("invalid_json".to_owned(), 3),
                ("unknown_version".to_owned(), 2),
            ]),
            came_back: 1,
            ..RedriveReport::default()
        };
        let text = report.render("q", false);
        assert!(text.contains("redriven 4 messages to q"), "{text}");
        assert!(text.contains("exhausted_retries  4"), "{text}");
        assert!(text.contains("skipped 5 (poison"), "{text}");
        assert!(text.contains("invalid_json  3"), "{text}");
        assert!(text.contains("left 1 that this run sent"), "{text}");
    }
    #[test]
    fn counts_reasons_and_finds_the_oldest_message() {
        let t = datetime!(2026-11-28 10:00 UTC);
        let messages = [
            message("a", Some("invalid_json"), t),
            message("b", Some("invalid_json"), t - time::Duration::hours(3)),
            message("c", None, t),
            message("d", Some("unknown_version"), t),
        ];
        let stats = DlqStats::from_messages(4, 0, &messages);
        assert_eq!(stats.by_reason["invalid_json"], 2);
        assert_eq!(stats.by_reason[EXHAUSTED_RETRIES], 1);
        assert_eq!(stats.by_reason["unknown_version"], 1);
        assert_eq!(stats.oldest_sent_at, Some(t - time::Duration::hours(3)));
        let text = stats.render(t + time::Duration::minutes(5));
        assert!(text.contains("oldest: 3h 5m ago"), "{text}");
        assert!(text.contains("invalid_json"), "{text}");
    }

    #[test]
    fn formats_ages_with_two_units() {
        assert_eq!(format_age(time::Duration::seconds(9)), "9s");
        assert_eq!(format_age(time::Duration::seconds(245)), "4m 5s");
        assert_eq!(format_age(time::Duration::minutes(192)), "3h 12m");
        assert_eq!(format_age(time::Duration::hours(51)), "2d 3h");
        assert_eq!(format_age(time::Duration::seconds(-3)), "0s");
    }

    #[test]
    fn draws_progress_against_the_approximate_total() {
        assert_eq!(
            progress_line(5, 10, 0),
            "[##########..........] 5/10 redriven"
        );
        assert_eq!(
            progress_line(12, 10, 1),
            "[####################] 12/12 redriven, 1 failed"
        );
        assert_eq!(
            progress_line(0, 0, 0),
            "[####################] 0/0 redriven"
        );
    }
}
