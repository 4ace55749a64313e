//! Property tests of everything ingest reads from a request: the Authorization header and
//! the token's claims, the Content-Type, the Idempotency-Key, the score body, and the whole
//! app (with an always-valid token validator and an in-memory queue, no socket).

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use axum::body::Body;
use axum::http::{header, HeaderMap, HeaderValue, Request, StatusCode};
use base64::Engine;
use contract::{MessageSource, ReportId, ScoreMessage, UserId};
use http_body_util::BodyExt;
use ingest::api::bodies::{idempotency_key, parse_score_body};
use ingest::api::error::ApiError;
use ingest::api::extract::{bearer_token, require_json};
use ingest::auth::{
    decode_claims, AuthError, Authenticator, BearerToken, TokenCheck, TokenValidator,
    ValidationCache,
};
use ingest::queue::ScoreQueue;
use ingest::AppState;
use proptest::prelude::*;
use serde_json::{json, Map, Value};
use test_support::{config, json_value, shaped_object, valid_write_body, NOW};
use tower::ServiceExt;

const BODY_FIELDS: [&str; 4] = ["bureau", "score", "reportedAt", "reportId"];

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn jwt(claims: &Value) -> String {
    format!(
        "{}.{}.c2ln",
        b64(br#"{"alg":"HS256","typ":"JWT"}"#),
        b64(claims.to_string().as_bytes())
    )
}

fn authorization(value: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(
        header::AUTHORIZATION,
        HeaderValue::from_str(value).expect("test header is visible ASCII"),
    );
    h
}

fn token(value: &str) -> BearerToken {
    BearerToken::parse(value).expect("a well-formed test token")
}

/// Objects mixing the body's own field names with others, holding anything.
fn body_shaped_object() -> impl Strategy<Value = Map<String, Value>> {
    shaped_object(&BODY_FIELDS, json_value(), 8)
}

fn fields_of(err: &ApiError) -> BTreeSet<String> {
    match err {
        ApiError::Validation(v) => v.fields().map(str::to_owned).collect(),
        ApiError::BadRequest { errors, .. } => errors.iter().map(|e| e.field.clone()).collect(),
        _ => BTreeSet::new(),
    }
}

fn alice() -> UserId {
    UserId::parse("alice").expect("valid")
}

// ---------- Authorization header and claims ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn bearer_parsing_never_panics_and_admits_only_token_characters(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else {
            return Ok(()); // http refuses it before we ever see it
        };
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, value);
        if let Ok(token) = bearer_token(&headers) {
            let t = token.expose();
            prop_assert!(!t.is_empty() && t.len() <= 8192);
            prop_assert!(t.trim_end_matches('=').bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b)), "{:?}", t);
            prop_assert!(bytes.len() > 7 && bytes[..7].eq_ignore_ascii_case(b"bearer "));
            // Whatever token got through decodes or is refused as undecodable: never a panic.
            match decode_claims(&token, "sub") {
                Ok(claims) => prop_assert!(!claims.subject.is_empty()),
                Err(e) => prop_assert!(matches!(e, AuthError::Undecodable)),
            }
        }
    }

    #[test]
    fn any_scheme_but_bearer_is_malformed(scheme in "[A-Za-z]{1,10}", rest in "[A-Za-z0-9.]{1,40}") {
        prop_assume!(!scheme.eq_ignore_ascii_case("bearer"));
        let result = bearer_token(&authorization(&format!("{scheme} {rest}")));
        prop_assert!(matches!(result, Err(AuthError::Malformed)));
    }

    #[test]
    fn decode_claims_never_panics_on_token_shaped_text(text in "[A-Za-z0-9._~+/-]{1,200}", claim in ".{0,10}") {
        let _ = decode_claims(&token(&text), &claim);
    }

    #[test]
    fn decode_claims_never_panics_on_any_payload_bytes(payload in prop::collection::vec(any::<u8>(), 0..200)) {
        let t = format!("{}.{}.sig", b64(b"{}"), b64(&payload));
        let _ = decode_claims(&token(&t), "sub");
    }

    /// Any claims object: the subject is taken exactly when the configured claim is a
    /// non-empty string; scopes come from `scope` (space separated) and `scp` (a list).
    #[test]
    fn claims_are_read_exactly_as_documented(
        claims in prop::collection::btree_map(
            prop_oneof![Just("sub".to_owned()), Just("uid".to_owned()), Just("scope".to_owned()), Just("scp".to_owned()), Just("exp".to_owned()), "[a-z]{1,5}"],
            prop_oneof![json_value(), "[a-z:-]{1,12}( [a-z:-]{1,12}){0,3}".prop_map(Value::from), prop::collection::vec("[a-z:-]{1,12}", 0..3).prop_map(|v| json!(v))],
            0..6,
        ),
        claim in prop_oneof![Just("sub"), Just("uid")],
    ) {
        let claims: Map<String, Value> = claims.into_iter().collect();
        let result = decode_claims(&token(&jwt(&Value::Object(claims.clone()))), claim);
        let subject = claims.get(claim).and_then(Value::as_str).filter(|s| !s.is_empty());
        match (result, subject) {
            (Ok(decoded), Some(subject)) => {
                prop_assert_eq!(decoded.subject.as_str(), subject);
                let mut scopes: Vec<String> = claims.get("scope").and_then(Value::as_str)
                    .map(|s| s.split_whitespace().map(str::to_owned).collect()).unwrap_or_default();
                if let Some(list) = claims.get("scp").and_then(Value::as_array) {
                    scopes.extend(list.iter().filter_map(|v| v.as_str().map(str::to_owned)));
                }
                prop_assert_eq!(decoded.scopes, scopes);
                prop_assert_eq!(decoded.expires_at, claims.get("exp").and_then(Value::as_i64));
            }
            (Err(AuthError::Undecodable), None) => {}
            (other, subject) => prop_assert!(false, "{:?} for subject {:?}", other.map(|c| c.subject), subject),
        }
    }
}

