//! A token issuer is an outside system: tests stand one up on loopback, serving its JSON Web
//! Key Set at `/.well-known/jwks.json` (as Cognito does) and signing tokens with RSA keys made
//! in the test (aws-lc-rs; no private key is ever written to disk).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use aws_lc_rs::rsa::{KeyPair, KeySize, PublicKeyComponents};
use aws_lc_rs::signature::{KeyPair as _, RSA_PKCS1_SHA256};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use base64::Engine;
use serde_json::{json, Value};

/// The client id tokens carry unless a test says otherwise; [`JwksIssuer::ingest_env`] trusts it.
pub const CLIENT_ID: &str = "test-client";

#[derive(Default)]
struct Keys {
    /// Every key made, published or not, by kid.
    all: HashMap<String, Arc<KeyPair>>,
    /// The kids the JWKS lists.
    published: Vec<String>,
}

#[derive(Clone, Default)]
struct IssuerState {
    keys: Arc<Mutex<Keys>>,
    hits: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
}

pub struct JwksIssuer {
    /// The issuer URL (`iss`), `http://127.0.0.1:PORT`.
    pub url: String,
    state: IssuerState,
    task: tokio::task::JoinHandle<()>,
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl JwksIssuer {
    /// An issuer publishing one key, `key-1`.
    pub async fn start() -> Self {
        let state = IssuerState::default();
        let router = Router::new()
            .route("/.well-known/jwks.json", get(jwks))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the JWKS issuer");
        let url = format!("http://{}", listener.local_addr().expect("issuer address"));
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, router).await;
        });
        let issuer = Self { url, state, task };
        issuer.publish_new_key("key-1");
        issuer
    }

    /// The settings that point ingest at this issuer in `jwks` mode; a refetch is allowed
    /// once a second so rotation tests need not wait 30 s.
    pub fn ingest_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AUTH_MODE", "jwks".into()),
            ("AUTH_ISSUER", self.url.clone()),
            ("AUTH_CLIENT_IDS", CLIENT_ID.into()),
            ("AUTH_JWKS_MIN_REFETCH_SECONDS", "1".into()),
        ]
    }

    /// Makes a key and adds it to the published set.
    pub fn publish_new_key(&self, kid: &str) {
        let pair = self.make_key();
        let mut keys = self.state.keys.lock().expect("issuer lock");
        keys.all.insert(kid.to_owned(), pair);
        keys.published.push(kid.to_owned());
    }

    /// Makes a key the JWKS does not list (yet).
    pub fn make_unpublished_key(&self, kid: &str) {
        let pair = self.make_key();
        self.state
            .keys
            .lock()
            .expect("issuer lock")
            .all
            .insert(kid.to_owned(), pair);
    }

    fn make_key(&self) -> Arc<KeyPair> {
        Arc::new(KeyPair::generate(KeySize::Rsa2048).expect("RSA key generation"))
    }

    /// Rotation: `kid` (made earlier) becomes the only published key.
    pub fn rotate_to(&self, kid: &str) {
        let mut keys = self.state.keys.lock().expect("issuer lock");
        assert!(keys.all.contains_key(kid), "no key {kid}");
        keys.published = vec![kid.to_owned()];
    }

    /// How many times the JWKS was fetched.
    pub fn hits(&self) -> usize {
        self.state.hits.load(Ordering::SeqCst)
    }

    /// Down: the JWKS answers 503 until [`Self::set_down`] with false.
    pub fn set_down(&self, down: bool) {
        self.state.down.store(down, Ordering::SeqCst);
    }

    /// Claims of a valid Cognito-style access token for `user`, an hour long.
    pub fn claims_for(&self, user: &str) -> Value {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        json!({
            "iss": self.url,
            "sub": user,
            "client_id": CLIENT_ID,
            "token_use": "access",
            "scope": "openid",
            "iat": now,
            "exp": now + 3600,
        })
    }

    /// A valid access token for `user`, signed with `key-1`.
    pub fn token_for(&self, user: &str) -> String {
        self.sign("key-1", &self.claims_for(user))
    }

    /// `claims` signed RS256 with the key `kid` (published or not).
    pub fn sign(&self, kid: &str, claims: &Value) -> String {
        self.sign_with_header(
            kid,
            &json!({"alg": "RS256", "typ": "JWT", "kid": kid}),
            claims,
        )
    }

    /// `claims` under `header`, signed RS256 with the key `kid`.
    pub fn sign_with_header(&self, kid: &str, header: &Value, claims: &Value) -> String {
        let pair = self.key(kid);
        let message = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let mut signature = vec![0; pair.public_modulus_len()];
        pair.sign(
            &RSA_PKCS1_SHA256,
            &aws_lc_rs::rand::SystemRandom::new(),
            message.as_bytes(),
            &mut signature,
        )
        .expect("RSA signing");
        let token = format!("{message}.{}", b64(&signature));
        crate::dev_tokens::record_minted_token(&token);
        token
    }

    /// The DER bytes of `kid`'s public key: what an algorithm-confusion attacker would use
    /// as an HMAC secret.
    pub fn public_key_der(&self, kid: &str) -> Vec<u8> {
        self.key(kid).public_key().as_ref().to_vec()
    }

    fn key(&self, kid: &str) -> Arc<KeyPair> {
        self.state.keys.lock().expect("issuer lock").all[kid].clone()
    }
}

impl Drop for JwksIssuer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn jwks(State(state): State<IssuerState>) -> Response {
    state.hits.fetch_add(1, Ordering::SeqCst);
    if state.down.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    }
    let keys = state.keys.lock().expect("issuer lock");
    let published: Vec<Value> = keys
        .published
        .iter()
        .map(|kid| {
            let components = PublicKeyComponents::<Vec<u8>>::from(keys.all[kid].public_key());
            json!({
                "kty": "RSA", "alg": "RS256", "use": "sig", "kid": kid,
                "n": b64(&components.n), "e": b64(&components.e),
            })
        })
        .collect();
    axum::Json(json!({ "keys": published })).into_response()
}
