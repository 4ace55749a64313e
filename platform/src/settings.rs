//! Reading configuration from the environment. A missing or bad variable stops start-up with
//! a message naming it, never a panic deep inside a handler later.
//!
//! Each binary declares its variables once, as the fields of a clap `Args` struct
//! (`#[arg(long, env)]`: the name comes from the field, the default from `default_value`, the
//! help from the doc comment, the type and its parser from the field). [`parse`] fills that
//! struct from a [`Source`]; the binary's `TryFrom` checks what one field cannot (required
//! variables, rules across fields) and builds the typed settings the code uses.
//! [`environment_help`] renders the same declaration for `--help`, and each crate's tests
//! compare it with the README and the deployment template.
//!
//! clap never reads the process environment itself here: Lambda passes the template's empty
//! parameters as empty variables, which must read as unset (clap would take the empty string
//! over the default), and tests give their variables as pairs, without the process
//! environment. So the values come from a [`Source`], which drops blank ones, and reach clap as
//! `--name=value` arguments; the long flags are that transport only, never the binaries'
//! command line.

use std::borrow::Cow;
use std::ffi::OsString;
use std::str::FromStr;

use clap::{Arg, Args, Command, FromArgMatches};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SettingsError {
    #[error("environment variable {0} is required but not set")]
    Missing(&'static str),
    #[error("environment variable {name} has an invalid value: {reason}")]
    Invalid {
        name: Cow<'static, str>,
        reason: String,
    },
}

impl SettingsError {
    pub fn invalid(name: impl Into<Cow<'static, str>>, reason: impl Into<String>) -> Self {
        Self::Invalid {
            name: name.into(),
            reason: reason.into(),
        }
    }

    /// The variable the error is about.
    pub fn variable(&self) -> &str {
        match self {
            Self::Missing(name) => name,
            Self::Invalid { name, .. } => name,
        }
    }
}

/// Where settings come from: the process environment, or pairs in tests.
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

/// The declared settings `T` from `source`: each variable's value, or its default when it is
/// unset or blank.
pub fn parse<T: Args + FromArgMatches>(source: &dyn Source) -> Result<T, SettingsError> {
    let mut args: Vec<OsString> = Vec::new();
    // Each flag and the variable it carries, to name the variable in an error.
    let mut variables: Vec<(String, String)> = Vec::new();
    let command = T::augment_args(transport()).mut_args(|arg| {
        let (Some(name), Some(long)) = (arg.get_env().and_then(|n| n.to_str()), arg.get_long())
        else {
            return arg;
        };
        if let Some(value) = source.get(name).filter(|value| !value.trim().is_empty()) {
            args.push(format!("--{long}={value}").into());
        }
        variables.push((long.to_owned(), name.to_owned()));
        // The value read when the declaration was built is the process's: never used.
        arg.env(None)
    });
    command
        .try_get_matches_from(args)
        .and_then(|matches| T::from_arg_matches(&matches))
        .map_err(|error| naming_the_variable(&variables, &error))
}

/// The command the values travel through: no binary name, no help or version flags.
fn transport() -> Command {
    Command::new("settings")
        .no_binary_name(true)
        .disable_help_flag(true)
        .disable_version_flag(true)
}

/// clap names the flag that carried a bad value (`--port <PORT>`); the error names the
/// variable, and only the parser's reason, never the value (it may be a secret).
fn naming_the_variable(variables: &[(String, String)], error: &clap::Error) -> SettingsError {
    use clap::error::{ContextKind, ContextValue};
    let variable = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(shown)) => shown
            .strip_prefix("--")
            .and_then(|flag| flag.split([' ', '=']).next())
            .and_then(|long| variables.iter().find(|(flag, _)| flag == long))
            .map(|(_, name)| name.clone()),
        _ => None,
    };
    let reason = std::error::Error::source(error)
        .map_or_else(|| error.kind().to_string(), ToString::to_string);
    SettingsError::invalid(variable.unwrap_or_else(|| "settings".into()), reason)
}

/// Every variable `T` declares, with its help and default.
pub fn declared<T: Args>() -> Vec<Arg> {
    T::augment_args(transport())
        .get_arguments()
        .filter(|arg| arg.get_env().is_some())
        .cloned()
        .collect()
}

