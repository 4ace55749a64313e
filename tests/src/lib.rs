//! Test-only helpers: emulator clients, per-test queues and tables, a User Service stub on
//! loopback, development tokens, and `spawn_app()` for the ingest API on a real socket.
//!
//! Integration tests talk to a real AWS emulator over HTTP (`AWS_ENDPOINT_URL`, default
//! `http://127.0.0.1:4566`); nothing here mocks AWS.

pub mod deployed_stack;
pub mod dev_tokens;
pub mod emf;
pub mod emulator;
pub mod fault_proxy;
pub mod jwks_issuer;
pub mod runtime_api;
pub mod spike_chart;
pub mod user_service_stub;
pub mod worker_harness;
pub mod workload;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ingest::settings::IngestSettings;
use serde_json::Value;

pub use dev_tokens::DevTokens;
pub use emulator::{Emulator, TestResources};
pub use fault_proxy::{FaultProxy, Faults, Outage, ProxyStats, SentMessage};
pub use jwks_issuer::JwksIssuer;
pub use user_service_stub::{StubBehavior, UserServiceStub};

/// A running ingest API on 127.0.0.1, with its own queue, DLQ and table in the emulator and
/// its own User Service stub.
pub struct TestApp {
    pub address: SocketAddr,
    pub http: reqwest::Client,
    pub resources: TestResources,
    pub user_service: UserServiceStub,
    pub tokens: DevTokens,
    /// The token issuer ingest trusts when the suite runs with `TEST_AUTH_MODE=jwks`.
    pub issuer: Option<JwksIssuer>,
    pub emulator: Emulator,
}

/// The auth mode the shared helpers start ingest in: `TEST_AUTH_MODE=jwks` runs the API
/// tests (write, read, batch, idempotency, bad inputs) against a [`JwksIssuer`] instead of
/// the User Service stub; the tests that are about the User Service itself say so and skip.
pub fn jwks_mode_under_test() -> bool {
    std::env::var("TEST_AUTH_MODE").is_ok_and(|mode| mode == "jwks")
}

/// True (after printing why) when the suite runs in jwks mode: for tests of the User
/// Service's own behaviour, which does not exist there (auth_jwks.rs covers jwks mode).
/// The reason also goes to `SKIPPED_TESTS_FILE` when set (scripts/test.sh sets it and prints
/// the list after the run: cargo test shows nothing a passing test wrote).
pub fn skip_unless_user_service_mode(test: &str) -> bool {
    let skip = jwks_mode_under_test();
    if skip {
        let why = format!("{test}: about the User Service, skipped with TEST_AUTH_MODE=jwks");
        eprintln!("{why}");
        if let Some(path) = std::env::var_os("SKIPPED_TESTS_FILE") {
            use std::io::Write;
            let _ = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut file| file.write_all(format!("{why}\n").as_bytes()));
        }
    }
    skip
}

/// The token side of the auth mode under test, for tests that start ingest themselves (a
/// Lambda-mode process, a deployed stack) rather than through [`spawn_app`]: a User Service
/// stub and, with `TEST_AUTH_MODE=jwks`, a [`JwksIssuer`] ingest is pointed at instead.
pub struct AuthUnderTest {
    pub user_service: UserServiceStub,
    pub issuer: Option<JwksIssuer>,
    tokens: DevTokens,
}

impl AuthUnderTest {
    /// A stub accepting tokens of [`DevTokens::default`], and the issuer in jwks mode.
    pub async fn start() -> Self {
        Self::with_tokens(DevTokens::default()).await
    }

    /// Like [`Self::start`], minting user-service-mode tokens with `tokens`.
    pub async fn with_tokens(tokens: DevTokens) -> Self {
        let (issuer, _) = issuer_under_test().await;
        Self {
            user_service: user_service_for_mode().await,
            issuer,
            tokens,
        }
    }

    /// ingest's auth variables: `USER_SERVICE_URL` (the stub's), and in jwks mode the
    /// issuer's ([`JwksIssuer::ingest_env`]).
    pub fn ingest_env(&self) -> Vec<(String, String)> {
        let mut env = vec![("USER_SERVICE_URL".to_owned(), self.user_service.url.clone())];
        if let Some(issuer) = &self.issuer {
            env.extend(
                issuer
                    .ingest_env()
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v)),
            );
        }
        env
    }

    /// The infra/template.yaml parameters for this mode (none for the default, user-service).
    pub fn stack_params(&self) -> Vec<(&'static str, String)> {
        match &self.issuer {
            Some(issuer) => vec![
                ("AuthMode", "jwks".to_owned()),
                ("AuthIssuer", issuer.url.clone()),
                ("AuthClientIds", jwks_issuer::CLIENT_ID.to_owned()),
            ],
            None => Vec::new(),
        }
    }

    /// A token for `user` (no service scope) that ingest accepts in this mode.
    pub fn token_for(&self, user: &str) -> String {
        match &self.issuer {
            Some(issuer) => issuer.token_for(user),
            None => self.tokens.mint(user, &[], Duration::from_secs(3600)),
        }
    }
}

