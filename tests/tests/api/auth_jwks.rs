//! `AUTH_MODE=jwks`: ingest verifies bearer tokens itself against an issuer's JWKS (ours, on
//! loopback, with RSA keys made here) and never calls the User Service.

use std::time::Duration;

use base64::Engine;
use pipeline_tests::{score_body, spawn_app_trusting, JwksIssuer, TestApp};
use serde_json::{json, Value};

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

/// POSTs a valid score for alice with `token`; returns the status and the problem document.
async fn post_as_alice(app: &TestApp, token: &str) -> (u16, Value, reqwest::header::HeaderMap) {
    post_for(app, "alice", token).await
}

async fn post_for(
    app: &TestApp,
    user: &str,
    token: &str,
) -> (u16, Value, reqwest::header::HeaderMap) {
    let response = app
        .post_score_raw(
            user,
            token,
            "application/json",
            score_body("experian", 700).to_string(),
        )
        .await;
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let body = response.json().await.unwrap_or(Value::Null);
    (status, body, headers)
}

/// A 401 whose problem document names the failed check, and never echoes the token.
fn assert_refused(result: &(u16, Value, reqwest::header::HeaderMap), token: &str, says: &str) {
    let (status, body, _) = result;
    assert_eq!(*status, 401, "{body}");
    let detail = body["detail"].as_str().unwrap_or_default();
    assert!(
        detail.contains(says),
        "detail {detail:?} should say {says:?}"
    );
    let signature = token.rsplit('.').next().unwrap_or(token);
    assert!(
        !body.to_string().contains(signature),
        "the token is echoed: {body}"
    );
}

#[tokio::test]
async fn a_valid_access_token_is_accepted_without_calling_the_user_service() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    let (status, body, _) = post_as_alice(&app, &issuer.token_for("alice")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(app.user_service.calls(), 0);
    assert_eq!(issuer.hits(), 1, "the key set is fetched once");
    let (status, _, _) = post_as_alice(&app, &issuer.token_for("alice")).await;
    assert_eq!(status, 202);
    assert_eq!(issuer.hits(), 1, "and then served from the cache");
}

#[tokio::test]
async fn each_failed_check_is_a_401_that_names_it() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    let with = |changes: Value| {
        let mut claims = issuer.claims_for("alice");
        for (k, v) in changes.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        issuer.sign("key-1", &claims)
    };
    let cases = [
        (json!({"exp": now() - 120}), "expired"),
        (json!({"nbf": now() + 120}), "not valid yet"),
        (json!({"iat": now() + 120}), "iat is in the future"),
        (json!({"iss": "https://evil.example"}), "issuer"),
        (json!({"iss": null}), "valid exp or iss"),
        (json!({"exp": null}), "valid exp or iss"),
        (json!({"exp": "tomorrow"}), "valid exp or iss"),
        (json!({"iat": "yesterday"}), "wrong type"),
        (
            json!({"client_id": "another-app"}),
            "another audience or client",
        ),
        (json!({"token_use": "id"}), "token_use"),
        (json!({"token_use": null}), "token_use"),
    ];
    for (changes, says) in cases {
        let token = with(changes.clone());
        let result = post_as_alice(&app, &token).await;
        assert_refused(&result, &token, says);
        assert_eq!(
            result
                .2
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer"),
            "{changes}"
        );
    }
    assert_eq!(app.user_service.calls(), 0);
}

