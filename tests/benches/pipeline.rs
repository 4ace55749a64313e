//! `make bench`: the performance budgets, measured, each printed with the baseline it is
//! compared to in the same run. Absolute times vary by machine; ratios travel.
//!
//! Needs the emulator (AWS_ENDPOINT_URL) and release binaries (`cargo build --release
//! --workspace --bins`), which `scripts/bench.sh` provides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use aws_sdk_sqs::types::DeleteMessageBatchRequestEntry;
use axum::body::{Body, Bytes};
use contract::report::StoredReport;
use futures::stream::{self, StreamExt};
use http::{Request, StatusCode};
use pipeline_tests::fault_proxy::{dynamodb, FaultProxy, Faults, DYNAMODB, SQS};
use pipeline_tests::runtime_api::FakeRuntimeApi;
use pipeline_tests::{
    lambda_env, spawn_binary, spawn_binary_at, DevTokens, Emulator, RunningBinary, TestResources,
    UserServiceStub,
};
use platform::item::{report_item, Item};
use tower::ServiceExt;
use worker::dlq::{DeadLetter, DeadLetterQueue};
use worker::processor::{prepare_batch, Processor, ProcessorConfig};
use worker::record::InboundMessage;
use worker::store::{ScoreStore, StoreError};

// The worker binary's allocator, so the in-process figures are the shipped code's.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const BUREAUS: [(&str, u64); 3] = [("experian", 999), ("equifax", 1000), ("transunion", 710)];
const DRAIN_RECORDS: usize = 2000;
const LAMBDA_BATCH: usize = 100;
/// Worker runs per Lambda-path drain, each between two bare-loop runs.
const DRAIN_ROUNDS: usize = 5;
/// Start-ups per binary in the init section, taken in turn.
const INIT_ROUNDS: usize = 31;

/// Every budget's verdict, printed again at the end.
#[derive(Default)]
struct Verdicts(Vec<(String, bool)>);

impl Verdicts {
    fn check(&mut self, what: impl Into<String>, ok: bool) -> &'static str {
        self.0.push((what.into(), ok));
        if ok {
            "within budget"
        } else {
            "OVER BUDGET"
        }
    }
}

fn body(i: usize, users: usize) -> String {
    let (bureau, max) = BUREAUS[i % 3];
    serde_json::json!({
        "version": 1,
        "reportId": format!("01JDQ6W8ZK3M5N7P9R{i:08}"),
        "userId": format!("user-{:06}", i % users),
        "bureau": bureau,
        "score": (i as u64 * 37) % (max + 1),
        "reportedAt": format!("2026-11-{:02}T{:02}:{:02}:00Z", 1 + i % 27, i % 24, i % 60),
        "source": "api",
        "receivedAt": "2026-11-28T10:00:01Z",
    })
    .to_string()
}

fn messages(n: usize, users: usize) -> Vec<InboundMessage> {
    (0..n)
        .map(|i| InboundMessage {
            trace_header: None,
            message_id: format!("m-{i}"),
            body: Some(body(i, users)),
            sent_at: None,
            receive_count: 1,
            attributes: HashMap::new(),
        })
        .collect()
}

/// The report items the worker writes for `batch`, built by the worker's own code.
fn items_of(batch: &[InboundMessage]) -> Vec<Item> {
    prepare_batch(batch, time::OffsetDateTime::now_utc())
        .groups
        .iter()
        .map(|g| report_item(&g.report))
        .collect()
}

/// The Lambda SQS event carrying `batch`, as the event source mapping sends it.
fn sqs_event(batch: &[InboundMessage]) -> String {
    serde_json::json!({
        "Records": batch.iter().map(|m| serde_json::json!({
            "messageId": m.message_id, "receiptHandle": "rh", "body": m.body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795860001000"},
            "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
        })).collect::<Vec<_>>()
    })
    .to_string()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

/// CPU time a running process has had so far, user and system, summed over its live threads:
/// the scheduler's own nanosecond count (clock ticks are too coarse for a run of a few hundred
/// milliseconds). Taken at the start of a measured stretch, where no thread has exited yet;
/// the end is read with [`exit_cpu`], which counts exited threads too.
fn process_cpu(pid: u32) -> Duration {
    let mut total = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for task in tasks.flatten() {
            let on_cpu = std::fs::read_to_string(task.path().join("schedstat"))
                .ok()
                .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()));
            total += on_cpu.unwrap_or(0u64);
        }
    }
    Duration::from_nanos(total)
}

/// Kills `process` and returns the CPU time, user and system, it had over its whole life: the
/// kernel's account of the reaped child (`wait4`), in microseconds, which includes threads
/// that exited before the end (a sum over `/proc/<pid>/task` would miss them).
fn exit_cpu(process: &mut RunningBinary) -> Duration {
    let pid = process.child.id() as libc::pid_t;
    // SAFETY: plain system calls on our own child's pid; `usage` is written by wait4 before
    // it is read, and `status` is a valid out-pointer.
    let usage = unsafe {
        libc::kill(pid, libc::SIGKILL);
        let mut status = 0;
        let mut usage: libc::rusage = std::mem::zeroed();
        let reaped = libc::wait4(pid, &mut status, 0, &mut usage);
        assert_eq!(reaped, pid, "wait4 reaps the bench's own child");
        usage
    };
    let micros = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    Duration::from_micros(micros(usage.ru_utime) + micros(usage.ru_stime))
}

