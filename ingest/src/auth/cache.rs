//! Positive token validations kept briefly, never past the token's `exp`.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::token::BearerToken;

const CACHE_CAPACITY: usize = 10_000;

/// Positive validations, keyed by a hash of the token, each expiring at the sooner of the
/// TTL and the token's own `exp`.
#[derive(Default)]
pub struct ValidationCache {
    ttl: Duration,
    pub(crate) entries: Mutex<HashMap<[u8; 32], Instant>>,
}

impl ValidationCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            entries: Mutex::default(),
        }
    }

    pub(crate) fn is_valid(&self, token: &BearerToken) -> bool {
        if self.ttl.is_zero() {
            return false;
        }
        let Ok(entries) = self.entries.lock() else {
            return false;
        };
        entries
            .get(&token.fingerprint())
            .is_some_and(|until| *until > Instant::now())
    }

    pub(crate) fn remember(&self, token: &BearerToken, expires_at: Option<i64>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut lifetime = self.ttl;
        if let Some(exp) = expires_at {
            lifetime = lifetime.min(time_left_until(exp));
        }
        if lifetime.is_zero() {
            return;
        }
        let Ok(mut entries) = self.entries.lock() else {
            return;
        };
        if entries.len() >= CACHE_CAPACITY {
            let now = Instant::now();
            entries.retain(|_, until| *until > now);
            if entries.len() >= CACHE_CAPACITY {
                entries.clear();
            }
        }
        entries.insert(token.fingerprint(), Instant::now() + lifetime);
    }
}

/// The time from now until `exp` (seconds since the epoch), to the nanosecond: counting from
/// the current whole second instead would keep a token up to a second past its `exp`.
pub(crate) fn time_left_until(exp: i64) -> Duration {
    let left =
        i128::from(exp) * 1_000_000_000 - time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    Duration::from_nanos(u64::try_from(left.max(0)).unwrap_or(u64::MAX))
}
