//! A report as the worker stores it and ingest reads it back, and the identity two copies of
//! one report share. How they are laid out in a table is the storage adapter's business.

use time::OffsetDateTime;

use crate::domain::{ReportId, ScoreReport, UserId};

/// What identifies one stored report: two messages with the same key are the same report,
/// and the later write replaces the earlier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReportKey {
    pub user_id: UserId,
    pub report_id: ReportId,
}

impl ReportKey {
    pub fn of(report: &ScoreReport) -> Self {
        Self {
            user_id: report.user_id.clone(),
            report_id: report.report_id.clone(),
        }
    }
}

/// A report as stored: the validated score plus where and when it came in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredReport {
    pub report: ScoreReport,
    pub source: String,
    pub received_at: OffsetDateTime,
}

impl StoredReport {
    pub fn key(&self) -> ReportKey {
        ReportKey::of(&self.report)
    }
}