/// Worker CPU per record: decode, validate, dedupe, marshal. Baseline: parsing the same
/// bodies into `serde_json::Value` and nothing else.
fn cpu_per_record(verdicts: &mut Verdicts) {
    let batch = messages(100, 100);
    let now = time::OffsetDateTime::now_utc();
    let per_record = |f: &dyn Fn()| -> f64 {
        let rounds = 200;
        let started = Instant::now();
        for _ in 0..rounds {
            f();
        }
        started.elapsed().as_secs_f64() * 1e6 / (rounds * batch.len()) as f64
    };
    let ours = || {
        let prepared = prepare_batch(std::hint::black_box(&batch), now);
        for group in &prepared.groups {
            std::hint::black_box(report_item(&group.report));
        }
    };
    let baseline = || {
        for m in &batch {
            let v: serde_json::Value =
                serde_json::from_str(m.body.as_deref().unwrap_or_default()).unwrap_or_default();
            std::hint::black_box(v);
        }
    };
    for _ in 0..20 {
        ours();
        baseline();
    }
    // Interleaved samples, so a burst of load elsewhere hits both alike.
    let (mut ours_samples, mut base_samples) = (Vec::new(), Vec::new());
    for _ in 0..31 {
        ours_samples.push(per_record(&ours));
        base_samples.push(per_record(&baseline));
    }
    let ours_us = median(ours_samples);
    let base_us = median(base_samples);
    println!("\n## Worker CPU per record (100-record batches, median of 31 samples)");
    println!(
        "decode+validate+dedupe+marshal   {ours_us:>7.2} µs/record   budget 1.5 µs: {}",
        verdicts.check("worker CPU per record <= 1.5 µs", ours_us <= 1.5)
    );
    println!(
        "baseline: serde_json::Value only {base_us:>7.2} µs/record   ratio {:.1}x",
        ours_us / base_us
    );
}

/// Counts requests without I/O, to check the request arithmetic.
#[derive(Default)]
struct CountingStore {
    batch_writes: AtomicUsize,
}

#[async_trait]
impl ScoreStore for CountingStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        assert!(reports.len() <= 25);
        self.batch_writes.fetch_add(1, Ordering::Relaxed);
        Ok(Vec::new())
    }
}

struct NoDlq;

#[async_trait]
impl DeadLetterQueue for NoDlq {
    async fn send(&self, _: &DeadLetter) -> anyhow::Result<()> {
        Ok(())
    }
}

async fn request_counts() {
    println!("\n## DynamoDB requests for n records with distinct keys (one batch, no retries)");
    println!(
        "{:>6} {:>16} {:>16} {:>12}",
        "n", "1 user", "n users", "ceil(n/25)"
    );
    for n in [1usize, 24, 25, 26, 100, 250, 1000, 10_000] {
        let mut counts = Vec::new();
        for users in [1, n] {
            let store = Arc::new(CountingStore::default());
            let processor =
                Processor::new(store.clone(), Arc::new(NoDlq), ProcessorConfig::default());
            processor
                .process_batch(
                    &messages(n, users),
                    tokio::time::Instant::now() + Duration::from_secs(30),
                )
                .await;
            counts.push(store.batch_writes.load(Ordering::Relaxed));
        }
        println!(
            "{n:>6} {:>16} {:>16} {:>12}",
            counts[0],
            counts[1],
            n.div_ceil(25)
        );
        assert!(
            counts.iter().all(|&c| c == n.div_ceil(25)),
            "BatchWriteItem requests are ceil(n/25) whatever the users"
        );
    }
    println!("(BatchWriteItem is the only DynamoDB call the worker makes)");
}

/// Seconds to write `items` with BatchWriteItem, 25 per request, 4 in flight (the worker's
/// default concurrency), into a fresh table.
async fn bare_loop(emulator: &Emulator, items: &[Item]) -> f64 {
    let r = emulator.create_resources().await;
    let started = Instant::now();
    stream::iter(items.chunks(25))
        .map(|chunk| {
            emulator
                .dynamodb
                .batch_write_item()
                .request_items(&r.table_name, write_requests(chunk))
                .send()
        })
        .buffer_unordered(4)
        .for_each(|out| async move {
            let out = out.expect("bare BatchWriteItem");
            assert!(
                out.unprocessed_items.is_none_or(|u| u.is_empty()),
                "the emulator never leaves items unprocessed"
            );
        })
        .await;
    started.elapsed().as_secs_f64()
}

fn write_requests(items: &[Item]) -> Vec<WriteRequest> {
    items
        .iter()
        .map(|item| {
            WriteRequest::builder()
                .put_request(
                    PutRequest::builder()
                        .set_item(Some(item.clone()))
                        .build()
                        .expect("an item is set"),
                )
                .build()
        })
        .collect()
}

/// Seconds to write `items` one PutItem at a time: the worker many teams write first.
async fn put_item_loop(emulator: &Emulator, items: &[Item]) -> f64 {
    let r = emulator.create_resources().await;
    let started = Instant::now();
    for item in items {
        emulator
            .dynamodb
            .put_item()
            .table_name(&r.table_name)
            .set_item(Some(item.clone()))
            .send()
            .await
            .expect("PutItem");
    }
    started.elapsed().as_secs_f64()
}

