//! `make bench`: the performance budgets of DESIGN.md, measured, printed with the baseline
//! each is compared to in the same run. Absolute times vary by machine; ratios travel.
//!
//! Needs the emulator (AWS_ENDPOINT_URL) and release binaries (`cargo build --release
//! --workspace --bins`), which `scripts/bench.sh` provides.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_sdk_dynamodb::types::{PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use pipeline_tests::runtime_api::FakeRuntimeApi;
use pipeline_tests::{lambda_env, spawn_binary, DevTokens, Emulator, UserServiceStub};
use shared::item::StoredReport;
use worker::dlq::{DeadLetter, DeadLetterQueue};
use worker::processor::{prepare_batch, Processor, ProcessorConfig};
use worker::record::InboundMessage;
use worker::store::{LatestOutcome, ScoreStore, StoreError};

const BUREAUS: [(&str, u64); 3] = [("experian", 999), ("equifax", 1000), ("transunion", 710)];

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
            message_id: format!("m-{i}"),
            body: Some(body(i, users)),
            sent_at: None,
            receive_count: 1,
            attributes: HashMap::new(),
        })
        .collect()
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(|a, b| a.total_cmp(b));
    values[values.len() / 2]
}

fn verdict(ok: bool) -> &'static str {
    if ok {
        "within budget"
    } else {
        "OVER BUDGET"
    }
}

