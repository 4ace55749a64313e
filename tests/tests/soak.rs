//! The spike test (`make soak`, not in the default run): many concurrent clients write through
//! the `ingest` binary while several `worker` pollers drain the queue. Every write must be
//! answered 2xx and land in the table exactly once. Prints queue depth and table size every
//! second, latency, drain time, and how the emulator's SQS slows as one queue grows.
//!
//! The load is spread over SOAK_SHARDS pipelines (queue, ingest process, pollers each): the
//! emulator's SQS costs grow with each queue's depth (measured at the end by the probe), real
//! SQS's do not.
//!
//! Knobs (environment): SOAK_WRITES (20000), SOAK_CLIENTS (32), SOAK_SHARDS (16),
//! SOAK_WORKERS_PER_SHARD (1), SOAK_USERS (2000), SOAK_SQS_SEND_TIMEOUT_MS (3000, ingest's
//! production default), SOAK_PROBE_DEPTH (3000, 0 skips the single-queue probe),
//! SOAK_TIMEOUT_SECONDS (1200, the bound on the drain).
//!
//! Needs the binaries built: `cargo build --workspace --bins` (scripts/soak.sh does it).
//!
//! Draws the run as an SVG chart (accepted/s, queue depth, written/s, end-to-end lag) in
//! target/soak/: `spike-<unix time>.svg` and the latest as `spike.svg`. The lag, and written/s
//! when present, come from the pollers' EMF metric lines on stdout (`METRICS=emf`, flushed
//! every second).

use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use pipeline_tests::emf::{self, EmfRecord};
use pipeline_tests::spike_chart::{self, ChartPoint};
use pipeline_tests::workload::{check_table, score_messages};
use pipeline_tests::{workspace_binary, DevTokens, Emulator, TestResources, UserServiceStub};
use shared::message::ScoreMessageV1;
use tokio::time::Instant;

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

/// One second of the run, as sampled (depths summed over the shards' queues).
struct Sample {
    at: f64,
    accepted: usize,
    visible: u64,
    in_flight: u64,
    deepest: u64,
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

/// One slice of the pipeline: its own queue, DLQ and table, one ingest process and its
/// worker pollers. The emulator's SQS gets slower with the depth of each queue, so the load
/// is spread over several (as docs/reliability.md explains); the code under test is the same.
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
        (
            "SQS_SEND_TIMEOUT_MS".to_owned(),
            send_timeout_ms.to_string(),
        ),
    ]);
    Shard {
        _ingest: spawn("ingest", ingest_env, None),
        _workers: (0..workers)
            .map(|_| spawn("worker", resources.env(emulator), Some(metrics)))
            .collect(),
        base: format!("http://127.0.0.1:{port}"),
        resources,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "spike test: minutes long; run with `make soak`"]
