//! infra/template.yaml deployed into the emulator as `sam deploy` would (infra/deploy-local.sh),
//! for tests that go through the real API Gateway route and the real SQS event source
//! mapping. Each test deploys a stack of its own name; the functions run the workspace's
//! debug binaries (the emulator runs them as local processes, so they need no cross build).

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde::Deserialize;

use crate::emf::{self, EmfRecord};
use crate::emulator::{unique_name, Emulator};
use crate::workspace_binary;

/// Set (to 1) where the deployed-stack tests must run, not skip: CI's MiniStack pass.
pub const REQUIRE_ENV: &str = "REQUIRE_LAMBDA_EMULATOR";

/// A cursor key for test stacks: they are thrown away, so it need not be secret.
const TEST_CURSOR_KEY: &str = "deployed-stack-tests-cursor-signing-key-0123456789";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct StackOutputs {
    pub queue_url: String,
    pub dead_letter_queue_url: String,
    pub table_name: String,
    pub ingest_function_name: String,
    pub worker_function_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeployResult {
    status: String,
    api_url: String,
    outputs: StackOutputs,
    deploy_seconds: f64,
}

/// A deployed stack. Not deleted on drop: the emulator is thrown away after the run, and a
/// failed test's stack is worth looking at.
#[derive(Debug)]
pub struct DeployedStack {
    pub name: String,
    /// The `$default` stage through the emulator's API Gateway, no trailing slash.
    pub api_url: String,
    pub outputs: StackOutputs,
    pub status: String,
    pub deploy_seconds: f64,
    user_service_url: String,
}

/// The emulator, when it runs Lambda functions (MiniStack or LocalStack). Otherwise (moto)
/// prints why the calling test is skipped and returns `None`, unless [`REQUIRE_ENV`] is set,
/// which makes it a failure.
pub async fn lambda_emulator(test: &str) -> Option<Emulator> {
    let emulator = Emulator::connect().await;
    let http = crate::http_client_builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("an HTTP client");
    for health in ["/_ministack/health", "/_localstack/health"] {
        let url = format!("{}{health}", emulator.endpoint.trim_end_matches('/'));
        if let Ok(response) = http.get(&url).send().await {
            if response.status().is_success() {
                return Some(emulator);
            }
        }
    }
    let why = format!(
        "{test}: the emulator at {} runs no Lambda functions (moto?); run `make test` (MiniStack) to include it",
        emulator.endpoint
    );
    if std::env::var(REQUIRE_ENV).is_ok_and(|v| v == "1") {
        panic!("{why}, and {REQUIRE_ENV}=1 requires it");
    }
    eprintln!("SKIPPED {why}");
    None
}

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the tests crate sits in the workspace")
        .to_path_buf()
}

fn host_architecture() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

