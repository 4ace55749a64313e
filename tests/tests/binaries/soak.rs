//! The spike test (`make soak`, not in the default run): many concurrent clients write through
//! the `ingest` binary (server mode) while `worker` binaries in poller mode, at their default
//! batching settings, drain one queue as the writes arrive. With SOAK_TARGET=deployed (`make
//! soak-deployed`) the same clients write through infra/template.yaml deployed into MiniStack
//! instead: the API Gateway route, the ingest Lambda, the SQS event source mapping and the
//! worker Lambda (20,000 writes by default; no SendMessage baseline; SOAK_STACK_PARAMS, e.g.
//! `WorkerMaximumConcurrency=20`, changes stack parameters).
//!
//! It asserts that every write was answered 2xx, or 503 and then retried with the same
//! `Idempotency-Key` until 2xx (nothing else, no transport errors), that every accepted write
//! is exactly one item in the table (none missing, none doubled, none unexpected, each with
//! the content sent) and that the DLQ is empty. Before the writes, a short phase of the same
//! number of clients calling SendMessage directly on the same emulator gives the baseline the
//! ingest rate is compared with (the ratio is printed; SOAK_MIN_RATIO makes it an assertion).
//!
//! Sized for a million writes on a 2-core machine: the writes are made on demand from their
//! index (`workload::score_message`), latencies go into fixed-size histograms, the per-write
//! state is one byte for "accepted" and one for "items seen", and the table is read back
//! projecting only the attributes compared: a Query per user partition plus the table's item
//! count (emulators; MiniStack sorts the whole table for every Scan page), or with
//! SOAK_SCAN_SEGMENTS=n a parallel Scan of n segments (for AWS, where the count is stale).
//!
//! Knobs (environment): SOAK_TARGET (server, or deployed), SOAK_STACK_PARAMS (deployed: space
//! separated `Key=Value` stack parameters), SOAK_WRITES (100000; 20000 deployed), SOAK_CLIENTS
//! (32), SOAK_USERS (10000),
//! SOAK_WORKERS (2 poller processes per queue), SOAK_SHARDS (1: one queue; moto needs more,
//! see docs/emulators.md), SOAK_SQS_SEND_TIMEOUT_MS (3000, ingest's default),
//! SOAK_BASELINE_SECONDS (10; 0 skips the baseline), SOAK_MIN_RATIO (unset: the ratio is
//! reported, not asserted), SOAK_MAX_ATTEMPTS (20 per write), SOAK_SCAN_SEGMENTS (0: by partition),
//! SOAK_TIMEOUT_SECONDS (1200: the bound on the drain after the last write is answered),
//! SOAK_PROBE_DEPTH (0: the single-queue depth probe, for moto), SOAK_BREAK (`drop`: delete
//! one written item before the check; `double`: send one write again without its key; either
//! must fail the test, to show the check catches it).
//!
//! Needs the binaries built: `cargo build --workspace --bins` (scripts/soak.sh does it).
//!
//! Draws the run as an SVG chart (accepted/s, queue depth, written/s, end-to-end lag p50, p99
//! and max) in target/soak/: `spike-<unix time>.svg` and the latest as `spike.svg`. The lag,
//! and written/s when present, come from the pollers' EMF metric lines on stdout
//! (`METRICS=emf`, flushed every second), or in deployed mode from the worker Lambda's, one
//! document per invocation, read from the emulator's CloudWatch Logs after the drain.

use std::collections::BTreeMap;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_dynamodb::types::AttributeValue;
use contract::message::ScoreMessageV1;
use pipeline_tests::deployed_stack::{lambda_emulator, DeployedStack};
use pipeline_tests::emf::{self, EmfRecord};
use pipeline_tests::spike_chart::{self, ChartPoint};
use pipeline_tests::workload::{message_index, score_message, score_messages};
use pipeline_tests::{workspace_binary, DevTokens, Emulator, TestResources, UserServiceStub};
use time::OffsetDateTime;
use tokio::time::Instant;

const PREFIX: &str = "soak";

fn knob(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A child process killed when the test ends, however it ends.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `binary`; its stdout is dropped, or with `metrics` read for EMF documents.
fn spawn(
    binary: &str,
    env: Vec<(String, String)>,
    metrics: Option<&Arc<Mutex<Vec<EmfRecord>>>>,
) -> Running {
    let mut command = Command::new(workspace_binary(binary));
    command
        .envs(env)
        .env("RUST_LOG", "warn")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
    if metrics.is_some() {
        command
            .env("METRICS", "emf")
            .env("METRICS_FLUSH_SECONDS", "1")
            .stdout(Stdio::piped());
    }
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("start {binary}: {e}"));
    if let (Some(metrics), Some(stdout)) = (metrics, child.stdout.take()) {
        // Detached: the thread ends at EOF, when the child is killed.
        emf::collect(stdout, metrics.clone());
    }
    Running(child)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// The writes of one run, made on demand from their index.
struct Writes {
    count: usize,
    users: usize,
    /// Far enough in the past that the latest `reportedAt` is too.
    base: OffsetDateTime,
}

impl Writes {
    fn new(count: usize, users: usize) -> Self {
        let base = OffsetDateTime::now_utc()
            - time::Duration::days(1)
            - time::Duration::seconds(count as i64);
        Writes {
            count,
            users: users.max(1),
            base,
        }
    }

    fn message(&self, i: usize) -> ScoreMessageV1 {
        score_message(PREFIX, i, self.count, self.users, self.base)
    }

    fn user_of(&self, i: usize) -> usize {
        i % self.users
    }
}

/// Latencies in fixed log-spaced buckets (2 % wide, 0.1 ms to about 10 minutes): the same
/// memory for a thousand answers as for a million.
#[derive(Clone)]
struct Histogram {
    counts: Vec<u64>,
    total: u64,
    max: f64,
}

const BUCKETS_PER_E: f64 = 50.0;
const BUCKETS: usize = 800;

impl Histogram {
    fn new() -> Self {
        Histogram {
            counts: vec![0; BUCKETS],
            total: 0,
            max: 0.0,
        }
    }

    fn record(&mut self, ms: f64) {
        let i = ((ms * 10.0).max(1.0).ln() * BUCKETS_PER_E) as usize;
        self.counts[i.min(BUCKETS - 1)] += 1;
        self.total += 1;
        self.max = self.max.max(ms);
    }

    /// The value below which a share `p` of the recordings fall (bucket midpoint).
    fn quantile(&self, p: f64) -> f64 {
        if self.total == 0 {
            return f64::NAN;
        }
        let rank = ((self.total as f64 * p).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return (((i as f64 + 0.5) / BUCKETS_PER_E).exp() / 10.0).min(self.max);
            }
        }
        self.max
    }
}

