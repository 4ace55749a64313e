//! The User Service is an outside system: tests stand it up as an HTTP stub on loopback.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::get;
use axum::Router;

/// How the stub answers `GET /validate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StubBehavior {
    /// Answer this status at once.
    Status(u16),
    /// Wait, then answer this status.
    Slow(Duration, u16),
}

#[derive(Clone)]
struct StubState {
    behavior: Arc<Mutex<StubBehavior>>,
    calls: Arc<AtomicUsize>,
    last_authorization: Arc<Mutex<Option<String>>>,
}

pub struct UserServiceStub {
    /// Base URL (`http://127.0.0.1:PORT`); the validate path is `/validate`.
    pub url: String,
    state: StubState,
    server: tokio::task::JoinHandle<()>,
}

impl UserServiceStub {
    /// Starts a stub answering 204 (valid) until told otherwise.
    pub async fn start() -> Self {
        let state = StubState {
            behavior: Arc::new(Mutex::new(StubBehavior::Status(204))),
            calls: Arc::new(AtomicUsize::new(0)),
            last_authorization: Arc::new(Mutex::new(None)),
        };
        let router = Router::new()
            .route("/validate", get(validate))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the User Service stub");
        let url = format!("http://{}", listener.local_addr().expect("stub address"));
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        Self { url, state, server }
    }

    pub fn set(&self, behavior: StubBehavior) {
        *self.state.behavior.lock().expect("stub lock") = behavior;
    }

    /// How many validation calls reached the stub.
    pub fn calls(&self) -> usize {
        self.state.calls.load(Ordering::SeqCst)
    }

    /// The Authorization header of the last call, to check it was passed through unchanged.
    pub fn last_authorization(&self) -> Option<String> {
        self.state
            .last_authorization
            .lock()
            .expect("stub lock")
            .clone()
    }

    /// Stops listening: connections are refused from now on.
    pub async fn go_down(&self) {
        self.server.abort();
        // Let the abort land so the listener is closed before the caller goes on.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl Drop for UserServiceStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn validate(State(state): State<StubState>, headers: HeaderMap) -> StatusCode {
    state.calls.fetch_add(1, Ordering::SeqCst);
    *state.last_authorization.lock().expect("stub lock") = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let behavior = *state.behavior.lock().expect("stub lock");
    let status = match behavior {
        StubBehavior::Status(s) => s,
        StubBehavior::Slow(delay, s) => {
            tokio::time::sleep(delay).await;
            s
        }
    };
    StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// A loopback URL where nothing listens (connection refused).
pub async fn unreachable_url() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind a throwaway port");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    drop(listener);
    url
}
