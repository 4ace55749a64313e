//! The worker binary's liveness and readiness answers (HEALTH_PORT) and its shutdown grace
//! period, in poller mode against the emulator. DynamoDB is reached through the fault proxy,
//! whose added latency keeps a batch in hand long enough to watch the worker drain it.

use std::time::Duration;

use pipeline_tests::emulator::Emulator;
use pipeline_tests::fault_proxy::{dynamodb, FaultProxy, Faults};
use pipeline_tests::{eventually, spawn_binary, RunningBinary};

fn bodies(n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            serde_json::json!({"version":1,"reportId":format!("h{i}"),"userId":format!("u{i}"),
                "bureau":"equifax","score":500,"reportedAt":"2026-11-01T00:00:00Z","source":"batch:test"})
            .to_string()
        })
        .collect()
}

/// A free loopback port for the worker's health answers.
async fn free_port() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    listener
        .local_addr()
        .expect("local address")
        .port()
        .to_string()
}

async fn status_of(client: &reqwest::Client, port: &str, path: &str) -> Option<u16> {
    let url = format!("http://127.0.0.1:{port}{path}");
    client
        .get(url)
        .send()
        .await
        .ok()
        .map(|r| r.status().as_u16())
}

/// Waits until the worker's first BatchWriteItem has reached the proxy: a batch is in hand.
async fn wait_for_a_write_in_hand(proxy: &FaultProxy, worker: &RunningBinary, timeout: Duration) {
    let in_hand = eventually(timeout, || async {
        (proxy.stats().op(&dynamodb("BatchWriteItem")).calls > 0).then_some(())
    })
    .await;
    assert!(
        in_hand.is_some(),
        "no write started; log:\n{}",
        worker.log()
    );
}

fn sigterm(worker: &RunningBinary) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &worker.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(status.success());
}

async fn wait_for_exit(worker: &mut RunningBinary, timeout: Duration) -> std::process::ExitStatus {
    let exited = eventually(timeout, || {
        let polled = worker.child.try_wait().ok().flatten();
        async move { polled }
    })
    .await;
    exited.unwrap_or_else(|| panic!("worker still running; log:\n{}", worker.log()))
}

/// The worker's environment with DynamoDB behind `proxy` (SQS straight to the emulator).
fn env_through(
    emulator: &Emulator,
    resources: &pipeline_tests::emulator::TestResources,
    proxy: &FaultProxy,
    extra: &[(&str, &str)],
) -> Vec<(String, String)> {
    let mut env = resources.env(emulator);
    env.push(("AWS_ENDPOINT_URL_DYNAMODB".into(), proxy.url.clone()));
    env.extend(
        extra
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env
}

#[tokio::test]
async fn the_worker_is_ready_while_polling_and_not_ready_but_alive_while_draining() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let client = pipeline_tests::http_client_builder()
        .timeout(Duration::from_secs(2))
        .build()
        .expect("client");
    let port = free_port().await;
    let env = env_through(
        &emulator,
        &resources,
        &proxy,
        &[("HEALTH_PORT", &port), ("POLLER_RECEIVE_LOOPS", "1")],
    );
    let mut worker = spawn_binary("worker", &[], &env);

    let ready = eventually(Duration::from_secs(15), || async {
        (status_of(&client, &port, "/ready").await == Some(200)).then_some(())
    })
    .await;
    assert!(ready.is_some(), "never ready; log:\n{}", worker.log());
    assert_eq!(status_of(&client, &port, "/health").await, Some(200));

    // Every write now takes 3 s: SIGTERM lands while a batch is in hand.
    proxy.set_faults(
        &dynamodb("BatchWriteItem"),
        Faults::latency(Duration::from_secs(3)),
    );
    emulator
        .send_bodies(&resources.queue_url, &bodies(10))
        .await;
    wait_for_a_write_in_hand(&proxy, &worker, Duration::from_secs(15)).await;
    sigterm(&worker);

    let draining = eventually(Duration::from_secs(2), || async {
        (status_of(&client, &port, "/ready").await == Some(503)).then_some(())
    })
    .await;
    assert!(
        draining.is_some(),
        "still ready after SIGTERM; log:\n{}",
        worker.log()
    );
    assert_eq!(
        status_of(&client, &port, "/health").await,
        Some(200),
        "alive while draining"
    );
    assert!(
        worker.child.try_wait().ok().flatten().is_none(),
        "exited before its batch was done"
    );

    let exit = wait_for_exit(&mut worker, Duration::from_secs(20)).await;
    assert!(exit.success(), "{exit:?}; log:\n{}", worker.log());
    // The batch in hand was written and deleted; whatever no receive had taken yet waits in
    // the queue for the next worker. Nothing is lost either way.
    let written = emulator.reports(&resources.table_name).await.len() as u64;
    let (visible, in_flight) = emulator.queue_depth(&resources.queue_url).await;
    assert!(
        written >= 1,
        "the batch in hand was finished; log:\n{}",
        worker.log()
    );
    assert_eq!(written + visible + in_flight, 10, "log:\n{}", worker.log());
    assert_eq!(
        status_of(&client, &port, "/health").await,
        None,
        "port closed on exit"
    );
}

#[tokio::test]
async fn a_batch_slower_than_the_shutdown_grace_is_left_to_redelivery_and_the_worker_exits_cleanly()
{
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    proxy.set_faults(
        &dynamodb("BatchWriteItem"),
        Faults::latency(Duration::from_secs(30)),
    );
    let env = env_through(
        &emulator,
        &resources,
        &proxy,
        &[
            ("HEALTH_PORT", &free_port().await),
            ("SHUTDOWN_GRACE_SECONDS", "1"),
        ],
    );
    let mut worker = spawn_binary("worker", &[], &env);
    emulator.send_bodies(&resources.queue_url, &bodies(5)).await;
    wait_for_a_write_in_hand(&proxy, &worker, Duration::from_secs(20)).await;

    let asked = std::time::Instant::now();
    sigterm(&worker);
    let exit = wait_for_exit(&mut worker, Duration::from_secs(10)).await;
    let took = asked.elapsed();
    assert!(exit.success(), "{exit:?}; log:\n{}", worker.log());
    assert!(
        took < Duration::from_secs(6),
        "exited {took:?} after SIGTERM, not within the 1 s grace; log:\n{}",
        worker.log()
    );
    assert!(
        worker.log().contains("grace period over"),
        "log:\n{}",
        worker.log()
    );
    // Not deleted: the messages are still in flight, and come back after the visibility timeout.
    let (visible, in_flight) = emulator.queue_depth(&resources.queue_url).await;
    assert_eq!(
        visible + in_flight,
        5,
        "nothing deleted that was not written"
    );
}
