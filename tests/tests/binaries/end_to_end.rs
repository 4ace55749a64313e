//! The whole pipeline through the real binaries: ingest as an HTTP server, the worker as a
//! long-polling consumer, the emulator's SQS and DynamoDB in between.

use std::collections::HashMap;
use std::time::Duration;

use pipeline_tests::{score_body, spawn_binary, AuthUnderTest, Emulator, RunningBinary};

async fn free_port() -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    listener.local_addr().unwrap().port()
}

async fn wait_healthy(http: &reqwest::Client, base: &str, process: &RunningBinary) {
    let healthy = pipeline_tests::eventually(Duration::from_secs(20), || async {
        match http.get(format!("{base}/health")).send().await {
            Ok(r) if r.status() == 200 => Some(()),
            _ => None,
        }
    })
    .await;
    assert!(
        healthy.is_some(),
        "ingest never became healthy; log:\n{}",
        process.log()
    );
}

#[tokio::test]
async fn fifty_scores_posted_to_ingest_each_land_in_the_table_exactly_once() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let auth = AuthUnderTest::start().await;
    let port = free_port().await;
    let mut ingest_env = resources.env(&emulator);
    ingest_env.extend(auth.ingest_env());
    ingest_env.push(("PORT".into(), port.to_string()));
    let ingest = spawn_binary("ingest", &[], &ingest_env);
    let worker = spawn_binary("worker", &[], &resources.env(&emulator));

    let http = pipeline_tests::http_client_builder()
        .build()
        .expect("reqwest client");
    let base = format!("http://127.0.0.1:{port}");
    wait_healthy(&http, &base, &ingest).await;

    let users = ["alice", "bob", "carol", "dan", "erin"];
    let mut accepted: HashMap<String, String> = HashMap::new();
    for i in 0..50 {
        let user = users[i % users.len()];
        let response = http
            .post(format!("{base}/v1/users/{user}/credit-scores"))
            .bearer_auth(auth.token_for(user))
            .json(&score_body(
                ["experian", "equifax", "transunion"][i % 3],
                300 + i as u64,
            ))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "write {i}");
        let body: serde_json::Value = response.json().await.unwrap();
        accepted.insert(
            body["reportId"].as_str().unwrap().to_owned(),
            user.to_owned(),
        );
    }

    let reports = emulator
        .wait_for_reports(&resources.table_name, 50, Duration::from_secs(60))
        .await;
    assert_eq!(
        reports.len(),
        50,
        "every accepted write is in the table; worker log:\n{}",
        worker.log()
    );
    for report in &reports {
        let user = accepted
            .get(report.report.report_id.as_str())
            .unwrap_or_else(|| panic!("unexpected report {:?}", report.report.report_id));
        assert_eq!(report.report.user_id.as_str(), user);
        assert_eq!(report.source, "api");
    }
    let (visible, in_flight) = emulator.queue_depth(&resources.queue_url).await;
    assert_eq!(
        (visible, in_flight),
        (0, 0),
        "every message was deleted after its write"
    );
    assert!(emulator.receive_all(&resources.dlq_url).await.is_empty());
}

#[tokio::test]
async fn the_poller_finishes_and_exits_cleanly_on_sigterm() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let mut worker = spawn_binary("worker", &[], &resources.env(&emulator));
    let bodies: Vec<String> = (0..30)
        .map(|i| {
            serde_json::json!({"version":1,"reportId":format!("r{i}"),"userId":"alice","bureau":"equifax",
                "score":500,"reportedAt":"2026-11-01T00:00:00Z","source":"batch:test"})
            .to_string()
        })
        .collect();
    emulator.send_bodies(&resources.queue_url, &bodies).await;
    let written = emulator
        .wait_for_reports(&resources.table_name, 30, Duration::from_secs(30))
        .await;
    assert_eq!(written.len(), 30, "log:\n{}", worker.log());

    let pid = worker.child.id().to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exited = pipeline_tests::eventually(Duration::from_secs(10), || {
        let polled = worker.child.try_wait().ok().flatten();
        async move { polled }
    })
    .await;
    let exit = exited.unwrap_or_else(|| panic!("worker ignored SIGTERM; log:\n{}", worker.log()));
    assert!(
        exit.success(),
        "clean exit after SIGTERM: {exit:?}; log:\n{}",
        worker.log()
    );
    assert!(worker.log().contains("poller stopped"));
}
