//! Liveness and readiness for orchestrators (Kubernetes probes, ECS container health checks)
//! in poller mode: a tiny HTTP/1.1 responder on `HEALTH_PORT`.
//!
//! An HTTP port rather than an exec probe because the images have no shell and nothing but
//! the worker to exec, and because ECS, Kubernetes and load balancers all speak HTTP.
//! Hand-written rather than on axum/hyper's server: two fixed answers do not justify a
//! server stack in the worker binary (its zip has a 4 MB budget).
//!
//! - `GET /health`: 200 while the process runs, draining included, so an orchestrator never
//!   kills a worker that is finishing its batches (the grace period does that).
//! - `GET /ready`: 200 once the queue answered (the poller read its visibility timeout) and
//!   until shutdown is requested; 503 before and while draining. A rollout therefore waits
//!   for new workers that can reach their queue before it stops old ones.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};

const STARTING: u8 = 0;
const POLLING: u8 = 1;
const DRAINING: u8 = 2;

/// Longest request head read; probes send a few dozen bytes.
const MAX_REQUEST: usize = 2048;
/// Probes from kubelet or the ECS agent are few; more connections at once are turned away.
const MAX_CONNECTIONS: usize = 16;
const IO_TIMEOUT: Duration = Duration::from_secs(2);

/// The worker's state as the probes see it; cheap to clone and share.
#[derive(Debug, Clone, Default)]
pub struct Health(Arc<AtomicU8>);

impl Health {
    pub fn new() -> Self {
        Self::default()
    }

    /// The queue answered and the receive loops run.
    pub fn polling(&self) {
        // Never back from draining to ready.
        let _ = self
            .0
            .compare_exchange(STARTING, POLLING, Ordering::SeqCst, Ordering::SeqCst);
    }

    /// Shutdown was requested: no new receives, batches in hand being finished.
    pub fn draining(&self) {
        self.0.store(DRAINING, Ordering::SeqCst);
    }

    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst) == POLLING
    }

    fn state_name(&self) -> &'static str {
        match self.0.load(Ordering::SeqCst) {
            STARTING => "starting",
            POLLING => "polling",
            _ => "draining",
        }
    }

    /// The status line and JSON body for one request head.
    pub fn answer(&self, request_head: &[u8]) -> (&'static str, String) {
        let line = request_head
            .split(|b| *b == b'\r' || *b == b'\n')
            .next()
            .unwrap_or_default();
        let mut parts = line.split(|b| *b == b' ');
        let method = parts.next().unwrap_or_default();
        let path = parts.next().unwrap_or_default();
        // The query string does not matter to a probe.
        let path = path.split(|b| *b == b'?').next().unwrap_or_default();
        let state = self.state_name();
        if method != b"GET" && method != b"HEAD" {
            return (
                "405 Method Not Allowed",
                r#"{"status":"method not allowed"}"#.into(),
            );
        }
        match path {
            b"/health" => ("200 OK", format!(r#"{{"status":"ok","state":"{state}"}}"#)),
            b"/ready" if self.is_ready() => (
                "200 OK",
                format!(r#"{{"status":"ready","state":"{state}"}}"#),
            ),
            b"/ready" => (
                "503 Service Unavailable",
                format!(r#"{{"status":"not ready","state":"{state}"}}"#),
            ),
            _ => ("404 Not Found", r#"{"status":"not found"}"#.into()),
        }
    }
}

/// Binds `addr` now (so a taken port fails start-up), then answers probes until `stop`
/// turns true.
pub async fn serve(
    addr: SocketAddr,
    health: Health,
    mut stop: watch::Receiver<bool>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let listener = TcpListener::bind(addr)
        .await
        .with_context(|| format!("binding the health port {addr} (HEALTH_PORT)"))?;
    tracing::info!(addr = %addr, "health endpoints on /health and /ready");
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    Ok(tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                _ = stop.wait_for(|stopped| *stopped) => break,
                a = listener.accept() => a,
            };
            let Ok((stream, _)) = accepted else {
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            };
            let Ok(permit) = limit.clone().try_acquire_owned() else {
                continue;
            };
            let health = health.clone();
            tokio::spawn(async move {
                let _ = tokio::time::timeout(IO_TIMEOUT, respond(stream, &health)).await;
                drop(permit);
            });
        }
    }))
}

async fn respond(mut stream: TcpStream, health: &Health) -> std::io::Result<()> {
    let mut head = Vec::with_capacity(256);
    let mut buf = [0u8; 512];
    while head.len() < MAX_REQUEST && !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        head.extend_from_slice(&buf[..n]);
    }
    let (status, body) = health.answer(&head);
    let head_only = head.starts_with(b"HEAD ");
    let response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if head_only { "" } else { body.as_str() }
    );
    stream.write_all(response.as_bytes()).await?;
    stream.shutdown().await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readiness_follows_starting_polling_and_draining_while_liveness_stays_up() {
        let health = Health::new();
        assert_eq!(
            health.answer(b"GET /ready HTTP/1.1\r\n\r\n").0,
            "503 Service Unavailable"
        );
        assert_eq!(health.answer(b"GET /health HTTP/1.1\r\n\r\n").0, "200 OK");
        health.polling();
        assert_eq!(health.answer(b"GET /ready HTTP/1.1\r\n\r\n").0, "200 OK");
        health.draining();
        let (status, body) = health.answer(b"GET /ready HTTP/1.1\r\n\r\n");
        assert_eq!(status, "503 Service Unavailable");
        assert!(body.contains("draining"), "{body}");
        assert_eq!(health.answer(b"GET /health HTTP/1.1\r\n\r\n").0, "200 OK");
        health.polling();
        assert!(!health.is_ready(), "draining never turns ready again");
    }

    #[test]
    fn unknown_paths_methods_and_garbage_get_an_error_status_not_a_panic() {
        let health = Health::new();
        assert_eq!(
            health.answer(b"GET /nope HTTP/1.1\r\n\r\n").0,
            "404 Not Found"
        );
        assert_eq!(
            health.answer(b"POST /health HTTP/1.1\r\n\r\n").0,
            "405 Method Not Allowed"
        );
        assert_eq!(health.answer(b"").0, "405 Method Not Allowed");
        assert_eq!(
            health.answer(&[0xff, 0xfe, b' ', b'/']).0,
            "405 Method Not Allowed"
        );
        assert_eq!(
            health.answer(b"GET /health?probe=1 HTTP/1.1\r\n").0,
            "200 OK"
        );
    }
}