async fn a_spike_of_writes_is_absorbed_by_the_queue_and_every_write_lands_once() {
    let writes = knob("SOAK_WRITES", 20_000);
    let clients = knob("SOAK_CLIENTS", 32);
    let shards = knob("SOAK_SHARDS", 16).max(1);
    let workers = knob("SOAK_WORKERS_PER_SHARD", 1);
    let users = knob("SOAK_USERS", 2_000);
    let send_timeout_ms = knob("SOAK_SQS_SEND_TIMEOUT_MS", 3_000);
    let bound = Duration::from_secs(knob("SOAK_TIMEOUT_SECONDS", 1_200) as u64);
    let emulator = Emulator::connect().await;
    println!(
        "soak: {writes} writes by {clients} concurrent clients through {shards} ingest processes \
         (one queue each), {} worker pollers, {users} users, SQS send timeout {send_timeout_ms} ms, \
         emulator {}",
        shards * workers,
        emulator.endpoint
    );

    let user_service = UserServiceStub::start().await;
    let metrics = Arc::new(Mutex::new(Vec::new()));
    let mut started_shards = Vec::new();
    for _ in 0..shards {
        started_shards
            .push(start_shard(&emulator, &user_service, workers, send_timeout_ms, &metrics).await);
    }
    let shards = Arc::new(started_shards);
    let http = pipeline_tests::http_client_builder()
        .pool_max_idle_per_host(clients)
        .timeout(Duration::from_secs(30))
        .build()
        .expect("HTTP client");
    for shard in shards.iter() {
        wait_for_health(&http, &shard.base).await;
    }

    let sent = Arc::new(score_messages("soak", writes, users));
    // A user's writes all go to one shard, as a load balancer keyed on the user would send them.
    let shard_of = |user: &str| {
        user.bytes()
            .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(b as usize))
            % shards.len()
    };
    let per_shard: Vec<Vec<ScoreMessageV1>> = (0..shards.len())
        .map(|i| {
            sent.iter()
                .filter(|m| shard_of(&m.user_id) == i)
                .cloned()
                .collect()
        })
        .collect();
    let routes: Arc<Vec<usize>> = Arc::new(sent.iter().map(|m| shard_of(&m.user_id)).collect());
    let tokens = Arc::new(DevTokens::default());
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    // (seconds since start at completion, latency in ms, status) of every first attempt.
    let answers = Arc::new(Mutex::new(Vec::with_capacity(writes)));
    let retried = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let started_unix_ms = unix_ms(SystemTime::now());

    let timeline = Arc::new(Mutex::new(Vec::new()));
    let sampler = {
        let emulator = emulator.clone();
        let resources: Vec<TestResources> = shards.iter().map(|s| s.resources.clone()).collect();
        let accepted = accepted.clone();
        let timeline = timeline.clone();
        tokio::spawn(async move {
            sample_every_second(&emulator, &resources, &accepted, started, &timeline).await
        })
    };

    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..clients {
        let (http, shards, routes, sent, tokens, next, accepted, answers, retried) = (
            http.clone(),
            shards.clone(),
            routes.clone(),
            sent.clone(),
            tokens.clone(),
            next.clone(),
            accepted.clone(),
            answers.clone(),
            retried.clone(),
        );
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(message) = sent.get(i) else { break };
                let base = &shards[routes[i]].base;
                let mut first = true;
                loop {
                    let t = Instant::now();
                    let status = post(&http, base, &tokens, message).await;
                    if first {
                        answers.lock().unwrap().push((
                            started.elapsed().as_secs_f64(),
                            t.elapsed().as_secs_f64() * 1000.0,
                            status,
                        ));
                        first = false;
                    }
                    if (200..300).contains(&status) {
                        accepted.fetch_add(1, Ordering::Relaxed);
                        break;
                    }
                    // A client honouring Retry-After, with the same Idempotency-Key: the
                    // write still lands once. Counted against "zero non-2xx" all the same.
                    retried.fetch_add(1, Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let ingest_time = started.elapsed();

    // Drained: every queue is empty and every item is in the tables.
    loop {
        let mut done = true;
        for (shard, sent) in shards.iter().zip(&per_shard) {
            let r = &shard.resources;
            if emulator.queue_depth(&r.queue_url).await != (0, 0)
                || item_count(&emulator, &r.table_name).await < expected_item_count(sent)
            {
                done = false;
                break;
            }
        }
        if done {
            break;
        }
        assert!(started.elapsed() < bound, "not drained within {bound:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let drain_time = started.elapsed();
    sampler.abort();
    let _ = sampler.await;

    report(
        writes,
        clients,
        ingest_time,
        drain_time,
        &answers.lock().unwrap(),
        retried.load(Ordering::Relaxed),
    );
    print_timeline(&timeline.lock().unwrap());
    draw_chart(
        &format!(
            "soak: {writes} writes, {clients} clients, {} shards, {} pollers",
            shards.len(),
            shards.len() * workers
        ),
        &timeline.lock().unwrap(),
        &metrics.lock().unwrap(),
        started_unix_ms,
    );

    let mut exact = true;
    let mut dead_lettered = 0;
    for (shard, sent) in shards.iter().zip(&per_shard) {
        let r = &shard.resources;
        let check = check_table(&emulator, &r.table_name, sent).await;
        let (dlq_visible, dlq_in_flight) = emulator.queue_depth(&r.dlq_url).await;
        dead_lettered += dlq_visible + dlq_in_flight;
        exact &= check.is_exact();
        println!(
            "table {}: {} reports for {} writes; missing {}, wrong latest {}, stray {}; DLQ {}",
            r.table_name,
            check.reports,
            sent.len(),
            check.missing.len(),
            check.wrong_latest.len(),
            check.stray_items,
            dlq_visible + dlq_in_flight
        );
    }

    let probe_depth = knob("SOAK_PROBE_DEPTH", 3_000);
    if probe_depth > 0 {
        probe_queue_depth(&emulator, probe_depth).await;
    }

    let non_2xx = answers
        .lock()
        .unwrap()
        .iter()
        .filter(|(_, _, s)| !(200..300).contains(s))
        .count();
    assert!(exact, "the tables do not hold every write exactly once");
    assert_eq!(dead_lettered, 0, "nothing may be dead-lettered");
    assert_eq!(non_2xx, 0, "non-2xx answers under load");
}

/// One report item per write: the write path writes nothing else.
fn expected_item_count(sent: &[ScoreMessageV1]) -> i64 {
    sent.len() as i64
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

async fn post(
    http: &reqwest::Client,
    base: &str,
    tokens: &DevTokens,
    message: &ScoreMessageV1,
) -> u16 {
    let body = serde_json::json!({
        "bureau": message.bureau,
        "score": message.score,
        "reportedAt": message.reported_at,
    });
    let result = http
        .post(format!("{base}/v1/users/{}/credit-scores", message.user_id))
        .bearer_auth(tokens.mint(&message.user_id, &[], Duration::from_secs(3600)))
        .header("idempotency-key", &message.report_id)
        .json(&body)
        .send()
        .await;
    match result {
        Ok(r) => r.status().as_u16(),
        Err(_) => 0, // no answer at all (refused, reset, timed out)
    }
}

async fn sample_every_second(
    emulator: &Emulator,
    resources: &[TestResources],
    accepted: &AtomicUsize,
    started: Instant,
    timeline: &Mutex<Vec<Sample>>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tick.tick().await;
        let at = started.elapsed().as_secs_f64();
        let accepted = accepted.load(Ordering::Relaxed);
        let depths =
            futures::future::join_all(resources.iter().map(|r| emulator.queue_depth(&r.queue_url)))
                .await;
        let items = futures::future::join_all(
            resources
                .iter()
                .map(|r| item_count(emulator, &r.table_name)),
        )
        .await;
        timeline.lock().unwrap().push(Sample {
            at,
            accepted,
            visible: depths.iter().map(|d| d.0).sum(),
            in_flight: depths.iter().map(|d| d.1).sum(),
            deepest: depths.iter().map(|d| d.0 + d.1).max().unwrap_or_default(),
            items: items.iter().sum(),
        });
    }
}

fn report(
    writes: usize,
    clients: usize,
    ingest_time: Duration,
    drain_time: Duration,
    answers: &[(f64, f64, u16)],
    retried: usize,
) {
    let latencies = sorted(answers.iter().map(|(_, ms, _)| *ms).collect());
    let mut statuses = std::collections::BTreeMap::new();
    for (_, _, status) in answers {
        *statuses.entry(*status).or_insert(0usize) += 1;
    }
    println!("\n== soak result ==");
    println!("writes {writes}, clients {clients}");
    println!(
        "all writes answered in {:.1} s ({:.0} writes/s); first-attempt statuses {statuses:?}; retries {retried}",
        ingest_time.as_secs_f64(),
        writes as f64 / ingest_time.as_secs_f64()
    );
    println!(
        "POST latency ms: p50 {:.1}, p90 {:.1}, p99 {:.1}, max {:.1}",
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.9),
        percentile(&latencies, 0.99),
        latencies.last().copied().unwrap_or(f64::NAN)
    );
    println!(
        "drained (queue empty, every item written) {:.1} s after the first write ({:.0} writes/s end to end); \
         {:.1} s after the last write was accepted",
        drain_time.as_secs_f64(),
        writes as f64 / drain_time.as_secs_f64(),
        (drain_time - ingest_time).as_secs_f64()
    );
    // Latency against time, to set beside queue depth.
    println!("\nPOST latency per 10 s window (by completion time):");
    println!(
        "{:>6} {:>7} {:>8} {:>8}",
        "t(s)", "writes", "p50(ms)", "p99(ms)"
    );
    let end = answers.iter().map(|a| a.0).fold(0.0, f64::max);
    let mut window = 0.0;
    while window <= end {
        let in_window = sorted(
            answers
                .iter()
                .filter(|a| a.0 >= window && a.0 < window + 10.0)
                .map(|a| a.1)
                .collect(),
        );
        println!(
            "{:>6.0} {:>7} {:>8.1} {:>8.1}",
            window,
            in_window.len(),
            percentile(&in_window, 0.5),
            percentile(&in_window, 0.99)
        );
        window += 10.0;
    }
}

fn print_timeline(samples: &[Sample]) {
    let peak = samples.iter().max_by_key(|s| s.visible + s.in_flight);
    let deepest = samples.iter().map(|s| s.deepest).max().unwrap_or_default();
    if let Some(p) = peak {
        println!(
            "\npeak depth {} messages over all queues (visible {}, in flight {}) at {:.0} s; \
             deepest single queue {deepest}",
            p.visible + p.in_flight,
            p.visible,
            p.in_flight,
            p.at
        );
    }
    println!("\nqueue depth and table size, sampled every second:");
    println!(
        "{:>6} {:>9} {:>8} {:>9} {:>13} {:>8}",
        "t(s)", "accepted", "visible", "in-flight", "deepest queue", "items"
    );
    for s in samples {
        println!(
            "{:>6.1} {:>9} {:>8} {:>9} {:>13} {:>8}",
            s.at, s.accepted, s.visible, s.in_flight, s.deepest, s.items
        );
    }
}

/// Where the emulator's SQS bites: fills a fresh queue (no consumers) and times a
/// single SendMessage (what ingest does) and a 10-message ReceiveMessage at each depth.
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

/// Per-second chart points from the cumulative samples and the pollers' EMF documents.
/// Written/s is the pollers' `Written` counters when they sent any, else the change in the
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
        "written/s from the pollers' Written metric"
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
                lag_max_ms: lag.map(|l| l.1),
            }
        })
        .collect();
    (points, source)
}

/// Writes the chart to target/soak/spike-<unix time>.svg and target/soak/spike.svg. A chart
/// that cannot be drawn is reported, not failed: the run's verdict is the checks below.
fn draw_chart(title: &str, samples: &[Sample], metrics: &[EmfRecord], started_unix_ms: u64) {
    let (points, source) = chart_points(samples, metrics, started_unix_ms);
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
            "\nchart: {} (and {}); {} EMF documents from the pollers, lag in {lag_seconds} of {} seconds; {source}",
            path.display(),
            dir.join("spike.svg").display(),
            metrics.len(),
            points.len()
        ),
        Err(e) => println!("\nchart not drawn: {e:#}"),
    }
}
