//! `AUTH_MODE=jwks`: bearer tokens verified here, against the issuer's JSON Web Key Set, with
//! no call on the request path.
//!
//! Keys are fetched once and cached. A token naming an unknown `kid` triggers one refetch,
//! single-flight and at most once per [`JwksConfig::min_refetch_interval`], so a flood of
//! forged kids cannot make us hammer the issuer; the cached set is also refreshed every
//! [`JwksConfig::refresh_interval`] to pick up rotation. With the issuer down, tokens signed
//! with a cached key still verify; a token whose key is not cached gets
//! [`AuthError::KeysUnavailable`] (503), never a pass.

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use async_trait::async_trait;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::jwk::{Jwk, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde_json::{Map, Value};

use super::https::{get, https_client, HttpsClient};
use super::token::{claims_from, AuthError, BearerToken, Claims, Rejection};

/// The largest key set accepted, in bytes (Cognito's is under 1 kB).
const MAX_JWKS_BYTES: usize = 256 * 1024;

/// What to trust, read by `settings` from `AUTH_*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksConfig {
    /// `iss`, compared exactly.
    pub issuer: String,
    pub jwks_url: String,
    /// A token passes when its `aud` names one of these, or its `client_id` is one of
    /// [`Self::client_ids`]; at least one of the two lists is non-empty.
    pub audiences: Vec<String>,
    pub client_ids: Vec<String>,
    /// The `token_use` required (Cognito: `access` or `id`); None accepts any.
    pub token_use: Option<String>,
    /// Asymmetric algorithms only (settings refuse `none` and HMAC).
    pub algorithms: Vec<Algorithm>,
    pub leeway: Duration,
    pub refresh_interval: Duration,
    pub min_refetch_interval: Duration,
    /// Bounds one fetch of the key set.
    pub fetch_timeout: Duration,
}

/// The port the [`super::Authenticator`] uses in the local-verification modes.
#[async_trait]
pub trait TokenVerifier: Send + Sync {
    /// The token's claims, once every check passed.
    async fn verify(&self, token: &BearerToken, user_claim: &str) -> Result<Claims, AuthError>;

    /// Loads what verification needs (the key set) ahead of the first request.
    async fn warm_up(&self) -> Result<(), AuthError> {
        Ok(())
    }
}

struct CachedKey {
    key: DecodingKey,
    /// The JWK's own `alg`, when it names one: a token must then use exactly that.
    algorithm: Option<Algorithm>,
}

#[derive(Default)]
struct KeyCache {
    keys: HashMap<String, std::sync::Arc<CachedKey>>,
    /// When a fetch last succeeded.
    loaded_at: Option<Instant>,
    /// When a fetch was last tried, successful or not.
    tried_at: Option<Instant>,
}

/// [`TokenVerifier`] against one issuer's JWKS over HTTP(S).
pub struct JwksVerifier {
    config: JwksConfig,
    endpoint: http::Uri,
    client: HttpsClient,
    cache: RwLock<KeyCache>,
    /// Held while fetching: one fetch at a time, the others wait for its result.
    fetching: tokio::sync::Mutex<()>,
    /// Everything but the algorithm list, which is set per token.
    validation: Validation,
}

impl JwksVerifier {
    pub fn new(config: JwksConfig) -> anyhow::Result<Self> {
        super::ring_verify::ensure_installed();
        let endpoint: http::Uri = config
            .jwks_url
            .parse()
            .with_context(|| format!("the JWKS URL {:?} is not a URL", config.jwks_url))?;
        let client = https_client(config.fetch_timeout, "the token issuer's JWKS")?;
        let mut validation = Validation::new(Algorithm::RS256);
        validation.set_issuer(&[&config.issuer]);
        validation.set_required_spec_claims(&["exp", "iss"]);
        validation.leeway = config.leeway.as_secs();
        validation.validate_nbf = true;
        // Audience and client id are checked below: Cognito access tokens carry no `aud`.
        validation.validate_aud = false;
        Ok(Self {
            config,
            endpoint,
            client,
            cache: RwLock::default(),
            fetching: tokio::sync::Mutex::new(()),
            validation,
        })
    }