/// The worker binary in Lambda mode behind a fake Runtime API, fed `batch` in events of
/// [`LAMBDA_BATCH`] records, all queued at once as a busy event source mapping would. Returns
/// the seconds from the first event to the last answer and the process's CPU time over them.
async fn lambda_drain(emulator: &Emulator, batch: &[InboundMessage]) -> (f64, Duration) {
    lambda_drain_via(emulator, batch, None).await
}

/// [`lambda_drain`] with the worker's AWS calls sent to `endpoint` (a proxy) when given.
async fn lambda_drain_via(
    emulator: &Emulator,
    batch: &[InboundMessage],
    endpoint: Option<&str>,
) -> (f64, Duration) {
    let resources = emulator.create_resources().await;
    let runtime = FakeRuntimeApi::start().await;
    let mut env = resources.env(emulator);
    if let Some(endpoint) = endpoint {
        env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
        env.push(("AWS_ENDPOINT_URL".into(), endpoint.to_owned()));
    }
    env.extend(lambda_env(&runtime.address));
    let mut process = spawn_binary("worker", &[], &env);
    let polled = pipeline_tests::eventually(Duration::from_secs(10), || runtime.first_poll()).await;
    assert!(polled.is_some(), "worker never polled: {}", process.log());
    let events: Vec<String> = batch.chunks(LAMBDA_BATCH).map(sqs_event).collect();
    let cpu_before = process_cpu(process.child.id());
    let started = Instant::now();
    let mut ids = Vec::with_capacity(events.len());
    for event in events {
        ids.push(runtime.invoke(event).await);
    }
    for id in &ids {
        let result = runtime.result(id, Duration::from_secs(60)).await;
        let ok = result.is_some_and(|r| r.kind == "response" && !r.body.contains("itemIdentifier"));
        assert!(ok, "an invocation failed: {}", process.log());
    }
    let elapsed = started.elapsed().as_secs_f64();
    let cpu = exit_cpu(&mut process).saturating_sub(cpu_before);
    let written = emulator.reports(&resources.table_name).await.len();
    assert_eq!(written, batch.len(), "every record written once");
    (elapsed, cpu)
}

/// Drain through the Lambda handler path: the real worker binary vs a bare BatchWriteItem
/// loop writing the same items and vs one PutItem per message. The emulator's rate drifts
/// by tens of percent between runs, so the bare loop runs before and after each of
/// [`DRAIN_ROUNDS`] worker runs and each side's median is compared.
async fn drain_lambda_path(
    emulator: &Emulator,
    connections: Connections,
    users: usize,
    verdicts: &mut Verdicts,
) {
    let batch = messages(DRAIN_RECORDS, users);
    let items = items_of(&batch);
    let n = batch.len() as f64;

    let mut bare_runs = vec![bare_loop(emulator, &items).await];
    let (mut ours_runs, mut cpu_runs) = (Vec::new(), Vec::new());
    for _ in 0..DRAIN_ROUNDS {
        let (seconds, cpu) = lambda_drain(emulator, &batch).await;
        ours_runs.push(seconds);
        cpu_runs.push(cpu.as_secs_f64());
        bare_runs.push(bare_loop(emulator, &items).await);
    }
    let per_item = put_item_loop(emulator, &items).await;

    let rates = |runs: &[f64]| -> String {
        let rates: Vec<String> = runs.iter().map(|s| format!("{:.0}", n / s)).collect();
        rates.join(" / ")
    };
    let bare_rate = n / median(bare_runs.clone());
    let ours_rate = n / median(ours_runs.clone());
    let per_item_rate = n / per_item;
    let cpu_us = median(cpu_runs) * 1e6 / n;
    println!(
        "\n## Drain, Lambda handler path ({DRAIN_RECORDS} records, {users} users, events of {LAMBDA_BATCH}; {}; medians of interleaved runs)",
        connections.describe()
    );
    println!(
        "bare BatchWriteItem loop, same items       {bare_rate:>8.0} records/s   (runs: {})",
        rates(&bare_runs)
    );
    println!("one PutItem per message                    {per_item_rate:>8.0} records/s");
    println!(
        "worker binary under the Runtime API        {ours_rate:>8.0} records/s   {:.2} of bare (budget 0.9: {}), {:.1}x PutItem-per-message   (runs: {})",
        ours_rate / bare_rate,
        verdicts.check(
            format!(
                "Lambda-path drain, {users} users, {} >= 0.9 of bare",
                connections.short()
            ),
            ours_rate / bare_rate >= 0.9
        ),
        ours_rate / per_item_rate,
        rates(&ours_runs)
    );
    let cpu_verdict = match connections {
        Connections::KeptAlive => verdicts.check(
            format!("worker process CPU per record, {users} users <= 20 µs"),
            cpu_us <= 20.0,
        ),
        // A TCP connect per request is the emulator's doing, not AWS's: shown, not judged.
        Connections::OnePerRequest => "not judged (see the kept-alive figure)",
    };
    println!(
        "worker process CPU (user+system, all)      {cpu_us:>8.1} µs/record   budget 20 µs: {cpu_verdict}"
    );
}

