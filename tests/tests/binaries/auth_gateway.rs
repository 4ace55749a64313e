//! `AUTH_MODE=apigateway-jwt`: API Gateway's HTTP API JWT authorizer verified the token, and
//! ingest trusts the claims it passed in the Lambda event's request context. The real binary
//! in Lambda mode (a fake Runtime API), with no User Service configured at all: nothing on
//! the request path but the claims.

use std::time::Duration;

use pipeline_tests::runtime_api::LambdaFunction;
use pipeline_tests::{run_with_timeout, workspace_binary, Emulator, TestResources};
use serde_json::{json, Value};

const HTTP_V2: &str = include_str!("../fixtures/apigw_v2_http_post_score.json");
const VALID_BODY: &str = r#"{"bureau":"experian","score":742,"reportedAt":"2026-11-28T10:00:00Z"}"#;
/// What the authorizer leaves in the header; ingest never reads it in this mode.
const UNREAD_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ2ZXJpZmllZC1ieS1hcGlndyJ9.c2ln";

struct GatewayIngest {
    function: LambdaFunction,
    emulator: Emulator,
    resources: TestResources,
}

async fn start() -> GatewayIngest {
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let mut env = resources.env(&emulator);
    env.push(("AUTH_MODE".into(), "apigateway-jwt".into()));
    env.push((
        "CURSOR_SIGNING_KEY".into(),
        "gateway-test-cursor-key-of-32-bytes-or-more".into(),
    ));
    GatewayIngest {
        function: LambdaFunction::start("ingest", env).await,
        emulator,
        resources,
    }
}

impl GatewayIngest {
    /// POSTs a score for `path_user`, with `claims` as the authorizer's (None: no authorizer).
    async fn post(&self, path_user: &str, report_id: &str, claims: Option<Value>) -> Value {
        let mut event: Value = serde_json::from_str(
            &HTTP_V2
                .replace("__STAGE__", "$default")
                .replace(
                    "__RAW_PATH__",
                    &format!("/v1/users/{path_user}/credit-scores"),
                )
                .replace("__TOKEN__", UNREAD_TOKEN)
                .replace("__REPORT_ID__", report_id)
                .replace("__BODY__", &VALID_BODY.replace('"', "\\\"")),
        )
        .expect("the fixture is JSON");
        if let Some(claims) = claims {
            event["requestContext"]["authorizer"] =
                json!({"jwt": {"claims": claims, "scopes": null}});
        }
        self.function.invoke(event.to_string()).await.1
    }
}

fn problem(response: &Value) -> Value {
    serde_json::from_str(response["body"].as_str().unwrap_or_default()).unwrap_or_default()
}

fn claims_of(user: &str, scope: &str) -> Value {
    // As API Gateway passes them: every claim a string.
    json!({"sub": user, "scope": scope, "exp": "4102444800", "iss": "https://issuer.example"})
}

#[tokio::test]
async fn the_authorizers_claims_let_a_user_write_their_own_score_with_no_user_service() {
    let ingest = start().await;
    let response = ingest
        .post("alice", "gw-own", Some(claims_of("alice", "openid")))
        .await;
    assert_eq!(response["statusCode"], 202, "{response}");
    let queued = ingest
        .emulator
        .receive_all(&ingest.resources.queue_url)
        .await;
    assert_eq!(queued.len(), 1);
}

#[tokio::test]
async fn another_users_claims_are_forbidden_and_the_service_scope_may_act_for_anyone() {
    let ingest = start().await;
    let response = ingest
        .post("alice", "gw-other", Some(claims_of("bob", "openid")))
        .await;
    assert_eq!(response["statusCode"], 403, "{response}");
    let response = ingest
        .post(
            "alice",
            "gw-service",
            Some(claims_of("ingestor", "credit-scores:service")),
        )
        .await;
    assert_eq!(response["statusCode"], 202, "{response}");
}

#[tokio::test]
async fn a_request_without_the_authorizers_claims_is_refused_whatever_its_token() {
    let ingest = start().await;
    let response = ingest.post("alice", "gw-none", None).await;
    assert_eq!(response["statusCode"], 401, "{response}");
    let detail = problem(&response)["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("API Gateway's JWT authorizer"), "{detail}");
    assert!(!detail.contains(UNREAD_TOKEN));
    // Claims without the user claim are no identity either.
    let response = ingest
        .post("alice", "gw-nosub", Some(json!({"scope": "openid"})))
        .await;
    assert_eq!(response["statusCode"], 401, "{response}");
    assert!(ingest
        .emulator
        .receive_all(&ingest.resources.queue_url)
        .await
        .is_empty());
}

#[test]
fn refuses_to_start_as_a_plain_http_server_naming_auth_mode() {
    let mut command = std::process::Command::new(workspace_binary("ingest"));
    command
        .env_clear()
        .env("QUEUE_URL", "http://127.0.0.1:1/queue")
        .env("TABLE_NAME", "t")
        .env("AUTH_MODE", "apigateway-jwt")
        .env("PORT", "0");
    let out = run_with_timeout(command, Duration::from_secs(20)).expect("ingest exits at once");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("AUTH_MODE"), "{stderr}");
    assert!(stderr.contains("only under Lambda"), "{stderr}");
}