/// What the clients saw: statuses of first attempts and of all attempts, first-attempt
/// latency over the run and per 10 s window (by completion).
struct Tally {
    first: BTreeMap<u16, usize>,
    all: BTreeMap<u16, usize>,
    latency: Histogram,
    windows: Vec<Histogram>,
}

impl Tally {
    fn new() -> Self {
        Tally {
            first: BTreeMap::new(),
            all: BTreeMap::new(),
            latency: Histogram::new(),
            windows: Vec::new(),
        }
    }

    fn record(&mut self, first: bool, status: u16, at: f64, ms: f64) {
        *self.all.entry(status).or_default() += 1;
        if !first {
            return;
        }
        *self.first.entry(status).or_default() += 1;
        self.latency.record(ms);
        let window = (at / 10.0) as usize;
        if self.windows.len() <= window {
            self.windows.resize(window + 1, Histogram::new());
        }
        self.windows[window].record(ms);
    }
}

/// How every write ended, counted by the clients.
#[derive(Default)]
struct Outcomes {
    accepted: AtomicUsize,
    /// 503 answers retried (the same key, after Retry-After).
    retried_503: AtomicUsize,
    /// No HTTP answer at all (refused, reset, timed out); retried, but a failure.
    unanswered: AtomicUsize,
    /// An answer neither 2xx nor 503: the write is not retried, and the test fails.
    refused: AtomicUsize,
    /// Writes still not accepted after SOAK_MAX_ATTEMPTS.
    gave_up: AtomicUsize,
}

/// One second of the run, as sampled (depths summed over the queues).
struct Sample {
    at: f64,
    accepted: usize,
    visible: u64,
    in_flight: u64,
    items: i64,
}

async fn item_count(emulator: &Emulator, table: &str) -> i64 {
    emulator
        .dynamodb
        .describe_table()
        .table_name(table)
        .send()
        .await
        .ok()
        .and_then(|o| o.table)
        .and_then(|t| t.item_count)
        .unwrap_or(-1)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * p).round() as usize;
    sorted[i]
}

fn sorted(mut values: Vec<f64>) -> Vec<f64> {
    values.sort_by(f64::total_cmp);
    values
}

/// One queue with its DLQ and table, one ingest process and its worker pollers. One by
/// default; SOAK_SHARDS > 1 spreads users over several, for moto (docs/emulators.md).
struct Shard {
    resources: TestResources,
    base: String,
    _ingest: Running,
    _workers: Vec<Running>,
}

async fn start_shard(
    emulator: &Emulator,
    user_service: &UserServiceStub,
    workers: usize,
    send_timeout_ms: usize,
    metrics: &Arc<Mutex<Vec<EmfRecord>>>,
) -> Shard {
    let resources = emulator.create_resources_with(60, 5).await;
    let port = free_port();
    let mut ingest_env = resources.env(emulator);
    ingest_env.extend([
        ("USER_SERVICE_URL".to_owned(), user_service.url.clone()),
        ("PORT".to_owned(), port.to_string()),
        ("BIND_ADDRESS".to_owned(), "127.0.0.1".to_owned()),
        (
            "SQS_SEND_TIMEOUT_MS".to_owned(),
            send_timeout_ms.to_string(),
        ),
    ]);
    Shard {
        _ingest: spawn("ingest", ingest_env, None),
        // The poller's own defaults (POLLER_RECEIVE_LOOPS, POLLER_BATCH_SIZE, ...): nothing set.
        _workers: (0..workers)
            .map(|_| spawn("worker", resources.env(emulator), Some(metrics)))
            .collect(),
        base: format!("http://127.0.0.1:{port}"),
        resources,
    }
}

/// Where the spike goes (`SOAK_TARGET`).
#[derive(Debug, Clone, Copy, PartialEq)]
enum Target {
    /// `server` (the default): `ingest` in server mode, `worker` binaries in poller mode.
    Server,
    /// `deployed`: infra/template.yaml deployed into the emulator (MiniStack): the API
    /// Gateway route, the ingest Lambda, the SQS event source mapping, the worker Lambda.
    Deployed,
}