/// How the drain's clients reach the emulator.
#[derive(Clone, Copy)]
enum Connections {
    /// Straight to the emulator. moto's server answers every request with `Connection: close`,
    /// so there each request opens a TCP connection, which the worker's CPU time then includes.
    OnePerRequest,
    /// Through a pass-through proxy that keeps client connections open, as DynamoDB and SQS
    /// endpoints do; bare loop and worker alike go through it.
    KeptAlive,
}

impl Connections {
    fn short(self) -> &'static str {
        match self {
            Self::OnePerRequest => "straight to the emulator",
            Self::KeptAlive => "kept-alive connections",
        }
    }

    fn describe(self) -> &'static str {
        match self {
            Self::OnePerRequest => "straight to the emulator (moto: a new connection per request)",
            Self::KeptAlive => "through a keep-alive proxy, as AWS endpoints keep connections",
        }
    }
}
/// Seconds until every queued message is written and gone from the queue, watched the same
/// way for both contenders.
async fn until_drained(emulator: &Emulator, resources: &TestResources, n: i64) -> Instant {
    loop {
        let count = emulator
            .dynamodb
            .describe_table()
            .table_name(&resources.table_name)
            .send()
            .await
            .ok()
            .and_then(|t| t.table?.item_count)
            .unwrap_or_default();
        if count >= n {
            let (visible, in_flight) = emulator.queue_depth(&resources.queue_url).await;
            if visible + in_flight == 0 {
                return Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Added to every request in the latency runs, through the fault proxy: the assumed round
/// trip to SQS or DynamoDB from inside the same AWS region.
const AWS_LIKE_LATENCY: Duration = Duration::from_millis(10);
/// Loops of the bare pipeline: enough receives, writes and deletes in flight that the
/// emulator (or the added latency), not the client, sets the pace.
const BARE_PIPELINE_LOOPS: usize = 32;

/// One loop of the bare pipeline: receive 10, write them, delete them, until a receive comes
/// back empty. Many run at once.
async fn bare_consumer(
    client: &Emulator,
    resources: &TestResources,
    items: &HashMap<String, Item>,
) {
    loop {
        let received = client
            .sqs
            .receive_message()
            .queue_url(&resources.queue_url)
            .max_number_of_messages(10)
            .wait_time_seconds(1)
            .send()
            .await
            .expect("ReceiveMessage");
        let messages = received.messages.unwrap_or_default();
        if messages.is_empty() {
            return;
        }
        let batch: Vec<Item> = messages
            .iter()
            .filter_map(|m| items.get(m.body.as_deref()?).cloned())
            .collect();
        client
            .dynamodb
            .batch_write_item()
            .request_items(&resources.table_name, write_requests(&batch))
            .send()
            .await
            .expect("BatchWriteItem");
        let entries: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter_map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle.clone()?)
                    .build()
                    .ok()
            })
            .collect();
        client
            .sqs
            .delete_message_batch()
            .queue_url(&resources.queue_url)
            .set_entries(Some(entries))
            .send()
            .await
            .expect("DeleteMessageBatch");
    }
}

/// Queues `bodies` on fresh resources and returns them.
async fn queued(emulator: &Emulator, bodies: &[String]) -> TestResources {
    let resources = emulator.create_resources().await;
    stream::iter(bodies.chunks(500))
        .for_each_concurrent(8, |chunk| emulator.send_bodies(&resources.queue_url, chunk))
        .await;
    resources
}

/// What the worker binary did in one poller-mode drain.
struct PollerRun {
    rate: f64,
    cpu_us_per_record: f64,
    /// BatchWriteItem requests the proxy saw.
    write_requests: u64,
    /// `ceil(records/25)` summed over the batches the worker logged.
    write_request_bound: u64,
    batches: u64,
}

/// The worker binary in poller mode at its defaults, every AWS call through `proxy`, draining
/// a queue filled with `bodies`.
async fn poller_drain(emulator: &Emulator, proxy: &FaultProxy, bodies: &[String]) -> PollerRun {
    let n = bodies.len();
    let resources = queued(emulator, bodies).await;
    let mut env = resources.env(emulator);
    env.retain(|(k, _)| k != "AWS_ENDPOINT_URL");
    env.push(("AWS_ENDPOINT_URL".into(), proxy.url.clone()));
    env.push(("LOG_FORMAT".into(), "json".into()));
    env.push(("METRICS".into(), "off".into()));
    let writes_before = proxy.stats().op(&dynamodb("BatchWriteItem")).calls;
    let started = Instant::now();
    let mut process: RunningBinary = spawn_binary("worker", &[], &env);
    let drained = tokio::time::timeout(
        Duration::from_secs(600),
        until_drained(emulator, &resources, n as i64),
    )
    .await;
    let Ok(done) = drained else {
        panic!("the poller did not drain: {}", process.log());
    };
    let seconds = done.duration_since(started).as_secs_f64();
    let write_requests = proxy.stats().op(&dynamodb("BatchWriteItem")).calls - writes_before;
    let cpu = exit_cpu(&mut process);
    let (mut bound, mut batches) = (0u64, 0u64);
    for line in process.log().lines() {
        let Ok(line) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let fields = line.get("fields").unwrap_or(&line);
        if fields.get("message").and_then(|m| m.as_str()) == Some("batch processed") {
            let records = fields.get("records").and_then(|r| r.as_u64()).unwrap_or(0);
            bound += records.div_ceil(25);
            batches += 1;
        }
    }
    assert!(
        batches > 0,
        "no `batch processed` line in the worker's log: {}",
        process.log()
    );
    PollerRun {
        rate: n as f64 / seconds,
        cpu_us_per_record: cpu.as_secs_f64() * 1e6 / n as f64,
        write_requests,
        write_request_bound: bound,
        batches,
    }
}

/// [`BARE_PIPELINE_LOOPS`] bare loops draining a queue filled with `bodies`, through `client`.
async fn bare_pipeline(
    emulator: &Emulator,
    client: &Emulator,
    bodies: &[String],
    items: &HashMap<String, Item>,
) -> f64 {
    let resources = queued(emulator, bodies).await;
    let started = Instant::now();
    futures::future::join_all(
        (0..BARE_PIPELINE_LOOPS).map(|_| bare_consumer(client, &resources, items)),
    )
    .await;
    let done = until_drained(emulator, &resources, bodies.len() as i64).await;
    bodies.len() as f64 / done.duration_since(started).as_secs_f64()
}

/// Drain through the poller (the ECS/EKS mode) at its defaults: with an AWS-like latency added
/// to every request, against one Lambda-path execution at the same latency and batch size and
/// against the emulator's own ceiling (a bare pipeline keeping many receives, writes and
/// deletes in flight); then at no added latency against that ceiling alone.
async fn drain_poller_path(emulator: &Emulator, verdicts: &mut Verdicts) {
    // moto's ReceiveMessage slows down as a queue grows (about 1.4 s per call at 2,000 deep),
    // so this section wants MiniStack; BENCH_POLLER_MESSAGES trims it.
    let count = std::env::var("BENCH_POLLER_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(4 * DRAIN_RECORDS);
    let batch = messages(count, count);
    let bodies: Vec<String> = batch.iter().filter_map(|m| m.body.clone()).collect();
    let items: HashMap<String, Item> = bodies.iter().cloned().zip(items_of(&batch)).collect();

    let proxy = FaultProxy::start(&emulator.endpoint).await;
    proxy.set_faults(SQS, Faults::latency(AWS_LIKE_LATENCY));
    proxy.set_faults(DYNAMODB, Faults::latency(AWS_LIKE_LATENCY));
    let slowed = Emulator::at(proxy.url.clone()).await;
    let latency_ms = AWS_LIKE_LATENCY.as_millis();

    let lambda_batch = &batch[..count.min(DRAIN_RECORDS)];
    let (lambda_seconds, _) = lambda_drain_via(emulator, lambda_batch, Some(&proxy.url)).await;
    let lambda_rate = lambda_batch.len() as f64 / lambda_seconds;
    let bare_rate = bare_pipeline(emulator, &slowed, &bodies, &items).await;
    let ours = poller_drain(emulator, &proxy, &bodies).await;
    let (bound_name, bound) = if bare_rate < lambda_rate {
        ("the emulator's ceiling (bare pipeline)", bare_rate)
    } else {
        ("one Lambda-path execution", lambda_rate)
    };
    println!(
        "\n## Drain, poller path at defaults, {latency_ms} ms added to every request ({count} queued messages; {})",
        emulator_name()
    );
    println!(
        "worker under the Runtime API, one execution {lambda_rate:>8.0} records/s   (events of {LAMBDA_BATCH}, {} records)",
        lambda_batch.len()
    );
    println!(
        "bare pipeline, {BARE_PIPELINE_LOOPS} receive/write/delete loops {bare_rate:>8.0} records/s   (the emulator's ceiling at this latency)"
    );
    println!(
        "worker binary (poller mode, defaults)       {:>8.0} records/s   {:.2} of {bound_name} (budget 0.9: {})",
        ours.rate,
        ours.rate / bound,
        verdicts.check(
            format!("poller drain at {latency_ms} ms >= 0.9 of {bound_name}"),
            ours.rate / bound >= 0.9
        )
    );
    println!(
        "  BatchWriteItem requests {} for {count} records in {} batches (mean {:.0}); bound sum(ceil(n/25)) = {}, ceil({count}/25) = {}: {}",
        ours.write_requests,
        ours.batches,
        count as f64 / ours.batches as f64,
        ours.write_request_bound,
        count.div_ceil(25),
        verdicts.check(
            "poller BatchWriteItem requests <= sum of ceil(n/25) per batch",
            ours.write_requests <= ours.write_request_bound
        )
    );
    println!(
        "  worker process CPU (user+system)          {:>8.1} µs/record (start-up included)",
        ours.cpu_us_per_record
    );

    let direct = FaultProxy::start(&emulator.endpoint).await;
    let kept_alive = Emulator::at(direct.url.clone()).await;
    let bare_rate = bare_pipeline(emulator, &kept_alive, &bodies, &items).await;
    let ours = poller_drain(emulator, &direct, &bodies).await;
    println!(
        "\n## Drain, poller path at defaults, no added latency ({count} queued messages; {})",
        emulator_name()
    );
    println!(
        "bare pipeline, {BARE_PIPELINE_LOOPS} receive/write/delete loops {bare_rate:>8.0} records/s"
    );
    println!(
        "worker binary (poller mode, defaults)       {:>8.0} records/s   {:.2} of bare (budget 0.9: {})",
        ours.rate,
        ours.rate / bare_rate,
        verdicts.check("poller drain, no added latency >= 0.9 of bare", ours.rate / bare_rate >= 0.9)
    );
    println!(
        "  BatchWriteItem requests {} in {} batches; worker process CPU {:.1} µs/record",
        ours.write_requests, ours.batches, ours.cpu_us_per_record
    );
}

/// The emulator this run talks to, as scripts/with-emulator.sh started it.
fn emulator_name() -> String {
    std::env::var("EMULATOR").unwrap_or_else(|_| "emulator unnamed".into())
}

/// An in-memory queue port: ingest's cost alone, with no network.
#[derive(Default)]
struct MemoryQueue(AtomicUsize);

#[async_trait]
impl ingest::queue::ScoreQueue for MemoryQueue {
    async fn enqueue(
        &self,
        message: &contract::ScoreMessage,
        _correlation_id: &str,
    ) -> anyhow::Result<String> {
        std::hint::black_box(message.to_json());
        let n = self.0.fetch_add(1, Ordering::Relaxed);
        Ok(n.to_string())
    }
}

/// µs per POST through a router, sequentially, median of 15 rounds of 200.
async fn per_request(router: &axum::Router, token: &str) -> f64 {
    let send = || async {
        let request = Request::post("/v1/users/alice/credit-scores")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(
                r#"{"bureau":"experian","score":742,"reportedAt":"2026-11-28T10:00:00Z"}"#,
            ))
            .expect("a valid request");
        let response = router.clone().oneshot(request).await.expect("infallible");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    };
    for _ in 0..50 {
        send().await;
    }
    let mut rounds = Vec::new();
    for _ in 0..15 {
        let started = Instant::now();
        for _ in 0..200 {
            send().await;
        }
        rounds.push(started.elapsed().as_secs_f64() * 1e6 / 200.0);
    }
    median(rounds)
}

/// Ingest in-process: a POST through `app()` (auth cache hit, in-memory queue) vs a bare
/// axum handler that parses the same JSON.
async fn ingest_in_process(emulator: &Emulator) {
    let resources = emulator.create_resources().await;
    let stub = UserServiceStub::start().await;
    let mut settings = pipeline_tests::ingest_settings(&resources, &stub);
    settings.auth_cache_ttl = Duration::from_secs(3600);
    let validator = ingest::auth::UserServiceValidator::new(
        &settings.user_service_endpoint(),
        settings.user_service_timeout,
    )
    .expect("validator");
    let reader = ingest::reads::DynamoScoreReader {
        client: emulator.dynamodb.clone(),
        table_name: resources.table_name.clone(),
    };
    let queue = Arc::new(MemoryQueue::default());
    let state = ingest::AppState::new(
        &settings,
        Arc::new(validator),
        queue.clone(),
        Arc::new(reader),
        // Unkeyed writes never ask it; keyed ones cost one GetItem (not measured here).
        Arc::new(ingest::idempotency::NothingStored),
        &ingest::cursor::CursorKey::random().expect("a key"),
    );
    let ours = ingest::app(state);
    let bare = axum::Router::new().route(
        "/v1/users/{userId}/credit-scores",
        axum::routing::post(
            |axum::extract::Path(user): axum::extract::Path<String>, body: Bytes| async move {
                let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
                std::hint::black_box((user, parsed));
                (
                    StatusCode::ACCEPTED,
                    axum::Json(serde_json::json!({"reportId": "r", "status": "accepted"})),
                )
            },
        ),
    );
    let token = DevTokens::default().mint("alice", &[], Duration::from_secs(3600));
    let ours_us = per_request(&ours, &token).await;
    let bare_us = per_request(&bare, &token).await;
    println!("\n## Ingest in-process (POST through the router, no socket; median of 15 x 200)");
    println!("bare axum handler parsing the same JSON   {bare_us:>7.1} µs/request");
    println!(
        "ingest app() (auth cache hit, memory queue) {ours_us:>6.1} µs/request   {:.1}x bare; User Service called {} time(s) for {} requests",
        ours_us / bare_us,
        stub.calls(),
        queue.0.load(Ordering::Relaxed)
    );
}

/// The app on `settings`' auth mode, with the in-memory queue: only the auth check differs.
fn app_in_mode(
    settings: &ingest::settings::IngestSettings,
    emulator: &Emulator,
    table_name: &str,
) -> axum::Router {
    let check = ingest::AppState::token_check(settings).expect("token check");
    let reader = ingest::reads::DynamoScoreReader {
        client: emulator.dynamodb.clone(),
        table_name: table_name.to_owned(),
    };
    ingest::app(ingest::AppState::with_token_check(
        settings,
        check,
        Arc::new(MemoryQueue::default()),
        Arc::new(reader),
        Arc::new(ingest::idempotency::NothingStored),
        &ingest::cursor::CursorKey::random().expect("a key"),
    ))
}

/// Per-request cost of each auth mode side by side, in-process (no socket to ingest): the
/// User Service stub on loopback asked every time (cache off), the same with a cache hit,
/// and `AUTH_MODE=jwks` with the key set cached (RS256, 2048-bit key).
async fn auth_modes(emulator: &Emulator) {
    let resources = emulator.create_resources().await;
    let stub = UserServiceStub::start().await;
    let issuer = pipeline_tests::JwksIssuer::start().await;
    let mut uncached = pipeline_tests::ingest_settings(&resources, &stub);
    uncached.auth_cache_ttl = Duration::ZERO;
    let mut cached = uncached.clone();
    cached.auth_cache_ttl = Duration::from_secs(3600);
    let env = issuer.ingest_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let jwks = pipeline_tests::ingest_settings_with_env(&resources, &stub, &env);
    let dev_token = DevTokens::default().mint("alice", &[], Duration::from_secs(3600));
    let jwt = issuer.token_for("alice");
    let bare = axum::Router::new().route(
        "/v1/users/{userId}/credit-scores",
        axum::routing::post(|body: Bytes| async move {
            let parsed: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
            std::hint::black_box(parsed);
            StatusCode::ACCEPTED
        }),
    );
    let bare_us = per_request(&bare, &dev_token).await;
    let calls_before = stub.calls();
    let service_us = per_request(
        &app_in_mode(&uncached, emulator, &resources.table_name),
        &dev_token,
    )
    .await;
    let service_calls = stub.calls() - calls_before;
    let cached_us = per_request(
        &app_in_mode(&cached, emulator, &resources.table_name),
        &dev_token,
    )
    .await;
    let jwks_us = per_request(&app_in_mode(&jwks, emulator, &resources.table_name), &jwt).await;
    println!("\n## Auth modes side by side (POST through app(), memory queue; median of 15 x 200)");
    println!("bare axum handler                                   {bare_us:>8.1} µs/request");
    println!("user-service, stub on loopback asked every request  {service_us:>8.1} µs/request   ({service_calls} calls)");
    println!("user-service, validation cache hit                  {cached_us:>8.1} µs/request");
    println!(
        "jwks, key set cached (RS256 verify per request)     {jwks_us:>8.1} µs/request   (JWKS fetched {} time(s)); {:.1}x faster than asking the stub",
        issuer.hits(),
        service_us / jwks_us
    );
}

/// A function's binary as it is deployed: ingest from the `release-size` profile (optimised
/// for size; infra/package.sh and scripts/bench.sh build it), the others from `release`.
fn deployment_binary(name: &str) -> std::path::PathBuf {
    let release = pipeline_tests::workspace_binary(name);
    if name != "ingest" {
        return release;
    }
    let sized = release
        .parent()
        .and_then(|dir| dir.parent())
        .map(|target| target.join("release-size").join(name))
        .expect("release binaries sit in target/release");
    assert!(
        sized.exists(),
        "{} is missing: `cargo build --profile release-size -p ingest` (scripts/bench.sh runs it)",
        sized.display()
    );
    sized
}

fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
}