#[tokio::test]
async fn times_within_the_leeway_pass() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    let mut claims = issuer.claims_for("alice");
    claims["nbf"] = json!(now() + 30);
    claims["iat"] = json!(now() + 30);
    claims["exp"] = json!(now() - 30);
    let (status, body, _) = post_as_alice(&app, &issuer.sign("key-1", &claims)).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn the_audience_is_checked_when_configured() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(
        &issuer,
        &[
            ("AUTH_AUDIENCE", "credit-scores-api"),
            ("AUTH_CLIENT_IDS", ""),
        ],
    )
    .await;
    let mut claims = issuer.claims_for("alice");
    claims["aud"] = json!(["other-api", "credit-scores-api"]);
    let (status, body, _) = post_as_alice(&app, &issuer.sign("key-1", &claims)).await;
    assert_eq!(status, 202, "{body}");
    claims["aud"] = json!("other-api");
    let token = issuer.sign("key-1", &claims);
    assert_refused(
        &post_as_alice(&app, &token).await,
        &token,
        "another audience",
    );
    // The client id alone does not stand in for an audience that is required.
    claims.as_object_mut().unwrap().remove("aud");
    let token = issuer.sign("key-1", &claims);
    assert_refused(
        &post_as_alice(&app, &token).await,
        &token,
        "another audience",
    );
}

#[tokio::test]
async fn an_id_token_passes_when_id_tokens_are_configured() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(
        &issuer,
        &[
            ("AUTH_TOKEN_USE", "id"),
            ("AUTH_AUDIENCE", pipeline_tests::jwks_issuer::CLIENT_ID),
        ],
    )
    .await;
    let mut claims = issuer.claims_for("alice");
    claims["token_use"] = json!("id");
    claims["aud"] = json!(pipeline_tests::jwks_issuer::CLIENT_ID);
    claims.as_object_mut().unwrap().remove("client_id");
    let (status, body, _) = post_as_alice(&app, &issuer.sign("key-1", &claims)).await;
    assert_eq!(status, 202, "{body}");
    claims["token_use"] = json!("access");
    let token = issuer.sign("key-1", &claims);
    assert_refused(&post_as_alice(&app, &token).await, &token, "token_use");
}

