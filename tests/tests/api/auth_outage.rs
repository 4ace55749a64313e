//! The User Service being slow, down or erroring: writes fail closed (503 with Retry-After)
//! within the validation timeout, never 2xx, and recover with the very next request once it
//! is back. The positive-validation cache bridges an outage only when configured to, only for
//! tokens it validated before, and never past a token's `exp`.
//!
//! Ingest runs with a 500 ms User Service timeout (`ingest_settings`). The upper bounds on
//! answer times below are correctness properties ("fails quickly, does not hang or retry
//! forever"), set generously at timeout + 1.5 s; they are not speed benchmarks.

use std::time::{Duration, Instant};

use pipeline_tests::{score_body, spawn_app, spawn_app_with, StubBehavior, TestApp};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_millis(500);
const MARGIN: Duration = Duration::from_millis(1500);

/// Posts a valid score for `user` with exactly this token; returns the status, how long the
/// answer took, and the body.
async fn post_with(app: &TestApp, user: &str, token: &str) -> (u16, Duration, reqwest::Response) {
    let started = Instant::now();
    let response = app
        .post_score_raw(
            user,
            token,
            "application/json",
            score_body("experian", 700).to_string(),
        )
        .await;
    (response.status().as_u16(), started.elapsed(), response)
}

/// Asserts the answer is the fail-closed 503 and came within the timeout plus margin.
async fn assert_fails_closed(app: &TestApp, user: &str, token: &str) {
    let (status, took, response) = post_with(app, user, token).await;
    assert_eq!(status, 503, "expected 503 while the User Service is out");
    assert!(took < TIMEOUT + MARGIN, "the 503 took {took:?}");
    assert!(
        response.headers().contains_key("retry-after"),
        "503 without Retry-After"
    );
    let problem: Value = response.json().await.expect("problem+json body");
    assert_eq!(
        problem["type"], "urn:credit-scores:problem:service-unavailable",
        "{problem}"
    );
    assert!(
        !problem["detail"]
            .as_str()
            .unwrap_or_default()
            .contains("127.0.0.1"),
        "the 503 leaks internals: {problem}"
    );
}

async fn assert_accepted(app: &TestApp, user: &str, token: &str) {
    let (status, _, response) = post_with(app, user, token).await;
    let body = response.text().await.unwrap_or_default();
    assert_eq!(status, 202, "expected 202, got {status}: {body}");
}

/// How many messages reached the app's queue.
async fn queued(app: &TestApp) -> usize {
    app.drain_queue().await.len()
}

#[tokio::test]
async fn a_slow_user_service_fails_closed_with_503_within_the_timeout() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    for _ in 0..3 {
        assert_fails_closed(&app, "alice", &token).await;
    }
    assert!(
        app.user_service.calls() >= 3,
        "the User Service was not asked"
    );
    assert_eq!(
        queued(&app).await,
        0,
        "a write went through unauthenticated"
    );
}

#[tokio::test]
async fn concurrent_writes_during_a_slow_outage_all_fail_closed() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    let started = Instant::now();
    let statuses = futures::future::join_all(
        (0..10).map(|_| async { post_with(&app, "alice", &token).await.0 }),
    )
    .await;
    assert_eq!(statuses, vec![503; 10]);
    assert!(
        started.elapsed() < TIMEOUT + MARGIN,
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test]
async fn a_user_service_that_is_down_fails_closed_even_over_a_pooled_connection() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    // One good call first, so ingest holds a keep-alive connection to the User Service.
    assert_accepted(&app, "alice", &token).await;
    app.user_service.go_down().await;
    for _ in 0..3 {
        assert_fails_closed(&app, "alice", &token).await;
    }
    assert_eq!(
        queued(&app).await,
        1,
        "only the write before the outage is queued"
    );
}

#[tokio::test]
async fn user_service_errors_fail_closed_and_rejections_pass_through() {
    let app = spawn_app().await;
    let token = app.token_for("alice");
    for status in [500, 502, 503, 504, 429, 404, 400, 302] {
        app.user_service.set(StubBehavior::Status(status));
        let (answer, took, _) = post_with(&app, "alice", &token).await;
        assert_eq!(answer, 503, "User Service answered {status}");
        assert!(took < TIMEOUT + MARGIN);
    }
    for status in [401, 403] {
        app.user_service.set(StubBehavior::Status(status));
        assert_eq!(post_with(&app, "alice", &token).await.0, status);
    }
    assert_eq!(queued(&app).await, 0);
}

