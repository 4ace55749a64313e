//! scripts/scan-test-logs.py, which `make test` runs after the suite over every log the run
//! captured, really fails on a leaked token (a check that cannot fail proves nothing).

use std::path::Path;
use std::process::Command;

fn scan(dir: &Path, tokens: &[&str], log: &str) -> std::process::Output {
    let tokens_file = dir.join("tokens.txt");
    std::fs::write(&tokens_file, tokens.join("\n")).expect("write tokens");
    let marker = dir.join("started");
    std::fs::write(&marker, "").expect("write marker");
    let logs = dir.join("test-logs");
    std::fs::create_dir_all(&logs).expect("log dir");
    std::fs::write(logs.join("ingest-1.log"), log).expect("write log");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/scan-test-logs.py");
    Command::new("python3")
        .arg(script)
        .arg(&tokens_file)
        .arg(&marker)
        .arg(&logs)
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
