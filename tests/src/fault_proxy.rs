//! A fault-injecting HTTP/1.1 proxy between the SDK clients and the emulator, on loopback.
//!
//! The emulator never throttles, never returns `UnprocessedItems` and never drops a
//! connection, so the retry paths only run when something in between makes them. This proxy
//! forwards every call to the emulator unless a fault is drawn for it. Calls are told apart by
//! their `X-Amz-Target` header (`DynamoDB_20120810.BatchWriteItem`, `AmazonSQS.ReceiveMessage`:
//! both SDKs speak JSON protocols). Per operation, or per service, at rates that can change
//! while a test runs, it:
//!
//! - answers a throttling error (DynamoDB's `ProvisionedThroughputExceededException`) or a 500,
//!   without the emulator seeing the call;
//! - for BatchWriteItem, forwards only part of the items and hands the rest back as
//!   `UnprocessedItems`, so the retried items really are unwritten;
//! - resets the connection before forwarding, or after forwarding (the call landed, the caller
//!   cannot know: the nastiest case for idempotency);
//! - adds latency;
//! - takes a whole service down ([`Outage`]).
//!
//! Every decision is counted ([`ProxyStats`]), so a test can show the faults really happened.
//! Draws come from one seeded RNG: the sequence of draws is reproducible, though which call
//! gets which draw depends on scheduling when calls run concurrently.

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use aws_config::SdkConfig;
use bytes::Bytes;
use http::{header, HeaderMap, HeaderValue, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::{json, Map, Value};
use tokio::net::TcpListener;
use tokio::sync::watch;

/// The `X-Amz-Target` prefix of DynamoDB calls.
pub const DYNAMODB: &str = "DynamoDB_20120810";
/// The `X-Amz-Target` prefix of SQS calls (JSON protocol).
pub const SQS: &str = "AmazonSQS";

/// `dynamodb("BatchWriteItem")` is `"DynamoDB_20120810.BatchWriteItem"`.
pub fn dynamodb(operation: &str) -> String {
    format!("{DYNAMODB}.{operation}")
}

/// `sqs("DeleteMessageBatch")` is `"AmazonSQS.DeleteMessageBatch"`.
pub fn sqs(operation: &str) -> String {
    format!("{SQS}.{operation}")
}

/// Probabilities (0..=1, summing to at most 1) of each fault per call, plus added latency.
/// One uniform draw per call picks at most one fault.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Faults {
    /// Answer a throttling error; the emulator never sees the call.
    pub throttle: f64,
    /// Answer 500; the emulator never sees the call.
    pub server_error: f64,
    /// BatchWriteItem only: forward part of the items, return the rest as `UnprocessedItems`.
    pub unprocessed: f64,
    /// Reset the connection without forwarding.
    pub reset: f64,
    /// Forward, then reset the connection instead of answering: the call took effect.
    pub lost_response: f64,
    /// Added before every call (faulted or not).
    pub latency: Duration,
}

impl Faults {
    /// No faults, only latency.
    pub fn latency(latency: Duration) -> Self {
        Self {
            latency,
            ..Self::default()
        }
    }

    /// The share of calls that get some fault.
    pub fn rate(&self) -> f64 {
        self.throttle + self.server_error + self.unprocessed + self.reset + self.lost_response
    }
}

/// How a service that is down fails every call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// The connection is reset at once (as close as loopback gets to "unreachable").
    Reset,
    /// 500 for every call.
    ServerError,
    /// The call hangs (until the outage ends, then is reset): only client timeouts help.
    Blackhole,
}

/// What the proxy did with one operation's calls.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpStats {
    pub calls: u64,
    /// Calls that reached the emulator (lost responses and partial batches included).
    pub forwarded: u64,
    pub throttled: u64,
    pub server_errors: u64,
    pub resets: u64,
    pub lost_responses: u64,
    /// BatchWriteItem calls answered with injected `UnprocessedItems`.
    pub partial_batches: u64,
    /// Items held back from the emulator in those answers.
    pub held_back_items: u64,
    /// Calls failed because their service was down.
    pub outage_failures: u64,
    /// Time spent waiting for the emulator on forwarded calls, in microseconds.
    pub upstream_micros: u64,
    /// The slowest of those waits, in microseconds.
    pub max_upstream_micros: u64,
}

