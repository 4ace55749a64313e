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
    server: Mutex<Server>,
}

/// The running server and the switch that shuts it down, open connections included.
struct Server {
    task: tokio::task::JoinHandle<()>,
    down: tokio::sync::watch::Sender<bool>,
}

impl Server {
    fn serve(listener: tokio::net::TcpListener, state: StubState) -> Self {
        let router = Router::new()
            .route("/validate", get(validate))
            .with_state(state);
        let (down, mut is_down) = tokio::sync::watch::channel(false);
        // Graceful shutdown closes idle keep-alive connections too: a pooled connection
        // from ingest must not outlive "down".
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router)
                .with_graceful_shutdown(async move {
                    let _ = is_down.wait_for(|d| *d).await;
                })
                .await;
        });
        Self { task, down }
    }
}

impl UserServiceStub {
    /// Starts a stub answering 204 (valid) until told otherwise.
    pub async fn start() -> Self {
        let state = StubState {
            behavior: Arc::new(Mutex::new(StubBehavior::Status(204))),
            calls: Arc::new(AtomicUsize::new(0)),
            last_authorization: Arc::new(Mutex::new(None)),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the User Service stub");
        let url = format!("http://{}", listener.local_addr().expect("stub address"));
        let server = Mutex::new(Server::serve(listener, state.clone()));
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

    /// Stops listening and closes idle connections: connections are refused from now on.
    /// A request already being answered (a slow one) may still finish.
    pub async fn go_down(&self) {
        let task = {
            let server = self.server.lock().expect("stub lock");
            let _ = server.down.send(true);
            server.task.abort_handle()
        };
        // Let the shutdown land so the listener is closed before the caller goes on.
        for _ in 0..100 {
            if task.is_finished() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        task.abort();
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    /// Listens again on the same address after [`Self::go_down`], with the same behaviour
    /// and call count.
    pub async fn come_back(&self) {
        let address = self.url.trim_start_matches("http://");
        let listener = tokio::net::TcpListener::bind(address)
            .await
            .unwrap_or_else(|e| panic!("rebinding the User Service stub on {address}: {e}"));
        *self.server.lock().expect("stub lock") = Server::serve(listener, self.state.clone());
    }
}

impl Drop for UserServiceStub {
    fn drop(&mut self) {
        if let Ok(server) = self.server.lock() {
            let _ = server.down.send(true);
            server.task.abort();
        }
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
