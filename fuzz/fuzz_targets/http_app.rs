//! The whole ingest app (router, auth, limits, body parser, error mapping) driven through
//! `tower::ServiceExt::oneshot` with an always-valid token validator and an in-memory queue:
//! whatever the path, headers and body, the answer is never 5xx, every refusal is a problem
//! document whose `status` is the HTTP status, and every 202 enqueued exactly one message the
//! worker accepts.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use arbitrary::Arbitrary;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderValue, Method, Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use ingest::auth::{
    AuthError, Authenticator, BearerToken, TokenCheck, TokenValidator, ValidationCache,
};
use ingest::queue::ScoreQueue;
use ingest::AppState;
use libfuzzer_sys::fuzz_target;
use contract::ScoreMessage;
use time::macros::datetime;
use time::OffsetDateTime;
use tower::ServiceExt;

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

/// One key for the whole run: a fixed secret, so cursors are reproducible across runs.
fn cursor_key() -> &'static ingest::cursor::CursorKey {
    static KEY: OnceLock<ingest::cursor::CursorKey> = OnceLock::new();
    KEY.get_or_init(|| {
        ingest::cursor::CursorKey::from_secret("fuzz-cursor-signing-key-of-32-bytes!")
            .expect("32+ bytes is a key")
    })
}

struct AcceptAll;

#[async_trait]
impl TokenValidator for AcceptAll {
    async fn validate(&self, _token: &BearerToken) -> Result<(), AuthError> {
        Ok(())
    }
}

#[derive(Default)]
struct MemoryQueue(Mutex<Vec<String>>);

#[async_trait]
impl ScoreQueue for MemoryQueue {
    async fn enqueue(
        &self,
        message: &ScoreMessage,
        _correlation_id: &str,
    ) -> anyhow::Result<String> {
        let mut sent = self.0.lock().expect("queue lock");
        sent.push(message.to_json());
        Ok(format!("memory-{}", sent.len()))
    }
}

#[derive(Debug, Arbitrary)]
enum Token {
    /// A JWT whose payload is these bytes (claims the fuzzer shapes).
    Claims(Vec<u8>),
    /// A token for the user in the path, or for a service caller.
    ForPathUser,
    Service,
    /// Any header value at all.
    Raw(Vec<u8>),
    Missing,
}

#[derive(Debug, Arbitrary)]
struct Input {
    method: u8,
    path: String,
    token: Token,
    content_type: Option<String>,
    idempotency_key: Option<Vec<u8>>,
    correlation_id: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn jwt(payload: &[u8]) -> String {
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    format!("{}.{}.c2ln", enc(br#"{"alg":"HS256"}"#), enc(payload))
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

fuzz_target!(|input: Input| {
    let method = match input.method % 4 {
        0 | 1 => Method::POST,
        2 => Method::GET,
        _ => Method::PUT,
    };
    // Mostly the write route for some user; sometimes any path at all.
    let path = if input.method & 0x80 == 0 {
        format!("/v1/users/{}/credit-scores", input.path)
    } else {
        input.path.clone()
    };
    let path_user = input.path.clone();
    let mut request = Request::builder().method(method).uri(path);
    let authorization = match &input.token {
        Token::Claims(payload) => Some(format!("Bearer {}", jwt(payload)).into_bytes()),
        Token::ForPathUser => Some(
            format!(
                "Bearer {}",
                jwt(serde_json::json!({"sub": path_user}).to_string().as_bytes())
            )
            .into_bytes(),
        ),
        Token::Service => Some(
            format!(
                "Bearer {}",
                jwt(br#"{"sub":"importer","scope":"credit-scores:service"}"#)
            )
            .into_bytes(),
        ),
        Token::Raw(bytes) => Some(bytes.clone()),
        Token::Missing => None,
    };
    let headers = [
        (header::AUTHORIZATION.as_str(), authorization),
        (
            header::CONTENT_TYPE.as_str(),
            input.content_type.map(String::into_bytes),
        ),
        ("idempotency-key", input.idempotency_key),
        ("x-correlation-id", input.correlation_id),
    ];
    for (name, value) in headers {
        if let Some(value) = value.and_then(|v| HeaderValue::from_bytes(&v).ok()) {
            request = request.header(name, value);
        }
    }
    let Ok(request) = request.body(Body::from(input.body)) else {
        return; // not a request http can build (an unusable URI)
    };

    let queue = Arc::new(MemoryQueue::default());
    let state = AppState {
        auth: Arc::new(Authenticator {
            check: TokenCheck::UserService {
                validator: Arc::new(AcceptAll),
                cache: ValidationCache::new(std::time::Duration::ZERO),
            },
            user_claim: "sub".into(),
            service_scope: "credit-scores:service".into(),
            service_group: None,
        }),
        queue: queue.clone(),
        reader: Arc::new(ingest::reads::NoReports),
        stored_writes: Arc::new(ingest::idempotency::NothingStored),
        cursors: Arc::new(ingest::cursor::CursorCodec::new(cursor_key())),
        now: || NOW,
    };
    let (status, content_type, body) = runtime().block_on(async {
        let response = ingest::app(state)
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = response
            .into_body()
            .collect()
            .await
            .expect("an in-memory body")
            .to_bytes();
        (status, content_type, body)
    });
    let sent = queue.0.lock().expect("queue lock").clone();

    assert!(!status.is_server_error(), "{status}");
    if status == StatusCode::ACCEPTED {
        assert_eq!(sent.len(), 1);
        let message =
            ScoreMessage::parse(&sent[0], NOW).expect("the worker accepts what ingest accepted");
        let answer: serde_json::Value = serde_json::from_slice(&body).expect("JSON answer");
        assert_eq!(
            answer["reportId"].as_str(),
            Some(message.report.report_id.as_str())
        );
    } else if status.is_client_error() {
        assert!(sent.is_empty(), "refused yet enqueued");
        assert_eq!(content_type.as_deref(), Some("application/problem+json"));
        let problem: serde_json::Value = serde_json::from_slice(&body).expect("problem JSON");
        assert_eq!(
            problem["status"].as_u64(),
            Some(u64::from(status.as_u16())),
            "{problem}"
        );
        assert!(problem["type"]
            .as_str()
            .is_some_and(|t| t.starts_with("urn:credit-scores:problem:")));
    } else {
        // GET /health, /docs and the like answer 200; never for a write.
        assert!(sent.is_empty());
        assert!(status.is_success() || status.is_redirection(), "{status}");
    }
});