impl OpStats {
    /// Calls that failed or came back partial because of the proxy.
    pub fn faults(&self) -> u64 {
        self.throttled
            + self.server_errors
            + self.resets
            + self.lost_responses
            + self.partial_batches
            + self.outage_failures
    }

    fn add(&mut self, other: &OpStats) {
        self.calls += other.calls;
        self.forwarded += other.forwarded;
        self.throttled += other.throttled;
        self.server_errors += other.server_errors;
        self.resets += other.resets;
        self.lost_responses += other.lost_responses;
        self.partial_batches += other.partial_batches;
        self.held_back_items += other.held_back_items;
        self.outage_failures += other.outage_failures;
        self.upstream_micros += other.upstream_micros;
        self.max_upstream_micros = self.max_upstream_micros.max(other.max_upstream_micros);
    }

    /// Mean time the emulator took per forwarded call.
    pub fn mean_upstream(&self) -> Duration {
        Duration::from_micros(self.upstream_micros / self.forwarded.max(1))
    }

    /// The longest the emulator took to answer one forwarded call.
    pub fn max_upstream(&self) -> Duration {
        Duration::from_micros(self.max_upstream_micros)
    }
}

/// A snapshot of the proxy's counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProxyStats {
    /// Per `X-Amz-Target` (`"unknown"` for calls without one).
    pub ops: BTreeMap<String, OpStats>,
    /// Messages handed out by ReceiveMessage answers that passed through the proxy.
    pub messages_received: u64,
    /// Of those, how many SQS had handed out before (`ApproximateReceiveCount` > 1).
    pub redeliveries: u64,
    /// Every message sent through the proxy (SendMessage and SendMessageBatch entries, as the
    /// client wrote them, in the order the calls arrived): what the sender put on the wire,
    /// whatever the emulator keeps of it.
    pub sent_messages: Vec<SentMessage>,
}

/// One message as a client sent it to SQS.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SentMessage {
    pub body: String,
    /// The `AWSTraceHeader` message system attribute, when set.
    pub trace_header: Option<String>,
}

impl ProxyStats {
    /// One operation's counters, by full target (`dynamodb("PutItem")`).
    pub fn op(&self, target: &str) -> OpStats {
        self.ops.get(target).copied().unwrap_or_default()
    }

    /// A whole service's counters (`DYNAMODB` or `SQS`).
    pub fn service(&self, prefix: &str) -> OpStats {
        let mut total = OpStats::default();
        for (target, stats) in &self.ops {
            if service_of(target) == prefix {
                total.add(stats);
            }
        }
        total
    }
}

/// The running proxy. Dropping it stops accepting connections.
pub struct FaultProxy {
    /// `http://127.0.0.1:PORT`: use it as the endpoint URL of the clients under test.
    pub url: String,
    /// The seed of the fault draws, to print when a test fails.
    pub seed: u64,
    shared: Arc<Shared>,
    acceptor: tokio::task::JoinHandle<()>,
}

struct Shared {
    upstream: String,
    client: reqwest::Client,
    state: Mutex<State>,
    /// Bumped on every outage change, so blackholed calls wake up.
    outage_changed: watch::Sender<u64>,
}

struct State {
    /// Keyed by full target or by service prefix; the full target wins.
    faults: HashMap<String, Faults>,
    outages: HashMap<String, Outage>,
    rng: fastrand::Rng,
    stats: ProxyStats,
}

/// What to do with one call, decided up front under the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Forward,
    Throttle,
    ServerError,
    HoldBack,
    Reset,
    LoseResponse,
    Down(Outage),
}

/// The error a service returns to make hyper drop the connection without answering.
#[derive(Debug)]
struct ConnectionDropped;

impl std::fmt::Display for ConnectionDropped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection dropped by the fault proxy")
    }
}

