//! CORS in server mode (`CORS_ALLOWED_ORIGINS`): off by default, and on only for the origins
//! listed. Under API Gateway the HTTP API's CorsConfiguration does the same (infra tests).

use pipeline_tests::{score_body, spawn_app, spawn_app_with_env, TestApp};

const ALLOWED: &str = "https://app.example.com";

async fn preflight(app: &TestApp, origin: &str) -> reqwest::Response {
    app.http
        .request(
            reqwest::Method::OPTIONS,
            app.url("/v1/users/alice/credit-scores"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,idempotency-key",
        )
        .send()
        .await
        .expect("request reaches ingest")
}

fn header(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
}

#[tokio::test]
async fn answers_a_preflight_from_an_allowed_origin_with_the_allow_headers() {
    let origins = format!("{ALLOWED}, https://admin.example.com");
    let app = spawn_app_with_env(&[("CORS_ALLOWED_ORIGINS", origins.as_str())]).await;
    let response = preflight(&app, ALLOWED).await;
    assert!(response.status().is_success(), "{}", response.status());
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let methods = header(&response, "access-control-allow-methods").unwrap_or_default();
    assert!(methods.contains("POST"), "{methods}");
    let headers = header(&response, "access-control-allow-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    for name in ["authorization", "content-type", "idempotency-key"] {
        assert!(headers.contains(name), "{name} allowed: {headers}");
    }

    // A real request from that origin carries the origin back, and the Location is readable.
    let response = app
        .http
        .post(app.url("/v1/users/alice/credit-scores"))
        .bearer_auth(app.token_for("alice"))
        .header("origin", ALLOWED)
        .json(&score_body("experian", 700))
        .send()
        .await
        .expect("request reaches ingest");
    assert_eq!(response.status(), 202);
    assert_eq!(
        header(&response, "access-control-allow-origin").as_deref(),
        Some(ALLOWED)
    );
    let exposed = header(&response, "access-control-expose-headers")
        .unwrap_or_default()
        .to_ascii_lowercase();
    assert!(exposed.contains("location"), "{exposed}");
}

#[tokio::test]
async fn gives_a_disallowed_origin_no_cors_headers() {
    let app = spawn_app_with_env(&[("CORS_ALLOWED_ORIGINS", ALLOWED)]).await;
    let response = preflight(&app, "https://evil.example.net").await;
    assert!(
        header(&response, "access-control-allow-origin").is_none(),
        "{:?}",
        response.headers()
    );
    let response = app.get("/health", "none").await;
    assert!(header(&response, "access-control-allow-origin").is_none());
}

#[tokio::test]
async fn sends_no_cors_headers_at_all_by_default() {
    let app = spawn_app().await;
    let response = preflight(&app, ALLOWED).await;
    assert_eq!(response.status(), 405);
    assert!(
        response
            .headers()
            .keys()
            .all(|k| !k.as_str().starts_with("access-control-")),
        "{:?}",
        response.headers()
    );
}
