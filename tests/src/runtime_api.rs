//! A fake Lambda Runtime API on loopback, so the real `ingest` and `worker` binaries can run
//! in Lambda mode (`AWS_LAMBDA_RUNTIME_API`) in tests and benchmarks.
//!
//! It hands out the queued events one per `next` poll and records each response. Once the
//! queue is empty, `next` waits, as the real API does between invocations. Several polls may
//! wait at once (a function serving concurrent invocations, as under Lambda Managed
//! Instances): each gets its own event, and the API counts how many were out at once.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use tokio::sync::{Mutex, Notify};

/// What the function answered for one invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    /// `response` or `error`.
    pub kind: &'static str,
    pub body: String,
}

/// The trace every invocation gets unless queued with its own (`Lambda-Runtime-Trace-Id`).
pub const DEFAULT_TRACE_ID: &str =
    "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1";

struct Queued {
    request_id: String,
    event: String,
    trace_id: String,
}

#[derive(Default)]
struct Inner {
    pending: Mutex<VecDeque<Queued>>,
    /// Invocations handed out and not yet answered, and the most there ever were at once.
    in_flight: AtomicUsize,
    most_in_flight: AtomicUsize,
    results: Mutex<Vec<Invocation>>,
    first_poll: Mutex<Option<Instant>>,
    init_error: Mutex<Option<String>>,
    changed: Notify,
}

pub struct FakeRuntimeApi {
    /// `host:port`, the value for `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
    inner: Arc<Inner>,
    server: tokio::task::JoinHandle<()>,
    /// How long each invocation may run (the deadline header).
    pub invocation_timeout: Duration,
}

impl FakeRuntimeApi {
    pub async fn start() -> Self {
        let inner = Arc::new(Inner::default());
        let router = Router::new()
            .route("/2018-06-01/runtime/invocation/next", get(next))
            .route(
                "/2018-06-01/runtime/invocation/{id}/response",
                post(respond),
            )
            .route("/2018-06-01/runtime/invocation/{id}/error", post(fail))
            .route("/2018-06-01/runtime/init/error", post(init_error))
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fake runtime API");
        let address = listener.local_addr().expect("address").to_string();
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self {
            address,
            inner,
            server,
            invocation_timeout: Duration::from_secs(30),
        }
    }

    /// Queues an event; returns its request id.
    pub async fn invoke(&self, event: String) -> String {
        self.invoke_traced(event, DEFAULT_TRACE_ID).await
    }

    /// Queues an event with its own X-Ray trace header; returns its request id.
    pub async fn invoke_traced(&self, event: String, trace_id: &str) -> String {
        let id = ulid::Ulid::new().to_string();
        self.inner.pending.lock().await.push_back(Queued {
            request_id: id.clone(),
            event,
            trace_id: trace_id.to_owned(),
        });
        self.inner.changed.notify_waiters();
        id
    }

    /// The most invocations the function had in hand at once (handed out, not yet answered).
    pub fn most_in_flight(&self) -> usize {
        self.inner.most_in_flight.load(Ordering::SeqCst)
    }

    /// Waits (bounded) for the function's answer to `request_id`.
    pub async fn result(&self, request_id: &str, timeout: Duration) -> Option<Invocation> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self
                .inner
                .results
                .lock()
                .await
                .iter()
                .find(|r| r.request_id == request_id)
            {
                return Some(found.clone());
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// When the function first asked for work (its init is over).
    pub async fn first_poll(&self) -> Option<Instant> {
        *self.inner.first_poll.lock().await
    }

    pub async fn init_error(&self) -> Option<String> {
        self.inner.init_error.lock().await.clone()
    }
}

impl Drop for FakeRuntimeApi {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn next(State(inner): State<Arc<Inner>>) -> Response {
    {
        let mut first = inner.first_poll.lock().await;
        first.get_or_insert_with(Instant::now);
    }
    loop {
        let notified = inner.changed.notified();
        if let Some(Queued {
            request_id: id,
            event,
            trace_id,
        }) = inner.pending.lock().await.pop_front()
        {
            let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
            inner.most_in_flight.fetch_max(now, Ordering::SeqCst);
            let deadline = time::OffsetDateTime::now_utc() + time::Duration::seconds(30);
            let deadline_ms = (deadline.unix_timestamp_nanos() / 1_000_000).to_string();
            let mut headers = HeaderMap::new();
            let mut put = |name: &'static str, value: &str| {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(name, v);
                }
            };
            put("lambda-runtime-aws-request-id", &id);
            put("lambda-runtime-deadline-ms", &deadline_ms);
            put(
                "lambda-runtime-invoked-function-arn",
                "arn:aws:lambda:us-east-1:123456789012:function:test",
            );
            put("lambda-runtime-trace-id", &trace_id);
            put("content-type", "application/json");
            return (StatusCode::OK, headers, event).into_response();
        }
        notified.await;
    }
}

async fn record(inner: &Inner, id: String, kind: &'static str, body: Bytes) -> StatusCode {
    let _ = inner
        .in_flight
        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1));
    inner.results.lock().await.push(Invocation {
        request_id: id,
        kind,
        body: String::from_utf8_lossy(&body).into_owned(),
    });
    StatusCode::ACCEPTED
}

async fn respond(
    State(inner): State<Arc<Inner>>,
    Path(id): Path<String>,
    body: Bytes,
) -> StatusCode {
    record(&inner, id, "response", body).await
}

async fn fail(State(inner): State<Arc<Inner>>, Path(id): Path<String>, body: Bytes) -> StatusCode {
    record(&inner, id, "error", body).await
}

async fn init_error(State(inner): State<Arc<Inner>>, body: Bytes) -> StatusCode {
    *inner.init_error.lock().await = Some(String::from_utf8_lossy(&body).into_owned());
    StatusCode::ACCEPTED
}

/// A function binary running in Lambda mode against its own [`FakeRuntimeApi`].
pub struct LambdaFunction {
    pub runtime: FakeRuntimeApi,
    pub process: crate::RunningBinary,
}

impl LambdaFunction {
    /// Starts `binary` with `env` plus what the Lambda runtime gives a function.
    pub async fn start(binary: &str, mut env: Vec<(String, String)>) -> Self {
        let runtime = FakeRuntimeApi::start().await;
        env.extend(crate::lambda_env(&runtime.address));
        let process = crate::spawn_binary(binary, &[], &env);
        Self { runtime, process }
    }

    /// Invokes with `event`; returns the Lambda request id and the function's JSON answer
    /// (an invocation error or no answer within 40 s fails the test, with the log).
    pub async fn invoke(&self, event: String) -> (String, serde_json::Value) {
        let id = self.runtime.invoke(event).await;
        let result = self
            .runtime
            .result(&id, Duration::from_secs(40))
            .await
            .unwrap_or_else(|| panic!("no answer from the function; log:\n{}", self.process.log()));
        assert_eq!(result.kind, "response", "{}", result.body);
        let answer = serde_json::from_str(&result.body)
            .unwrap_or_else(|e| panic!("the function answered no JSON ({e}): {}", result.body));
        (id, answer)
    }
}
