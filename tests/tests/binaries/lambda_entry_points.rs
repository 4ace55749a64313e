//! The real `ingest` and `worker` binaries in Lambda mode, driven through a fake Runtime API
//! with AWS's documented API Gateway (REST v1, HTTP API v2) and SQS event shapes.

use std::time::Duration;

use pipeline_tests::runtime_api::FakeRuntimeApi;
use pipeline_tests::{
    lambda_env, spawn_binary, AuthUnderTest, Emulator, RunningBinary, TestResources,
};
use serde_json::Value;

const REST_V1: &str = include_str!("../fixtures/apigw_v1_rest_post_score.json");
const HTTP_V2: &str = include_str!("../fixtures/apigw_v2_http_post_score.json");
const SQS_MIXED: &str = include_str!("../fixtures/sqs_mixed_batch.json");
/// API Gateway events with a bad host, path, query, header, method or body, each with the
/// status and field expected, and why lambda_http's own conversion could not take it.
const APIGW_MALFORMED: &str = include_str!("../fixtures/apigw_malformed_events.json");
const SQS_MALFORMED: &str = include_str!("../fixtures/sqs_malformed_records.json");

struct LambdaIngest {
    runtime: FakeRuntimeApi,
    resources: TestResources,
    emulator: Emulator,
    token: String,
    /// The User Service stub, or in `TEST_AUTH_MODE=jwks` the issuer, the tokens come from.
    _auth: AuthUnderTest,
    _process: RunningBinary,
}

async fn start_ingest_lambda() -> LambdaIngest {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let auth = AuthUnderTest::start().await;
    let runtime = FakeRuntimeApi::start().await;
    let mut env = resources.env(&emulator);
    env.extend(lambda_env(&runtime.address));
    env.extend(auth.ingest_env());
    // Required under Lambda: every instance signs list cursors with the same key.
    env.push((
        "CURSOR_SIGNING_KEY".into(),
        "lambda-test-cursor-key-of-32-bytes-or-more".into(),
    ));
    let process = spawn_binary("ingest", &[], &env);
    LambdaIngest {
        token: auth.token_for("alice"),
        runtime,
        resources,
        emulator,
        _auth: auth,
        _process: process,
    }
}

impl LambdaIngest {
    async fn invoke(&self, event: String) -> Value {
        let result = self.invocation(event).await;
        assert_eq!(result.kind, "response", "{}", result.body);
        serde_json::from_str(&result.body).expect("the function answers JSON")
    }

    /// The Runtime API's record of one invocation: a response or an error.
    async fn invocation(&self, event: String) -> pipeline_tests::runtime_api::Invocation {
        let id = self.runtime.invoke(event).await;
        self.runtime
            .result(&id, Duration::from_secs(20))
            .await
            .unwrap_or_else(|| {
                panic!(
                    "no answer from the ingest function; log:\n{}",
                    self._process.log()
                )
            })
    }

    /// The same process still runs (no abort, no restart): the next request is served warm.
    fn assert_still_running(&mut self) {
        let exited = self
            ._process
            .child
            .try_wait()
            .expect("the process can be polled");
        assert!(
            exited.is_none(),
            "ingest exited ({exited:?}); log:\n{}",
            self._process.log()
        );
    }

    async fn assert_a_valid_write_is_still_accepted(&self, report_id: &str) {
        let event = REST_V1
            .replace("__TOKEN__", &self.token)
            .replace("__REPORT_ID__", report_id);
        let response = self.invoke(event).await;
        assert_eq!(response["statusCode"], 202, "{response}");
    }
}

fn v2_event(stage: &str, raw_path: &str, token: &str, report_id: &str, body: &str) -> String {
    HTTP_V2
        .replace("__STAGE__", stage)
        .replace("__RAW_PATH__", raw_path)
        .replace("__TOKEN__", token)
        .replace("__REPORT_ID__", report_id)
        .replace("__BODY__", &body.replace('"', "\\\""))
}