impl std::error::Error for ConnectionDropped {}

type ProxyResponse = Result<Response<Full<Bytes>>, ConnectionDropped>;

impl FaultProxy {
    /// Starts a proxy in front of `upstream` (the emulator's URL) with the seed from
    /// `FAULT_SEED`, or a random one.
    pub async fn start(upstream: &str) -> Self {
        let seed = std::env::var("FAULT_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| fastrand::u64(..));
        Self::start_seeded(upstream, seed).await
    }

    pub async fn start_seeded(upstream: &str, seed: u64) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the fault proxy");
        let url = format!("http://{}", listener.local_addr().expect("proxy address"));
        let shared = Arc::new(Shared {
            upstream: upstream.trim_end_matches('/').to_owned(),
            client: crate::http_client_builder()
                .no_proxy()
                .timeout(Duration::from_secs(60))
                .build()
                .expect("proxy HTTP client"),
            state: Mutex::new(State {
                faults: HashMap::new(),
                outages: HashMap::new(),
                rng: fastrand::Rng::with_seed(seed),
                stats: ProxyStats::default(),
            }),
            outage_changed: watch::channel(0).0,
        });
        let acceptor = tokio::spawn(accept_loop(listener, shared.clone()));
        Self {
            url,
            seed,
            shared,
            acceptor,
        }
    }

    /// Sets the faults of one operation (`dynamodb("BatchWriteItem")`) or of a whole service
    /// (`DYNAMODB`); takes effect for the next call.
    pub fn set_faults(&self, target: &str, faults: Faults) {
        self.state().faults.insert(target.to_owned(), faults);
    }

    /// Removes every fault rule (outages stay as they are).
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Takes a service (`DYNAMODB` or `SQS`) down, or brings it back with `None`.
    pub fn set_outage(&self, service: &str, outage: Option<Outage>) {
        {
            let mut state = self.state();
            match outage {
                Some(o) => state.outages.insert(service.to_owned(), o),
                None => state.outages.remove(service),
            };
        }
        self.shared
            .outage_changed
            .send_modify(|generation| *generation += 1);
    }

    pub fn stats(&self) -> ProxyStats {
        self.state().stats.clone()
    }

    /// A config loader pointed at the proxy with the emulator's dummy credentials; add
    /// settings (a retry config, say) before `.load()`.
    pub fn config_loader(&self) -> aws_config::ConfigLoader {
        crate::emulator::config_loader_at(&self.url)
    }

    /// An `SdkConfig` whose clients all go through the proxy.
    pub async fn sdk_config(&self) -> SdkConfig {
        self.config_loader().load().await
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared.state.lock().expect("fault proxy state")
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.acceptor.abort();
        // Wake blackholed calls so their connections close too.
        self.shared
            .outage_changed
            .send_modify(|generation| *generation += 1);
    }
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        // A second handle on the socket, kept to turn the close into a reset (SO_LINGER 0)
        // when a fault calls for one; hyper owns the stream itself.
        let Ok(socket) = stream.as_fd().try_clone_to_owned() else {
            continue;
        };
        let socket = Arc::new(socket);
        let shared = shared.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let shared = shared.clone();
                let socket = socket.clone();
                async move { handle(&shared, &socket, request).await }
            });
            // An error here is either a fault we injected or a client going away: nothing to do.
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

/// Makes the coming close of this connection a TCP reset, then drops it without an answer.
fn reset(socket: &OwnedFd) -> ProxyResponse {
    let _ = socket2::SockRef::from(socket).set_linger(Some(Duration::ZERO));
    Err(ConnectionDropped)
}