/// Worker CPU per record: decode, validate, dedupe, marshal. Baseline: parsing the same
/// bodies into `serde_json::Value` and nothing else.
fn cpu_per_record() {
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
            std::hint::black_box(group.report.report_item());
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
    let ours_us = median((0..31).map(|_| per_record(&ours)).collect());
    let base_us = median((0..31).map(|_| per_record(&baseline)).collect());
    println!("\n## Worker CPU per record (100-record batches, median of 31 samples)");
    println!(
        "decode+validate+dedupe+marshal   {ours_us:>7.2} µs/record   budget 3 µs: {}",
        verdict(ours_us <= 3.0)
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
    latest_writes: AtomicUsize,
}

#[async_trait]
impl ScoreStore for CountingStore {
    async fn put_reports(&self, reports: &[&StoredReport]) -> Result<Vec<usize>, StoreError> {
        assert!(reports.len() <= 25);
        self.batch_writes.fetch_add(1, Ordering::Relaxed);
        Ok(Vec::new())
    }
    async fn advance_latest(&self, _: &StoredReport) -> Result<LatestOutcome, StoreError> {
        self.latest_writes.fetch_add(1, Ordering::Relaxed);
        Ok(LatestOutcome::Advanced)
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
    println!("\n## DynamoDB requests for n records (one batch, no retries)");
    println!(
        "{:>6} {:>14} {:>12} {:>18} {:>18}",
        "n", "BatchWriteItem", "ceil(n/25)", "latest PutItem", "distinct user+bureau"
    );
    for n in [1usize, 24, 25, 26, 100, 250, 1000] {
        let store = Arc::new(CountingStore::default());
        let processor = Processor::new(store.clone(), Arc::new(NoDlq), ProcessorConfig::default());
        processor
            .process_batch(
                &messages(n, 50),
                tokio::time::Instant::now() + Duration::from_secs(30),
            )
            .await;
        let batch = store.batch_writes.load(Ordering::Relaxed);
        println!(
            "{n:>6} {batch:>14} {:>12} {:>18} {:>18}",
            n.div_ceil(25),
            store.latest_writes.load(Ordering::Relaxed),
            n.min(150)
        );
        assert_eq!(batch, n.div_ceil(25), "report writes are ceil(n/25)");
    }
    println!("(latest-per-bureau items: one conditional PutItem per distinct user and bureau in a batch; 50 users x 3 bureaus here)");
}

/// Drain rate against the emulator: our processor vs a bare BatchWriteItem loop vs one
/// PutItem per message, each into its own fresh table.
async fn drain_rates(emulator: &Emulator) {
    let n = 2000;
    let users = 2000;
    let batch = messages(n, users);
    let prepared = prepare_batch(&batch, time::OffsetDateTime::now_utc());
    let items: Vec<_> = prepared
        .groups
        .iter()
        .map(|g| g.report.report_item())
        .collect();
    let mut same_items = items.clone();
    same_items.extend(prepared.groups.iter().map(|g| g.report.latest_item()));

    let bare = bare_loop(emulator, &items).await;
    let bare_same = bare_loop(emulator, &same_items).await;
    let bare_same_rate = n as f64 / bare_same;
    let bare = n as f64 / bare;

    // One PutItem per message, sequential: the worker many teams write first.
    let r = emulator.create_resources().await;
    let started = Instant::now();
    for item in &items {
        emulator
            .dynamodb
            .put_item()
            .table_name(&r.table_name)
            .set_item(Some(item.clone()))
            .send()
            .await
            .unwrap();
    }
    let per_item = n as f64 / started.elapsed().as_secs_f64();

    // Ours: the real processor, 100-record batches one after another (one Lambda instance).
    let r = emulator.create_resources().await;
    let env: HashMap<String, String> = r.env(emulator).into_iter().collect();
    let settings = worker::settings::WorkerSettings::from_source(&env).unwrap();
    let processor = worker::build_processor(&settings, &emulator.sdk);
    let started = Instant::now();
    for chunk in batch.chunks(100) {
        let outcome = processor
            .process_batch(chunk, tokio::time::Instant::now() + Duration::from_secs(60))
            .await;
        assert!(outcome.failed.is_empty());
    }
    let ours = n as f64 / started.elapsed().as_secs_f64();
    let written = emulator.reports(&r.table_name).await.len();
    assert_eq!(written, n);

    println!("\n## Drain rate against the emulator ({n} records, {users} users)");
    println!("bare BatchWriteItem loop, report items only   {bare:>8.0} records/s");
    println!("bare BatchWriteItem loop, same items as ours   {bare_same_rate:>8.0} records/s   (reports + latest items, unconditional)");
    println!("one PutItem per message (report only)          {per_item:>8.0} records/s");
    println!(
        "worker processor (100-record batches)          {ours:>8.0} records/s   {:.2} of bare reports-only, {:.2} of bare same-items (budget 0.9: {}), {:.1}x PutItem-per-message (budget 10x: {})",
        ours / bare,
        ours / bare_same_rate,
        verdict(ours / bare_same_rate >= 0.9),
        ours / per_item,
        verdict(ours / per_item >= 10.0)
    );
}

/// Seconds to write `items` with BatchWriteItem, 25 per request, 4 in flight (the worker's
/// default concurrency), into a fresh table.
async fn bare_loop(emulator: &Emulator, items: &[shared::item::Item]) -> f64 {
    let r = emulator.create_resources().await;
    let started = Instant::now();
    stream::iter(items.chunks(25))
        .map(|chunk| {
            let requests: Vec<WriteRequest> = chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect();
            emulator
                .dynamodb
                .batch_write_item()
                .request_items(&r.table_name, requests)
                .send()
        })
        .buffer_unordered(4)
        .for_each(|out| async move {
            out.unwrap();
        })
        .await;
    started.elapsed().as_secs_f64()
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
async fn lambda_start(emulator: &Emulator) {
    let resources = emulator.create_resources().await;
    let stub = UserServiceStub::start().await;
    let token = DevTokens::default().mint("alice", &[], Duration::from_secs(3600));
    let sqs_event = serde_json::json!({
        "Records": messages(100, 100).iter().map(|m| serde_json::json!({
            "messageId": m.message_id, "receiptHandle": "rh", "body": m.body,
            "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": "1795860001000"},
            "messageAttributes": {}, "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:q", "awsRegion": "us-east-1"
        })).collect::<Vec<_>>()
    })
    .to_string();
    let api_event = include_str!("../tests/fixtures/apigw_v2_http_post_score.json")
        .replace("__STAGE__", "$default")
        .replace("__RAW_PATH__", "/v1/users/alice/credit-scores")
        .replace("__TOKEN__", &token)
        .replace("__REPORT_ID__", "bench")
        .replace(
            "__BODY__",
            r#"{\"bureau\":\"experian\",\"score\":742,\"reportedAt\":\"2026-11-28T10:00:00Z\"}"#,
        );

    println!("\n## Lambda init (spawn to first Runtime API poll) and peak RSS after one invocation; release build, median of 15");
    let mut rows = Vec::new();
    for (name, event) in [
        ("bare-lambda", "{}".to_owned()),
        ("worker", sqs_event),
        ("ingest", api_event),
    ] {
        let mut inits = Vec::new();
        let mut rss = Vec::new();
        for _ in 0..15 {
            let runtime = FakeRuntimeApi::start().await;
            let mut env = resources.env(emulator);
            env.extend(lambda_env(&runtime.address));
            env.push(("USER_SERVICE_URL".into(), stub.url.clone()));
            env.push((
                "CURSOR_SIGNING_KEY".into(),
                "bench-only-cursor-key-0123456789abcdef".into(),
            ));
            let started = Instant::now();
            let mut process = spawn_binary(name, &[], &env);
            let first =
                pipeline_tests::eventually(Duration::from_secs(10), || runtime.first_poll()).await;
            let Some(first) = first else {
                panic!("{name} never polled; log:\n{}", process.log());
            };
            inits.push(first.duration_since(started).as_secs_f64() * 1e3);
            let id = runtime.invoke(event.clone()).await;
            let result = runtime.result(&id, Duration::from_secs(30)).await;
            assert!(
                result.is_some_and(|r| r.kind == "response"),
                "{name} invocation failed: {}",
                process.log()
            );
            rss.push(peak_rss_kib(process.child.id()).unwrap_or_default() as f64 / 1024.0);
            process.kill_hard();
        }
        rows.push((name, median(inits), median(rss)));
    }
    let (_, floor_init, floor_rss) = rows[0];
    for (name, init, rss) in &rows {
        let budgets = if *name == "bare-lambda" {
            "(floor)".to_owned()
        } else {
            format!(
                "init budget 20 ms: {}; rss budget 30 MB: {}",
                verdict(*init <= 20.0),
                verdict(*rss <= 30.0)
            )
        };
        println!(
            "{name:<12} init {init:>6.1} ms ({:.1}x floor)   peak RSS {rss:>5.1} MiB ({:.1}x floor)   {budgets}",
            init / floor_init,
            rss / floor_rss
        );
    }
}

/// Zipped size of each release binary, as a Lambda deployment package would be.
fn zip_sizes() {
    println!("\n## Deployment zip per function (release binary as `bootstrap`, deflate)");
    for name in ["bare-lambda", "ingest", "worker"] {
        let binary = pipeline_tests::workspace_binary(name);
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
                format!("budget 6 MB: {}", verdict(zipped_mb <= 6.0))
            }
        );
    }
    println!("(x86_64 here: this machine has no aarch64 standard library; arm64 binaries come out close in size)");
}

#[tokio::main]
async fn main() {
    // `cargo bench` passes `--bench`; filters are not supported, everything runs.
    shared::telemetry::init();
    println!("# credit-score pipeline benchmarks");
    cpu_per_record();
    request_counts().await;
    let emulator = Emulator::connect().await;
    drain_rates(&emulator).await;
    lambda_start(&emulator).await;
    zip_sizes();
}
