//! A `kill -9` of the worker mid-drain loses nothing and doubles nothing: the messages it held
//! come back after the visibility timeout and a new worker writes them.
//!
//! Runs the real `worker` binary (build it first: `cargo build --workspace --bins`).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use pipeline_tests::fault_proxy::{dynamodb, DYNAMODB};
use pipeline_tests::workload::{assert_exactly_once, bodies, score_messages};
use pipeline_tests::{workspace_binary, Emulator, FaultProxy, Faults, TestResources};
use tokio::time::Instant;

const MESSAGES: usize = 1000;
const VISIBILITY_SECONDS: u32 = 5;
/// The kill comes once this many BatchWriteItem requests have gone on to the table and one
/// more has arrived at the proxy. That one waits out the proxy's 30 ms latency, so its batch
/// is certainly in hand (received, not yet deleted) when the kill lands a few ms later,
/// however fast the emulator is. Counting only requests sent on raced a fast emulator: the
/// last batch could be written and deleted before the kill, leaving nothing in flight.
const KILL_AFTER_WRITE_REQUESTS: u64 = 8;

/// Starts the worker binary in poller mode, every AWS call going through the proxy.
fn start_worker(resources: &TestResources, emulator: &Emulator, proxy: &FaultProxy) -> Child {
    Command::new(workspace_binary("worker"))
        .arg("run")
        .envs(resources.env(emulator))
        .env("AWS_ENDPOINT_URL", &proxy.url)
        .env("RETRY_BASE_DELAY_MS", "5")
        .env("POLLER_RECEIVE_LOOPS", "2")
        .env("DEADLINE_MARGIN_MS", "1000")
        .env("FAILURE_VISIBILITY_BASE_SECONDS", "1")
        .env("RUST_LOG", "warn")
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the worker binary")
}

/// Kills the worker when a test fails before it could.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_killed_mid_drain_loses_and_doubles_nothing() {
    let _alone = crate::EMULATOR_LOAD.lock().await;
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources_with(VISIBILITY_SECONDS, 10).await;
    let sent = score_messages("crash", MESSAGES, 20);
    emulator
        .send_bodies(&resources.queue_url, &bodies(&sent))
        .await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    // A slower table, so the kill lands while batches are in hand.
    proxy.set_faults(DYNAMODB, Faults::latency(Duration::from_millis(30)));

    let mut first = Running(start_worker(&resources, &emulator, &proxy));
    let deadline = Instant::now() + Duration::from_secs(60);
    let write_held_at_the_proxy = || {
        let writes = proxy.stats().op(&dynamodb("BatchWriteItem"));
        writes.forwarded >= KILL_AFTER_WRITE_REQUESTS && writes.calls > writes.forwarded
    };
    while !write_held_at_the_proxy() {
        assert!(
            Instant::now() < deadline,
            "the first worker never got going"
        );
        if let Some(status) = first.0.try_wait().expect("poll the worker") {
            panic!("the worker exited on its own: {status}");
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Child::kill is SIGKILL: no chance to finish or delete anything.
    first.0.kill().expect("kill -9 the worker");
    first.0.wait().expect("reap the killed worker");

    let written_at_kill = emulator.reports(&resources.table_name).await.len();
    let (_, in_flight_at_kill) = emulator.queue_depth(&resources.queue_url).await;
    assert!(
        written_at_kill > 0 && written_at_kill < MESSAGES,
        "the kill must land mid-drain ({written_at_kill} of {MESSAGES} written)"
    );
    assert!(
        in_flight_at_kill > 0,
        "the killed worker held no messages: the test proves nothing"
    );

    proxy.clear_faults();
    let mut second = Running(start_worker(&resources, &emulator, &proxy));
    let drained = async {
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            if emulator.queue_depth(&resources.queue_url).await == (0, 0) {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        false
    }
    .await;
    // SIGTERM: the worker finishes the batches in hand and exits cleanly.
    let pid = second.0.id();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .expect("send SIGTERM");
    assert!(term.success());
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = second.0.try_wait().expect("poll the worker") {
            break status;
        }
        assert!(
            Instant::now() < stop_deadline,
            "the worker did not stop within 30 s of SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(drained, "the queue did not drain after the restart");
    assert!(
        status.success(),
        "worker exit status after SIGTERM: {status}"
    );

    assert_exactly_once(&emulator, &resources.table_name, &sent).await;
    let (dlq_visible, dlq_in_flight) = emulator.queue_depth(&resources.dlq_url).await;
    assert_eq!(dlq_visible + dlq_in_flight, 0, "nothing dead-lettered");
    let stats = proxy.stats();
    assert!(
        stats.redeliveries > 0,
        "the killed worker's messages were redelivered"
    );
    println!(
        "killed with {written_at_kill}/{MESSAGES} written and {in_flight_at_kill} in flight; \
         {} redeliveries after the restart; all {MESSAGES} written once",
        stats.redeliveries
    );
}