/// The User Service stub for the auth mode under test. In jwks mode ingest must never call
/// it, so there it answers 500: a test that passes in jwks mode cannot have been let through by
/// the stub (as it would be if ingest had quietly run in user-service mode).
async fn user_service_for_mode() -> UserServiceStub {
    let stub = UserServiceStub::start().await;
    if jwks_mode_under_test() {
        stub.set(StubBehavior::Status(500));
    }
    stub
}

/// An issuer and the settings that trust it, when [`jwks_mode_under_test`].
async fn issuer_under_test() -> (Option<JwksIssuer>, Vec<(&'static str, String)>) {
    if jwks_mode_under_test() {
        let issuer = JwksIssuer::start().await;
        let env = issuer.ingest_env();
        (Some(issuer), env)
    } else {
        (None, Vec::new())
    }
}

/// Settings for a test ingest pointed at `resources` and `user_service`.
pub fn ingest_settings(
    resources: &TestResources,
    user_service: &UserServiceStub,
) -> IngestSettings {
    ingest_settings_with_env(resources, user_service, &[])
}

/// Like [`ingest_settings`], with more variables read exactly as the process environment
/// would be (`extra` wins over the test defaults).
pub fn ingest_settings_with_env(
    resources: &TestResources,
    user_service: &UserServiceStub,
    extra: &[(&str, &str)],
) -> IngestSettings {
    let defaults = [
        ("QUEUE_URL", resources.queue_url.as_str()),
        ("TABLE_NAME", resources.table_name.as_str()),
        ("USER_SERVICE_URL", user_service.url.as_str()),
        ("USER_SERVICE_TIMEOUT_MS", "500"),
        ("SQS_SEND_TIMEOUT_MS", "3000"),
        // The emulator is shared by parallel tests on small machines: allow for stalls.
        ("DYNAMODB_READ_TIMEOUT_MS", "10000"),
    ];
    let env: std::collections::HashMap<String, String> = defaults
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    IngestSettings::from_source(&env).expect("test settings are valid")
}

/// Starts ingest on an ephemeral port against fresh resources.
pub async fn spawn_app() -> TestApp {
    spawn_app_with(|_| {}).await
}

/// Like [`spawn_app`], with settings read from the test defaults plus `env`.
pub async fn spawn_app_with_env(env: &[(&str, &str)]) -> TestApp {
    let emulator = Emulator::connect().await;
    let sdk = emulator.sdk.clone();
    let resources = emulator.create_resources().await;
    let user_service = user_service_for_mode().await;
    let (issuer, issuer_env) = issuer_under_test().await;
    let env: Vec<(&str, &str)> = issuer_env
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(env.iter().copied())
        .collect();
    let settings = ingest_settings_with_env(&resources, &user_service, &env);
    serve_app(emulator, &sdk, resources, user_service, settings, issuer).await
}

/// Like [`spawn_app`] in `AUTH_MODE=jwks`, trusting `issuer` ([`JwksIssuer::ingest_env`]),
/// with `extra` settings on top.
pub async fn spawn_app_trusting(issuer: &JwksIssuer, extra: &[(&str, &str)]) -> TestApp {
    let env = issuer.ingest_env();
    let env: Vec<(&str, &str)> = env
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain(extra.iter().copied())
        .collect();
    spawn_app_with_env(&env).await
}

/// Like [`spawn_app`], with a chance to adjust the settings first.
pub async fn spawn_app_with(adjust: impl FnOnce(&mut IngestSettings)) -> TestApp {
    let emulator = Emulator::connect().await;
    let sdk = emulator.sdk.clone();
    start_app(emulator, &sdk, adjust).await
}

/// Like [`spawn_app_with`], but ingest's AWS clients come from `sdk` (a [`FaultProxy`]'s, say)
/// while the test's own clients keep talking to the emulator directly.
pub async fn spawn_app_through(
    sdk: &aws_config::SdkConfig,
    adjust: impl FnOnce(&mut IngestSettings),
) -> TestApp {
    start_app(Emulator::connect().await, sdk, adjust).await
}

/// Fresh resources and User Service stub, then ingest (its AWS clients from `sdk`) on an
/// ephemeral port.
async fn start_app(
    emulator: Emulator,
    sdk: &aws_config::SdkConfig,
    adjust: impl FnOnce(&mut IngestSettings),
) -> TestApp {
    let resources = emulator.create_resources().await;
    let user_service = user_service_for_mode().await;
    let (issuer, issuer_env) = issuer_under_test().await;
    let env: Vec<(&str, &str)> = issuer_env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let mut settings = ingest_settings_with_env(&resources, &user_service, &env);
    adjust(&mut settings);
    serve_app(emulator, sdk, resources, user_service, settings, issuer).await
}

/// Installs (once per test process) a tracing subscriber writing to
/// `target/<profile>/test-logs/in-process-<test binary>-<pid>.log`: ingest served in-process
/// ([`spawn_app`] and friends) logs what it would log in production (`info`, ingest and platform
/// at `debug`) to a file that scripts/scan-test-logs.py scans after the suite, as it scans the
/// started binaries' logs. Without it the in-process apps' log lines went nowhere, and a token
/// they logged could not be caught.
pub fn capture_in_process_logs() {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;

    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let exe = std::env::current_exe().expect("the test executable has a path");
        let name = exe
            .file_stem()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let Some(dir) = exe
            .parent()
            .and_then(|deps| deps.parent())
            .map(|profile| profile.join("test-logs"))
        else {
            return;
        };
        std::fs::create_dir_all(&dir).expect("create target/<profile>/test-logs");
        let path = dir.join(format!("in-process-{name}-{}.log", std::process::id()));
        let file = std::fs::File::create(&path).expect("create the in-process log");
        let filter = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("ingest", LevelFilter::DEBUG)
            .with_target("platform", LevelFilter::DEBUG);
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(file))
            .with_filter(filter);
        // A test that installed its own subscriber keeps it.
        let _ = tracing_subscriber::registry().with(layer).try_init();
    });
}