/// The variable an argument declares.
pub fn variable_name(arg: &Arg) -> String {
    arg.get_env()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// The `Environment:` section of a `--help`: each declared variable that is not hidden, its
/// help, and its default when it has one.
pub fn environment_help(variables: &[Arg], footer: &str) -> String {
    let shown: Vec<&Arg> = variables.iter().filter(|arg| !arg.is_hide_set()).collect();
    let width = shown
        .iter()
        .map(|arg| variable_name(arg).len())
        .max()
        .unwrap_or(0);
    let mut text = String::from("Environment:\n");
    for arg in shown {
        let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
        let defaults: Vec<_> = arg
            .get_default_values()
            .iter()
            .map(|value| value.to_string_lossy())
            .collect();
        let default = match defaults.as_slice() {
            [] => String::new(),
            values => format!(" [default: {}]", values.join(",")),
        };
        text.push_str(&format!(
            "  {:width$}  {help}{default}\n",
            variable_name(arg)
        ));
    }
    text.push_str(footer);
    text
}

/// A value parser for `#[arg(value_parser = trimmed::<u64>)]`: surrounding spaces are not part
/// of a number or an address.
pub fn trimmed<T: FromStr>(raw: &str) -> Result<T, T::Err> {
    raw.trim().parse()
}

/// Where a declaration and a list of variables (a document's tables, a template's
/// environment) part: the names declared but not listed, then those listed but not declared.
/// `not_listed` are declared names left out of the list on purpose, `not_declared` listed
/// names that belong to someone else (the AWS SDK, a library).
pub fn disagreement(
    declared: &[Arg],
    listed: impl IntoIterator<Item = String>,
    not_listed: &[&str],
    not_declared: &[&str],
) -> (Vec<String>, Vec<String>) {
    let listed: std::collections::BTreeSet<String> = listed.into_iter().collect();
    let declared: std::collections::BTreeSet<String> = declared.iter().map(variable_name).collect();
    let unlisted = declared
        .difference(&listed)
        .filter(|name| !not_listed.contains(&name.as_str()))
        .cloned()
        .collect();
    let undeclared = listed
        .difference(&declared)
        .filter(|name| !not_declared.contains(&name.as_str()))
        .cloned()
        .collect();
    (unlisted, undeclared)
}

/// The variables a Markdown document's settings tables list (tables whose first heading cell
/// is `variable` or `setting`), each with its row's second cell (the README's `used by`).
pub fn documented_variables(markdown: &str) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let mut in_table = false;
    for line in markdown.lines() {
        if !line.starts_with('|') {
            in_table = false;
            continue;
        }
        let cells: Vec<&str> = line.split('|').map(str::trim).collect();
        let first = cells.get(1).copied().unwrap_or_default();
        if first == "variable" || first == "setting" {
            in_table = true;
            continue;
        }
        if !in_table || first.starts_with("---") {
            continue;
        }
        let used_by = cells.get(2).copied().unwrap_or_default();
        for name in first.split('`').skip(1).step_by(2) {
            if is_variable_name(name) {
                found.push((name.to_owned(), used_by.to_owned()));
            }
        }
    }
    found
}

/// The names in `Environment: Variables:` of the template resource `function`.
pub fn template_variables(template: &str, function: &str) -> Vec<String> {
    let indent = |line: &str| line.len() - line.trim_start().len();
    let mut lines = template
        .lines()
        .skip_while(|line| line.trim_end() != format!("  {function}:"))
        .skip_while(|line| line.trim() != "Variables:");
    let Some(variables) = lines.next() else {
        return Vec::new();
    };
    let level = indent(variables);
    lines
        .filter(|line| !line.trim().is_empty() && !line.trim_start().starts_with('#'))
        .take_while(|line| indent(line) > level)
        .filter_map(|line| line.trim().split_once(':').map(|(name, _)| name))
        .filter(|name| is_variable_name(name))
        .map(str::to_owned)
        .collect()
}

fn is_variable_name(text: &str) -> bool {
    text.len() > 1
        && text.starts_with(|c: char| c.is_ascii_uppercase())
        && text
            .chars()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_')
}

/// The logging variables. Declared here for `--help` and the docs check; `platform::telemetry`
/// reads them itself, first thing, so that even a settings error is logged as asked.
#[derive(Debug, Clone, clap::Args)]
pub struct LogEnv {
    /// log filter: a level and `target=level` directives (`warn,worker=debug`)
    #[arg(long, env, default_value = "info")]
    pub rust_log: String,
    /// under Lambda, wins over RUST_LOG when set (TRACE to FATAL)
    #[arg(long, env)]
    pub aws_lambda_log_level: Option<String>,
    /// json | text (default: JSON under Lambda, text elsewhere)
    #[arg(long, env)]
    pub log_format: Option<String>,
    /// under Lambda, wins over LOG_FORMAT when set (JSON | Text)
    #[arg(long, env)]
    pub aws_lambda_log_format: Option<String>,
}

/// `METRICS_NAMESPACE` when unset.
pub const DEFAULT_METRICS_NAMESPACE: &str = "CreditScorePipeline";

/// The metrics' variables, read by `platform::metrics::MetricsSettings`.
#[derive(Debug, Clone, clap::Args)]
pub struct MetricsEnv {
    /// emf | off: CloudWatch Embedded Metric Format lines on stdout (default: emf with JSON
    /// logs, off with text logs)
    #[arg(long, env)]
    pub metrics: Option<String>,
    /// the metrics' namespace
    #[arg(long, env, default_value = DEFAULT_METRICS_NAMESPACE)]
    pub metrics_namespace: String,
    /// the metrics' Service dimension (default: the binary's name)
    #[arg(long, env)]
    pub metrics_service: Option<String>,
    /// how often metrics are written outside Lambda (1 to 3600)
    #[arg(long, env, default_value_t = 60, value_parser = trimmed::<u64>)]
    pub metrics_flush_seconds: u64,
}

