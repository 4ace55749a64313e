//! Start-up of the real ingest binary in server mode: where it listens (`BIND_ADDRESS`), and
//! a bad value stopping it with the variable named.

use std::time::Duration;

use pipeline_tests::{run_with_timeout, spawn_binary, workspace_binary};

fn base_env(port: u16) -> Vec<(String, String)> {
    [
        ("QUEUE_URL", "http://127.0.0.1:1/000000000000/q"),
        ("TABLE_NAME", "t"),
        ("USER_SERVICE_URL", "http://127.0.0.1:1"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        (
            "CURSOR_SIGNING_KEY",
            "0123456789abcdef0123456789abcdef-start-up",
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .chain([("PORT".to_owned(), port.to_string())])
    .collect()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

/// Waits until the log shows the listening line; returns the log.
fn wait_for_listening(binary: &pipeline_tests::RunningBinary) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let log = binary.log();
        if log.contains("ingest listening") || std::time::Instant::now() >= deadline {
            return log;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn listens_on_all_interfaces_by_default() {
    let port = free_port();
    let ingest = spawn_binary("ingest", &[], &base_env(port));
    let log = wait_for_listening(&ingest);
    assert!(log.contains(&format!("0.0.0.0:{port}")), "{log}");
}

#[test]
fn listens_on_the_bind_address_it_is_given() {
    let port = free_port();
    let mut env = base_env(port);
    env.push(("BIND_ADDRESS".into(), "127.0.0.1".into()));
    let ingest = spawn_binary("ingest", &[], &env);
    let log = wait_for_listening(&ingest);
    assert!(log.contains(&format!("127.0.0.1:{port}")), "{log}");
    assert!(!log.contains("0.0.0.0"), "{log}");
    let health = std::net::TcpStream::connect(("127.0.0.1", port));
    assert!(health.is_ok(), "reachable on loopback");
}

#[test]
fn refuses_to_start_on_a_bad_bind_address_naming_the_variable() {
    let mut env = base_env(free_port());
    env.push(("BIND_ADDRESS".into(), "localhost:80".into()));
    let mut command = std::process::Command::new(workspace_binary("ingest"));
    command
        .env_clear()
        .envs(env)
        .env("RUST_LOG", "off")
        .stdin(std::process::Stdio::null());
    let output = run_with_timeout(command, Duration::from_secs(20))
        .expect("ingest stops at once instead of serving");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("BIND_ADDRESS"), "{stderr}");
}