// ---------- Content-Type and Idempotency-Key ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn require_json_never_panics_on_any_content_type(bytes in prop::collection::vec(any::<u8>(), 0..100)) {
        if let Ok(value) = HeaderValue::from_bytes(&bytes) {
            let mut h = HeaderMap::new();
            h.insert(header::CONTENT_TYPE, value);
            if require_json(&h).is_ok() {
                let essence = String::from_utf8_lossy(&bytes).split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
                prop_assert!(essence.starts_with("application/") && essence.ends_with("json"), "{:?}", essence);
            }
        }
    }

    #[test]
    fn json_content_types_pass_with_any_parameters(
        essence in prop_oneof![Just("application/json".to_owned()), "application/[a-z.-]{1,12}\\+json"],
        upper in any::<bool>(),
        params in "(; ?[a-z]{1,8}=[a-zA-Z0-9-]{1,8}){0,3}",
    ) {
        let essence = if upper { essence.to_ascii_uppercase() } else { essence };
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&format!("{essence}{params}")).expect("ASCII"));
        prop_assert!(require_json(&h).is_ok());
    }

    #[test]
    fn non_json_content_types_are_unsupported(essence in "[a-z]{1,10}/[a-z.+-]{1,12}") {
        prop_assume!(!(essence.starts_with("application/") && (essence == "application/json" || essence.ends_with("+json"))));
        let mut h = HeaderMap::new();
        h.insert(header::CONTENT_TYPE, HeaderValue::from_str(&essence).expect("ASCII"));
        prop_assert!(matches!(require_json(&h), Err(ApiError::UnsupportedMediaType)));
    }

    #[test]
    fn idempotency_keys_are_report_ids_or_a_bad_request_naming_the_header(bytes in prop::collection::vec(any::<u8>(), 0..90)) {
        let Ok(value) = HeaderValue::from_bytes(&bytes) else { return Ok(()); };
        let mut h = HeaderMap::new();
        h.insert("idempotency-key", value);
        match idempotency_key(&h) {
            Ok(Some(id)) => prop_assert_eq!(id.as_str().as_bytes(), &bytes[..]),
            Ok(None) => prop_assert!(false, "a present header was ignored"),
            Err(e) => {
                prop_assert_eq!(e.status(), StatusCode::BAD_REQUEST);
                prop_assert_eq!(fields_of(&e), BTreeSet::from(["Idempotency-Key".to_owned()]));
            }
        }
    }
}

// ---------- the score body ----------