#[tokio::test]
async fn recovery_is_immediate_when_the_user_service_comes_back() {
    let app = spawn_app().await;
    let token = app.token_for("alice");

    app.user_service.go_down().await;
    assert_fails_closed(&app, "alice", &token).await;
    app.user_service.come_back().await;
    assert_accepted(&app, "alice", &token).await;

    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    assert_fails_closed(&app, "alice", &token).await;
    app.user_service.set(StubBehavior::Status(204));
    assert_accepted(&app, "alice", &token).await;

    app.user_service.set(StubBehavior::Status(500));
    assert_fails_closed(&app, "alice", &token).await;
    app.user_service.set(StubBehavior::Status(204));
    assert_accepted(&app, "alice", &token).await;

    assert_eq!(queued(&app).await, 3);
}

#[tokio::test]
async fn without_the_cache_a_token_validated_before_the_outage_is_refused_during_it() {
    let app = spawn_app_with(|s| s.auth_cache_ttl = Duration::ZERO).await;
    let token = app.token_for("alice");
    assert_accepted(&app, "alice", &token).await;
    app.user_service.go_down().await;
    assert_fails_closed(&app, "alice", &token).await;
    app.user_service.come_back().await;
    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    assert_fails_closed(&app, "alice", &token).await;
}

#[tokio::test]
async fn with_the_cache_a_token_validated_before_the_outage_is_served_during_it() {
    let app = spawn_app_with(|s| s.auth_cache_ttl = Duration::from_secs(30)).await;
    let known = app.token_for("alice");
    assert_accepted(&app, "alice", &known).await;
    let calls_before = app.user_service.calls();

    app.user_service.go_down().await;
    assert_accepted(&app, "alice", &known).await;
    assert_accepted(&app, "alice", &known).await;
    // A token the cache never saw is still checked, and so refused.
    let stranger = app.token_for("bob");
    assert_fails_closed(&app, "bob", &stranger).await;

    app.user_service.come_back().await;
    app.user_service
        .set(StubBehavior::Slow(Duration::from_secs(5), 204));
    let (status, took, _) = post_with(&app, "alice", &known).await;
    assert_eq!(status, 202);
    assert!(
        took < TIMEOUT,
        "a cached token waited for the slow service: {took:?}"
    );
    assert_eq!(
        app.user_service.calls(),
        calls_before,
        "the cached token was validated again"
    );
    assert_eq!(queued(&app).await, 4);
}

#[tokio::test]
async fn the_cache_never_holds_a_rejection() {
    let app = spawn_app_with(|s| s.auth_cache_ttl = Duration::from_secs(30)).await;
    let token = app.token_for("alice");
    app.user_service.set(StubBehavior::Status(401));
    assert_eq!(post_with(&app, "alice", &token).await.0, 401);
    app.user_service.set(StubBehavior::Status(204));
    assert_accepted(&app, "alice", &token).await;
}

#[tokio::test]
async fn the_cache_never_serves_a_token_past_its_exp() {
    let app = spawn_app_with(|s| s.auth_cache_ttl = Duration::from_secs(30)).await;
    // Validate half-way through a second, so a cache that counted whole seconds from now
    // would still hold the token half a second after its `exp`.
    let sub_second = time::OffsetDateTime::now_utc().nanosecond();
    let wait_ns = (1_500_000_000 - i64::from(sub_second)) % 1_000_000_000;
    tokio::time::sleep(Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(0))).await;
    let minted_at = time::OffsetDateTime::now_utc();
    let token = app.tokens.mint("alice", &[], Duration::from_secs(2));
    let exp = minted_at.unix_timestamp() + 2;
    assert_accepted(&app, "alice", &token).await;

    app.user_service.go_down().await;
    assert_accepted(&app, "alice", &token).await; // before exp: served from the cache

    let until_exp = time::OffsetDateTime::from_unix_timestamp(exp).expect("valid exp")
        - time::OffsetDateTime::now_utc();
    let past_exp = Duration::try_from(until_exp).unwrap_or_default() + Duration::from_millis(150);
    tokio::time::sleep(past_exp).await;
    assert_fails_closed(&app, "alice", &token).await;
}