async fn handle(shared: &Shared, socket: &OwnedFd, request: Request<Incoming>) -> ProxyResponse {
    let target = request
        .headers()
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("unknown")
        .to_owned();
    let (action, latency, hold_draws) = decide(shared, &target);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    match action {
        Action::Down(outage) => return answer_outage(shared, socket, &target, outage).await,
        Action::Throttle => return Ok(throttling_error(&target)),
        Action::ServerError => return Ok(server_error(&target)),
        Action::Reset => return reset(socket),
        Action::Forward | Action::HoldBack | Action::LoseResponse => {}
    }

    let (parts, body) = request.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return Err(ConnectionDropped);
    };
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", |pq| pq.as_str())
        .to_owned();

    if action == Action::HoldBack {
        if let Some(split) = split_batch(&body, &hold_draws) {
            return forward_partial_batch(shared, &target, &parts.headers, &path, split).await;
        }
    }
    // Bytes clone by reference count: the request stays readable after forwarding.
    let response = forward(
        shared,
        &target,
        &parts.method,
        &path,
        &parts.headers,
        body.clone(),
    )
    .await;
    if action == Action::LoseResponse {
        return reset(socket);
    }
    if target == sqs("ReceiveMessage") && response.status().is_success() {
        count_received(shared, response.body());
    }
    if response.status().is_success() {
        record_sent(shared, &target, &body);
    }
    Ok(response.map(Full::new))
}

/// Draws the fate of one call and counts it. Also returns draws for choosing which items a
/// partial batch holds back, taken here so the whole decision uses the seeded RNG.
fn decide(shared: &Shared, target: &str) -> (Action, Duration, Vec<f64>) {
    let mut guard = shared.state.lock().expect("fault proxy state");
    let state = &mut *guard;
    let service = service_of(target);
    let stats = state.stats.ops.entry(target.to_owned()).or_default();
    stats.calls += 1;
    if let Some(&outage) = state.outages.get(service) {
        stats.outage_failures += 1;
        return (Action::Down(outage), Duration::ZERO, Vec::new());
    }
    let faults = state
        .faults
        .get(target)
        .or_else(|| state.faults.get(service))
        .copied()
        .unwrap_or_default();
    // Only BatchWriteItem can come back partial; other calls never draw that fault.
    let unprocessed = if target == dynamodb("BatchWriteItem") {
        faults.unprocessed
    } else {
        0.0
    };
    let draw = state.rng.f64();
    let mut threshold = 0.0;
    let mut pick = |rate: f64| {
        threshold += rate;
        draw < threshold
    };
    let action = if pick(faults.throttle) {
        stats.throttled += 1;
        Action::Throttle
    } else if pick(faults.server_error) {
        stats.server_errors += 1;
        Action::ServerError
    } else if pick(unprocessed) {
        Action::HoldBack // counted once the batch is split
    } else if pick(faults.reset) {
        stats.resets += 1;
        Action::Reset
    } else if pick(faults.lost_response) {
        stats.lost_responses += 1;
        Action::LoseResponse
    } else {
        Action::Forward
    };
    let hold_draws = if action == Action::HoldBack {
        (0..32).map(|_| state.rng.f64()).collect()
    } else {
        Vec::new()
    };
    (action, faults.latency, hold_draws)
}

fn count(shared: &Shared, target: &str, update: impl FnOnce(&mut OpStats)) {
    let mut state = shared.state.lock().expect("fault proxy state");
    update(state.stats.ops.entry(target.to_owned()).or_default());
}

fn count_received(shared: &Shared, body: &Bytes) {
    let Ok(answer) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let messages = answer["Messages"].as_array().map_or(&[][..], Vec::as_slice);
    let redelivered = messages
        .iter()
        .filter(|m| {
            m["Attributes"]["ApproximateReceiveCount"]
                .as_str()
                .and_then(|c| c.parse::<u64>().ok())
                .is_some_and(|c| c > 1)
        })
        .count();
    let mut state = shared.state.lock().expect("fault proxy state");
    state.stats.messages_received += messages.len() as u64;
    state.stats.redeliveries += redelivered as u64;
}