    fn cached(&self, kid: &str) -> (Option<std::sync::Arc<CachedKey>>, bool) {
        let Ok(cache) = self.cache.read() else {
            return (None, true);
        };
        let stale = cache
            .loaded_at
            .is_none_or(|at| at.elapsed() >= self.config.refresh_interval);
        (cache.keys.get(kid).cloned(), stale)
    }

    fn may_fetch(&self) -> bool {
        self.cache.read().is_ok_and(|cache| {
            cache
                .tried_at
                .is_none_or(|at| at.elapsed() >= self.config.min_refetch_interval)
        })
    }

    /// The key for `kid`: cached, or after at most one (rate-limited) refetch.
    async fn key_for(&self, kid: &str) -> Result<std::sync::Arc<CachedKey>, AuthError> {
        let (key, stale) = self.cached(kid);
        if let Some(key) = key {
            if stale {
                // Periodic refresh: only if nobody else is fetching, and a failure keeps
                // the cached keys (verification goes on while the issuer is down).
                if let Ok(_fetching) = self.fetching.try_lock() {
                    if self.may_fetch() {
                        if let Err(error) = self.fetch().await {
                            tracing::warn!(error = %format!("{error:#}"), "refreshing the JWKS failed; keeping the cached keys");
                        }
                    }
                }
                return Ok(self.cached(kid).0.unwrap_or(key));
            }
            return Ok(key);
        }
        let _fetching = self.fetching.lock().await;
        // Whoever held the lock may just have fetched the key.
        if let Some(key) = self.cached(kid).0 {
            return Ok(key);
        }
        let never_loaded = self.cache.read().map_or(true, |c| c.loaded_at.is_none());
        if self.may_fetch() {
            self.fetch().await?;
            if let Some(key) = self.cached(kid).0 {
                return Ok(key);
            }
        } else if never_loaded {
            return Err(AuthError::KeysUnavailable(anyhow::anyhow!(
                "the JWKS has not been loaded yet and the last attempt was under {} s ago",
                self.config.min_refetch_interval.as_secs()
            )));
        }
        Err(AuthError::Invalid(Rejection::UnknownKey))
    }

    /// Fetches and replaces the key set; the caller holds `fetching`.
    async fn fetch(&self) -> Result<(), AuthError> {
        if let Ok(mut cache) = self.cache.write() {
            cache.tried_at = Some(Instant::now());
        }
        let body = tokio::time::timeout(self.config.fetch_timeout, self.get_body())
            .await
            .map_err(|_| {
                AuthError::KeysUnavailable(anyhow::anyhow!(
                    "GET {} did not answer within {} ms",
                    self.endpoint,
                    self.config.fetch_timeout.as_millis()
                ))
            })?
            .map_err(AuthError::KeysUnavailable)?;
        let keys = parse_key_set(&body).map_err(AuthError::KeysUnavailable)?;
        tracing::info!(keys = keys.len(), url = %self.endpoint, "loaded the JWKS");
        if let Ok(mut cache) = self.cache.write() {
            cache.keys = keys;
            cache.loaded_at = Some(Instant::now());
        }
        Ok(())
    }

    async fn get_body(&self) -> anyhow::Result<bytes::Bytes> {
        let (status, body) = get(&self.client, &self.endpoint, None, MAX_JWKS_BYTES).await?;
        anyhow::ensure!(
            status.is_success(),
            "GET {} answered {status}",
            self.endpoint
        );
        Ok(body)
    }

    fn check_claims(&self, claims: &Map<String, Value>) -> Result<(), Rejection> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        let leeway = i64::try_from(self.config.leeway.as_secs()).unwrap_or(i64::MAX);
        match claims.get("iat") {
            None => {}
            Some(iat) => match iat.as_i64() {
                Some(iat) if iat > now.saturating_add(leeway) => {
                    return Err(Rejection::IssuedInTheFuture)
                }
                Some(_) => {}
                None => return Err(Rejection::MalformedClaim),
            },
        }
        let audience_ok = match claims.get("aud") {
            Some(Value::String(aud)) => self.config.audiences.contains(aud),
            Some(Value::Array(list)) => list
                .iter()
                .filter_map(Value::as_str)
                .any(|aud| self.config.audiences.iter().any(|a| a == aud)),
            _ => false,
        };
        let client_ok = claims
            .get("client_id")
            .and_then(Value::as_str)
            .is_some_and(|id| self.config.client_ids.iter().any(|c| c == id));
        if !(audience_ok || client_ok) {
            return Err(Rejection::WrongAudience);
        }
        if let Some(expected) = &self.config.token_use {
            if claims.get("token_use").and_then(Value::as_str) != Some(expected.as_str()) {
                return Err(Rejection::WrongTokenUse);
            }
        }
        Ok(())
    }
}

