//! Folding reports that share a table key into one write.

use std::collections::HashMap;

use contract::report::StoredReport;

/// Reports sharing one table key, reduced to the newest, with the position in the batch of
/// every message that carried one. Positions, not ids: most keys come once, and then a group
/// costs no allocation of its own.
pub struct KeyGroup {
    pub report: StoredReport,
    /// The first message with this key.
    pub first: usize,
    /// Later messages with the same key, in batch order.
    pub repeats: Vec<usize>,
}

impl KeyGroup {
    /// Every message of the group, as positions in the batch.
    pub fn positions(&self) -> impl Iterator<Item = usize> + '_ {
        std::iter::once(self.first).chain(self.repeats.iter().copied())
    }

    /// How many messages share this key (at least one).
    pub fn message_count(&self) -> usize {
        1 + self.repeats.len()
    }
}

/// One request may not carry the same key twice, so reports sharing a key are folded into
/// the newest by `reportedAt` (the later message wins a tie); every message that carried the
/// key shares the outcome of that one write.
pub(super) fn dedupe(valid: Vec<(usize, StoredReport)>) -> Vec<KeyGroup> {
    // First pass on borrowed keys (no clone per record): which group each record joins.
    // foldhash, seeded per process: several times cheaper than SipHash on short keys.
    let mut position: HashMap<(&str, &str), usize, foldhash::fast::RandomState> =
        HashMap::with_capacity_and_hasher(valid.len(), foldhash::fast::RandomState::default());
    let mut group_of = Vec::with_capacity(valid.len());
    for (_, stored) in &valid {
        let key = (
            stored.report.user_id.as_str(),
            stored.report.report_id.as_str(),
        );
        let next = position.len();
        group_of.push(*position.entry(key).or_insert(next));
    }
    let group_count = position.len();
    drop(position);

    let mut groups: Vec<Option<KeyGroup>> = Vec::with_capacity(group_count);
    groups.resize_with(group_count, || None);
    for ((message, report), i) in valid.into_iter().zip(group_of) {
        match &mut groups[i] {
            Some(group) => {
                group.repeats.push(message);
                if report.report.reported_at >= group.report.report.reported_at {
                    group.report = report;
                }
            }
            slot @ None => {
                *slot = Some(KeyGroup {
                    report,
                    first: message,
                    repeats: Vec::new(),
                });
            }
        }
    }
    // Every index below `group_count` was handed to at least one record.
    groups.into_iter().flatten().collect()
}
