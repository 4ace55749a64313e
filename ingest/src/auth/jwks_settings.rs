//! `AUTH_MODE=jwks`'s variables, declared once, and the rules that turn them into a
//! [`JwksConfig`]: an issuer URL, an audience or client id (or both), a known `token_use`, and
//! only algorithms a public key can verify.

use std::time::Duration;

use jsonwebtoken::Algorithm;
use platform::settings::{trimmed, SettingsError};

use super::JwksConfig;

/// The `AUTH_*` variables of jwks mode (see docs/auth.md); read in every mode, checked as a
/// whole only in jwks mode.
#[derive(Debug, Clone, clap::Args)]
pub struct JwksEnv {
    /// jwks: the issuer's URL, compared exactly with `iss` (required in jwks mode)
    #[arg(long, env)]
    pub auth_issuer: Option<String>,
    /// jwks: the key set's URL (default: {AUTH_ISSUER}/.well-known/jwks.json)
    #[arg(long, env)]
    pub auth_jwks_url: Option<String>,
    /// jwks: comma-separated `aud` values accepted
    #[arg(long, env)]
    pub auth_audience: Option<String>,
    /// jwks: comma-separated `client_id` values accepted; this or AUTH_AUDIENCE is required
    #[arg(long, env)]
    pub auth_client_ids: Option<String>,
    /// jwks: access, id or any
    #[arg(long, env, default_value = "access")]
    pub auth_token_use: String,
    /// jwks: comma-separated; any of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384
    #[arg(long, env, default_value = "RS256")]
    pub auth_algorithms: String,
    /// jwks: clock skew allowed on exp, nbf and iat
    #[arg(long, env, default_value_t = 60, value_parser = trimmed::<u64>)]
    pub auth_leeway_seconds: u64,
    /// jwks: the key set is refetched when older than this
    #[arg(long, env, default_value_t = 3600, value_parser = trimmed::<u64>)]
    pub auth_jwks_refresh_seconds: u64,
    /// jwks: the least time between two fetches of the key set
    #[arg(long, env, default_value_t = 30, value_parser = trimmed::<u64>)]
    pub auth_jwks_min_refetch_seconds: u64,
    /// jwks: bound on one fetch of the key set
    #[arg(long, env, default_value_t = 2000, value_parser = trimmed::<u64>)]
    pub auth_jwks_timeout_ms: u64,
}

impl TryFrom<JwksEnv> for JwksConfig {
    type Error = SettingsError;

    fn try_from(env: JwksEnv) -> Result<Self, SettingsError> {
        let issuer = env
            .auth_issuer
            .ok_or(SettingsError::Missing("AUTH_ISSUER"))?;
        if !is_http_url(&issuer) {
            return Err(SettingsError::invalid(
                "AUTH_ISSUER",
                "must be the issuer's URL exactly as tokens carry it in iss",
            ));
        }
        let jwks_url = match env.auth_jwks_url {
            Some(url) if is_http_url(&url) => url,
            Some(_) => {
                return Err(SettingsError::invalid(
                    "AUTH_JWKS_URL",
                    "must be an http(s) URL",
                ))
            }
            None => format!("{}/.well-known/jwks.json", issuer.trim_end_matches('/')),
        };
        let audiences = list(env.auth_audience.as_deref().unwrap_or_default());
        let client_ids = list(env.auth_client_ids.as_deref().unwrap_or_default());
        if audiences.is_empty() && client_ids.is_empty() {
            return Err(SettingsError::invalid(
                "AUTH_AUDIENCE",
                "AUTH_MODE=jwks needs AUTH_AUDIENCE or AUTH_CLIENT_IDS (or both): without \
                 one, any token of the issuer, for any application, would pass",
            ));
        }
        let token_use = match env.auth_token_use.trim() {
            "any" => None,
            use_ @ ("access" | "id") => Some(use_.to_owned()),
            other => {
                return Err(SettingsError::invalid(
                    "AUTH_TOKEN_USE",
                    format!("{other:?} is not one of access, id, any"),
                ))
            }
        };
        let algorithms = list(&env.auth_algorithms)
            .iter()
            .map(|name| asymmetric_algorithm(name))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|reason| SettingsError::invalid("AUTH_ALGORITHMS", reason))?;
        Ok(JwksConfig {
            issuer,
            jwks_url,
            audiences,
            client_ids,
            token_use,
            algorithms: if algorithms.is_empty() {
                vec![Algorithm::RS256]
            } else {
                algorithms
            },
            leeway: Duration::from_secs(env.auth_leeway_seconds),
            refresh_interval: Duration::from_secs(env.auth_jwks_refresh_seconds),
            min_refetch_interval: Duration::from_secs(env.auth_jwks_min_refetch_seconds),
            fetch_timeout: Duration::from_millis(env.auth_jwks_timeout_ms),
        })
    }
}

fn is_http_url(text: &str) -> bool {
    text.starts_with("https://") || text.starts_with("http://")
}

/// A comma-separated list; blanks between commas are dropped.
fn list(raw: &str) -> Vec<String> {
    raw.split(',')
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .collect()
}

/// An algorithm a public key can verify: RS*, PS*, ES256, ES384. Never `none`, never HMAC
/// (an HMAC "verified" with a public key is the algorithm-confusion attack).
fn asymmetric_algorithm(name: &str) -> Result<Algorithm, String> {
    use Algorithm::*;
    match name.parse::<Algorithm>() {
        Ok(alg @ (RS256 | RS384 | RS512 | PS256 | PS384 | PS512 | ES256 | ES384)) => Ok(alg),
        _ => Err(format!(
            "{name:?} is not one of RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384 \
             (none and HMAC algorithms are never accepted)"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<JwksConfig, SettingsError> {
        let env: std::collections::HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        platform::settings::parse::<JwksEnv>(&env).and_then(JwksConfig::try_from)
    }

    #[test]
    fn only_asymmetric_algorithms_are_accepted() {
        for good in ["RS256", "PS512", "ES384"] {
            assert!(asymmetric_algorithm(good).is_ok(), "{good}");
        }
        for bad in ["none", "HS256", "EdDSA", "rs256"] {
            assert!(asymmetric_algorithm(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn an_empty_algorithm_list_means_rs256() {
        let config = config(&[
            ("AUTH_ISSUER", "https://issuer.example"),
            ("AUTH_AUDIENCE", "api"),
            ("AUTH_ALGORITHMS", " , "),
        ])
        .unwrap();
        assert_eq!(config.algorithms, [Algorithm::RS256]);
        assert_eq!(config.fetch_timeout, Duration::from_secs(2));
    }
}