proptest! {
    #![proptest_config(config(512))]

    #[test]
    fn parse_score_body_never_panics_on_arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        if let Err(e) = parse_score_body(alice(), None, &bytes, NOW) {
            prop_assert!(e.status().is_client_error(), "{:?}", e);
            prop_assert!(!fields_of(&e).is_empty(), "{:?}", e);
        }
    }

    #[test]
    fn parse_score_body_never_panics_on_arbitrary_json(value in json_value()) {
        if let Err(e) = parse_score_body(alice(), None, value.to_string().as_bytes(), NOW) {
            prop_assert!(e.status().is_client_error());
            prop_assert!(!fields_of(&e).is_empty());
        }
    }

    /// Body-shaped objects are accepted or refused with 400/422 naming only fields of the
    /// contract or keys the body really has.
    #[test]
    fn parse_score_body_accepts_or_names_the_fields(object in body_shaped_object()) {
        let body = Value::Object(object.clone()).to_string();
        match parse_score_body(alice(), None, body.as_bytes(), NOW) {
            Ok(report) => {
                prop_assert_eq!(object.get("bureau").and_then(Value::as_str), Some(report.bureau.as_str()));
                prop_assert_eq!(object.get("score").and_then(Value::as_u64), Some(u64::from(report.score.value())));
            }
            Err(e) => {
                prop_assert!(matches!(e.status(), StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY));
                let named = fields_of(&e);
                prop_assert!(!named.is_empty());
                for field in named {
                    let real = BODY_FIELDS.contains(&field.as_str())
                        || object.keys().any(|k| k.chars().take(64).collect::<String>() == field);
                    prop_assert!(real, "named {:?} for {}", field, body);
                }
            }
        }
    }

    /// What ingest accepts, the worker accepts: the message built from any accepted body
    /// parses back to the same report, even later (the future rule only loosens with time).
    #[test]
    fn every_accepted_body_becomes_a_message_the_worker_accepts(body in valid_write_body(), later in 0i64..1_000_000) {
        let report = parse_score_body(alice(), None, body.to_string().as_bytes(), NOW)
            .map_err(|e| TestCaseError::fail(format!("{e:?} for {body}")))?;
        if let Some(id) = body.get("reportId").and_then(Value::as_str) {
            prop_assert_eq!(report.report_id.as_str(), id);
        }
        let message = ScoreMessage { report, source: MessageSource::Api, received_at: Some(NOW) };
        let parsed = ScoreMessage::parse(&message.to_json(), NOW + time::Duration::seconds(later));
        prop_assert_eq!(parsed, Ok(message));
    }

    #[test]
    fn one_bad_field_is_the_field_named(
        body in valid_write_body(),
        field in prop::sample::select(BODY_FIELDS.to_vec()),
        replacement in json_value(),
    ) {
        let mut body = body;
        body[field] = replacement;
        if let Err(e) = parse_score_body(alice(), None, body.to_string().as_bytes(), NOW) {
            for named in fields_of(&e) {
                prop_assert!(named == field || (field == "bureau" && named == "score"), "{} named for {}", named, field);
            }
        }
    }

    #[test]
    fn header_and_body_keys_must_agree(body in valid_write_body(), header_key in "[A-Za-z0-9_-]{1,64}") {
        let header = ReportId::parse(&header_key).ok();
        let result = parse_score_body(alice(), header, body.to_string().as_bytes(), NOW);
        match body.get("reportId").and_then(Value::as_str) {
            Some(body_key) if body_key != header_key => {
                prop_assert_eq!(fields_of(&result.unwrap_err()), BTreeSet::from(["reportId".to_owned()]));
            }
            _ => prop_assert_eq!(result.map(|r| r.report_id.to_string()).ok(), Some(header_key)),
        }
    }
}

// ---------- the whole app, without a socket ----------

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
        let mut queued = self.0.lock().expect("queue lock");
        queued.push(message.to_json());
        Ok(format!("memory-{}", queued.len()))
    }
}

/// Reads are not under test here: an empty table.
fn state(queue: Arc<MemoryQueue>) -> AppState {
    AppState {
        auth: Arc::new(Authenticator {
            check: TokenCheck::UserService {
                validator: Arc::new(AcceptAll),
                cache: ValidationCache::new(std::time::Duration::ZERO),
            },
            user_claim: "sub".into(),
            service_scope: "credit-scores:service".into(),
            service_group: None,
        }),
        queue,
        reader: Arc::new(ingest::reads::NoReports),
        stored_writes: Arc::new(ingest::idempotency::NothingStored),
        cursors: Arc::new(ingest::cursor::CursorCodec::new(
            &ingest::cursor::CursorKey::random().expect("a random cursor key"),
        )),
        now: || NOW,
    }
}

/// A request from `alice` to her own write route: the path, headers and body vary.
#[derive(Debug, Clone)]
struct Attempt {
    path_user: String,
    content_type: Option<String>,
    idempotency_key: Option<Vec<u8>>,
    body: Vec<u8>,
}