/// The messages of a SendMessage or SendMessageBatch request (JSON protocol).
fn record_sent(shared: &Shared, target: &str, body: &Bytes) {
    let entries = if target == sqs("SendMessage") || target == sqs("SendMessageBatch") {
        serde_json::from_slice::<Value>(body).ok()
    } else {
        None
    };
    let Some(request) = entries else {
        return;
    };
    let entries = match request["Entries"].as_array() {
        Some(entries) => entries.clone(),
        None => vec![request],
    };
    let sent = entries.iter().filter_map(|entry| {
        Some(SentMessage {
            body: entry["MessageBody"].as_str()?.to_owned(),
            trace_header: entry["MessageSystemAttributes"]["AWSTraceHeader"]["StringValue"]
                .as_str()
                .map(str::to_owned),
        })
    });
    let mut state = shared.state.lock().expect("fault proxy state");
    state.stats.sent_messages.extend(sent);
}

async fn answer_outage(
    shared: &Shared,
    socket: &OwnedFd,
    target: &str,
    outage: Outage,
) -> ProxyResponse {
    match outage {
        Outage::Reset => reset(socket),
        Outage::ServerError => Ok(server_error(target)),
        Outage::Blackhole => {
            let mut changed = shared.outage_changed.subscribe();
            // Bounded so a forgotten outage cannot hold a test forever.
            let _ = tokio::time::timeout(Duration::from_secs(120), changed.changed()).await;
            reset(socket)
        }
    }
}

/// Which items of a BatchWriteItem to forward, and which to hand back.
struct BatchSplit {
    forwarded: Value,
    held_back: Map<String, Value>,
    held_count: usize,
}

/// Splits the request's items: each is held back with probability 1/2 (at least one is).
/// `None` when the body is not a BatchWriteItem request we understand: it is then forwarded.
fn split_batch(body: &[u8], draws: &[f64]) -> Option<BatchSplit> {
    let mut request: Value = serde_json::from_slice(body).ok()?;
    let items = request.get_mut("RequestItems")?.as_object_mut()?;
    let total: usize = items
        .values()
        .filter_map(Value::as_array)
        .map(Vec::len)
        .sum();
    if total == 0 {
        return None;
    }
    let mut hold: Vec<bool> = (0..total)
        .map(|i| draws.get(i % draws.len().max(1)).is_some_and(|&d| d < 0.5))
        .collect();
    if !hold.contains(&true) {
        let pick = draws
            .first()
            .map_or(0, |d| (d * total as f64) as usize % total);
        hold[pick] = true;
    }
    let mut held_back = Map::new();
    let mut position = 0;
    for (table, requests) in items.iter_mut() {
        let Some(requests) = requests.as_array_mut() else {
            continue;
        };
        let (mut keep, mut held) = (Vec::new(), Vec::new());
        for request in requests.drain(..) {
            if hold[position] {
                held.push(request);
            } else {
                keep.push(request);
            }
            position += 1;
        }
        *requests = keep;
        if !held.is_empty() {
            held_back.insert(table.clone(), Value::Array(held));
        }
    }
    items.retain(|_, requests| requests.as_array().is_some_and(|r| !r.is_empty()));
    let held_count = hold.iter().filter(|&&h| h).count();
    Some(BatchSplit {
        forwarded: request,
        held_back,
        held_count,
    })
}

/// Forwards the kept items (if any) and answers with the held-back ones added to whatever
/// the emulator left unprocessed.
async fn forward_partial_batch(
    shared: &Shared,
    target: &str,
    headers: &HeaderMap,
    path: &str,
    split: BatchSplit,
) -> ProxyResponse {
    let nothing_forwarded = split.forwarded["RequestItems"]
        .as_object()
        .is_none_or(Map::is_empty);
    let mut answer = if nothing_forwarded {
        json!({ "UnprocessedItems": {} })
    } else {
        let body = Bytes::from(split.forwarded.to_string());
        let response = forward(shared, target, &http::Method::POST, path, headers, body).await;
        if !response.status().is_success() {
            // The whole call failed: the caller retries every item anyway.
            return Ok(response.map(Full::new));
        }
        match serde_json::from_slice::<Value>(response.body()) {
            Ok(answer) if answer.is_object() => answer,
            _ => return Ok(response.map(Full::new)),
        }
    };
    let mut unprocessed = match answer.get_mut("UnprocessedItems").map(Value::take) {
        Some(Value::Object(map)) => map,
        _ => Map::new(),
    };
    for (table, held) in split.held_back {
        let entry = unprocessed
            .entry(table)
            .or_insert_with(|| Value::Array(Vec::new()));
        if let (Some(list), Value::Array(held)) = (entry.as_array_mut(), held) {
            list.extend(held);
        }
    }
    answer["UnprocessedItems"] = Value::Object(unprocessed);
    count(shared, target, |s| {
        s.partial_batches += 1;
        s.held_back_items += split.held_count as u64;
    });
    Ok(json_response(StatusCode::OK, &answer))
}