async fn serve_app(
    emulator: Emulator,
    sdk: &aws_config::SdkConfig,
    resources: TestResources,
    user_service: UserServiceStub,
    settings: IngestSettings,
    issuer: Option<JwksIssuer>,
) -> TestApp {
    capture_in_process_logs();
    let state = ingest::AppState::from_settings(&settings, sdk).expect("ingest state builds");
    let router = ingest::server_app(state, &settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let address = listener.local_addr().expect("local address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, router).await;
    });
    TestApp {
        address,
        http: http_client_builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("reqwest client"),
        resources,
        user_service,
        tokens: DevTokens::default(),
        issuer,
        emulator,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// A token for `user` (no service scope).
    pub fn token_for(&self, user: &str) -> String {
        match &self.issuer {
            Some(issuer) => issuer.token_for(user),
            None => self.tokens.mint(user, &[], Duration::from_secs(3600)),
        }
    }

    /// A token carrying the service scope.
    pub fn service_token(&self) -> String {
        match &self.issuer {
            Some(issuer) => {
                let mut claims = issuer.claims_for("batch-importer");
                claims["scope"] = serde_json::json!("credit-scores:service");
                issuer.sign("key-1", &claims)
            }
            None => self.tokens.mint(
                "batch-importer",
                &["credit-scores:service"],
                Duration::from_secs(3600),
            ),
        }
    }

    /// POSTs a JSON body as `user`'s own token would.
    pub async fn post_score(&self, user: &str, body: &Value) -> reqwest::Response {
        self.post_score_raw(
            user,
            &self.token_for(user),
            "application/json",
            body.to_string(),
        )
        .await
    }

    pub async fn post_score_raw(
        &self,
        user: &str,
        token: &str,
        content_type: &str,
        body: String,
    ) -> reqwest::Response {
        self.http
            .post(self.url(&format!("/v1/users/{user}/credit-scores")))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request reaches ingest")
    }

    pub async fn get(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request reaches ingest")
    }

    /// Every message now on this app's queue (received and left in flight).
    pub async fn drain_queue(&self) -> Vec<aws_sdk_sqs::types::Message> {
        self.emulator.receive_all(&self.resources.queue_url).await
    }
}

/// A valid score body, reported an hour ago.
pub fn score_body(bureau: &str, score: u64) -> Value {
    let reported = time::OffsetDateTime::now_utc() - time::Duration::hours(1);
    serde_json::json!({
        "bureau": bureau,
        "score": score,
        "reportedAt": contract::rfc3339::format_utc_millis(reported),
    })
}

/// The absolute path of a workspace binary built next to this crate's own binaries.
pub fn workspace_binary(name: &str) -> std::path::PathBuf {
    // PIPELINE_BIN_DIR: binaries of another profile (the soak runs release builds). Otherwise
    // test executables live in target/<profile>/deps, binaries one level up.
    let exe = std::env::current_exe().expect("the test executable has a path");
    let profile_dir = match std::env::var_os("PIPELINE_BIN_DIR") {
        Some(dir) => std::path::PathBuf::from(dir),
        None => exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("the test executable sits in target/<profile>/deps")
            .to_path_buf(),
    };
    let path = profile_dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: build the binaries first (`cargo build --workspace --bins`)",
        path.display()
    );
    path
}