/// The variables every binary reads besides its own: logging and metrics.
#[derive(Debug, Clone, clap::Args)]
pub struct CommonEnv {
    #[command(flatten)]
    pub log: LogEnv,
    #[command(flatten)]
    pub metrics: MetricsEnv,
}

/// What `--help` says of the variables no settings struct declares.
pub const AWS_FOOTER: &str =
    "plus the standard AWS variables (AWS_REGION, AWS_ENDPOINT_URL, credentials).";

/// `name` from `source`, or an error naming it; for `worker dlq`, which reads DLQ_URL and
/// QUEUE_URL only when a subcommand needs them.
pub fn required(source: &dyn Source, name: &'static str) -> Result<String, SettingsError> {
    source.get(name).ok_or(SettingsError::Missing(name))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A declaration like the binaries' own.
    #[derive(Debug, clap::Args)]
    struct Example {
        /// the score queue (required)
        #[arg(long, env)]
        queue_url: Option<String>,
        /// listening port
        #[arg(long, env, default_value_t = 4112, value_parser = trimmed::<u16>)]
        port: u16,
        /// a key, never echoed
        #[arg(long, env, default_value = "fallback")]
        secret: String,
    }

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
    fn reads_declared_variables_and_falls_back_to_defaults() {
        let set: Example = parse(&[("QUEUE_URL", "q"), ("PORT", " 8080 ")]).unwrap();
        assert_eq!(set.queue_url.as_deref(), Some("q"));
        assert_eq!(set.port, 8080);
        let unset: Example = parse(&[("OTHER", "x")]).unwrap();
        assert_eq!(unset.queue_url, None);
        assert_eq!(unset.port, 4112);
        assert_eq!(unset.secret, "fallback");
    }

    #[test]
    fn a_blank_value_reads_as_unset() {
        let blank: Example = parse(&[("PORT", " "), ("SECRET", ""), ("QUEUE_URL", "")]).unwrap();
        assert_eq!(blank.port, 4112);
        assert_eq!(blank.secret, "fallback");
        assert_eq!(blank.queue_url, None);
    }

    #[test]
    fn never_reads_the_process_environment_for_pairs() {
        // PATH is set in any test process; a declaration named like it must stay unset.
        #[derive(Debug, clap::Args)]
        struct PathOnly {
            #[arg(long, env)]
            path: Option<String>,
        }
        let read: PathOnly = parse(&[("OTHER", "x")]).unwrap();
        assert_eq!(read.path, None);
    }

    #[test]
    fn names_the_variable_with_a_bad_value_and_not_the_value() {
        let err = parse::<Example>(&[("PORT", "eighty")]).unwrap_err();
        assert_eq!(err.variable(), "PORT");
        assert_eq!(
            err.to_string(),
            "environment variable PORT has an invalid value: invalid digit found in string"
        );
        assert!(!err.to_string().contains("eighty"), "{err}");
    }

    #[test]
    fn values_that_look_like_flags_are_values() {
        let set: Example = parse(&[("SECRET", "--port=1 -x")]).unwrap();
        assert_eq!(set.secret, "--port=1 -x");
        assert_eq!(set.port, 4112);
    }

    #[test]
    fn help_lists_each_variable_with_its_help_and_default() {
        let help = environment_help(&declared::<Example>(), "that is all");
        assert!(help.starts_with("Environment:\n"), "{help}");
        assert!(
            help.contains("  QUEUE_URL  the score queue (required)\n"),
            "{help}"
        );
        assert!(
            help.contains("  PORT       listening port [default: 4112]\n"),
            "{help}"
        );
        assert!(help.ends_with("that is all"), "{help}");
    }

    #[test]
    fn finds_the_variables_of_settings_tables_only() {
        let markdown = "\
| variable | used by | default |
| --- | --- | --- |
| `QUEUE_URL` | ingest | required |
| `RETRY_BASE_DELAY_MS` / `RETRY_MAX_DELAY_MS` | worker | `50` / `5000` |

| check | detail |
| --- | --- |
| `iss` equals `AUTH_ISSUER` | no |
";
        assert_eq!(
            documented_variables(markdown),
            [
                ("QUEUE_URL".to_owned(), "ingest".to_owned()),
                ("RETRY_BASE_DELAY_MS".to_owned(), "worker".to_owned()),
                ("RETRY_MAX_DELAY_MS".to_owned(), "worker".to_owned()),
            ]
        );
    }

    #[test]
    fn finds_a_functions_template_variables() {
        let template = "\
Resources:
  IngestFunction:
    Properties:
      Environment:
        Variables:
          QUEUE_URL: !Ref Queue
          # a comment
          METRICS: emf
      Events:
        Api: {}
  WorkerFunction:
    Properties:
      Environment:
        Variables:
          DLQ_URL: !Ref Dlq
";
        assert_eq!(
            template_variables(template, "IngestFunction"),
            ["QUEUE_URL", "METRICS"]
        );
        assert_eq!(template_variables(template, "WorkerFunction"), ["DLQ_URL"]);
    }
}