/// Sends the call on to the emulator (counting it and its time); an emulator that cannot be
/// reached is a 502.
async fn forward(
    shared: &Shared,
    target: &str,
    method: &http::Method,
    path: &str,
    headers: &HeaderMap,
    body: Bytes,
) -> Response<Bytes> {
    let mut request = shared
        .client
        .request(method.clone(), format!("{}{}", shared.upstream, path))
        .body(body);
    for (name, value) in headers {
        // Host and length are the new hop's own; the SigV4 signature is not checked by the
        // emulator, so changing them (or the body) is harmless.
        if !is_hop_by_hop(name) && name != header::HOST && name != header::CONTENT_LENGTH {
            request = request.header(name, value);
        }
    }
    // Counted before the call: a caller that gives up mid-call cancels this future, yet the
    // request may well have reached the emulator.
    count(shared, target, |s| s.forwarded += 1);
    let started = std::time::Instant::now();
    let response = send_upstream(request).await;
    let micros = started.elapsed().as_micros() as u64;
    count(shared, target, |s| {
        s.upstream_micros += micros;
        s.max_upstream_micros = s.max_upstream_micros.max(micros);
    });
    response
}

async fn send_upstream(request: reqwest::RequestBuilder) -> Response<Bytes> {
    let upstream = match request.send().await {
        Ok(upstream) => upstream,
        Err(e) => {
            let body = json!({ "message": format!("fault proxy: emulator unreachable: {e}") });
            let mut response = Response::new(Bytes::from(body.to_string()));
            *response.status_mut() = StatusCode::BAD_GATEWAY;
            return response;
        }
    };
    let status = upstream.status();
    let upstream_headers = upstream.headers().clone();
    let body = upstream.bytes().await.unwrap_or_default();
    let mut response = Response::new(body);
    *response.status_mut() = status;
    for (name, value) in &upstream_headers {
        // The CRC32 DynamoDB sends covers the original body; drop it since bodies may change.
        if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH && name.as_str() != "x-amz-crc32"
        {
            response.headers_mut().append(name, value.clone());
        }
    }
    response
}

fn is_hop_by_hop(name: &header::HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "proxy-authenticate"
            | "proxy-authorization"
            | "te"
            | "trailer"
            | "transfer-encoding"
            | "upgrade"
    )
}

fn service_of(target: &str) -> &str {
    target.split('.').next().unwrap_or(target)
}

/// The throttling error each service really sends, in its JSON protocol's error shape
/// (`__type` with a namespace, which the SDK strips to the bare code).
fn throttling_error(target: &str) -> Response<Full<Bytes>> {
    let code = if service_of(target) == DYNAMODB {
        "com.amazonaws.dynamodb.v20120810#ProvisionedThroughputExceededException"
    } else {
        "com.amazonaws.sqs#RequestThrottled"
    };
    json_response(
        StatusCode::BAD_REQUEST,
        &json!({
            "__type": code,
            "message": "The level of configured provisioned throughput for the table was exceeded (injected by the fault proxy)",
        }),
    )
}

fn server_error(target: &str) -> Response<Full<Bytes>> {
    let code = if service_of(target) == DYNAMODB {
        "com.amazonaws.dynamodb.v20120810#InternalServerError"
    } else {
        "com.amazonaws.sqs#InternalError"
    };
    json_response(
        StatusCode::INTERNAL_SERVER_ERROR,
        &json!({ "__type": code, "message": "internal error (injected by the fault proxy)" }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    response
}