const VALID_BODY: &str = r#"{"bureau":"experian","score":742,"reportedAt":"2026-11-28T10:00:00Z"}"#;

#[tokio::test]
async fn rest_api_v1_event_on_a_named_stage_is_routed_and_accepted() {
    let lambda = start_ingest_lambda().await;
    let event = REST_V1
        .replace("__TOKEN__", &lambda.token)
        .replace("__REPORT_ID__", "rest-v1-report");
    let response = lambda.invoke(event).await;
    assert_eq!(response["statusCode"], 202, "{response}");
    let body: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["reportId"], "rest-v1-report");
    let messages = lambda
        .emulator
        .receive_all(&lambda.resources.queue_url)
        .await;
    assert_eq!(messages.len(), 1);
}

#[tokio::test]
async fn http_api_v2_events_are_routed_on_default_and_named_stages() {
    let lambda = start_ingest_lambda().await;
    let cases = [
        ("$default", "/v1/users/alice/credit-scores", "v2-default"),
        ("prod", "/prod/v1/users/alice/credit-scores", "v2-prod"),
        // A stage named like a route segment must be stripped once, not twice.
        ("v1", "/v1/v1/users/alice/credit-scores", "v2-stage-v1"),
    ];
    for (stage, path, report_id) in cases {
        let response = lambda
            .invoke(v2_event(stage, path, &lambda.token, report_id, VALID_BODY))
            .await;
        assert_eq!(response["statusCode"], 202, "stage {stage}: {response}");
    }
    let messages = lambda
        .emulator
        .receive_all(&lambda.resources.queue_url)
        .await;
    assert_eq!(messages.len(), 3);
}

#[tokio::test]
async fn http_api_v2_validation_errors_come_back_as_problem_json() {
    let lambda = start_ingest_lambda().await;
    let body = r#"{"bureau":"experian","score":5000,"reportedAt":"2026-11-28T10:00:00Z"}"#;
    let response = lambda
        .invoke(v2_event(
            "$default",
            "/v1/users/alice/credit-scores",
            &lambda.token,
            "bad",
            body,
        ))
        .await;
    assert_eq!(response["statusCode"], 422, "{response}");
    assert_eq!(
        response["headers"]["content-type"],
        "application/problem+json"
    );
    let problem: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
    assert_eq!(problem["errors"][0]["field"], "score");
    assert!(lambda
        .emulator
        .receive_all(&lambda.resources.queue_url)
        .await
        .is_empty());
}

#[tokio::test]
async fn sqs_event_partial_failures_list_no_poison_and_poison_lands_in_the_dlq() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let runtime = FakeRuntimeApi::start().await;
    let mut env = resources.env(&emulator);
    env.extend(lambda_env(&runtime.address));
    let process = spawn_binary("worker", &[], &env);

    let id = runtime.invoke(SQS_MIXED.to_owned()).await;
    let result = runtime
        .result(&id, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| {
            panic!(
                "no answer from the worker function; log:\n{}",
                process.log()
            )
        });
    assert_eq!(result.kind, "response", "{}", result.body);
    let response: Value = serde_json::from_str(&result.body).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );

    let reports = emulator.reports(&resources.table_name).await;
    let mut ids: Vec<String> = reports
        .iter()
        .map(|r| r.report.report_id.to_string())
        .collect();
    ids.sort();
    assert_eq!(ids, ["fixture-valid-1", "fixture-valid-2"]);

    let dead = emulator.receive_all(&resources.dlq_url).await;
    let mut reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            m.message_attributes().unwrap()["failureReason"]
                .string_value()
                .unwrap()
                .to_owned()
        })
        .collect();
    reasons.sort();
    assert_eq!(
        reasons,
        ["contract_violation", "invalid_json", "unknown_version"]
    );
}