#[tokio::test]
async fn forged_signatures_and_algorithms_are_refused() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    let claims = issuer.claims_for("alice");

    // alg: none, with and without a signature.
    let unsigned = format!(
        "{}.{}.",
        b64(json!({"alg": "none", "kid": "key-1"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let result = post_as_alice(&app, &unsigned).await;
    assert_eq!(result.0, 401, "{}", result.1);
    let valid = issuer.token_for("alice");
    let signature = valid.rsplit('.').next().unwrap();
    let none_with_signature = format!("{}{signature}", unsigned);
    assert_refused(
        &post_as_alice(&app, &none_with_signature).await,
        &none_with_signature,
        "algorithm",
    );

    // HS256 "signed" with the public key's bytes: the algorithm-confusion attack.
    let message = format!(
        "{}.{}",
        b64(json!({"alg": "HS256", "typ": "JWT", "kid": "key-1"})
            .to_string()
            .as_bytes()),
        b64(claims.to_string().as_bytes())
    );
    let signature = pipeline_tests::dev_tokens::hs256(&issuer.public_key_der("key-1"), &message);
    let confused = format!("{message}.{signature}");
    assert_refused(
        &post_as_alice(&app, &confused).await,
        &confused,
        "algorithm",
    );

    // RS512 is not in the allowed list (RS256 by default), even with a good signature's shape.
    let rs512 = issuer.sign_with_header("key-1", &json!({"alg": "RS512", "kid": "key-1"}), &claims);
    assert_refused(&post_as_alice(&app, &rs512).await, &rs512, "algorithm");

    // No kid.
    let no_kid = issuer.sign_with_header("key-1", &json!({"alg": "RS256"}), &claims);
    assert_refused(&post_as_alice(&app, &no_kid).await, &no_kid, "kid");

    // A tampered payload under the original signature: bob claims alice's token.
    let mut parts: Vec<String> = valid.split('.').map(str::to_owned).collect();
    let mut bob = claims.clone();
    bob["sub"] = json!("bob");
    parts[1] = b64(bob.to_string().as_bytes());
    let tampered = parts.join(".");
    let result = post_for(&app, "bob", &tampered).await;
    assert_refused(&result, &tampered, "signature");

    // Signed by a key the issuer never published.
    issuer.make_unpublished_key("rogue");
    let rogue = issuer.sign("rogue", &claims);
    assert_refused(
        &post_as_alice(&app, &rogue).await,
        &rogue,
        "does not publish",
    );
    assert_eq!(app.user_service.calls(), 0);
}

#[tokio::test]
async fn users_act_for_themselves_and_the_service_scope_for_anyone() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[("AUTH_SERVICE_GROUP", "importers")]).await;
    let (status, body, _) = post_for(&app, "bob", &issuer.token_for("alice")).await;
    assert_eq!(status, 403, "{body}");

    let mut service = issuer.claims_for("batch-importer");
    service["scope"] = json!("openid credit-scores:service");
    let (status, body, _) = post_for(&app, "bob", &issuer.sign("key-1", &service)).await;
    assert_eq!(status, 202, "{body}");

    // Cognito's groups: membership of AUTH_SERVICE_GROUP counts as the service scope.
    let mut grouped = issuer.claims_for("importer-2");
    grouped["cognito:groups"] = json!(["importers"]);
    let (status, body, _) = post_for(&app, "bob", &issuer.sign("key-1", &grouped)).await;
    assert_eq!(status, 202, "{body}");
    grouped["cognito:groups"] = json!(["readers"]);
    let (status, _, _) = post_for(&app, "bob", &issuer.sign("key-1", &grouped)).await;
    assert_eq!(status, 403);

    // `scp` (a list) works like `scope`.
    let mut scp = issuer.claims_for("importer-3");
    scp["scp"] = json!(["credit-scores:service"]);
    let (status, body, _) = post_for(&app, "carol", &issuer.sign("key-1", &scp)).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn an_unknown_kid_is_found_after_rotation() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    assert_eq!(post_as_alice(&app, &issuer.token_for("alice")).await.0, 202);
    issuer.make_unpublished_key("key-2");
    issuer.rotate_to("key-2");
    // Past the refetch interval (1 s here), the unknown kid triggers one refetch.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let rotated = issuer.sign("key-2", &issuer.claims_for("alice"));
    let (status, body, _) = post_as_alice(&app, &rotated).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(issuer.hits(), 2);
}

#[tokio::test]
async fn a_flood_of_unknown_kids_refetches_at_most_once_per_interval() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[("AUTH_JWKS_MIN_REFETCH_SECONDS", "30")]).await;
    assert_eq!(post_as_alice(&app, &issuer.token_for("alice")).await.0, 202);
    assert_eq!(issuer.hits(), 1);
    let app = std::sync::Arc::new(app);
    let issuer = std::sync::Arc::new(issuer);
    let mut flood = Vec::new();
    for i in 0..50 {
        let (app, issuer) = (app.clone(), issuer.clone());
        flood.push(tokio::spawn(async move {
            let kid = format!("forged-{i}");
            issuer.make_unpublished_key(&kid);
            let token = issuer.sign(&kid, &issuer.claims_for("alice"));
            post_as_alice(&app, &token).await.0
        }));
    }
    for request in flood {
        assert_eq!(request.await.unwrap(), 401);
    }
    assert_eq!(
        issuer.hits(),
        1,
        "the initial fetch was under 30 s ago: no refetch at all"
    );
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_refetch() {
    let issuer = std::sync::Arc::new(JwksIssuer::start().await);
    let app = std::sync::Arc::new(spawn_app_trusting(&issuer, &[]).await);
    assert_eq!(post_as_alice(&app, &issuer.token_for("alice")).await.0, 202);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let mut flood = Vec::new();
    for i in 0..30 {
        let (app, issuer) = (app.clone(), issuer.clone());
        flood.push(tokio::spawn(async move {
            let kid = format!("forged-{i}");
            issuer.make_unpublished_key(&kid);
            post_as_alice(&app, &issuer.sign(&kid, &issuer.claims_for("alice")))
                .await
                .0
        }));
    }
    for request in flood {
        assert_eq!(request.await.unwrap(), 401);
    }
    assert_eq!(
        issuer.hits(),
        2,
        "one initial fetch, one refetch for the whole flood"
    );
}