fn attempt() -> impl Strategy<Value = Attempt> {
    let body = prop_oneof![
        valid_write_body().prop_map(|v| v.to_string().into_bytes()),
        body_shaped_object().prop_map(|o| Value::Object(o).to_string().into_bytes()),
        prop::collection::vec(any::<u8>(), 0..256),
    ];
    (
        prop_oneof![4 => Just("alice".to_owned()), 1 => "[A-Za-z0-9%_.~-]{0,20}"],
        proptest::option::of(prop_oneof![Just("application/json".to_owned()), ".{0,30}"]),
        proptest::option::of(prop_oneof![
            "[A-Za-z0-9_-]{1,64}".prop_map(String::into_bytes),
            prop::collection::vec(any::<u8>(), 0..80)
        ]),
        body,
    )
        .prop_map(|(path_user, content_type, idempotency_key, body)| Attempt {
            path_user,
            content_type,
            idempotency_key,
            body,
        })
}

proptest! {
    #![proptest_config(config(256))]

    /// No request answers 5xx (the dependencies here never fail), every refusal is a
    /// problem document, and every 202 put exactly one message the worker accepts.
    #[test]
    fn the_api_never_answers_5xx_and_every_202_is_one_valid_message(a in attempt()) {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let queue = Arc::new(MemoryQueue::default());
        let mut request = Request::post(format!("/v1/users/{}/credit-scores", a.path_user))
            .header(header::AUTHORIZATION, format!("Bearer {}", jwt(&json!({"sub": "alice"}))));
        if let Some(ct) = HeaderValue::from_str(a.content_type.as_deref().unwrap_or_default()).ok().filter(|_| a.content_type.is_some()) {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        if let Some(key) = a.idempotency_key.as_ref().and_then(|k| HeaderValue::from_bytes(k).ok()) {
            request = request.header("idempotency-key", key);
        }
        let Ok(request) = request.body(Body::from(a.body.clone())) else {
            return Ok(()); // not a request http can even build (e.g. a bad path)
        };
        let (status, content_type, body) = runtime.block_on(async {
            let response = ingest::app(state(queue.clone())).oneshot(request).await.expect("infallible");
            let status = response.status();
            let content_type = response.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).map(str::to_owned);
            let body = response.into_body().collect().await.expect("body").to_bytes();
            (status, content_type, body)
        });
        let sent = queue.0.lock().expect("queue lock").clone();
        prop_assert!(!status.is_server_error(), "{} for {:?}", status, a);
        if status == StatusCode::ACCEPTED {
            prop_assert_eq!(sent.len(), 1);
            let message = ScoreMessage::parse(&sent[0], NOW).map_err(|e| TestCaseError::fail(format!("{e}")))?;
            let answer: Value = serde_json::from_slice(&body).expect("JSON answer");
            prop_assert_eq!(answer["reportId"].as_str(), Some(message.report.report_id.as_str()));
        } else {
            prop_assert!(status.is_client_error());
            prop_assert!(sent.is_empty(), "refused yet enqueued");
            prop_assert_eq!(content_type.as_deref(), Some("application/problem+json"));
            let problem: Value = serde_json::from_slice(&body).expect("problem JSON");
            prop_assert_eq!(problem["status"].as_u64(), Some(u64::from(status.as_u16())));
            prop_assert!(problem["type"].as_str().is_some_and(|t| t.starts_with("urn:credit-scores:problem:")));
            if matches!(status, StatusCode::BAD_REQUEST | StatusCode::UNPROCESSABLE_ENTITY) {
                prop_assert!(problem["errors"].as_array().is_some_and(|e| !e.is_empty()), "{}", problem);
            }
        }
    }
}

/// Found by the `http_app` fuzz target (its input is kept in fuzz/seeds/http_app): a wrong
/// method answered 405 with a problem document saying `"status": 400`.
#[test]
fn a_wrong_method_is_a_405_problem_that_says_405() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    for method in ["PUT", "DELETE", "PATCH"] {
        let request = Request::builder()
            .method(method)
            .uri("/v1/users/alice/credit-scores")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", jwt(&json!({"sub": "alice"}))),
            )
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .expect("a valid request");
        let (status, body) = runtime.block_on(async {
            let response = ingest::app(state(Arc::default()))
                .oneshot(request)
                .await
                .expect("infallible");
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .expect("body")
                .to_bytes();
            (status, body)
        });
        let problem: Value = serde_json::from_slice(&body).expect("problem JSON");
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
        assert_eq!(problem["status"], 405, "{method}: {problem}");
        assert_eq!(
            problem["type"], "urn:credit-scores:problem:method-not-allowed",
            "{method}"
        );
    }
}
