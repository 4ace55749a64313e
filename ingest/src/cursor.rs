//! Pagination cursors: opaque to clients, tamper-evident, and bound to one listing.
//!
//! A cursor is `base64url(payload) "." base64url(HMAC-SHA256(key, DOMAIN || payload))`. The
//! payload (JSON) names the user and bureau filter it was issued for and the position of the
//! last item served (`reportedAt`, `reportId`). The signature makes any edit detectable; the
//! user and filter inside make a cursor useless for another listing. Both failures are a 400
//! naming `cursor`. Independently of the cursor, the query is always keyed by the path's
//! (authorized) user, so no cursor, forged or not, can reach another user's items.
//!
//! The key comes from `CURSOR_SIGNING_KEY` (shared by every instance, so a cursor issued by
//! one instance works on the next). Without it a random per-process key is used, which is
//! fine for one local process only: see `AppState::from_settings`.

use std::fmt;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use contract::{Bureau, ReportId, ReportedAt, UserId};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::reads::Position;

type HmacSha256 = Hmac<Sha256>;

/// Shortest accepted `CURSOR_SIGNING_KEY`, in bytes (HMAC-SHA256's block of entropy).
pub const MIN_KEY_BYTES: usize = 32;
/// Longer than any cursor we issue (about 250 characters); bounds the work on junk input.
pub const MAX_CURSOR_CHARS: usize = 1024;
/// Domain separation: these MACs can never be confused with another use of the same key.
const DOMAIN: &[u8] = b"credit-scores/list-cursor/v1\n";
const PAYLOAD_VERSION: u8 = 1;

/// The secret cursors are signed with, ready to use. Never printed.
#[derive(Clone)]
pub struct CursorKey(HmacSha256);

impl fmt::Debug for CursorKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorKey(<redacted>)")
    }
}

impl CursorKey {
    /// The configured secret, used as given (at least [`MIN_KEY_BYTES`] bytes).
    pub fn from_secret(secret: &str) -> Result<Self, String> {
        if secret.len() < MIN_KEY_BYTES {
            return Err(format!(
                "must be at least {MIN_KEY_BYTES} bytes (e.g. `openssl rand -base64 48`)"
            ));
        }
        Self::from_bytes(secret.as_bytes())
    }

    /// A fresh key from the operating system's random source.
    pub fn random() -> anyhow::Result<Self> {
        let mut key = [0u8; MIN_KEY_BYTES];
        getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("reading OS randomness: {e}"))?;
        Self::from_bytes(&key).map_err(anyhow::Error::msg)
    }

    fn from_bytes(key: &[u8]) -> Result<Self, String> {
        HmacSha256::new_from_slice(key)
            .map(Self)
            .map_err(|e| format!("unusable as an HMAC key: {e}"))
    }
}

/// The listing a cursor belongs to: whose reports, with which filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListScope {
    pub user: UserId,
    pub bureau: Option<Bureau>,
}

/// Why a cursor was refused. Both are the client's mistake (400), never ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CursorError {
    #[error("is not a cursor this API issued (malformed or altered); use nextCursor exactly as returned")]
    Invalid,
    #[error("was issued for another user or bureau filter; start again without a cursor")]
    OtherListing,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Payload {
    v: u8,
    u: String,
    b: Option<Bureau>,
    t: String,
    r: String,
}

/// Issues and checks cursors with one key.
#[derive(Clone)]
pub struct CursorCodec {
    mac: HmacSha256,
}

impl fmt::Debug for CursorCodec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CursorCodec(<keyed>)")
    }
}

impl CursorCodec {
    pub fn new(key: &CursorKey) -> Self {
        Self { mac: key.0.clone() }
    }

    fn tag(&self, payload: &[u8]) -> HmacSha256 {
        let mut mac = self.mac.clone();
        mac.update(DOMAIN);
        mac.update(payload);
        mac
    }