/// Runs infra/deploy-local.sh with `args` against `endpoint`; its stdout on success.
fn deploy_local(endpoint: &str, args: &[String]) -> String {
    let root = repo_root();
    let out = Command::new("bash")
        .arg(root.join("infra/deploy-local.sh"))
        .args(args)
        .env("AWS_ENDPOINT_URL", endpoint)
        .env("AWS_REGION", "us-east-1")
        .current_dir(&root)
        .output()
        .expect("run bash infra/deploy-local.sh");
    assert!(
        out.status.success(),
        "infra/deploy-local.sh {} failed ({}):\n{}",
        args.first().map(String::as_str).unwrap_or(""),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("deploy-local prints UTF-8")
}

impl DeployedStack {
    /// Deploys a new stack (name from `prefix`) whose ingest trusts `user_service_url`, with
    /// `params` on top of the required ones.
    pub async fn deploy(
        emulator: &Emulator,
        prefix: &str,
        user_service_url: &str,
        params: &[(&str, &str)],
    ) -> Self {
        let name = unique_name(prefix);
        Self::deploy_named(emulator, name, user_service_url, params).await
    }

    async fn deploy_named(
        emulator: &Emulator,
        name: String,
        user_service_url: &str,
        params: &[(&str, &str)],
    ) -> Self {
        let mut args: Vec<String> = vec![
            "deploy".into(),
            "--stack".into(),
            name.clone(),
            "--ingest".into(),
            workspace_binary("ingest").display().to_string(),
            "--worker".into(),
            workspace_binary("worker").display().to_string(),
        ];
        let required = [
            ("UserServiceUrl", user_service_url),
            ("CursorSigningKey", TEST_CURSOR_KEY),
            ("Architecture", host_architecture()),
        ];
        for (key, value) in required.iter().chain(params) {
            args.push("--param".into());
            args.push(format!("{key}={value}"));
        }
        let endpoint = emulator.endpoint.clone();
        let stdout = tokio::task::spawn_blocking(move || deploy_local(&endpoint, &args))
            .await
            .expect("the deploy task ran");
        let result: DeployResult = serde_json::from_str(&stdout)
            .unwrap_or_else(|e| panic!("deploy-local printed no result ({e}):\n{stdout}"));
        Self {
            name,
            api_url: result.api_url,
            outputs: result.outputs,
            status: result.status,
            deploy_seconds: result.deploy_seconds,
            user_service_url: user_service_url.to_owned(),
        }
    }

    /// Updates this stack in place with `params` changed (the rest as deployed).
    pub async fn update(&self, emulator: &Emulator, params: &[(&str, &str)]) -> Self {
        Self::deploy_named(emulator, self.name.clone(), &self.user_service_url, params).await
    }

    /// Deletes the stack (the template retains the table).
    pub async fn delete(&self, emulator: &Emulator) {
        let args = vec!["delete".into(), "--stack".into(), self.name.clone()];
        let endpoint = emulator.endpoint.clone();
        tokio::task::spawn_blocking(move || deploy_local(&endpoint, &args))
            .await
            .expect("the delete task ran");
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.api_url)
    }

    /// The worker's event source mapping as the emulator's Lambda API describes it (raw
    /// JSON), e.g. its `LastProcessingResult`.
    pub async fn worker_event_source_mapping(&self, emulator: &Emulator) -> serde_json::Value {
        let url = format!(
            "{}/2015-03-31/event-source-mappings/?FunctionName={}",
            emulator.endpoint.trim_end_matches('/'),
            self.outputs.worker_function_name
        );
        let response = crate::http_client_builder()
            .build()
            .expect("an HTTP client")
            .get(url)
            .header("Authorization", unsigned_authorization("lambda"))
            .send()
            .await
            .expect("ListEventSourceMappings on the emulator");
        let body: serde_json::Value = response.json().await.expect("a JSON answer");
        body["EventSourceMappings"]
            .as_array()
            .and_then(|mappings| mappings.first())
            .cloned()
            .unwrap_or_else(|| panic!("no event source mapping for the worker: {body}"))
    }

    /// The EMF documents `function` (one of this stack's) wrote from `since_unix_ms` on, read
    /// from its log group in the emulator's CloudWatch Logs, where MiniStack writes each
    /// invocation's output (one stream an invocation). Empty when it wrote none.
    pub async fn function_metrics(
        &self,
        emulator: &Emulator,
        function: &str,
        since_unix_ms: u64,
    ) -> Vec<EmfRecord> {
        let group = format!("/aws/lambda/{function}");
        let http = crate::http_client_builder()
            .timeout(Duration::from_secs(120))
            .build()
            .expect("an HTTP client");
        let mut records = Vec::new();
        // The emulator's FilterLogEvents answers at most 10,000 events and no nextToken: the
        // next page starts at the last page's last timestamp, and the events seen at that
        // timestamp are skipped (each invocation has a stream of its own, so stream and
        // message tell them apart).
        let mut start = since_unix_ms;
        let mut seen_at_start: HashSet<(String, String)> = HashSet::new();
        loop {
            let body = serde_json::json!({
                "logGroupName": group,
                "startTime": start,
                "filterPattern": "\"_aws\"",
                "limit": FILTER_LIMIT,
            });
            let response = http
                .post(emulator.endpoint.trim_end_matches('/'))
                .header("Authorization", unsigned_authorization("logs"))
                .header("X-Amz-Target", "Logs_20140328.FilterLogEvents")
                .header("Content-Type", "application/x-amz-json-1.1")
                .body(body.to_string())
                .send()
                .await
                .expect("FilterLogEvents on the emulator");
            let status = response.status();
            let page: serde_json::Value = response.json().await.expect("a JSON answer");
            if status.as_u16() == 400 && page.to_string().contains("ResourceNotFound") {
                // No invocation yet, so no log group.
                return records;
            }
            assert!(status.is_success(), "FilterLogEvents: {status} {page}");
            let events = page["events"].as_array().cloned().unwrap_or_default();
            let full = events.len() >= FILTER_LIMIT;
            let last = events
                .last()
                .and_then(|e| e["timestamp"].as_u64())
                .unwrap_or(start);
            let mut at_last = HashSet::new();
            let mut fresh = 0;
            for event in &events {
                let key = (
                    event["logStreamName"].as_str().unwrap_or("").to_owned(),
                    event["message"].as_str().unwrap_or("").to_owned(),
                );
                let timestamp = event["timestamp"].as_u64().unwrap_or(0);
                if timestamp == start && seen_at_start.contains(&key) {
                    continue;
                }
                fresh += 1;
                if let Some(record) = emf::parse_line(&key.1) {
                    records.push(record);
                }
                if timestamp == last {
                    at_last.insert(key);
                }
            }
            // A full page of events all seen before cannot be paged past: stop, with what
            // was read (only possible with more than 10,000 EMF lines in one millisecond).
            if !full || fresh == 0 {
                return records;
            }
            if last == start {
                seen_at_start.extend(at_last);
            } else {
                seen_at_start = at_last;
            }
            start = last;
        }
    }
}

/// What the emulator's FilterLogEvents answers at most per call.
const FILTER_LIMIT: usize = 10_000;

/// An Authorization header naming `service` for calls made without the SDK: the emulator
/// routes by it and does not check signatures.
fn unsigned_authorization(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/{service}/aws4_request, SignedHeaders=host, Signature=0"
    )
}