/// Process start to first Runtime API poll, and peak memory after one invocation.
async fn lambda_start(emulator: &Emulator, verdicts: &mut Verdicts) {
    let resources = emulator.create_resources().await;
    let stub = UserServiceStub::start().await;
    let token = DevTokens::default().mint("alice", &[], Duration::from_secs(3600));
    let sqs = sqs_event(&messages(100, 100));
    let api_event = include_str!("../tests/fixtures/apigw_v2_http_post_score.json")
        .replace("__STAGE__", "$default")
        .replace("__RAW_PATH__", "/v1/users/alice/credit-scores")
        .replace("__TOKEN__", &token)
        .replace("__REPORT_ID__", "bench")
        .replace(
            "__BODY__",
            r#"{\"bureau\":\"experian\",\"score\":742,\"reportedAt\":\"2026-11-28T10:00:00Z\"}"#,
        );

    println!("\n## Lambda init (spawn to first Runtime API poll) and peak RSS after one invocation; deployment builds, median of {INIT_ROUNDS} round-robin runs");
    let contenders = [
        ("bare-lambda", "{}".to_owned()),
        ("worker", sqs),
        ("ingest", api_event),
    ];
    // Round robin, so a slow stretch of the machine hits every binary alike.
    let mut inits = vec![Vec::new(); contenders.len()];
    let mut rss = vec![Vec::new(); contenders.len()];
    for _ in 0..INIT_ROUNDS {
        for (i, (name, event)) in contenders.iter().enumerate() {
            let runtime = FakeRuntimeApi::start().await;
            let mut env = resources.env(emulator);
            env.extend(lambda_env(&runtime.address));
            env.push(("USER_SERVICE_URL".into(), stub.url.clone()));
            env.push((
                "CURSOR_SIGNING_KEY".into(),
                "bench-only-cursor-key-0123456789abcdef".into(),
            ));
            let started = Instant::now();
            let mut process = spawn_binary_at(&deployment_binary(name), &[], &env);
            let first =
                pipeline_tests::eventually(Duration::from_secs(10), || runtime.first_poll()).await;
            let Some(first) = first else {
                panic!("{name} never polled; log:\n{}", process.log());
            };
            inits[i].push(first.duration_since(started).as_secs_f64() * 1e3);
            let id = runtime.invoke(event.clone()).await;
            let result = runtime.result(&id, Duration::from_secs(30)).await;
            assert!(
                result.is_some_and(|r| r.kind == "response"),
                "{name} invocation failed: {}",
                process.log()
            );
            rss[i].push(peak_rss_kib(process.child.id()).unwrap_or_default() as f64 / 1024.0);
            process.kill_hard();
        }
    }
    let rows: Vec<(&str, f64, f64)> = contenders
        .iter()
        .zip(inits.into_iter().zip(rss))
        .map(|((name, _), (inits, rss))| (*name, median(inits), median(rss)))
        .collect();
    let (_, floor_init, floor_rss) = rows[0];
    for (name, init, rss) in &rows {
        let budgets = match *name {
            "bare-lambda" => "(floor)".to_owned(),
            _ => {
                let ratio_budget = if *name == "worker" { 2.0 } else { 3.0 };
                format!(
                    "init budget {ratio_budget}x floor: {}; rss budget 16 MB: {}",
                    verdicts.check(
                        format!("{name} init <= {ratio_budget}x bare"),
                        init / floor_init <= ratio_budget
                    ),
                    verdicts.check(format!("{name} peak RSS <= 16 MB"), *rss <= 16.0)
                )
            }
        };
        println!(
            "{name:<12} init {init:>6.1} ms ({:.1}x floor)   peak RSS {rss:>5.1} MiB ({:.1}x floor)   {budgets}",
            init / floor_init,
            rss / floor_rss
        );
    }
}

