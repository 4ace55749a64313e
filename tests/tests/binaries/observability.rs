//! What an operator sees, from the real binaries in Lambda mode (a fake Runtime API, the
//! emulator behind): CloudWatch EMF documents that follow the specification and count what
//! the batch or request did, JSON log lines with the Lambda request id, the X-Ray trace id
//! and the correlation id as top-level members, the correlation id and trace header carried
//! ingest → SQS → worker → DLQ, and errors logged with their causes; and all of it kept
//! apart per invocation when one process serves several at once (Lambda Managed Instances).

use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

use pipeline_tests::runtime_api::{LambdaFunction, DEFAULT_TRACE_ID};
use pipeline_tests::{AuthUnderTest, Emulator, FaultProxy, RunningBinary, TestResources};
use platform::metrics::names;
use serde_json::{json, Value};

const NAMESPACE: &str = "ObservabilityTest";
/// The trace the fake Runtime API hands every invocation (`Lambda-Runtime-Trace-Id`).
const TRACE_ID: &str = DEFAULT_TRACE_ID;
const HTTP_V2: &str = include_str!("../fixtures/apigw_v2_http_post_score.json");
/// The fixture's `requestContext.requestId`.
const GATEWAY_REQUEST_ID: &str = "JKJaXmPLvHcESHA=";

fn metrics_env() -> Vec<(String, String)> {
    [("METRICS", "emf"), ("METRICS_NAMESPACE", NAMESPACE)]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

/// Every JSON line the process wrote so far.
fn json_lines(process: &RunningBinary) -> Vec<Value> {
    process
        .log()
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect()
}

fn emf_documents(process: &RunningBinary) -> Vec<Value> {
    json_lines(process)
        .into_iter()
        .filter(|line| line.get("_aws").is_some())
        .collect()
}

fn log_lines<'a>(lines: &'a [Value], message: &str) -> Vec<&'a Value> {
    lines
        .iter()
        .filter(|line| line["message"] == message)
        .collect()
}

/// Checks one document against the Embedded Metric Format specification: `_aws` with an
/// integer millisecond `Timestamp` and `CloudWatchMetrics` directives, each with our
/// `Namespace`, `Dimensions` as arrays of member names and `Metrics` (at most 100) naming
/// members; every dimension a top-level string, every metric a top-level number or array of
/// at most 100 numbers.
fn assert_valid_emf(document: &Value) {
    let now_ms = time::OffsetDateTime::now_utc().unix_timestamp() * 1000;
    let timestamp = document["_aws"]["Timestamp"]
        .as_i64()
        .unwrap_or_else(|| panic!("_aws.Timestamp must be an integer: {document}"));
    assert!(
        (now_ms - 600_000..=now_ms + 60_000).contains(&timestamp),
        "Timestamp {timestamp} is not milliseconds of now: {document}"
    );
    let directives = document["_aws"]["CloudWatchMetrics"]
        .as_array()
        .unwrap_or_else(|| panic!("CloudWatchMetrics must be an array: {document}"));
    assert!(!directives.is_empty(), "{document}");
    for directive in directives {
        assert_eq!(directive["Namespace"], NAMESPACE, "{document}");
        let dimension_sets = directive["Dimensions"].as_array().expect("Dimensions");
        for set in dimension_sets {
            let set = set.as_array().expect("a dimension set is an array");
            assert!(set.len() <= 30, "{document}");
            for name in set {
                let name = name.as_str().expect("dimension names are strings");
                assert!(
                    document[name].is_string(),
                    "dimension {name} must be a top-level string member: {document}"
                );
            }
        }
        let metrics = directive["Metrics"].as_array().expect("Metrics");
        assert!(!metrics.is_empty() && metrics.len() <= 100, "{document}");
        for metric in metrics {
            let name = metric["Name"].as_str().expect("Name");
            assert!(
                names::ALL.contains(&name),
                "{name} is not a metric the code declares"
            );
            let value = &document[name];
            match value {
                Value::Number(_) => {}
                Value::Array(values) => {
                    assert!(!values.is_empty() && values.len() <= 100, "{name}: {value}");
                    assert!(values.iter().all(Value::is_number), "{name}: {value}");
                }
                _ => panic!("metric {name} must be a top-level number or array: {document}"),
            }
            if let Some(unit) = metric.get("Unit") {
                let expected = if names::MILLISECONDS.contains(&name) {
                    "Milliseconds"
                } else {
                    "Count"
                };
                assert_eq!(unit, expected, "{name}");
            }
        }
    }
}

