//! ingest's Lambda entry point (`ingest::lambda::answer`: the API Gateway event read without
//! lambda_http's panicking conversion, the app, the answer in the event's shape) on events
//! the fuzzer shapes. Input starting with `{` is the whole event as JSON (the seeds are
//! REST v1 and HTTP API v2 events, valid and malformed); anything else builds an event from
//! fields the fuzzer picks: host, path, query, headers, cookies, method, body. Whatever the
//! event, nothing panics; an API Gateway event is answered in its shape, never 5xx, and a 4xx
//! is a problem document (a 400 naming at least one field); only an event from no API
//! Gateway fails the invocation.
#![no_main]

use std::sync::{Arc, OnceLock};

use arbitrary::{Arbitrary, Unstructured};
use async_trait::async_trait;
use base64::Engine;
use ingest::auth::{
    AuthError, Authenticator, BearerToken, TokenCheck, TokenValidator, ValidationCache,
};
use ingest::queue::ScoreQueue;
use ingest::AppState;
use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use contract::ScoreMessage;
use time::macros::datetime;
use time::OffsetDateTime;

const NOW: OffsetDateTime = datetime!(2026-11-28 10:00:00 UTC);

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

struct Discard;

#[async_trait]
impl ScoreQueue for Discard {
    async fn enqueue(
        &self,
        _message: &ScoreMessage,
        _correlation_id: &str,
    ) -> anyhow::Result<String> {
        Ok("discarded".to_owned())
    }
}

fn runtime() -> &'static tokio::runtime::Runtime {
    static RUNTIME: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RUNTIME.get_or_init(|| {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("a current-thread runtime")
    })
}

#[derive(Debug, Arbitrary)]
struct Fields {
    http_api: bool,
    method: String,
    host: Option<String>,
    domain_name: Option<String>,
    forwarded_proto: Option<String>,
    stage: String,
    path: String,
    query: Vec<(String, String)>,
    raw_query: String,
    headers: Vec<(String, String)>,
    cookies: Option<Vec<String>>,
    body: Option<String>,
    base64: bool,
    signed_in: bool,
}

fn jwt_for(user: &str) -> String {
    let enc = |b: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b);
    let claims = json!({ "sub": user }).to_string();
    format!(
        "{}.{}.c2ln",
        enc(br#"{"alg":"HS256"}"#),
        enc(claims.as_bytes())
    )
}

fn event_of(f: Fields) -> Value {
    let mut headers = serde_json::Map::new();
    if let Some(host) = f.host {
        headers.insert("Host".into(), json!(host));
    }
    if let Some(proto) = f.forwarded_proto {
        headers.insert("X-Forwarded-Proto".into(), json!(proto));
    }
    if f.signed_in {
        headers.insert(
            "Authorization".into(),
            json!(format!("Bearer {}", jwt_for("alice"))),
        );
        headers.insert("Content-Type".into(), json!("application/json"));
    }
    for (name, value) in f.headers {
        headers.insert(name, json!(value));
    }
    if f.http_api {
        json!({
            "version": "2.0",
            "routeKey": "$default",
            "rawPath": f.path,
            "rawQueryString": f.raw_query,
            "headers": headers,
            "cookies": f.cookies,
            "requestContext": {
                "domainName": f.domain_name,
                "http": { "method": f.method, "path": f.path },
                "requestId": "fuzz",
                "stage": f.stage,
            },
            "body": f.body,
            "isBase64Encoded": f.base64,
        })
    } else {
        let query: serde_json::Map<String, Value> =
            f.query.into_iter().map(|(k, v)| (k, json!(v))).collect();
        json!({
            "resource": "/{proxy+}",
            "path": f.path,
            "httpMethod": f.method,
            "headers": headers,
            "queryStringParameters": query,
            "requestContext": {
                "domainName": f.domain_name,
                "httpMethod": "POST",
                "requestId": "fuzz",
                "stage": f.stage,
            },
            "body": f.body,
            "isBase64Encoded": f.base64,
        })
    }
}

fuzz_target!(|data: &[u8]| {
    let (event, must_be_api_gateway) = if data.first() == Some(&b'{') {
        match serde_json::from_slice::<Value>(data) {
            Ok(event) => (event, false),
            Err(_) => return,
        }
    } else {
        let Ok(fields) = Fields::arbitrary(&mut Unstructured::new(data)) else {
            return;
        };
        (event_of(fields), true)
    };
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
        queue: Arc::new(Discard),
        reader: Arc::new(ingest::reads::NoReports),
        stored_writes: Arc::new(ingest::idempotency::NothingStored),
        cursors: Arc::new(ingest::cursor::CursorCodec::new(cursor_key())),
        now: || NOW,
    };
    let result = runtime().block_on(ingest::lambda::answer(ingest::app(state), event, None));
    let answer = match result {
        Ok(answer) => answer,
        Err(e) => {
            assert!(!must_be_api_gateway, "an API Gateway event failed: {e}");
            return;
        }
    };
    let status = answer["statusCode"].as_u64().expect("a status code");
    assert!((200..500).contains(&status), "{answer}");
    if status >= 400 {
        let content_type = match &answer["multiValueHeaders"] {
            Value::Object(h) if !h.is_empty() => h["content-type"][0].clone(),
            _ => answer["headers"]["content-type"].clone(),
        };
        assert_eq!(content_type, "application/problem+json", "{answer}");
        let body = answer["body"].as_str().expect("a problem body");
        let problem: Value = serde_json::from_str(body).expect("problem JSON");
        assert_eq!(problem["status"].as_u64(), Some(status), "{problem}");
        if status == 400 {
            assert!(
                problem["errors"].as_array().is_some_and(|e| !e.is_empty()),
                "a 400 names its field: {problem}"
            );
        }
    }
});
