//! infra/template.yaml deployed for real into the emulator (MiniStack): requests through its
//! API Gateway route to the ingest Lambda, messages through its SQS event source mapping to
//! the worker Lambda, failures through `ReportBatchItemFailures` and the queue's redrive
//! policy, and a stack update and delete. Skipped, saying so, on an emulator that runs no
//! Lambda functions (moto); CI runs them on MiniStack with REQUIRE_LAMBDA_EMULATOR=1.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_sqs::types::QueueAttributeName;
use pipeline_tests::deployed_stack::{lambda_emulator, DeployedStack};
use pipeline_tests::workload::{bodies, score_messages};
use pipeline_tests::{
    eventually, http_client_builder, AuthUnderTest, DevTokens, Emulator, UserServiceStub,
};
use serde_json::{json, Value};
use worker::dlq::REASON_ATTRIBUTE;

/// Generous: the emulator runs every test's functions on the same two cores.
const WRITTEN_WITHIN: Duration = Duration::from_secs(60);

fn tokens() -> DevTokens {
    DevTokens::new(b"deployed-stack-tests-secret")
}

/// Stack parameters as [`DeployedStack::deploy`] takes them.
fn borrowed<'a>(params: &'a [(&'static str, String)]) -> Vec<(&'static str, &'a str)> {
    params.iter().map(|(k, v)| (*k, v.as_str())).collect()
}

fn http() -> reqwest::Client {
    http_client_builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("an HTTP client")
}

fn score(bureau: &str, value: u64) -> Value {
    json!({"bureau": bureau, "score": value, "reportedAt": "2026-11-30T10:00:00Z"})
}

async fn post_score(
    stack: &DeployedStack,
    user: &str,
    token: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut request = http()
        .post(stack.url(&format!("/v1/users/{user}/credit-scores")))
        .json(body);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    request.send().await.expect("POST through API Gateway")
}

async fn get_json(stack: &DeployedStack, path: &str, token: &str) -> (u16, Value) {
    let response = http()
        .get(stack.url(path))
        .bearer_auth(token)
        .send()
        .await
        .expect("GET through API Gateway");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

async fn message_count(emulator: &Emulator, queue_url: &str) -> u64 {
    let (visible, in_flight) = emulator.queue_depth(queue_url).await;
    visible + in_flight
}

/// Waits (bounded) until `queue_url` holds at least `count` messages, then receives them all.
/// Counting first: a receive hides what it gets, so polling by receiving would hide the
/// first arrivals from the later polls.
async fn wait_for_messages(
    emulator: &Emulator,
    queue_url: &str,
    count: usize,
    timeout: Duration,
) -> Vec<aws_sdk_sqs::types::Message> {
    eventually(timeout, || async {
        (message_count(emulator, queue_url).await >= count as u64).then_some(())
    })
    .await;
    emulator.receive_all(queue_url).await
}

/// Makes every write of the stack's worker fail: the table goes away (its deletion
/// protection switched off first, as an operator would have to).
async fn remove_table(emulator: &Emulator, table: &str) {
    emulator
        .dynamodb
        .update_table()
        .table_name(table)
        .deletion_protection_enabled(false)
        .send()
        .await
        .expect("switch off the table's deletion protection");
    emulator
        .dynamodb
        .delete_table()
        .table_name(table)
        .send()
        .await
        .expect("delete the stack's table");
}

/// Failed records come back after the queue's visibility timeout; the template's 186 s
/// (six times the worker's timeout) would make a test wait minutes.
async fn shorten_visibility_timeout(emulator: &Emulator, queue_url: &str, seconds: u32) {
    emulator
        .sqs
        .set_queue_attributes()
        .queue_url(queue_url)
        .attributes(QueueAttributeName::VisibilityTimeout, seconds.to_string())
        .send()
        .await
        .expect("set the queue's visibility timeout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_score_posted_through_api_gateway_is_written_by_the_worker_lambda_and_read_back() {
    let Some(emulator) = lambda_emulator("deployed api").await else {
        return;
    };
    // The User Service stub, or with TEST_AUTH_MODE=jwks an issuer the stack's ingest trusts.
    let auth = AuthUnderTest::with_tokens(tokens()).await;
    let params = auth.stack_params();
    let stack =
        DeployedStack::deploy(&emulator, "api", &auth.user_service.url, &borrowed(&params)).await;
    assert_eq!(stack.status, "CREATE_COMPLETE");
    let alice = auth.token_for("alice");

    let accepted = post_score(&stack, "alice", Some(&alice), &score("experian", 742)).await;
    assert_eq!(accepted.status(), 202, "POST through the API");
    let location = accepted
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .expect("a Location header");
    let body: Value = accepted.json().await.expect("a JSON answer");
    let report_id = body["reportId"].as_str().expect("a reportId").to_owned();
    assert_eq!(
        location,
        format!("/v1/users/alice/credit-scores/{report_id}")
    );

    let written = emulator
        .wait_for_reports(&stack.outputs.table_name, 1, WRITTEN_WITHIN)
        .await;
    assert_eq!(
        written.len(),
        1,
        "the worker Lambda wrote the score: {written:?}"
    );
    assert_eq!(written[0].report.report_id.as_str(), report_id);

    let (status, list) = get_json(&stack, "/v1/users/alice/credit-scores", &alice).await;
    assert_eq!(status, 200, "{list}");
    assert_eq!(list["items"][0]["reportId"], report_id.as_str());
    let (status, latest) = get_json(&stack, "/v1/users/alice/credit-scores/latest", &alice).await;
    assert_eq!(status, 200, "{latest}");
    assert!(latest.to_string().contains(&report_id), "{latest}");
    let (status, one) = get_json(&stack, &location, &alice).await;
    assert_eq!((status, one["score"].as_u64()), (200, Some(742)), "{one}");
    let (status, spec) = get_json(&stack, "/docs/swagger.json", &alice).await;
    assert_eq!(status, 200);
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3.")),
        "{spec}"
    );

    let anonymous = post_score(&stack, "alice", None, &score("experian", 742)).await;
    assert_eq!(anonymous.status(), 401);
    let too_high = post_score(&stack, "alice", Some(&alice), &score("transunion", 711)).await;
    assert_eq!(too_high.status(), 422);
    let problem: Value = too_high.json().await.expect("a problem document");
    assert!(
        problem.to_string().contains("score"),
        "names the field: {problem}"
    );
    let for_bob = post_score(&stack, "bob", Some(&alice), &score("experian", 700)).await;
    assert_eq!(for_bob.status(), 403);

    // Only the one accepted write was ever enqueued.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(emulator.reports(&stack.outputs.table_name).await.len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn producer_messages_on_the_deployed_queue_are_written_or_dead_lettered_with_a_reason() {
    let Some(emulator) = lambda_emulator("deployed producers").await else {
        return;
    };
    let user_service = UserServiceStub::start().await;
    let stack = DeployedStack::deploy(&emulator, "prod", &user_service.url, &[]).await;
    let valid = bodies(&score_messages("dep", 150, 30));
    let poison = [
        "{not json".to_owned(),
        "[]".to_owned(),
        json!({"version": 1, "reportId": "p-1", "userId": "u", "bureau": "experian",
               "score": 5000, "reportedAt": "2026-11-30T10:00:00Z", "source": "batch:x"})
        .to_string(),
        json!({"version": 9, "reportId": "p-2"}).to_string(),
    ];
    let mut all = valid.clone();
    all.extend(poison.iter().cloned());
    emulator.send_bodies(&stack.outputs.queue_url, &all).await;

    let written = emulator
        .wait_for_reports(&stack.outputs.table_name, valid.len(), WRITTEN_WITHIN)
        .await;
    let dlq = &stack.outputs.dead_letter_queue_url;
    let dead = wait_for_messages(&emulator, dlq, poison.len(), WRITTEN_WITHIN).await;

    let ids: BTreeSet<&str> = written
        .iter()
        .map(|r| r.report.report_id.as_str())
        .collect();
    assert_eq!(ids.len(), valid.len(), "each valid message written once");
    assert_eq!(written.len(), valid.len(), "nothing written twice");
    let dead_bodies: BTreeSet<&str> = dead.iter().filter_map(|m| m.body()).collect();
    assert_eq!(
        dead_bodies,
        poison.iter().map(String::as_str).collect(),
        "every poison message in the DLQ, and nothing else"
    );
    for message in &dead {
        let reason = message
            .message_attributes()
            .and_then(|a| a.get(REASON_ATTRIBUTE))
            .and_then(|v| v.string_value());
        assert!(
            reason.is_some_and(|r| !r.is_empty()),
            "a reason on {:?}",
            message.body()
        );
    }
    assert_eq!(message_count(&emulator, &stack.outputs.queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_fail_come_back_through_the_mapping_and_are_written_once_the_table_is_there() {
    let Some(emulator) = lambda_emulator("deployed retries").await else {
        return;
    };
    let user_service = UserServiceStub::start().await;
    let stack = DeployedStack::deploy(&emulator, "retry", &user_service.url, &[]).await;
    let table = stack.outputs.table_name.clone();
    shorten_visibility_timeout(&emulator, &stack.outputs.queue_url, 2).await;
    remove_table(&emulator, &table).await;

    let sent = bodies(&score_messages("retry", 30, 10));
    emulator.send_bodies(&stack.outputs.queue_url, &sent).await;

    // The worker reports every record as a batch item failure; the mapping keeps them.
    let reported = eventually(Duration::from_secs(90), || async {
        let mapping = stack.worker_event_source_mapping(&emulator).await;
        let result = mapping["LastProcessingResult"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        result.contains("partial failures").then_some(result)
    })
    .await;
    assert!(
        reported.is_some(),
        "the mapping saw no partial batch failure"
    );
    assert_eq!(
        message_count(&emulator, &stack.outputs.queue_url).await,
        sent.len() as u64,
        "failed records stay on the queue"
    );

    platform::provision::ensure_table(&emulator.dynamodb, &table)
        .await
        .expect("create the table again");
    let written = emulator
        .wait_for_reports(&table, sent.len(), Duration::from_secs(90))
        .await;
    let ids: BTreeSet<&str> = written
        .iter()
        .map(|r| r.report.report_id.as_str())
        .collect();
    assert_eq!(
        ids.len(),
        sent.len(),
        "every record written once the table is back"
    );
    assert_eq!(written.len(), sent.len(), "nothing written twice");
    let gone = eventually(Duration::from_secs(30), || async {
        (message_count(&emulator, &stack.outputs.queue_url).await == 0).then_some(())
    })
    .await;
    assert!(gone.is_some(), "the written records left the queue");
    assert!(emulator
        .receive_all(&stack.outputs.dead_letter_queue_url)
        .await
        .is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn records_that_keep_failing_reach_the_dlq_through_the_redrive_policy() {
    let Some(emulator) = lambda_emulator("deployed redrive").await else {
        return;
    };
    let user_service = UserServiceStub::start().await;
    let stack = DeployedStack::deploy(
        &emulator,
        "redrive",
        &user_service.url,
        &[("MaxReceiveCount", "2")],
    )
    .await;
    shorten_visibility_timeout(&emulator, &stack.outputs.queue_url, 2).await;
    remove_table(&emulator, &stack.outputs.table_name).await;

    let sent = bodies(&score_messages("redrive", 12, 4));
    emulator.send_bodies(&stack.outputs.queue_url, &sent).await;

    let dlq = &stack.outputs.dead_letter_queue_url;
    let dead = wait_for_messages(&emulator, dlq, sent.len(), Duration::from_secs(150)).await;
    let dead_bodies: BTreeSet<&str> = dead.iter().filter_map(|m| m.body()).collect();
    assert_eq!(
        dead_bodies.len(),
        sent.len(),
        "every record in the DLQ once"
    );
    assert_eq!(dead_bodies, sent.iter().map(String::as_str).collect());
    assert_eq!(dead.len(), sent.len(), "none twice");
    assert_eq!(message_count(&emulator, &stack.outputs.queue_url).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stack_updates_in_place_and_its_delete_keeps_only_the_table() {
    let Some(emulator) = lambda_emulator("deployed update").await else {
        return;
    };
    let auth = AuthUnderTest::with_tokens(tokens()).await;
    let params = auth.stack_params();
    let stack =
        DeployedStack::deploy(&emulator, "upd", &auth.user_service.url, &borrowed(&params)).await;
    let mut changed = borrowed(&params);
    changed.extend([("WorkerMaximumConcurrency", "3"), ("LogLevel", "debug")]);
    let updated = stack.update(&emulator, &changed).await;
    assert_eq!(updated.status, "UPDATE_COMPLETE");
    assert_eq!(updated.outputs.table_name, stack.outputs.table_name);
    let mapping = updated.worker_event_source_mapping(&emulator).await;
    assert_eq!(
        mapping["ScalingConfig"]["MaximumConcurrency"].as_u64(),
        Some(3),
        "{mapping}"
    );

    let alice = auth.token_for("alice");
    let accepted = post_score(&updated, "alice", Some(&alice), &score("equifax", 650)).await;
    assert_eq!(accepted.status(), 202);
    let written = emulator
        .wait_for_reports(&updated.outputs.table_name, 1, WRITTEN_WITHIN)
        .await;
    assert_eq!(written.len(), 1, "the updated pipeline still writes");

    updated.delete(&emulator).await;
    let table = emulator
        .dynamodb
        .describe_table()
        .table_name(&updated.outputs.table_name)
        .send()
        .await;
    assert!(table.is_ok(), "the table is retained: {table:?}");
    assert_eq!(emulator.reports(&updated.outputs.table_name).await.len(), 1);
    let queue = emulator
        .sqs
        .get_queue_url()
        .queue_name(&updated.name)
        .send()
        .await;
    assert!(queue.is_err(), "the queue went with the stack");
    let after = post_score(&updated, "alice", Some(&alice), &score("equifax", 650)).await;
    assert_ne!(after.status(), 202, "the API went with the stack");
}