/// Sums a counter over every document whose extra dimensions match `dimensions`.
fn counter(documents: &[Value], name: &str, dimensions: &[(&str, &str)]) -> f64 {
    documents
        .iter()
        .filter(|d| dimensions.iter().all(|(k, v)| d[*k] == *v))
        .filter_map(|d| d[name].as_f64())
        .sum()
}

fn distribution(documents: &[Value], name: &str) -> Vec<f64> {
    documents
        .iter()
        .filter_map(|d| d[name].as_array())
        .flatten()
        .filter_map(Value::as_f64)
        .collect()
}

fn score_body(report_id: &str, user: &str, received_ago: Duration) -> String {
    let received = time::OffsetDateTime::now_utc() - received_ago;
    let received = received
        .format(&time::format_description::well_known::Rfc3339)
        .expect("formats");
    json!({
        "version": 1, "reportId": report_id, "userId": user, "bureau": "experian",
        "score": 700, "reportedAt": "2026-11-28T10:00:00Z", "source": "api",
        "receivedAt": received,
    })
    .to_string()
}

fn sqs_record(
    message_id: &str,
    body: &str,
    correlation: Option<&str>,
    trace: Option<&str>,
) -> Value {
    let sent_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) - 2_000;
    let mut attributes = json!({
        "ApproximateReceiveCount": "2",
        "SentTimestamp": sent_ms.to_string(),
    });
    if let Some(trace) = trace {
        attributes["AWSTraceHeader"] = json!(trace);
    }
    let message_attributes = match correlation {
        Some(id) => json!({"correlationId": {"stringValue": id, "dataType": "String"}}),
        None => json!({}),
    };
    json!({
        "messageId": message_id, "receiptHandle": "handle", "body": body,
        "attributes": attributes, "messageAttributes": message_attributes,
        "md5OfBody": "", "eventSource": "aws:sqs",
        "eventSourceARN": "arn:aws:sqs:us-east-1:123456789012:scores", "awsRegion": "us-east-1",
    })
}

struct WorkerLambda {
    function: LambdaFunction,
    emulator: Emulator,
    resources: TestResources,
}

async fn start_worker_lambda(extra_env: &[(&str, &str)]) -> WorkerLambda {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let mut env = resources.env(&emulator);
    env.extend(metrics_env());
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    WorkerLambda {
        function: LambdaFunction::start("worker", env).await,
        emulator,
        resources,
    }
}

impl WorkerLambda {
    /// Invokes with `records`; returns the Lambda request id and the response.
    async fn invoke(&self, records: Vec<Value>) -> (String, Value) {
        self.function
            .invoke(json!({ "Records": records }).to_string())
            .await
    }
}

/// The metrics of an invocation are flushed before its response is sent; wait briefly for
/// the log file to show them anyway (the write and the file read race).
async fn documents_after(process: &RunningBinary, at_least: usize) -> Vec<Value> {
    pipeline_tests::eventually(Duration::from_secs(5), || async {
        let documents = emf_documents(process);
        (documents.len() >= at_least).then_some(documents)
    })
    .await
    .unwrap_or_else(|| panic!("no EMF documents; log:\n{}", process.log()))
}