    /// The cursor that continues `scope` after `position`.
    pub fn encode(&self, scope: &ListScope, position: &Position) -> String {
        let payload = Payload {
            v: PAYLOAD_VERSION,
            u: scope.user.to_string(),
            b: scope.bureau,
            t: position.reported_at.to_string(),
            r: position.report_id.to_string(),
        };
        // Serialising plain strings and an enum cannot fail.
        let json = serde_json::to_vec(&payload).unwrap_or_default();
        let tag = self.tag(&json).finalize().into_bytes();
        format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(&json),
            URL_SAFE_NO_PAD.encode(tag)
        )
    }

    /// The position a cursor stands for, if this codec issued it for exactly `scope`.
    pub fn decode(&self, cursor: &str, scope: &ListScope) -> Result<Position, CursorError> {
        if cursor.len() > MAX_CURSOR_CHARS {
            return Err(CursorError::Invalid);
        }
        let (payload, tag) = cursor.split_once('.').ok_or(CursorError::Invalid)?;
        let payload = URL_SAFE_NO_PAD
            .decode(payload)
            .map_err(|_| CursorError::Invalid)?;
        let tag = URL_SAFE_NO_PAD
            .decode(tag)
            .map_err(|_| CursorError::Invalid)?;
        // Constant-time comparison: the tag must be checked before anything is believed.
        self.tag(&payload)
            .verify_slice(&tag)
            .map_err(|_| CursorError::Invalid)?;
        let payload: Payload =
            serde_json::from_slice(&payload).map_err(|_| CursorError::Invalid)?;
        if payload.v != PAYLOAD_VERSION {
            return Err(CursorError::Invalid);
        }
        if payload.u != scope.user.as_str() || payload.b != scope.bureau {
            return Err(CursorError::OtherListing);
        }
        // Signed by us, so these parse; checking anyway keeps keys derived from valid values.
        Ok(Position {
            reported_at: ReportedAt::parse_stored(&payload.t).ok_or(CursorError::Invalid)?,
            report_id: ReportId::parse(&payload.r).map_err(|_| CursorError::Invalid)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn codec(secret: &str) -> CursorCodec {
        CursorCodec::new(&CursorKey::from_secret(secret).unwrap())
    }

    fn alice(bureau: Option<Bureau>) -> ListScope {
        ListScope {
            user: UserId::parse("alice").unwrap(),
            bureau,
        }
    }

    fn position() -> Position {
        Position {
            reported_at: ReportedAt::parse_stored("2026-11-28T10:00:00.123Z").unwrap(),
            report_id: ReportId::parse("01JDQ6W8ZK3M5N7P9R1S3T5V7X").unwrap(),
        }
    }

    const KEY: &str = "0123456789abcdef0123456789abcdef-test";

    #[test]
    fn a_cursor_decodes_to_the_position_it_was_issued_for() {
        let c = codec(KEY);
        let cursor = c.encode(&alice(None), &position());
        assert_eq!(c.decode(&cursor, &alice(None)), Ok(position()));
        let filtered = c.encode(&alice(Some(Bureau::Equifax)), &position());
        assert_eq!(
            c.decode(&filtered, &alice(Some(Bureau::Equifax))),
            Ok(position())
        );
    }

    #[test]
    fn cursors_are_url_safe() {
        let cursor = codec(KEY).encode(&alice(Some(Bureau::Transunion)), &position());
        assert!(cursor
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)));
        assert!(cursor.len() < MAX_CURSOR_CHARS);
    }

    #[test]
    fn rejects_a_cursor_of_another_user_or_filter() {
        let c = codec(KEY);
        let cursor = c.encode(&alice(None), &position());
        let bob = ListScope {
            user: UserId::parse("bob").unwrap(),
            bureau: None,
        };
        assert_eq!(c.decode(&cursor, &bob), Err(CursorError::OtherListing));
        assert_eq!(
            c.decode(&cursor, &alice(Some(Bureau::Experian))),
            Err(CursorError::OtherListing)
        );
        let filtered = c.encode(&alice(Some(Bureau::Experian)), &position());
        assert_eq!(
            c.decode(&filtered, &alice(None)),
            Err(CursorError::OtherListing)
        );
    }

    #[test]
    fn rejects_every_single_character_edit() {
        let c = codec(KEY);
        let cursor = c.encode(&alice(None), &position());
        for i in 0..cursor.len() {
            for replacement in ['A', 'z', '0', '-', '.'] {
                let mut edited = cursor.clone().into_bytes();
                if edited[i] == replacement as u8 {
                    continue;
                }
                edited[i] = replacement as u8;
                let edited = String::from_utf8(edited).unwrap();
                assert!(
                    c.decode(&edited, &alice(None)).is_err(),
                    "edit at {i} to {replacement} was accepted"
                );
            }
        }
    }

    #[test]
    fn rejects_a_cursor_signed_with_another_key() {
        let forged =
            codec("another key entirely, 32+ bytes long!!").encode(&alice(None), &position());
        assert_eq!(
            codec(KEY).decode(&forged, &alice(None)),
            Err(CursorError::Invalid)
        );
    }

    #[test]
    fn rejects_junk() {
        let c = codec(KEY);
        let too_long = "a".repeat(MAX_CURSOR_CHARS + 1);
        for junk in [
            "",
            ".",
            "abc",
            "a.b",
            "!!!.???",
            "eyJ2IjoxfQ.",
            too_long.as_str(),
        ] {
            assert_eq!(
                c.decode(junk, &alice(None)),
                Err(CursorError::Invalid),
                "{junk}"
            );
        }
    }

    #[test]
    fn a_short_secret_is_refused() {
        assert!(CursorKey::from_secret("short").is_err());
        assert!(CursorKey::from_secret(&"k".repeat(MIN_KEY_BYTES)).is_ok());
    }

    #[test]
    fn random_keys_differ_and_never_print() {
        let a = CursorKey::random().unwrap();
        let b = CursorKey::random().unwrap();
        let cursor = CursorCodec::new(&a).encode(&alice(None), &position());
        assert!(CursorCodec::new(&b).decode(&cursor, &alice(None)).is_err());
        assert_eq!(format!("{a:?}"), "CursorKey(<redacted>)");
    }
}