impl Target {
    fn from_env() -> Self {
        match std::env::var("SOAK_TARGET").unwrap_or_default().as_str() {
            "" | "server" => Target::Server,
            "deployed" => Target::Deployed,
            other => panic!("SOAK_TARGET is server or deployed, not {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "spike test: minutes long; run with `make soak` (`make soak-deployed` for the deployed stack)"]
async fn a_spike_of_writes_is_absorbed_by_the_queue_and_every_write_lands_once() {
    match Target::from_env() {
        Target::Server => spike_through_server_processes().await,
        Target::Deployed => spike_through_the_deployed_stack().await,
    }
}

/// The knobs both targets share.
struct Settings {
    writes: Arc<Writes>,
    clients: usize,
    max_attempts: usize,
    check_by: CheckBy,
    /// The bound on the drain after the last write is answered.
    bound: Duration,
    breakage: String,
}

impl Settings {
    fn from_env(default_writes: usize) -> Self {
        Settings {
            writes: Arc::new(Writes::new(
                knob("SOAK_WRITES", default_writes),
                knob("SOAK_USERS", 10_000),
            )),
            clients: knob("SOAK_CLIENTS", 32).max(1),
            max_attempts: knob("SOAK_MAX_ATTEMPTS", 20).max(1),
            check_by: match knob("SOAK_SCAN_SEGMENTS", 0) {
                0 => CheckBy::Partitions,
                segments => CheckBy::Scan(segments),
            },
            bound: Duration::from_secs(knob("SOAK_TIMEOUT_SECONDS", 1_200) as u64),
            breakage: std::env::var("SOAK_BREAK").unwrap_or_default(),
        }
    }

    /// One HTTP client for all the clients' connections.
    fn http(&self) -> reqwest::Client {
        pipeline_tests::http_client_builder()
            .pool_max_idle_per_host(self.clients)
            .timeout(Duration::from_secs(30))
            .build()
            .expect("HTTP client")
    }

    /// One token per user that writes, minted once (a million mints would cost the clients'
    /// CPU; a small run needs fewer tokens than users).
    fn tokens(&self) -> Arc<Vec<String>> {
        let minter = DevTokens::default();
        Arc::new(
            (0..self.writes.users.min(self.writes.count))
                .map(|u| {
                    let user = self.writes.message(u).user_id;
                    minter.mint(&user, &[], Duration::from_secs(4 * 3600))
                })
                .collect(),
        )
    }
}

/// The spike test sends only to an emulator on loopback.
fn assert_local(emulator: &Emulator) {
    assert!(
        emulator.endpoint.contains("127.0.0.1") || emulator.endpoint.contains("localhost"),
        "the spike test sends only to a local emulator, not {}",
        emulator.endpoint
    );
}

/// What the writes go through: the base URL the writes of each shard are POSTed to, and each
/// shard's queue, DLQ and table (one shard unless SOAK_SHARDS says otherwise).
struct Pipeline {
    bases: Vec<String>,
    resources: Vec<TestResources>,
}

/// The spike as it ran: what the clients saw, and the queues and tables every second.
struct Spike {
    started_unix_ms: u64,
    /// From the first write to the last answer.
    ingest_time: Duration,
    /// From the first write to the queues empty and every accepted write in the tables.
    drain_time: Duration,
    outcomes: Arc<Outcomes>,
    accepted_ids: Arc<Vec<AtomicBool>>,
    tally: Tally,
    timeline: Vec<Sample>,
}

impl Spike {
    fn accepted(&self) -> usize {
        self.outcomes.accepted.load(Ordering::Relaxed)
    }
}

async fn spike_through_server_processes() {
    let settings = Settings::from_env(100_000);
    let writes = &settings.writes;
    let clients = settings.clients;
    let shard_count = knob("SOAK_SHARDS", 1).max(1);
    let workers = knob("SOAK_WORKERS", 2).max(1);
    let send_timeout_ms = knob("SOAK_SQS_SEND_TIMEOUT_MS", 3_000);
    let baseline_seconds = knob("SOAK_BASELINE_SECONDS", 10);
    let emulator = Emulator::connect().await;
    assert_local(&emulator);
    println!(
        "soak: {} writes by {clients} concurrent clients, {} users, through {shard_count} ingest \
         process(es) (one queue each), {workers} worker poller(s) per queue at their defaults, \
         SQS send timeout {send_timeout_ms} ms, emulator {}; binaries {}",
        writes.count,
        writes.users,
        emulator.endpoint,
        workspace_binary("ingest").display()
    );

    let user_service = UserServiceStub::start().await;
    let metrics = Arc::new(Mutex::new(Vec::new()));
    let mut shards = Vec::new();
    for _ in 0..shard_count {
        shards
            .push(start_shard(&emulator, &user_service, workers, send_timeout_ms, &metrics).await);
    }
    let pipeline = Pipeline {
        bases: shards.iter().map(|s| s.base.clone()).collect(),
        resources: shards.iter().map(|s| s.resources.clone()).collect(),
    };
    let http = settings.http();
    for base in &pipeline.bases {
        wait_for_health(&http, base).await;
    }
    let tokens = settings.tokens();

    let baseline = if baseline_seconds > 0 {
        Some(direct_send_baseline(&emulator, clients, baseline_seconds, writes, None).await)
    } else {
        None
    };
    // A second reference: GetItem then SendMessage, the emulator calls ingest makes per keyed
    // write. Ingest against this shows what ingest itself (HTTP, auth, the User Service call)
    // costs; against the first, also what its idempotency read costs on a shared emulator.
    let read_then_send = if baseline_seconds > 0 {
        let table = pipeline.resources[0].table_name.clone();
        Some(direct_send_baseline(&emulator, clients, baseline_seconds, writes, Some(&table)).await)
    } else {
        None
    };

    // The pollers' EMF documents so far came from an idle queue: the run starts here.
    metrics.lock().unwrap().clear();
    let spike = run_spike(&emulator, &pipeline, &settings, &tokens, &http).await;

    let ingest_rate = spike.accepted() as f64 / spike.ingest_time.as_secs_f64();
    report(writes, clients, &spike);
    let ratio = baseline.map(|(sent, elapsed)| {
        let direct = sent as f64 / elapsed.as_secs_f64();
        let ratio = ingest_rate / direct;
        println!(
            "ingest {ingest_rate:.0} accepted/s against direct SendMessage {direct:.0}/s \
             ({sent} sends by {clients} clients in {:.1} s, same emulator, before the writes): \
             ratio {ratio:.2}, {} 0.8",
            elapsed.as_secs_f64(),
            if ratio >= 0.8 { "at least" } else { "BELOW" }
        );
        ratio
    });
    if let Some((sent, elapsed)) = read_then_send {
        let direct = sent as f64 / elapsed.as_secs_f64();
        println!(
            "ingest against direct GetItem + SendMessage {direct:.0}/s ({sent} in {:.1} s): \
             ratio {:.2}",
            elapsed.as_secs_f64(),
            ingest_rate / direct
        );
    }
    print_timeline(&spike.timeline);
    let all_metrics = std::mem::take(&mut *metrics.lock().unwrap());
    print_lag(&all_metrics);
    draw_chart(
        &format!(
            "soak: {} writes, {clients} clients, {} queue(s), {} pollers",
            writes.count,
            shards.len(),
            shards.len() * workers
        ),
        &spike,
        &all_metrics,
    );

    let probe_depth = knob("SOAK_PROBE_DEPTH", 0);
    if probe_depth > 0 {
        probe_queue_depth(&emulator, probe_depth).await;
    }
    check_every_write_landed_once(&emulator, &pipeline, &settings, &spike).await;
    if let (Some(min), Some(ratio)) = (
        std::env::var("SOAK_MIN_RATIO")
            .ok()
            .and_then(|v| v.parse::<f64>().ok()),
        ratio,
    ) {
        assert!(
            ratio >= min,
            "ingest reached {ratio:.2} of direct SendMessage, under {min}"
        );
    }
}

/// The same spike through infra/template.yaml deployed into the emulator: the writes go
/// through the API Gateway route to the ingest Lambda, the event source mapping hands the
/// queue to the worker Lambda. Lag and written/s come from the worker Lambda's EMF lines in
/// the emulator's CloudWatch Logs, read after the drain.
async fn spike_through_the_deployed_stack() {
    let settings = Settings::from_env(20_000);
    let writes = &settings.writes;
    let clients = settings.clients;
    let emulator = lambda_emulator("soak (SOAK_TARGET=deployed)")
        .await
        .expect("SOAK_TARGET=deployed needs an emulator that runs Lambda functions (MiniStack)");
    assert_local(&emulator);
    let user_service = UserServiceStub::start().await;
    // The template's defaults, but for what the caller asks (e.g. WorkerMaximumConcurrency=20).
    let extra = std::env::var("SOAK_STACK_PARAMS").unwrap_or_default();
    let params: Vec<(&str, &str)> = extra
        .split_whitespace()
        .filter_map(|p| p.split_once('='))
        .collect();
    let stack = DeployedStack::deploy(&emulator, "soak", &user_service.url, &params).await;
    println!(
        "soak (deployed): {} writes by {clients} concurrent clients, {} users, through the API \
         Gateway route of stack {} ({:.1} s to deploy, parameters {params:?}) to the ingest \
         Lambda, one queue, the worker Lambda through the event source mapping, emulator {}",
        writes.count, writes.users, stack.name, stack.deploy_seconds, emulator.endpoint
    );
    let pipeline = Pipeline {
        bases: vec![stack.api_url.clone()],
        resources: vec![TestResources {
            queue_name: stack.name.clone(),
            queue_url: stack.outputs.queue_url.clone(),
            dlq_url: stack.outputs.dead_letter_queue_url.clone(),
            table_name: stack.outputs.table_name.clone(),
        }],
    };
    let http = settings.http();
    wait_for_health(&http, &stack.api_url).await;
    let tokens = settings.tokens();

    let spike = run_spike(&emulator, &pipeline, &settings, &tokens, &http).await;

    report(writes, clients, &spike);
    print_timeline(&spike.timeline);
    let metrics = stack
        .function_metrics(
            &emulator,
            &stack.outputs.worker_function_name,
            spike.started_unix_ms,
        )
        .await;
    // One document per invocation: their Written counters should add up to the writes.
    println!(
        "\nthe worker Lambda's EMF documents since the first write: {} ({} carry Written, adding \
         up to {}; {} EndToEndLag), from its log group in the emulator's CloudWatch Logs",
        metrics.len(),
        metrics.iter().filter(|m| m.written.is_some()).count(),
        metrics.iter().filter_map(|m| m.written).sum::<f64>(),
        metrics.iter().filter(|m| !m.lag_ms.is_empty()).count()
    );
    print_lag(&metrics);
    draw_chart(
        &format!(
            "soak, deployed stack: {} writes, {clients} clients",
            writes.count
        ),
        &spike,
        &metrics,
    );
    check_every_write_landed_once(&emulator, &pipeline, &settings, &spike).await;
}

/// The spike itself: the clients POST every write (its report id as `Idempotency-Key`, a 503
/// retried with the same key), the queues and tables are sampled every second, and the run
/// waits for the drain. With SOAK_BREAK=double, write 0 is sent once more without its key.
async fn run_spike(
    emulator: &Emulator,
    pipeline: &Pipeline,
    settings: &Settings,
    tokens: &Arc<Vec<String>>,
    http: &reqwest::Client,
) -> Spike {
    let writes = &settings.writes;
    let max_attempts = settings.max_attempts;
    let next = Arc::new(AtomicUsize::new(0));
    let outcomes = Arc::new(Outcomes::default());
    let accepted_ids: Arc<Vec<AtomicBool>> =
        Arc::new((0..writes.count).map(|_| AtomicBool::new(false)).collect());
    let tally = Arc::new(Mutex::new(Tally::new()));
    let bases = Arc::new(pipeline.bases.clone());
    let started = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());

    let timeline = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let emulator = emulator.clone();
        let resources = pipeline.resources.clone();
        let outcomes = outcomes.clone();
        let timeline = timeline.clone();
        tokio::spawn(async move {
            sample_every_second(&emulator, &resources, &outcomes, started, &timeline).await
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..settings.clients {
        let (http, bases, writes, tokens, next, outcomes, accepted_ids, tally) = (
            http.clone(),
            bases.clone(),
            writes.clone(),
            tokens.clone(),
            next.clone(),
            outcomes.clone(),
            accepted_ids.clone(),
            tally.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= writes.count {
                    break;
                }
                let message = writes.message(i);
                let user = writes.user_of(i);
                // A user's writes all go to one shard, as a load balancer keyed on the user would.
                let base = &bases[user % bases.len()];
                let mut done = false;
                for attempt in 0..max_attempts {
                    let t = Instant::now();
                    let (status, retry_after) =
                        post(&http, base, &tokens[user], &message, true).await;
                    tally.lock().unwrap().record(
                        attempt == 0,
                        status,
                        started.elapsed().as_secs_f64(),
                        t.elapsed().as_secs_f64() * 1000.0,
                    );
                    match status {
                        200..=299 => {
                            outcomes.accepted.fetch_add(1, Ordering::Relaxed);
                            accepted_ids[i].store(true, Ordering::Relaxed);
                            done = true;
                            break;
                        }
                        // Retryable: nothing was accepted; the same key again, after Retry-After.
                        503 => {
                            outcomes.retried_503.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(retry_after.min(Duration::from_secs(5))).await;
                        }
                        // No answer: safe to retry with the same key, but counted as a failure.
                        0 => {
                            outcomes.unanswered.fetch_add(1, Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_secs(1)).await;
                        }
                        _ => {
                            outcomes.refused.fetch_add(1, Ordering::Relaxed);
                            done = true;
                            break;
                        }
                    }
                }
                if !done {
                    outcomes.gave_up.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let ingest_time = started.elapsed();
    let accepted = outcomes.accepted.load(Ordering::Relaxed);

    if settings.breakage == "double" {
        // The same write again without its key: ingest makes a new reportId, so the write is
        // stored twice. The check must say so.
        let message = writes.message(0);
        let (status, _) = post(http, &bases[0], &tokens[0], &message, false).await;
        println!("SOAK_BREAK=double: write 0 sent again without its key: {status}");
    }

    // Drained: every queue is empty and the tables hold at least one item per accepted write
    // (or the queues have stayed empty for 10 s: the check then says what is missing).
    let drain_deadline = Instant::now() + settings.bound;
    let mut empty_since: Option<Instant> = None;
    loop {
        let mut empty = true;
        for r in &pipeline.resources {
            if emulator.queue_depth(&r.queue_url).await != (0, 0) {
                empty = false;
                break;
            }
        }
        if empty {
            let since = *empty_since.get_or_insert_with(Instant::now);
            let mut items = 0;
            for r in &pipeline.resources {
                items += item_count(emulator, &r.table_name).await;
            }
            if items >= accepted as i64 || since.elapsed() > Duration::from_secs(10) {
                break;
            }
        } else {
            empty_since = None;
        }
        assert!(
            Instant::now() < drain_deadline,
            "not drained within {:?} of the last answer",
            settings.bound
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain_time = started.elapsed();
    sampler.abort();
    let _ = sampler.await;
    let tally = std::mem::replace(&mut *tally.lock().unwrap(), Tally::new());
    let timeline = std::mem::take(&mut *timeline.lock().unwrap());
    Spike {
        started_unix_ms,
        ingest_time,
        drain_time,
        outcomes,
        accepted_ids,
        tally,
        timeline,
    }
}

/// The verdict: every write accepted (2xx, or 503 and then 2xx with the same key; nothing
/// else), each exactly one item with the content sent, and the DLQ empty. With
/// SOAK_BREAK=drop, one item is deleted first: the check must say so.
async fn check_every_write_landed_once(
    emulator: &Emulator,
    pipeline: &Pipeline,
    settings: &Settings,
    spike: &Spike,
) {
    let writes = &settings.writes;
    let accepted = spike.accepted();
    if settings.breakage == "drop" {
        let m = writes.message(0);
        emulator
            .dynamodb
            .delete_item()
            .table_name(&pipeline.resources[0].table_name)
            .key("pk", AttributeValue::S(format!("USER#{}", m.user_id)))
            .key("sk", AttributeValue::S(format!("REPORT#{}", m.report_id)))
            .send()
            .await
            .expect("DeleteItem");
        println!("SOAK_BREAK=drop: deleted the item of write 0");
    }

    let check_started = Instant::now();
    let tables: Vec<String> = pipeline
        .resources
        .iter()
        .map(|r| r.table_name.clone())
        .collect();
    let check = check_exactly_once(
        emulator,
        &tables,
        writes,
        &spike.accepted_ids,
        settings.check_by,
    )
    .await;
    let mut dead_lettered = 0;
    for r in &pipeline.resources {
        let (visible, in_flight) = emulator.queue_depth(&r.dlq_url).await;
        dead_lettered += visible + in_flight;
    }
    println!(
        "\ntable check ({}, {:.1} s): {} items for {accepted} accepted writes; missing {}, doubled {}, unexpected {}, wrong content {}, stored but not accepted \
         {}; DLQ {dead_lettered}",
        match settings.check_by {
            CheckBy::Partitions => "a Query per user partition and the item count".to_owned(),
            CheckBy::Scan(n) => format!("{n}-segment parallel Scan"),
        },
        check_started.elapsed().as_secs_f64(),
        check.items,
        check.missing,
        check.doubled,
        check.unexpected,
        check.wrong_content,
        check.not_accepted,
    );
    if !check.examples.is_empty() {
        println!("first differences: {:?}", check.examples);
    }

    let outcomes = &spike.outcomes;
    let refused = outcomes.refused.load(Ordering::Relaxed);
    let unanswered = outcomes.unanswered.load(Ordering::Relaxed);
    let gave_up = outcomes.gave_up.load(Ordering::Relaxed);
    assert_eq!(
        refused, 0,
        "answers other than 2xx or a retryable 503 under load"
    );
    assert_eq!(unanswered, 0, "requests that got no HTTP answer");
    assert_eq!(
        gave_up, 0,
        "writes not accepted after {} attempts",
        settings.max_attempts
    );
    assert_eq!(accepted, writes.count, "every write accepted");
    assert!(
        check.is_exact(),
        "the table does not hold every accepted write exactly once"
    );
    assert_eq!(dead_lettered, 0, "nothing may be dead-lettered");
}

/// The baseline: `clients` concurrent loops calling SendMessage directly on a fresh queue of
/// the same emulator for `seconds`, with bodies like those ingest sends. The queue is
/// deleted afterwards. Returns the sends that succeeded and the time taken.
async fn direct_send_baseline(
    emulator: &Emulator,
    clients: usize,
    seconds: usize,
    writes: &Writes,
    read_first: Option<&str>,
) -> (usize, Duration) {
    let queue_url = emulator
        .sqs
        .create_queue()
        .queue_name(pipeline_tests::emulator::unique_name("soak-baseline"))
        .send()
        .await
        .expect("CreateQueue")
        .queue_url
        .expect("a queue URL");
    let mut message = writes.message(0);
    message.received_at = Some(contract::rfc3339::format_utc_millis(
        OffsetDateTime::now_utc(),
    ));
    let body = Arc::new(serde_json::to_string(&message).expect("body"));
    let sent = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds as u64);
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (sqs, dynamodb, queue_url, body, sent) = (
            emulator.sqs.clone(),
            emulator.dynamodb.clone(),
            queue_url.clone(),
            body.clone(),
            sent.clone(),
        );
        let (table, pk, sk) = (
            read_first.map(str::to_owned),
            format!("USER#{}", message.user_id),
            format!("REPORT#{}", message.report_id),
        );
        tasks.spawn(async move {
            while Instant::now() < deadline {
                if let Some(table) = &table {
                    // What ingest does first for a keyed write: is it stored already?
                    let _ = dynamodb
                        .get_item()
                        .table_name(table)
                        .key("pk", AttributeValue::S(pk.clone()))
                        .key("sk", AttributeValue::S(sk.clone()))
                        .send()
                        .await;
                }
                if sqs
                    .send_message()
                    .queue_url(&queue_url)
                    .message_body(body.as_str())
                    .send()
                    .await
                    .is_ok()
                {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let elapsed = started.elapsed();
    let _ = emulator
        .sqs
        .delete_queue()
        .queue_url(&queue_url)
        .send()
        .await;
    (sent.load(Ordering::Relaxed), elapsed)
}

/// What the tables hold against the accepted writes, counted without keeping the items.
#[derive(Debug, Default)]
struct ExactlyOnce {
    items: usize,
    missing: usize,
    doubled: usize,
    unexpected: usize,
    wrong_content: usize,
    not_accepted: usize,
    examples: Vec<String>,
}

impl ExactlyOnce {
    fn is_exact(&self) -> bool {
        self.missing == 0
            && self.doubled == 0
            && self.unexpected == 0
            && self.wrong_content == 0
            && self.not_accepted == 0
    }

    fn note(&mut self, example: String) {
        if self.examples.len() < 5 {
            self.examples.push(example);
        }
    }
}

/// How the table check reads the tables.
#[derive(Clone, Copy, PartialEq)]
enum CheckBy {
    /// A Query per user partition (8 in flight), and the tables' item counts to show no item
    /// lies outside those partitions. For emulators: MiniStack sorts the whole table for every
    /// Scan page, so a Scan of a million items costs pages times items.
    Partitions,
    /// A parallel Scan with this many segments: what to use on AWS, where the item count is
    /// only refreshed every few hours.
    Scan(usize),
}

/// One read of the table check: (table, scan segment and total) or (table, partition key).
type TableRead = (String, Option<(i32, i32)>, Option<String>);

/// Reads every item of the tables (see [`CheckBy`]), projecting only the keys and the fields
/// compared, and counts the items of each write (one byte per write). Exactly once: each
/// accepted write has one item, with the content sent and the keys it maps to; no item is for
/// a write not accepted; no item has a report id that is not one of the writes (a write
/// stored under a second id is one of these).
async fn check_exactly_once(
    emulator: &Emulator,
    tables: &[String],
    writes: &Arc<Writes>,
    accepted: &[AtomicBool],
    by: CheckBy,
) -> ExactlyOnce {
    use futures::StreamExt;
    let seen: Arc<Vec<AtomicU8>> = Arc::new((0..writes.count).map(|_| AtomicU8::new(0)).collect());
    let mut reads: Vec<TableRead> = Vec::new();
    for (k, table) in tables.iter().enumerate() {
        match by {
            CheckBy::Scan(segments) => reads.extend(
                (0..segments).map(|s| (table.clone(), Some((s as i32, segments as i32)), None)),
            ),
            CheckBy::Partitions => reads.extend(
                (0..writes.users.min(writes.count))
                    .filter(|u| u % tables.len() == k)
                    .map(|u| {
                        let user = writes.message(u).user_id;
                        (table.clone(), None, Some(format!("USER#{user}")))
                    }),
            ),
        }
    }
    let parts: Vec<ExactlyOnce> = futures::stream::iter(reads)
        .map(|(table, segment, partition)| {
            let (dynamodb, writes, seen) =
                (emulator.dynamodb.clone(), writes.clone(), seen.clone());
            async move {
                let mut result = ExactlyOnce::default();
                let mut start = None;
                loop {
                    let names = [
                        ("#pk", "pk"),
                        ("#sk", "sk"),
                        ("#u", "userId"),
                        ("#r", "reportId"),
                        ("#b", "bureau"),
                        ("#s", "score"),
                        ("#t", "reportedAt"),
                    ]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect();
                    let projection = "#pk, #sk, #u, #r, #b, #s, #t";
                    let (items, next) = if let Some(pk) = &partition {
                        let out = dynamodb
                            .query()
                            .table_name(&table)
                            .key_condition_expression("#pk = :pk")
                            .expression_attribute_values(":pk", AttributeValue::S(pk.clone()))
                            .projection_expression(projection)
                            .set_expression_attribute_names(Some(names))
                            .set_exclusive_start_key(start)
                            .send()
                            .await
                            .expect("Query on the emulator");
                        (out.items, out.last_evaluated_key)
                    } else {
                        let (segment, total) = segment.unwrap_or((0, 1));
                        let out = dynamodb
                            .scan()
                            .table_name(&table)
                            .segment(segment)
                            .total_segments(total)
                            .projection_expression(projection)
                            .set_expression_attribute_names(Some(names))
                            .set_exclusive_start_key(start)
                            .send()
                            .await
                            .expect("Scan on the emulator");
                        (out.items, out.last_evaluated_key)
                    };
                    for item in items.unwrap_or_default() {
                        result.items += 1;
                        check_item(&item, &writes, &seen, &mut result);
                    }
                    start = next;
                    if start.is_none() {
                        return result;
                    }
                }
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    let mut total = ExactlyOnce::default();
    for part in parts {
        total.items += part.items;
        total.unexpected += part.unexpected;
        total.wrong_content += part.wrong_content;
        for e in part.examples {
            total.note(e);
        }
    }
    for (i, count) in seen.iter().enumerate() {
        let count = count.load(Ordering::Relaxed);
        let was_accepted = accepted[i].load(Ordering::Relaxed);
        if was_accepted && count == 0 {
            total.missing += 1;
            total.note(format!("missing {}", writes.message(i).report_id));
        }
        if count > 1 {
            total.doubled += 1;
            total.note(format!("{count} items for {}", writes.message(i).report_id));
        }
        if !was_accepted && count > 0 {
            total.not_accepted += 1;
            total.note(format!(
                "stored, never accepted: {}",
                writes.message(i).report_id
            ));
        }
    }
    if by == CheckBy::Partitions {
        // Items outside the users' partitions were not read: the tables' item counts (live on
        // the emulators) must equal what was read.
        let mut counted = 0;
        for table in tables {
            counted += item_count(emulator, table).await;
        }
        if counted != total.items as i64 {
            let outside = (counted - total.items as i64).max(0) as usize;
            total.unexpected += outside;
            total.note(format!(
                "the tables count {counted} items, the users' partitions hold {}",
                total.items
            ));
        }
    }
    total
}

fn check_item(
    item: &std::collections::HashMap<String, AttributeValue>,
    writes: &Writes,
    seen: &[AtomicU8],
    result: &mut ExactlyOnce,
) {
    let text = |name: &str| match item.get(name) {
        Some(AttributeValue::S(s)) => s.as_str(),
        Some(AttributeValue::N(n)) => n.as_str(),
        _ => "",
    };
    let report_id = text("reportId");
    let Some(i) = message_index(PREFIX, report_id).filter(|i| *i < writes.count) else {
        result.unexpected += 1;
        result.note(format!(
            "unexpected item {} {} (reportId {report_id:?})",
            text("pk"),
            text("sk")
        ));
        return;
    };
    // Saturating: a count of 255 already says "doubled".
    let _ = seen[i].fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| c.checked_add(1));
    let m = writes.message(i);
    let same = text("pk").strip_prefix("USER#") == Some(m.user_id.as_str())
        && text("sk").strip_prefix("REPORT#") == Some(m.report_id.as_str())
        && text("userId") == m.user_id
        && text("bureau") == m.bureau
        && text("score") == m.score.to_string()
        && text("reportedAt") == m.reported_at;
    if !same {
        result.wrong_content += 1;
        result.note(format!("wrong content for {report_id}: {item:?}"));
    }
}

async fn wait_for_health(http: &reqwest::Client, base: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Ok(r) = http.get(format!("{base}/health")).send().await {
            if r.status().is_success() {
                return;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("ingest did not come up on {base}");
}

/// POSTs one write (with its report id as `Idempotency-Key` when `keyed`): the status (0 for
/// no answer) and how long the answer asks a retry to wait (1 s unless it says).
async fn post(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    message: &ScoreMessageV1,
    keyed: bool,
) -> (u16, Duration) {
    let body = serde_json::json!({
        "bureau": message.bureau,
        "score": message.score,
        "reportedAt": message.reported_at,
    });
    let mut request = http
        .post(format!("{base}/v1/users/{}/credit-scores", message.user_id))
        .bearer_auth(token)
        .json(&body);
    if keyed {
        request = request.header("idempotency-key", &message.report_id);
    }
    match request.send().await {
        Ok(r) => {
            let retry_after = r
                .headers()
                .get("retry-after")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map_or(Duration::from_secs(1), Duration::from_secs);
            (r.status().as_u16(), retry_after)
        }
        Err(_) => (0, Duration::from_secs(1)),
    }
}

async fn sample_every_second(
    emulator: &Emulator,
    resources: &[TestResources],
    outcomes: &Outcomes,
    started: Instant,
    timeline: &Mutex<Vec<Sample>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let at = started.elapsed().as_secs_f64();
        let accepted = outcomes.accepted.load(Ordering::Relaxed);
        let depths =
            futures::future::join_all(resources.iter().map(|r| emulator.queue_depth(&r.queue_url)))
                .await;
        let items = futures::future::join_all(
            resources
                .iter()
                .map(|r| item_count(emulator, &r.table_name)),
        )
        .await;
        let sample = Sample {
            at,
            accepted,
            visible: depths.iter().map(|d| d.0).sum(),
            in_flight: depths.iter().map(|d| d.1).sum(),
            items: items.iter().sum(),
        };
        // A line every 30 s, so a long run can be followed while it runs.
        if (at as u64).is_multiple_of(30) && at >= 1.0 {
            println!(
                "progress {:.0} s: accepted {}, visible {}, in flight {}, items {}",
                at, sample.accepted, sample.visible, sample.in_flight, sample.items
            );
        }
        timeline.lock().unwrap().push(sample);
    }
}

fn report(writes: &Writes, clients: usize, spike: &Spike) {
    let (ingest_time, drain_time) = (spike.ingest_time, spike.drain_time);
    let (tally, outcomes) = (&spike.tally, &spike.outcomes);
    let accepted = spike.accepted();
    println!("\n== soak result ==");
    println!(
        "writes {}, clients {clients}, users {}",
        writes.count, writes.users
    );
    println!(
        "all writes answered in {:.1} s ({:.0} accepted/s); first-attempt statuses {:?}; all \
         attempts {:?}; accepted {accepted}, 503s retried {}, no answer {}, refused {}, gave up {}",
        ingest_time.as_secs_f64(),
        accepted as f64 / ingest_time.as_secs_f64(),
        tally.first,
        tally.all,
        outcomes.retried_503.load(Ordering::Relaxed),
        outcomes.unanswered.load(Ordering::Relaxed),
        outcomes.refused.load(Ordering::Relaxed),
        outcomes.gave_up.load(Ordering::Relaxed),
    );
    let l = &tally.latency;
    println!(
        "POST latency ms (first attempts, 2 % buckets): p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        l.quantile(0.5),
        l.quantile(0.9),
        l.quantile(0.99),
        l.max
    );
    println!(
        "drained (queue empty, every item written) {:.1} s after the first write ({:.0} writes/s \
         end to end); {:.1} s after the last write was answered",
        drain_time.as_secs_f64(),
        writes.count as f64 / drain_time.as_secs_f64(),
        (drain_time - ingest_time).as_secs_f64()
    );
    println!("\nPOST latency per 10 s window (by completion time):");
    println!(
        "{:>6} {:>7} {:>8} {:>8}",
        "t(s)", "writes", "p50(ms)", "p99(ms)"
    );
    for (k, window) in tally.windows.iter().enumerate() {
        println!(
            "{:>6} {:>7} {:>8.1} {:>8.1}",
            k * 10,
            window.total,
            window.quantile(0.5),
            window.quantile(0.99)
        );
    }
}

fn print_timeline(samples: &[Sample]) {
    if let Some(p) = samples.iter().max_by_key(|s| s.visible + s.in_flight) {
        println!(
            "\npeak depth {} messages (visible {}, in flight {}) at {:.0} s",
            p.visible + p.in_flight,
            p.visible,
            p.in_flight,
            p.at
        );
    }
    // Every second for a short run; every 10th for a long one (the chart has them all).
    let every = if samples.len() > 300 { 10 } else { 1 };
    println!("\nqueue depth and table size, sampled every second (every {every} shown):");
    println!(
        "{:>6} {:>9} {:>11} {:>8} {:>9} {:>8}",
        "t(s)", "accepted", "accepted/s", "visible", "in-flight", "items"
    );
    let mut previous = (0.0, 0usize);
    for (k, s) in samples.iter().enumerate() {
        let rate = s.accepted.saturating_sub(previous.1) as f64 / (s.at - previous.0).max(1e-3);
        previous = (s.at, s.accepted);
        if k % every == 0 || k + 1 == samples.len() {
            println!(
                "{:>6.1} {:>9} {:>11.0} {:>8} {:>9} {:>8}",
                s.at, s.accepted, rate, s.visible, s.in_flight, s.items
            );
        }
    }
}

/// End-to-end lag over the whole run, from the worker's EMF documents (pollers or Lambda):
/// each document's values (all it saw, or 100 quantiles of them) weighted by the writes it
/// counted.
fn print_lag(metrics: &[EmfRecord]) {
    let mut weighted: Vec<(f64, f64)> = Vec::new();
    for record in metrics.iter().filter(|r| !r.lag_ms.is_empty()) {
        let weight =
            record.written.unwrap_or(record.lag_ms.len() as f64) / record.lag_ms.len() as f64;
        weighted.extend(record.lag_ms.iter().map(|v| (*v, weight)));
    }
    if weighted.is_empty() {
        println!("\nend-to-end lag: no EMF lag data from the worker");
        return;
    }
    weighted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let total: f64 = weighted.iter().map(|w| w.1).sum();
    let at = |p: f64| {
        let mut seen = 0.0;
        for (value, weight) in &weighted {
            seen += weight;
            if seen >= total * p {
                return *value;
            }
        }
        weighted[weighted.len() - 1].0
    };
    println!(
        "\nend-to-end lag (ingest received to item written, ms, {} EMF documents): p50 {:.0}, p99 \
         {:.0}, max {:.0}",
        metrics.len(),
        at(0.5),
        at(0.99),
        weighted[weighted.len() - 1].0
    );
}

/// Where moto's SQS bites: fills a fresh queue (no consumers) and times a single SendMessage
/// (what ingest does) and a 10-message ReceiveMessage at each depth (SOAK_PROBE_DEPTH).
async fn probe_queue_depth(emulator: &Emulator, max_depth: usize) {
    let resources = emulator.create_resources_with(600, 5).await;
    let queue = resources.queue_url.as_str();
    let body = serde_json::to_string(&score_messages("probe", 1, 1)[0]).expect("body");
    println!("\nemulator SQS cost against the depth of one queue (no consumers):");
    println!(
        "{:>6} {:>14} {:>16} {:>17}",
        "depth", "send p50(ms)", "send10 p50(ms)", "receive10 p50(ms)"
    );
    let probe_started = Instant::now();
    let mut depth = 0usize;
    let step = 1_000;
    loop {
        let mut sends = Vec::new();
        for _ in 0..10 {
            let t = Instant::now();
            emulator
                .sqs
                .send_message()
                .queue_url(queue)
                .message_body(&body)
                .send()
                .await
                .expect("SendMessage");
            sends.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        depth += 10;
        let mut batches = Vec::new();
        for _ in 0..5 {
            let t = Instant::now();
            emulator.send_bodies(queue, &vec![body.clone(); 10]).await;
            batches.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        depth += 50;
        let mut receives = Vec::new();
        for _ in 0..3 {
            let t = Instant::now();
            // Visibility 0: the messages stay on the queue, so the depth holds.
            emulator
                .sqs
                .receive_message()
                .queue_url(queue)
                .max_number_of_messages(10)
                .visibility_timeout(0)
                .send()
                .await
                .expect("ReceiveMessage");
            receives.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        println!(
            "{:>6} {:>14.1} {:>16.1} {:>17.1}",
            depth,
            percentile(&sorted(sends), 0.5),
            percentile(&sorted(batches), 0.5),
            percentile(&sorted(receives), 0.5)
        );
        // Filling costs grow with the square of the depth: bound the probe in time too.
        if depth >= max_depth || probe_started.elapsed() > Duration::from_secs(150) {
            break;
        }
        // Fill to the next step with concurrent batch sends.
        let target = (depth / step + 1) * step;
        let bodies = vec![body.clone(); target - depth];
        let chunks: Vec<Vec<String>> = bodies.chunks(100).map(<[String]>::to_vec).collect();
        futures::future::join_all(chunks.iter().map(|c| emulator.send_bodies(queue, c))).await;
        depth = target;
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// Per-second chart points from the cumulative samples and the worker's EMF documents.
/// Written/s is the worker's `Written` counters when they sent any, else the change in the
/// tables' item count (one item per write) between samples.
fn chart_points(
    samples: &[Sample],
    metrics: &[EmfRecord],
    started_unix_ms: u64,
) -> (Vec<ChartPoint>, &'static str) {
    let written = spike_chart::written_by_second(metrics, started_unix_ms);
    let lag = spike_chart::lag_by_second(metrics, started_unix_ms);
    let source = if written.is_empty() {
        "written/s from table item counts"
    } else {
        "written/s from the worker's Written metric"
    };
    let mut previous = (0.0, 0usize, 0i64);
    let points = samples
        .iter()
        .map(|s| {
            let (at, accepted, items) = previous;
            let seconds = (s.at - at).max(1e-3);
            previous = (s.at, s.accepted, s.items);
            // EMF seconds since the previous sample: one (k - 1 for the sample just after
            // tick k), more when the sampler fell behind, none for the first (tick 0).
            let emf_seconds = at.floor() as u64..s.at.floor() as u64;
            let lag = emf_seconds
                .clone()
                .rev()
                .find_map(|second| lag.get(&second));
            ChartPoint {
                second: s.at,
                accepted_per_s: s.accepted.saturating_sub(accepted) as f64 / seconds,
                visible: s.visible,
                in_flight: s.in_flight,
                written_per_s: if written.is_empty() {
                    // A failed count reads -1: no negative rates from it.
                    (s.items - items).max(0) as f64 / seconds
                } else {
                    let sum: f64 = emf_seconds.clone().filter_map(|k| written.get(&k)).sum();
                    sum / emf_seconds.count().max(1) as f64
                },
                lag_p50_ms: lag.map(|l| l.0),
                lag_p99_ms: lag.map(|l| l.1),
                lag_max_ms: lag.map(|l| l.2),
            }
        })
        .collect();
    (points, source)
}

/// Writes the chart to target/soak/spike-<unix time>.svg and target/soak/spike.svg. A chart
/// that cannot be drawn is reported, not failed: the run's verdict is the checks.
fn draw_chart(title: &str, spike: &Spike, metrics: &[EmfRecord]) {
    let started_unix_ms = spike.started_unix_ms;
    let (points, source) = chart_points(&spike.timeline, metrics, started_unix_ms);
    let lag_seconds = points.iter().filter(|p| p.lag_p50_ms.is_some()).count();
    let dir = workspace_binary("worker")
        .parent()
        .and_then(|profile| profile.parent())
        .map(|target| target.join("soak"))
        .expect("the binaries sit in target/<profile>");
    let path = dir.join(format!("spike-{}.svg", started_unix_ms / 1000));
    let title = format!("{title} ({source})");
    match spike_chart::render(&title, &points, &path)
        .and_then(|()| Ok(std::fs::copy(&path, dir.join("spike.svg"))?))
    {
        Ok(_) => println!(
            "\nchart: {} (and {}); {} EMF documents from the worker, lag in {lag_seconds} of {} seconds; {source}",
            path.display(),
            dir.join("spike.svg").display(),
            metrics.len(),
            points.len()
        ),
        Err(e) => println!("\nchart not drawn: {e:#}"),
    }
}
