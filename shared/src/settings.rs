//! Reading configuration from the environment. A missing or bad variable stops start-up with
//! a message naming it, never a panic deep inside a handler later.

use std::str::FromStr;
use std::time::Duration;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid { name: &'static str, reason: String },
}

/// Where settings come from: the process environment, or a map in tests.
pub trait Source {
    fn get(&self, name: &str) -> Option<String>;
}

/// The process environment.
pub struct Env;

impl Source for Env {
    fn get(&self, name: &str) -> Option<String> {
        std::env::var(name).ok().filter(|v| !v.trim().is_empty())
    }
}

impl Source for std::collections::HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        self.get(name).cloned()
    }
}

impl<const N: usize> Source for [(&str, &str); N] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| (*v).to_owned())
    }
}

pub fn required(source: &dyn Source, name: &'static str) -> Result<String, SettingsError> {
    source.get(name).ok_or(SettingsError::Missing(name))
}

pub fn optional(source: &dyn Source, name: &'static str, default: &str) -> String {
    source.get(name).unwrap_or_else(|| default.to_owned())
}

pub fn parsed<T>(source: &dyn Source, name: &'static str, default: T) -> Result<T, SettingsError>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match source.get(name) {
        None => Ok(default),
        Some(raw) => raw
            .trim()
            .parse()
            .map_err(|e: T::Err| SettingsError::Invalid {
                name,
                reason: e.to_string(),
            }),
    }
}

/// A whole number of milliseconds, e.g. `USER_SERVICE_TIMEOUT_MS=2000`.
pub fn millis(
    source: &dyn Source,
    name: &'static str,
    default: Duration,
) -> Result<Duration, SettingsError> {
    let default_ms = u64::try_from(default.as_millis()).unwrap_or(u64::MAX);
    parsed(source, name, default_ms).map(Duration::from_millis)
}

/// A URL that must be http(s); checked here so a typo fails at start-up, not per request.
pub fn http_url(source: &dyn Source, name: &'static str) -> Result<String, SettingsError> {
    let url = required(source, name)?;
    if url.starts_with("http://") || url.starts_with("https://") {
        Ok(url.trim_end_matches('/').to_owned())
    } else {
        Err(SettingsError::Invalid {
            name,
            reason: "must start with http:// or https://".into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_the_missing_variable() {
        let env = [("OTHER", "x")];
        let err = required(&env, "QUEUE_URL").unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable QUEUE_URL is required but not set"
        );
    }

    #[test]
    fn names_the_variable_with_a_bad_value() {
        let env = [("PORT", "eighty")];
        let err = parsed::<u16>(&env, "PORT", 4112).unwrap_err();
        assert!(err.to_string().contains("PORT"), "{err}");
    }

    #[test]
    fn falls_back_to_defaults() {
        let env = [("X", "1")];
        assert_eq!(parsed::<u16>(&env, "PORT", 4112), Ok(4112));
        assert_eq!(
            millis(&env, "T", Duration::from_secs(2)),
            Ok(Duration::from_secs(2))
        );
    }

    #[test]
    fn rejects_urls_without_a_scheme() {
        let env = [("USER_SERVICE_URL", "users.internal")];
        assert!(http_url(&env, "USER_SERVICE_URL").is_err());
        let env = [("USER_SERVICE_URL", "http://users.internal/")];
        assert_eq!(
            http_url(&env, "USER_SERVICE_URL").unwrap(),
            "http://users.internal"
        );
    }
}
