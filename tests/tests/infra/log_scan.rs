//! scripts/scan-test-logs.py, which `make test` runs after the suite over every log the run
//! captured, really fails on a leaked token (a check that cannot fail proves nothing).

use std::path::Path;
use std::process::Command;

fn scan(dir: &Path, tokens: &[&str], log: &str) -> std::process::Output {
    scan_with(dir, tokens, log, &[])
}

/// Runs the scan with `options` over a log directory holding `log` as `ingest-1.log`, and a
/// file named directly, `cargo-test.log` (empty).
fn scan_with(dir: &Path, tokens: &[&str], log: &str, options: &[&str]) -> std::process::Output {
    let tokens_file = dir.join("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n")).expect("write tokens");
    let marker = dir.join("started");
    std::fs::write(&marker, "").expect("write marker");
    let logs = dir.join("test-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    std::fs::write(logs.join("ingest-1.log"), log).expect("write log");
    let cargo_log = dir.join("cargo-test.log");
    if !cargo_log.exists() {
        std::fs::write(&cargo_log, "").expect("write cargo log");
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/scan-test-logs.py");
    Command::new("python3")
        .arg(script)
        .args(options)
        .arg(&tokens_file)
        .arg(&marker)
        .arg(&logs)
        .arg(&cargo_log)
        .output()
        .expect("python3 runs the scan")
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("log-scan-{name}-{}", ulid::Ulid::new()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhbGljZSJ9.c2lnbmF0dXJlLW9mLXRoZS10b2tlbg";

#[test]
fn a_clean_log_passes_the_scan() {
    let dir = temp_dir("clean");
    let out = scan(&dir, &[TOKEN], "{\"message\":\"request\",\"status\":202}\n");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn a_logged_token_or_its_signature_fails_the_scan() {
    for leak in [
        TOKEN.to_owned(),
        format!("signature {}", TOKEN.rsplit('.').next().unwrap_or_default()),
        "{\"authorization\":\"Bearer abc\"}".to_owned(),
        "header Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.sig".to_owned(),
    ] {
        let dir = temp_dir("leak");
        let out = scan(&dir, &[TOKEN], &format!("ok\n{leak}\n"));
        assert_eq!(out.status.code(), Some(1), "{leak} must fail the scan");
        assert!(String::from_utf8_lossy(&out.stderr).contains("ingest-1.log:2"));
    }
}

#[test]
fn a_scan_with_no_recorded_tokens_fails_rather_than_passing_blindly() {
    let dir = temp_dir("none");
    let out = scan(&dir, &[], "ok\n");
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_filtered_run_may_mint_no_token_but_a_bearer_value_still_fails_it() {
    let dir = temp_dir("allowed");
    let out = scan_with(&dir, &[], "ok\n", &["--allow-no-tokens"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = temp_dir("allowed-leak");
    let leak = "header Bearer eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJib2IifQ.sig\n";
    let out = scan_with(&dir, &[], leak, &["--allow-no-tokens"]);
    assert_eq!(out.status.code(), Some(1));
}

#[test]
fn a_log_file_named_directly_is_scanned_too() {
    let dir = temp_dir("file");
    std::fs::write(
        dir.join("cargo-test.log"),
        format!("thread 'x' panicked: {TOKEN}\n"),
    )
    .expect("write cargo log");
    let out = scan(&dir, &[TOKEN], "ok\n");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cargo-test.log:1"));
}

#[test]
fn function_logs_that_cannot_be_read_fail_the_scan() {
    // Nothing listens on port 9: the emulator's CloudWatch Logs (where the Lambda functions'
    // output is) cannot be dumped, so their output was not scanned.
    let dir = temp_dir("cloudwatch");
    let out = scan_with(
        &dir,
        &[TOKEN],
        "ok\n",
        &[
            "--cloudwatch-logs",
            "http://127.0.0.1:9",
            "--require-function-logs",
        ],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("CloudWatch Logs"));
}