/// Zipped size of each release binary, as a Lambda deployment package would be.
fn zip_sizes(verdicts: &mut Verdicts) {
    println!("\n## Deployment zip per function (deployment build as `bootstrap`, deflate; ingest at opt-level s)");
    for name in ["bare-lambda", "ingest", "worker"] {
        let binary = deployment_binary(name);
        let script = "import sys,zipfile,os\nz=zipfile.ZipFile(sys.argv[2],'w',zipfile.ZIP_DEFLATED)\nz.write(sys.argv[1],'bootstrap')\nz.close()\nprint(os.path.getsize(sys.argv[2]))";
        let out_path = std::env::temp_dir().join(format!("{name}-bench.zip"));
        let out = std::process::Command::new("python3")
            .args(["-c", script])
            .arg(&binary)
            .arg(&out_path)
            .output()
            .expect("python3 runs");
        let zipped: f64 = String::from_utf8_lossy(&out.stdout)
            .trim()
            .parse()
            .unwrap_or(0.0);
        let raw = std::fs::metadata(&binary).map(|m| m.len()).unwrap_or(0) as f64;
        let zipped_mb = zipped / 1e6;
        println!(
            "{name:<12} binary {:>5.1} MB   zip {zipped_mb:>5.2} MB   {}",
            raw / 1e6,
            if name == "bare-lambda" {
                "(floor)".to_owned()
            } else {
                format!(
                    "budget 4 MB: {}",
                    verdicts.check(format!("{name} zip <= 4 MB"), zipped_mb <= 4.0)
                )
            }
        );
    }
    println!("(x86_64 here: this machine has no aarch64 standard library; arm64 binaries come out close in size)");
}