#[tokio::test]
async fn jwks_down_at_start_is_a_503_with_retry_after_never_a_pass() {
    let issuer = JwksIssuer::start().await;
    issuer.set_down(true);
    let app = spawn_app_trusting(&issuer, &[]).await;
    let (status, body, headers) = post_as_alice(&app, &issuer.token_for("alice")).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(issuer.hits(), 1);
    assert!(headers.get("retry-after").is_some());
    assert!(
        body["detail"].as_str().unwrap().contains("key set"),
        "{body}"
    );

    let unreachable = pipeline_tests::user_service_stub::unreachable_url().await;
    let url = format!("{unreachable}/jwks.json");
    let refused = spawn_app_trusting(&issuer, &[("AUTH_JWKS_URL", &url)]).await;
    let (status, _, headers) = post_as_alice(&refused, &issuer.token_for("alice")).await;
    assert_eq!(status, 503);
    assert!(headers.get("retry-after").is_some());

    // Back up: past the refetch interval (1 s here) the next request loads the keys.
    issuer.set_down(false);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let (status, body, _) = post_as_alice(&app, &issuer.token_for("alice")).await;
    assert_eq!(status, 202, "{body}");
}

#[tokio::test]
async fn jwks_down_later_keeps_cached_keys_working() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[("AUTH_JWKS_REFRESH_SECONDS", "1")]).await;
    assert_eq!(post_as_alice(&app, &issuer.token_for("alice")).await.0, 202);
    issuer.set_down(true);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    // The periodic refresh fails; the cached key still verifies.
    let (status, body, _) = post_as_alice(&app, &issuer.token_for("alice")).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(issuer.hits(), 2, "the refresh was tried");
    // A key that is not cached cannot be checked while the issuer is down: 503, not 401.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    issuer.make_unpublished_key("key-2");
    let (status, _, headers) =
        post_as_alice(&app, &issuer.sign("key-2", &issuer.claims_for("alice"))).await;
    assert_eq!(status, 503);
    assert!(headers.get("retry-after").is_some());
}

#[tokio::test]
async fn reads_are_authorized_the_same_way() {
    let issuer = JwksIssuer::start().await;
    let app = spawn_app_trusting(&issuer, &[]).await;
    let own = app
        .get("/v1/users/alice/credit-scores", &issuer.token_for("alice"))
        .await;
    assert_eq!(own.status(), 200);
    let other = app
        .get("/v1/users/bob/credit-scores", &issuer.token_for("alice"))
        .await;
    assert_eq!(other.status(), 403);
    let mut expired = issuer.claims_for("alice");
    expired["exp"] = json!(now() - 3600);
    let response = app
        .get(
            "/v1/users/alice/credit-scores",
            &issuer.sign("key-1", &expired),
        )
        .await;
    assert_eq!(response.status(), 401);
    let missing = app
        .http
        .get(app.url("/v1/users/alice/credit-scores"))
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 401);
}

#[tokio::test]
async fn warming_up_loads_the_keys_before_the_first_request() {
    let issuer = JwksIssuer::start().await;
    let emulator = pipeline_tests::Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let stub = pipeline_tests::UserServiceStub::start().await;
    let env = issuer.ingest_env();
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let settings = pipeline_tests::ingest_settings_with_env(&resources, &stub, &env);
    let state = ingest::AppState::from_settings(&settings, &emulator.sdk).unwrap();
    assert_eq!(
        issuer.hits(),
        0,
        "nothing is fetched while the state is built"
    );
    state.auth.warm_up().await;
    assert_eq!(issuer.hits(), 1);
    let token = ingest::auth::BearerToken::parse(&issuer.token_for("alice")).unwrap();
    let principal = state.auth.authenticate(&token, None).await.unwrap();
    assert_eq!(principal.subject, "alice");
    assert_eq!(
        issuer.hits(),
        1,
        "the first request used the warmed-up keys"
    );
}