/// A reqwest client builder for tests (reqwest needs the process's rustls provider first).
pub fn http_client_builder() -> reqwest::ClientBuilder {
    platform::aws::install_crypto_provider();
    reqwest::Client::builder()
}

/// Waits (bounded) until `check` returns `Some`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Shared so a test may hand the same handle to several tasks.
pub type Shared<T> = Arc<T>;

/// A workspace binary running as a child process, killed when dropped. Its output goes to a
/// log file under `target/test-logs/` for post-mortems.
pub struct RunningBinary {
    pub child: std::process::Child,
    pub log_path: std::path::PathBuf,
}

impl RunningBinary {
    /// SIGKILL, no chance to clean up: what a crash or an OOM kill looks like.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The log so far, for assertion messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }
}

impl Drop for RunningBinary {
    fn drop(&mut self) {
        self.kill_hard();
    }
}

/// Starts a workspace binary with exactly `env` on top of PATH/HOME (no inherited AWS
/// settings leak in).
pub fn spawn_binary(name: &str, args: &[&str], env: &[(String, String)]) -> RunningBinary {
    spawn_binary_at(&workspace_binary(name), args, env)
}

/// [`spawn_binary`] for a binary at `path` (the benchmarks start other profiles' builds).
pub fn spawn_binary_at(
    path: &std::path::Path,
    args: &[&str],
    env: &[(String, String)],
) -> RunningBinary {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let log_dir = path
        .parent()
        .map(|p| p.join("test-logs"))
        .expect("binaries live in a target directory");
    std::fs::create_dir_all(&log_dir).expect("create target/test-logs");
    let log_path = log_dir.join(format!("{name}-{}.log", ulid::Ulid::new()));
    let log = std::fs::File::create(&log_path).expect("create a log file");
    let mut command = std::process::Command::new(path);
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("RUST_LOG", "info")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(std::process::Stdio::null())
        .stdout(log.try_clone().expect("clone log handle"))
        .stderr(log);
    let child = command
        .spawn()
        .unwrap_or_else(|e| panic!("starting {}: {e}", path.display()));
    RunningBinary { child, log_path }
}

/// The environment the Lambda runtime gives a function, pointed at a fake Runtime API, plus
/// what the template sets for every function: `SSL_CERT_FILE` names this machine's CA bundle
/// as the template names provided.al2023's.
pub fn lambda_env(runtime_api: &str) -> Vec<(String, String)> {
    let bundle = [
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/certs/ca-certificates.crt",
    ]
    .into_iter()
    .find(|path| std::path::Path::new(path).exists());
    bundle
        .map(|path| ("SSL_CERT_FILE".to_owned(), path.to_owned()))
        .into_iter()
        .chain(lambda_runtime_env(runtime_api))
        .collect()
}

fn lambda_runtime_env(runtime_api: &str) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api),
        ("AWS_LAMBDA_FUNCTION_NAME", "credit-scores-test"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/28/[$LATEST]test"),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            "/aws/lambda/credit-scores-test",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// Runs `command` to its end, capturing stdout and stderr; kills it and returns None when it
/// is still running after `timeout` (a test of "it terminates" must not hang itself).
pub fn run_with_timeout(
    mut command: std::process::Command,
    timeout: Duration,
) -> Option<std::process::Output> {
    use std::io::Read;
    let mut child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("starting {command:?}: {e}"));
    // Drain both pipes on threads so a chatty child never blocks on a full pipe.
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let out = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let deadline = std::time::Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("waiting for the child") {
            break Some(status);
        }
        if std::time::Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let stdout = out.join().unwrap_or_default();
    let stderr = err.join().unwrap_or_default();
    status.map(|status| std::process::Output {
        status,
        stdout,
        stderr,
    })
}