/// Whether `BENCH_SECTIONS` (comma-separated; unset = all) asks for `name`.
fn wanted(name: &str) -> bool {
    std::env::var("BENCH_SECTIONS")
        .map(|v| v.split(',').any(|s| s.trim() == name))
        .unwrap_or(true)
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; sections are chosen with BENCH_SECTIONS (cpu, requests,
    // drain, poller, ingest, auth, init, zip), everything by default.
    platform::telemetry::init();
    let mut verdicts = Verdicts::default();
    println!("# credit-score pipeline benchmarks");
    if wanted("cpu") {
        cpu_per_record(&mut verdicts);
    }
    if wanted("requests") {
        request_counts().await;
    }
    let emulator = Emulator::connect().await;
    if wanted("drain") {
        let direct = Connections::OnePerRequest;
        drain_lambda_path(&emulator, direct, DRAIN_RECORDS, &mut verdicts).await;
        // Nothing injected: the fault proxy only forwards, keeping its clients' connections.
        let front = pipeline_tests::fault_proxy::FaultProxy::start(&emulator.endpoint).await;
        let kept_alive = Emulator::at(front.url.clone()).await;
        for users in [DRAIN_RECORDS, 50] {
            drain_lambda_path(&kept_alive, Connections::KeptAlive, users, &mut verdicts).await;
        }
    }
    if wanted("poller") {
        drain_poller_path(&emulator, &mut verdicts).await;
    }
    if wanted("ingest") {
        ingest_in_process(&emulator).await;
    }
    if wanted("auth") {
        auth_modes(&emulator).await;
    }
    if wanted("init") {
        lambda_start(&emulator, &mut verdicts).await;
    }
    if wanted("zip") {
        zip_sizes(&mut verdicts);
    }
    println!("\n## Budgets");
    for (what, ok) in &verdicts.0 {
        println!("{} {what}", if *ok { "met " } else { "MISS" });
    }
}