#[tokio::test]
async fn malformed_api_gateway_events_are_answered_400_naming_the_field_and_the_process_lives_on() {
    let mut lambda = start_ingest_lambda().await;
    let cases: Vec<Value> = serde_json::from_str(APIGW_MALFORMED).expect("the fixture is JSON");
    for case in &cases {
        let name = &case["case"];
        let response = lambda.invoke(case["event"].to_string()).await;
        assert_eq!(response["statusCode"], case["status"], "{name}: {response}");
        if let Some(field) = case["field"].as_str() {
            let content_type = match response.get("multiValueHeaders") {
                Some(Value::Object(h)) if !h.is_empty() => h["content-type"][0].clone(),
                _ => response["headers"]["content-type"].clone(),
            };
            assert_eq!(
                content_type, "application/problem+json",
                "{name}: {response}"
            );
            let problem: Value = serde_json::from_str(response["body"].as_str().unwrap()).unwrap();
            let fields: Vec<&str> = problem["errors"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|e| e["field"].as_str())
                .collect();
            assert!(
                fields.contains(&field),
                "{name}: names {fields:?}, not {field}"
            );
        }
        lambda.assert_still_running();
    }
    lambda
        .assert_a_valid_write_is_still_accepted("after-malformed")
        .await;
    let queued = lambda
        .emulator
        .receive_all(&lambda.resources.queue_url)
        .await;
    assert_eq!(queued.len(), 1, "only the valid write was queued");
}

#[tokio::test]
async fn an_event_from_no_api_gateway_fails_the_invocation_and_the_process_lives_on() {
    let mut lambda = start_ingest_lambda().await;
    for event in [SQS_MIXED.to_owned(), "[]".to_owned(), "\"text\"".to_owned()] {
        let result = lambda.invocation(event).await;
        assert_eq!(result.kind, "error", "{}", result.body);
        lambda.assert_still_running();
    }
    lambda
        .assert_a_valid_write_is_still_accepted("after-not-a-gateway")
        .await;
}

#[tokio::test]
async fn sqs_records_of_the_wrong_shape_never_fail_their_batch() {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let runtime = FakeRuntimeApi::start().await;
    let mut env = resources.env(&emulator);
    env.extend(lambda_env(&runtime.address));
    let mut process = spawn_binary("worker", &[], &env);

    let id = runtime.invoke(SQS_MALFORMED.to_owned()).await;
    let result = runtime
        .result(&id, Duration::from_secs(20))
        .await
        .unwrap_or_else(|| panic!("no answer from the worker; log:\n{}", process.log()));
    assert_eq!(result.kind, "response", "{}", result.body);
    let response: Value = serde_json::from_str(&result.body).unwrap();
    assert_eq!(
        response["batchItemFailures"],
        serde_json::json!([]),
        "{response}"
    );

    let mut written: Vec<String> = emulator
        .reports(&resources.table_name)
        .await
        .iter()
        .map(|r| r.report.report_id.to_string())
        .collect();
    written.sort();
    assert_eq!(
        written,
        [
            "odd-attributes",
            "odd-message-attributes",
            "odd-message-id",
            "odd-neighbour-valid",
            "odd-receive-count"
        ]
    );
    // A number for a body and a record that is no object: poison, dead-lettered with a reason.
    let dead = emulator.receive_all(&resources.dlq_url).await;
    let reasons: Vec<String> = dead
        .iter()
        .map(|m| {
            m.message_attributes().unwrap()["failureReason"]
                .string_value()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(reasons, ["empty_body", "empty_body"]);

    // Not an SQS event at all: the invocation fails, reported, and the next one is served.
    let id = runtime.invoke(r#"{"Records":5}"#.to_owned()).await;
    let failed = runtime.result(&id, Duration::from_secs(20)).await;
    assert_eq!(failed.map(|r| r.kind), Some("error"));
    let id = runtime.invoke(r#"{"Records":[]}"#.to_owned()).await;
    let next = runtime.result(&id, Duration::from_secs(20)).await;
    assert_eq!(next.map(|r| r.kind), Some("response"));
    assert!(
        process.child.try_wait().expect("polls").is_none(),
        "the worker still runs"
    );
}