#[tokio::test]
async fn a_worker_batch_emits_emf_documents_that_follow_the_spec_and_count_what_it_did() {
    let worker = start_worker_lambda(&[]).await;
    let mut records: Vec<Value> = (0..140)
        .map(|i| {
            let body = score_body(&format!("emf-{i}"), "alice", Duration::from_secs(5));
            sqs_record(
                &format!("m-{i}"),
                &body,
                Some(&format!("corr-{i}")),
                Some(TRACE_ID),
            )
        })
        .collect();
    // Ten repeats of keys already in the batch: deduplicated, written once, counted as written.
    records.extend((0..10).map(|i| {
        let body = score_body(&format!("emf-{i}"), "alice", Duration::from_secs(5));
        sqs_record(&format!("dup-{i}"), &body, None, None)
    }));
    records.push(sqs_record("poison-json", "{not json", None, None));
    records.push(sqs_record(
        "poison-version",
        r#"{"version":9}"#,
        Some("producer-7"),
        None,
    ));
    let (request_id, response) = worker.invoke(records).await;
    assert_eq!(response["batchItemFailures"], json!([]), "{response}");

    let documents = documents_after(&worker.function.process, 2).await;
    for document in &documents {
        assert_valid_emf(document);
        assert_eq!(document["Service"], "worker", "{document}");
    }
    assert_eq!(counter(&documents, names::BATCH_RECORDS, &[]), 152.0);
    assert_eq!(counter(&documents, names::WRITTEN, &[]), 150.0);
    assert_eq!(counter(&documents, names::DEDUPLICATED, &[]), 10.0);
    assert_eq!(
        counter(&documents, names::UNPROCESSED_AFTER_RETRIES, &[]),
        0.0
    );
    assert_eq!(
        counter(
            &documents,
            names::DEAD_LETTERED,
            &[("Reason", "invalid_json")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &documents,
            names::DEAD_LETTERED,
            &[("Reason", "unknown_version")]
        ),
        1.0
    );
    // 140 distinct keys: ceil(140 / 25) = 6 requests, more only if DynamoDB left some.
    assert!(counter(&documents, names::BATCH_WRITE_REQUESTS, &[]) >= 6.0);
    // 150 written records' lags, summarised as 100 quantiles; each about the 5 s the test
    // back-dated receivedAt by.
    let lag = distribution(&documents, names::END_TO_END_LAG);
    assert_eq!(lag.len(), 100);
    assert!(
        lag.iter().all(|ms| (4_000.0..60_000.0).contains(ms)),
        "{lag:?}"
    );
    let age = distribution(&documents, names::MESSAGE_AGE);
    assert_eq!(age.len(), 100);
    assert!(
        age.iter().all(|ms| (1_000.0..60_000.0).contains(ms)),
        "{age:?}"
    );
    assert_eq!(distribution(&documents, names::BATCH_DURATION).len(), 1);

    let lines = json_lines(&worker.function.process);
    let outcomes = log_lines(&lines, "record outcome");
    assert_eq!(outcomes.len(), 152, "one line per record");
    let first = outcomes
        .iter()
        .find(|line| line["messageId"] == "m-3")
        .expect("m-3's outcome");
    assert_eq!(first["outcome"], "written");
    assert_eq!(first["reportId"], "emf-3");
    assert_eq!(first["correlationId"], "corr-3");
    assert_eq!(first["receiveCount"], 2);
    assert_eq!(first["awsTraceHeader"], TRACE_ID);
    assert_eq!(first["requestId"], request_id.as_str(), "{first}");
    assert_eq!(first["xrayTraceId"], TRACE_ID, "{first}");
    assert_eq!(first["level"], "INFO");
    let repeat = outcomes
        .iter()
        .find(|line| line["messageId"] == "dup-3")
        .expect("dup-3's outcome");
    assert_eq!(repeat["outcome"], "written");
    // No correlation id from the producer: the message id stands in.
    assert_eq!(repeat["correlationId"], "dup-3");
    let poison = outcomes
        .iter()
        .find(|line| line["messageId"] == "poison-version")
        .expect("the poison's outcome");
    assert_eq!(poison["outcome"], "dead-lettered");
    assert_eq!(poison["reason"], "unknown_version");
    assert_eq!(poison["correlationId"], "producer-7");

    let batch = log_lines(&lines, "batch processed");
    assert_eq!(batch.len(), 1);
    assert_eq!(batch[0]["records"], 152);
    assert_eq!(batch[0]["written"], 150);
    assert_eq!(batch[0]["deadLettered"], 2);
    assert!(batch[0]["durationMs"].is_number());

    // The DLQ entries keep the producer's correlation id, or the message id when it set none.
    let dead = worker.emulator.receive_all(&worker.resources.dlq_url).await;
    let correlation_of = |original: &str| -> Option<String> {
        dead.iter()
            .find(|m| {
                m.message_attributes()
                    .and_then(|a| a.get("originalMessageId"))
                    .and_then(|v| v.string_value())
                    == Some(original)
            })
            .and_then(|m| {
                m.message_attributes()?
                    .get("correlationId")?
                    .string_value()
                    .map(str::to_owned)
            })
    };
    assert_eq!(
        correlation_of("poison-version").as_deref(),
        Some("producer-7")
    );
    assert_eq!(
        correlation_of("poison-json").as_deref(),
        Some("poison-json")
    );
}

#[tokio::test]
async fn a_store_failure_is_logged_once_per_attempt_with_its_root_cause() {
    // DynamoDB on a port where nothing listens; SQS (the DLQ) stays on the emulator.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port");
    let endpoint = format!("http://{closed}");
    // The fake Runtime API gives 30 s; a 27 s margin leaves about 3 s of retries.
    let worker = start_worker_lambda(&[
        ("AWS_ENDPOINT_URL_DYNAMODB", endpoint.as_str()),
        ("DEADLINE_MARGIN_MS", "27000"),
    ])
    .await;
    let body = score_body("cause-1", "alice", Duration::ZERO);
    let (_, response) = worker
        .invoke(vec![sqs_record("m-cause", &body, None, None)])
        .await;
    assert_eq!(
        response["batchItemFailures"],
        json!([{"itemIdentifier": "m-cause"}]),
        "{response}"
    );
    let lines = json_lines(&worker.function.process);
    let failures = log_lines(&lines, "BatchWriteItem failed");
    assert!(
        !failures.is_empty(),
        "log:\n{}",
        worker.function.process.log()
    );
    for failure in &failures {
        let error = failure["error"].as_str().expect("an error field");
        assert!(error.starts_with("DynamoDB call failed: "), "{error}");
        assert!(
            error.contains("Connection refused") || error.contains("os error 111"),
            "the root cause must be in the line: {error}"
        );
    }
    let unprocessed = log_lines(&lines, "record outcome");
    assert_eq!(unprocessed.len(), 1);
    assert_eq!(unprocessed[0]["outcome"], "unprocessed");
    let documents = documents_after(&worker.function.process, 1).await;
    assert_eq!(
        counter(&documents, names::UNPROCESSED_AFTER_RETRIES, &[]),
        1.0
    );
    assert!(counter(&documents, names::RETRIED, &[]) >= 1.0);
}

struct IngestLambda {
    function: LambdaFunction,
    emulator: Emulator,
    /// Between ingest and the emulator: what ingest sent is read here, since emulators differ
    /// in what they keep (MiniStack 1.5.33 drops `AWSTraceHeader` from SendMessageBatch
    /// entries; SQS keeps it).
    proxy: FaultProxy,
    resources: TestResources,
    token: String,
    /// The User Service stub, or with `TEST_AUTH_MODE=jwks` the token issuer, ingest trusts.
    _auth: AuthUnderTest,
}

async fn start_ingest_lambda() -> IngestLambda {
    start_ingest_lambda_with(&[]).await
}

async fn start_ingest_lambda_with(extra_env: &[(&str, &str)]) -> IngestLambda {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let auth = AuthUnderTest::start().await;
    let proxy = FaultProxy::start(&emulator.endpoint).await;
    let mut env = resources.env(&emulator);
    for (name, value) in &mut env {
        if name == "AWS_ENDPOINT_URL" {
            value.clone_from(&proxy.url);
        }
    }
    env.extend(metrics_env());
    env.extend(auth.ingest_env());
    env.extend(
        extra_env
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
    );
    env.push((
        "CURSOR_SIGNING_KEY".into(),
        "observability-test-cursor-key-of-32-bytes".into(),
    ));
    IngestLambda {
        token: auth.token_for("alice"),
        function: LambdaFunction::start("ingest", env).await,
        emulator,
        proxy,
        resources,
        _auth: auth,
    }
}

impl IngestLambda {
    /// The `AWSTraceHeader` ingest sent with the message of `report_id`.
    fn sent_trace(&self, report_id: &str) -> Option<String> {
        let sent = self.proxy.stats().sent_messages;
        let mut of_report = sent.iter().filter(|m| {
            serde_json::from_str::<Value>(&m.body).is_ok_and(|body| body["reportId"] == report_id)
        });
        let message = of_report.next()?;
        assert!(of_report.next().is_none(), "{report_id} was sent twice");
        message.trace_header.clone()
    }

    async fn post(
        &self,
        report_id: &str,
        body: &str,
        correlation: Option<&str>,
    ) -> (String, Value) {
        self.function
            .invoke(self.post_event(report_id, body, correlation))
            .await
    }

    /// An HTTP API (v2) event writing `body` for alice under `report_id`.
    fn post_event(&self, report_id: &str, body: &str, correlation: Option<&str>) -> String {
        let mut event: Value = serde_json::from_str(
            &HTTP_V2
                .replace("__STAGE__", "$default")
                .replace("__RAW_PATH__", "/v1/users/alice/credit-scores")
                .replace("__TOKEN__", &self.token)
                .replace("__REPORT_ID__", report_id)
                .replace("__BODY__", &body.replace('"', "\\\"")),
        )
        .expect("the fixture is JSON");
        if let Some(id) = correlation {
            event["headers"]["x-correlation-id"] = json!(id);
        }
        event.to_string()
    }
}

const VALID_BODY: &str = r#"{"bureau":"experian","score":742,"reportedAt":"2026-11-28T10:00:00Z"}"#;

#[tokio::test]
async fn ingest_carries_the_gateway_request_id_and_the_trace_to_sqs_and_the_worker_logs_both() {
    let ingest = start_ingest_lambda().await;
    let (request_id, response) = ingest.post("traced-1", VALID_BODY, None).await;
    assert_eq!(response["statusCode"], 202, "{response}");
    // No X-Correlation-Id from the client: API Gateway's request id becomes it.
    assert_eq!(response["headers"]["x-correlation-id"], GATEWAY_REQUEST_ID);

    let messages = ingest
        .emulator
        .receive_all(&ingest.resources.queue_url)
        .await;
    assert_eq!(messages.len(), 1);
    let message = &messages[0];
    let correlation = message
        .message_attributes()
        .and_then(|a| a.get("correlationId"))
        .and_then(|v| v.string_value());
    assert_eq!(correlation, Some(GATEWAY_REQUEST_ID));
    let trace = ingest.sent_trace("traced-1");
    assert_eq!(
        trace.as_deref(),
        Some(TRACE_ID),
        "the message must be sent with the invocation's trace"
    );

    let lines = json_lines(&ingest.function.process);
    let request = log_lines(&lines, "request");
    assert_eq!(request.len(), 1, "one line per request");
    assert_eq!(request[0]["correlationId"], GATEWAY_REQUEST_ID);
    assert_eq!(request[0]["requestId"], request_id.as_str());
    assert_eq!(request[0]["xrayTraceId"], TRACE_ID);
    assert_eq!(request[0]["method"], "POST");
    assert_eq!(request[0]["route"], "/v1/users/{userId}/credit-scores");
    assert_eq!(request[0]["status"], 202);
    assert!(request[0]["latencyMs"].is_number());
    let accepted = log_lines(&lines, "score accepted");
    assert_eq!(accepted.len(), 1);
    assert_eq!(accepted[0]["reportId"], "traced-1");
    assert_eq!(accepted[0]["correlationId"], GATEWAY_REQUEST_ID);
    assert_eq!(accepted[0]["messageId"].as_str(), message.message_id());

    // The same message as Lambda would hand it to the worker.
    let worker = start_worker_lambda(&[]).await;
    let body = message.body().expect("a body");
    let record = sqs_record(
        message.message_id().expect("an id"),
        body,
        correlation,
        trace.as_deref(),
    );
    worker.invoke(vec![record]).await;
    let worker_lines = json_lines(&worker.function.process);
    let outcome = log_lines(&worker_lines, "record outcome");
    assert_eq!(outcome.len(), 1);
    assert_eq!(outcome[0]["outcome"], "written");
    assert_eq!(outcome[0]["reportId"], "traced-1");
    assert_eq!(outcome[0]["correlationId"], GATEWAY_REQUEST_ID);
    assert_eq!(outcome[0]["awsTraceHeader"], TRACE_ID);
}

#[tokio::test]
async fn ingest_emits_request_metrics_by_route_and_status_and_rejections_by_field() {
    let ingest = start_ingest_lambda().await;
    let (_, accepted) = ingest
        .post("metrics-1", VALID_BODY, Some("client-corr-1"))
        .await;
    assert_eq!(accepted["statusCode"], 202, "{accepted}");
    assert_eq!(accepted["headers"]["x-correlation-id"], "client-corr-1");
    let bad = r#"{"bureau":"experian","score":5000,"reportedAt":"2026-11-28T10:00:00Z"}"#;
    let (_, rejected) = ingest.post("metrics-2", bad, Some("client-corr-2")).await;
    assert_eq!(rejected["statusCode"], 422, "{rejected}");
    // Errors carry the correlation id too.
    assert_eq!(rejected["headers"]["x-correlation-id"], "client-corr-2");

    let documents = documents_after(&ingest.function.process, 3).await;
    for document in &documents {
        assert_valid_emf(document);
        assert_eq!(document["Service"], "ingest", "{document}");
    }
    let route = "/v1/users/{userId}/credit-scores";
    assert_eq!(
        counter(
            &documents,
            names::REQUESTS,
            &[("Route", route), ("Status", "202")]
        ),
        1.0
    );
    assert_eq!(
        counter(
            &documents,
            names::REQUESTS,
            &[("Route", route), ("Status", "422")]
        ),
        1.0
    );
    assert_eq!(counter(&documents, names::REQUESTS_ALL, &[]), 2.0);
    assert_eq!(counter(&documents, names::ERRORS_4XX, &[]), 1.0);
    assert_eq!(counter(&documents, names::ERRORS_5XX, &[]), 0.0);
    assert_eq!(counter(&documents, names::ACCEPTED_WRITES, &[]), 1.0);
    assert_eq!(
        counter(
            &documents,
            names::REJECTIONS,
            &[("Reason", "validation:score")]
        ),
        1.0
    );
    assert_eq!(distribution(&documents, names::REQUEST_LATENCY).len(), 2);
    assert_eq!(distribution(&documents, names::SQS_SEND_LATENCY).len(), 1);
    // One User Service call per request; none in jwks mode (tokens are verified in-process).
    let user_service_calls = if pipeline_tests::jwks_mode_under_test() {
        0
    } else {
        2
    };
    assert_eq!(
        distribution(&documents, names::USER_SERVICE_LATENCY).len(),
        user_service_calls
    );
    // Each invocation flushes its own: no document mixes the two requests' dimensions.
    let dimension_sets: HashSet<String> = documents
        .iter()
        .flat_map(|d| {
            d["_aws"]["CloudWatchMetrics"][0]["Dimensions"]
                .as_array()
                .cloned()
        })
        .flatten()
        .map(|set| set.to_string())
        .collect();
    assert!(
        dimension_sets.contains(r#"["Service","Route","Status"]"#),
        "{dimension_sets:?}"
    );
    assert!(
        dimension_sets.contains(r#"["Service","Reason"]"#),
        "{dimension_sets:?}"
    );
    let by_status: BTreeMap<String, usize> =
        log_lines(&json_lines(&ingest.function.process), "request")
            .iter()
            .map(|l| l["status"].to_string())
            .fold(BTreeMap::new(), |mut m, s| {
                *m.entry(s).or_default() += 1;
                m
            });
    assert_eq!(
        by_status,
        BTreeMap::from([("202".into(), 1), ("422".into(), 1)])
    );
}

// ---------------------------------------------------------------- concurrent invocations

/// `AWS_LAMBDA_MAX_CONCURRENCY` as Lambda Managed Instances sets it: one execution
/// environment is sent this many invocations at once.
const MAX_CONCURRENCY: &str = "8";

/// A trace header of its own for invocation `i`.
fn trace_of(i: usize) -> String {
    format!("Root=1-5759e988-{i:024x};Parent=53995c3f42cd8ad8;Sampled=1")
}

/// Queues every event at once, then waits for every answer; the answers in the same order.
async fn invoke_all(
    function: &LambdaFunction,
    events: Vec<(String, String)>,
) -> Vec<(String, Value)> {
    let mut ids = Vec::new();
    for (event, trace) in events {
        ids.push(function.runtime.invoke_traced(event, &trace).await);
    }
    let results = futures::future::join_all(
        ids.iter()
            .map(|id| function.runtime.result(id, Duration::from_secs(60))),
    )
    .await;
    ids.into_iter()
        .zip(results)
        .map(|(id, result)| {
            let result = result
                .unwrap_or_else(|| panic!("no answer to {id}; log:\n{}", function.process.log()));
            assert_eq!(result.kind, "response", "{}", result.body);
            let answer = serde_json::from_str(&result.body).expect("the function answers JSON");
            (id, answer)
        })
        .collect()
}

/// Several invocations were in hand at once, never more than the environment was sent.
fn assert_invocations_overlapped(function: &LambdaFunction) {
    let most = function.runtime.most_in_flight();
    let limit: usize = MAX_CONCURRENCY.parse().expect("a number");
    assert!(
        (2..=limit).contains(&most),
        "at most {most} invocation(s) in hand at once, expected 2 to {limit}"
    );
    eprintln!("invocations in hand at once: at most {most} (AWS_LAMBDA_MAX_CONCURRENCY={limit})");
}

/// Waits until the documents count `total` of counter `name` (each invocation writes its own
/// before answering; the log file read races the write).
async fn documents_counting(process: &RunningBinary, name: &str, total: f64) -> Vec<Value> {
    pipeline_tests::eventually(Duration::from_secs(5), || async {
        let documents = emf_documents(process);
        (counter(&documents, name, &[]) >= total).then_some(documents)
    })
    .await
    .unwrap_or_else(|| panic!("{name} never reached {total}; log:\n{}", process.log()))
}

/// Every document belongs to exactly one of the invocations (its `requestId`); grouped by it.
fn documents_by_invocation(
    documents: &[Value],
    request_ids: &HashSet<&str>,
) -> BTreeMap<String, Vec<Value>> {
    let mut by_invocation: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for document in documents {
        assert_valid_emf(document);
        let id = document["requestId"]
            .as_str()
            .unwrap_or_else(|| panic!("a document of no invocation: {document}"));
        assert!(
            request_ids.contains(id),
            "{id} is no invocation's: {document}"
        );
        by_invocation
            .entry(id.to_owned())
            .or_default()
            .push(document.clone());
    }
    by_invocation
}

#[tokio::test]
async fn ingest_serving_concurrent_invocations_keeps_each_ones_answer_trace_logs_and_metrics_apart()
{
    let ingest = start_ingest_lambda_with(&[("AWS_LAMBDA_MAX_CONCURRENCY", MAX_CONCURRENCY)]).await;
    let writes = 32;
    let events = (0..writes)
        .map(|i| {
            let event = ingest.post_event(&format!("concurrent-{i}"), VALID_BODY, None);
            (event, trace_of(i))
        })
        .collect();
    let answers = invoke_all(&ingest.function, events).await;
    assert_invocations_overlapped(&ingest.function);

    // Each answer is its own write's.
    let mut invocation_of_report = BTreeMap::new();
    for (i, (request_id, answer)) in answers.iter().enumerate() {
        assert_eq!(answer["statusCode"], 202, "{answer}");
        let body: Value =
            serde_json::from_str(answer["body"].as_str().expect("a body")).expect("a JSON body");
        assert_eq!(body["reportId"], format!("concurrent-{i}"), "{answer}");
        invocation_of_report.insert(format!("concurrent-{i}"), (request_id.clone(), i));
    }
    let request_ids: HashSet<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();

    // One message per write, carrying the trace of the invocation that sent it.
    let messages = ingest
        .emulator
        .receive_all(&ingest.resources.queue_url)
        .await;
    assert_eq!(messages.len(), writes);
    for message in &messages {
        let body: Value = serde_json::from_str(message.body().expect("a body")).expect("JSON");
        let report_id = body["reportId"].as_str().expect("a reportId");
        let (_, i) = &invocation_of_report[report_id];
        assert_eq!(
            ingest.sent_trace(report_id),
            Some(trace_of(*i)),
            "{report_id}"
        );
    }

    // Every line an invocation logs carries its own request id and trace.
    let lines = json_lines(&ingest.function.process);
    let accepted = log_lines(&lines, "score accepted");
    assert_eq!(accepted.len(), writes);
    for line in &accepted {
        let (request_id, i) = &invocation_of_report[line["reportId"].as_str().expect("reportId")];
        assert_eq!(line["requestId"], request_id.as_str(), "{line}");
        assert_eq!(line["xrayTraceId"], trace_of(*i), "{line}");
    }
    let requests = log_lines(&lines, "request");
    let logged: HashSet<&str> = requests
        .iter()
        .filter_map(|line| line["requestId"].as_str())
        .collect();
    assert_eq!(requests.len(), writes);
    assert_eq!(
        logged, request_ids,
        "one request line per invocation, each its own"
    );
    for line in lines.iter().filter(|l| l.get("correlationId").is_some()) {
        assert!(
            line["requestId"]
                .as_str()
                .is_some_and(|id| request_ids.contains(id)),
            "a line logged during a request without its invocation: {line}"
        );
    }

    // Each invocation's metrics are its own documents, counting its request alone; together
    // they count every request once.
    let documents = documents_counting(&ingest.function.process, names::REQUESTS_ALL, 32.0).await;
    let by_invocation = documents_by_invocation(&documents, &request_ids);
    assert_eq!(
        by_invocation.len(),
        writes,
        "every invocation wrote its own"
    );
    for (request_id, own) in &by_invocation {
        assert_own_metrics(
            request_id,
            own,
            &[(names::REQUESTS_ALL, 1.0), (names::ACCEPTED_WRITES, 1.0)],
            &[(names::REQUEST_LATENCY, 1), (names::SQS_SEND_LATENCY, 1)],
        );
    }
    let accepted_on_the_route = counter(
        &documents,
        names::REQUESTS,
        &[
            ("Route", "/v1/users/{userId}/credit-scores"),
            ("Status", "202"),
        ],
    );
    assert_eq!(accepted_on_the_route, 32.0);
    assert_own_metrics(
        "all invocations",
        &documents,
        &[(names::REQUESTS_ALL, 32.0), (names::ACCEPTED_WRITES, 32.0)],
        &[],
    );
}

#[tokio::test]
async fn the_worker_serving_concurrent_batches_writes_each_record_once_and_keeps_each_batchs_failures_logs_and_metrics_apart(
) {
    // A DLQ that does not exist: poison cannot be parked, so each batch must report exactly
    // its own poison records as failures.
    let missing_dlq = "http://127.0.0.1:1/000000000000/no-such-dlq";
    let worker = start_worker_lambda(&[
        ("AWS_LAMBDA_MAX_CONCURRENCY", MAX_CONCURRENCY),
        ("DLQ_URL", missing_dlq),
    ])
    .await;
    let batches = 16;
    let per_batch = 25;
    let mut expected_failures: Vec<Vec<String>> = Vec::new();
    let events = (0..batches)
        .map(|b| {
            let mut records: Vec<Value> = (0..per_batch)
                .map(|r| {
                    let report_id = format!("batch-{b}-record-{r}");
                    let body = score_body(&report_id, "alice", Duration::from_secs(1));
                    sqs_record(&format!("m-{b}-{r}"), &body, None, None)
                })
                .collect();
            let poison: Vec<String> = (0..b % 3).map(|p| format!("poison-{b}-{p}")).collect();
            records.extend(
                poison
                    .iter()
                    .map(|id| sqs_record(id, "{not json", None, None)),
            );
            expected_failures.push(poison);
            (json!({ "Records": records }).to_string(), trace_of(b))
        })
        .collect();
    let answers = invoke_all(&worker.function, events).await;
    assert_invocations_overlapped(&worker.function);

    // Each batch lists its own failures, and only those.
    let mut batch_of_invocation = BTreeMap::new();
    for (b, ((request_id, answer), expected)) in answers.iter().zip(&expected_failures).enumerate()
    {
        let mut failed: Vec<String> = answer["batchItemFailures"]
            .as_array()
            .unwrap_or_else(|| panic!("{answer}"))
            .iter()
            .map(|f| f["itemIdentifier"].as_str().expect("an id").to_owned())
            .collect();
        failed.sort();
        assert_eq!(&failed, expected, "batch {b}: {answer}");
        batch_of_invocation.insert(request_id.clone(), b);
    }
    let request_ids: HashSet<&str> = answers.iter().map(|(id, _)| id.as_str()).collect();

    // Every valid record written, once.
    let mut written: Vec<String> = worker
        .emulator
        .reports(&worker.resources.table_name)
        .await
        .iter()
        .map(|r| r.report.report_id.to_string())
        .collect();
    written.sort();
    let mut expected: Vec<String> = (0..batches)
        .flat_map(|b| (0..per_batch).map(move |r| format!("batch-{b}-record-{r}")))
        .collect();
    expected.sort();
    assert_eq!(written, expected);

    // Each record's outcome line carries the request id of the invocation whose batch held it.
    let lines = json_lines(&worker.function.process);
    let outcomes = log_lines(&lines, "record outcome");
    let poison_total: usize = expected_failures.iter().map(Vec::len).sum();
    assert_eq!(outcomes.len(), batches * per_batch + poison_total);
    for line in &outcomes {
        let message_id = line["messageId"].as_str().expect("a messageId");
        let request_id = line["requestId"].as_str().expect("a requestId");
        let b = batch_of_invocation[request_id];
        assert!(
            message_id.starts_with(&format!("m-{b}-"))
                || message_id.starts_with(&format!("poison-{b}-")),
            "{message_id} logged by batch {b}'s invocation: {line}"
        );
        assert_eq!(line["xrayTraceId"], trace_of(b), "{line}");
        let expected_outcome = if message_id.starts_with("poison") {
            "retry"
        } else {
            "written"
        };
        assert_eq!(line["outcome"], expected_outcome, "{line}");
    }
    let batch_lines = log_lines(&lines, "batch processed");
    assert_eq!(batch_lines.len(), batches);
    for line in &batch_lines {
        let b = batch_of_invocation[line["requestId"].as_str().expect("a requestId")];
        assert_eq!(line["records"], per_batch + b % 3, "{line}");
        assert_eq!(line["written"], per_batch, "{line}");
    }

    // Each invocation's metrics count its own batch; together, every record once.
    let total_written = (batches * per_batch) as f64;
    let documents =
        documents_counting(&worker.function.process, names::WRITTEN, total_written).await;
    let by_invocation = documents_by_invocation(&documents, &request_ids);
    assert_eq!(
        by_invocation.len(),
        batches,
        "every invocation wrote its own"
    );
    for (request_id, own) in &by_invocation {
        let b = batch_of_invocation[request_id];
        assert_own_metrics(
            request_id,
            own,
            &[
                (names::BATCH_RECORDS, (per_batch + b % 3) as f64),
                (names::WRITTEN, per_batch as f64),
            ],
            &[
                (names::BATCH_DURATION, 1),
                (names::END_TO_END_LAG, per_batch),
            ],
        );
    }
    assert_eq!(counter(&documents, names::WRITTEN, &[]), total_written);
    assert_eq!(
        counter(&documents, names::BATCH_RECORDS, &[]),
        total_written + poison_total as f64
    );
}

/// One invocation's metric documents hold these counter totals and these numbers of
/// distribution values.
fn assert_own_metrics(
    request_id: &str,
    own: &[Value],
    counters: &[(&str, f64)],
    distributions: &[(&str, usize)],
) {
    for (name, expected) in counters {
        assert_eq!(
            counter(own, name, &[]),
            *expected,
            "{request_id} {name}: {own:?}"
        );
    }
    for (name, expected) in distributions {
        assert_eq!(
            distribution(own, name).len(),
            *expected,
            "{request_id} {name}"
        );
    }
}