#[async_trait]
impl TokenVerifier for JwksVerifier {
    /// Fetches the key set now (at start-up, so the first request does not wait for it).
    async fn warm_up(&self) -> Result<(), AuthError> {
        let _fetching = self.fetching.lock().await;
        self.fetch().await
    }

    async fn verify(&self, token: &BearerToken, user_claim: &str) -> Result<Claims, AuthError> {
        let header = jsonwebtoken::decode_header(token.expose()).map_err(|e| {
            AuthError::Invalid(match e.kind() {
                // `alg: none` and unknown algorithm names land here.
                ErrorKind::InvalidAlgorithmName | ErrorKind::Json(_) => {
                    Rejection::AlgorithmNotAllowed
                }
                _ => Rejection::Unreadable,
            })
        })?;
        if !self.config.algorithms.contains(&header.alg) {
            return Err(AuthError::Invalid(Rejection::AlgorithmNotAllowed));
        }
        let kid = header
            .kid
            .as_deref()
            .ok_or(AuthError::Invalid(Rejection::NoKeyId))?;
        let cached = self.key_for(kid).await?;
        if cached.algorithm.is_some_and(|alg| alg != header.alg) {
            return Err(AuthError::Invalid(Rejection::AlgorithmNotAllowed));
        }
        let mut validation = self.validation.clone();
        validation.algorithms = vec![header.alg];
        let data =
            jsonwebtoken::decode::<Map<String, Value>>(token.expose(), &cached.key, &validation)
                .map_err(|e| AuthError::Invalid(rejection_of(e.kind())))?;
        self.check_claims(&data.claims)
            .map_err(AuthError::Invalid)?;
        claims_from(&data.claims, user_claim)
    }
}

fn rejection_of(kind: &ErrorKind) -> Rejection {
    match kind {
        ErrorKind::InvalidSignature => Rejection::BadSignature,
        ErrorKind::ExpiredSignature => Rejection::Expired,
        ErrorKind::ImmatureSignature => Rejection::NotYetValid,
        ErrorKind::InvalidIssuer => Rejection::WrongIssuer,
        ErrorKind::MissingRequiredClaim(_) => Rejection::MissingClaim,
        ErrorKind::InvalidClaimFormat(_) => Rejection::MalformedClaim,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::InvalidKeyFormat
        | ErrorKind::InvalidRsaKey(_)
        | ErrorKind::InvalidEcdsaKey => Rejection::AlgorithmNotAllowed,
        _ => Rejection::Unreadable,
    }
}

/// The signing keys of a JWKS document, by `kid`. Keys without a `kid`, for encryption, or of
/// a type we cannot use are skipped; a document with no usable key is an error.
fn parse_key_set(body: &[u8]) -> anyhow::Result<HashMap<String, std::sync::Arc<CachedKey>>> {
    #[derive(serde::Deserialize)]
    struct Document {
        keys: Vec<Value>,
    }
    let document: Document =
        serde_json::from_slice(body).context("the JWKS is not a JSON key set")?;
    let mut keys = HashMap::new();
    for value in document.keys {
        let Ok(jwk) = serde_json::from_value::<Jwk>(value) else {
            continue;
        };
        if matches!(jwk.common.public_key_use, Some(ref u) if *u != PublicKeyUse::Signature) {
            continue;
        }
        let Some(kid) = jwk.common.key_id.clone() else {
            continue;
        };
        let algorithm = jwk
            .common
            .key_algorithm
            .and_then(|alg| Algorithm::try_from(alg).ok());
        // Symmetric keys (`kty: oct`) never verify anything here.
        if matches!(
            jwk.algorithm,
            jsonwebtoken::jwk::AlgorithmParameters::OctetKey(_)
        ) {
            continue;
        }
        let Ok(key) = DecodingKey::from_jwk(&jwk) else {
            continue;
        };
        keys.insert(kid, std::sync::Arc::new(CachedKey { key, algorithm }));
    }
    anyhow::ensure!(!keys.is_empty(), "the JWKS holds no usable signing key");
    Ok(keys)
}
