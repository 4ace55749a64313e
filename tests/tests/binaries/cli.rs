//! The command lines of `worker` and the dev tools, run as real binaries: `--help` on every
//! subcommand exits 0 and prints its usage once, bad usage exits 2, progress shows only on a
//! terminal, logs in a file carry no colour codes, and a stopped emulator is named as such.

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pipeline_tests::{run_with_timeout, workspace_binary, Emulator};

fn run(binary: &str, args: &[&str], env: &[(String, String)]) -> Output {
    let mut command = Command::new(workspace_binary(binary));
    command
        .args(args)
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    run_with_timeout(command, Duration::from_secs(60)).expect("the binary ends within 60 s")
}

fn text(output: &Output) -> String {
    format!(
        "status {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn every_worker_subcommand_answers_help_with_its_usage_once() {
    for args in [
        &["--help"][..],
        &["help"],
        &["run", "--help"],
        &["provision", "--help"],
        &["schema", "--help"],
        &["dlq", "--help"],
        &["dlq", "stats", "--help"],
        &["dlq", "peek", "--help"],
        &["dlq", "redrive", "--help"],
    ] {
        let output = run("worker", args, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(0), "worker {args:?}: {all}");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert_eq!(
            stdout.matches("Usage:").count(),
            1,
            "worker {args:?} prints its usage once: {all}"
        );
        assert!(output.stderr.is_empty(), "worker {args:?}: {all}");
    }
    // The same words as the README.
    let redrive = run("worker", &["dlq", "redrive", "--help"], &[]);
    let help = String::from_utf8_lossy(&redrive.stdout);
    for word in ["--dry-run", "--limit <N>", "--include-poison"] {
        assert!(help.contains(word), "redrive --help names {word}: {help}");
    }
}

#[test]
fn rejects_bad_usage_with_exit_code_2_naming_the_problem() {
    for (args, named) in [
        (&["frobnicate"][..], "frobnicate"),
        (&["dlq"], "Usage"),
        (&["dlq", "purge"], "purge"),
        (&["dlq", "stats", "--bogus"], "--bogus"),
        (&["dlq", "peek", "--limit", "0"], "--limit"),
        (&["dlq", "peek", "--limit", "many"], "--limit"),
        (&["dlq", "peek", "--dry-run"], "--dry-run"),
    ] {
        let output = run("worker", args, &[]);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(2), "worker {args:?}: {all}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(named),
            "worker {args:?} names {named}: {all}"
        );
        assert!(
            stderr.matches("Usage:").count() <= 1,
            "usage printed at most once: {all}"
        );
    }
}

#[test]
fn the_dev_tools_answer_help_and_refuse_bad_usage_with_exit_code_2() {
    for args in [&["--help"][..], &["serve", "--help"], &["mint", "--help"]] {
        let output = run("dev-user-service", args, &[]);
        assert_eq!(output.status.code(), Some(0), "{}", text(&output));
        assert_eq!(
            String::from_utf8_lossy(&output.stdout)
                .matches("Usage:")
                .count(),
            1,
            "{}",
            text(&output)
        );
    }
    let mint_help = run("dev-user-service", &["mint", "--help"], &[]);
    let help = String::from_utf8_lossy(&mint_help.stdout);
    for word in ["--sub <NAME>", "--scope", "--ttl-seconds"] {
        assert!(help.contains(word), "mint --help names {word}: {help}");
    }
    for args in [
        &[][..],
        &["mint"],
        &["mint", "--sub"],
        &["serve", "--port", "x"],
    ] {
        let output = run("dev-user-service", args, &[]);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {}", text(&output));
    }
    let minted = run("dev-user-service", &["mint", "--sub", "alice"], &[]);
    assert_eq!(minted.status.code(), Some(0), "{}", text(&minted));
    assert_eq!(
        String::from_utf8_lossy(&minted.stdout).split('.').count(),
        3
    );

    let bare = run("bare-lambda", &["--help"], &[]);
    assert_eq!(bare.status.code(), Some(0), "{}", text(&bare));
}

/// A loopback port nothing listens on (bound, then released).
fn closed_loopback_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    let port = listener.local_addr().expect("local address").port();
    drop(listener);
    port
}

#[test]
fn says_the_local_emulator_is_not_running_when_its_port_refuses() {
    let endpoint = format!("http://127.0.0.1:{}", closed_loopback_port());
    let env: Vec<(String, String)> = [
        ("AWS_ENDPOINT_URL", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("DLQ_URL", "http://127.0.0.1:1/000000000000/dlq"),
        ("QUEUE_URL", "http://127.0.0.1:1/000000000000/q"),
        ("RUST_LOG", "off"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    for args in [&["dlq", "stats"][..], &["provision"]] {
        let output = run("worker", args, &env);
        let all = text(&output);
        assert_eq!(output.status.code(), Some(1), "worker {args:?}: {all}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains(&format!("no AWS emulator is running on {endpoint}")),
            "worker {args:?}: {all}"
        );
        assert!(
            stderr.contains("make emulator-up") && stderr.contains("make dev"),
            "says how to start it: {all}"
        );
    }
}

#[test]
fn logs_written_to_a_file_carry_no_colour_codes() {
    // ingest without its settings logs one error and stops; its output goes to a pipe here,
    // as it goes to .run/ingest.log under `make dev`.
    let output = run("ingest", &[], &[("RUST_LOG".into(), "info".into())]);
    let all = text(&output);
    assert_eq!(output.status.code(), Some(1), "{all}");
    assert!(all.contains("QUEUE_URL"), "{all}");
    assert!(!all.contains('\u{1b}'), "no ANSI escape codes: {all:?}");
}

#[test]
fn logs_on_a_terminal_keep_their_colour() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("util-linux `script` is missing: skipping");
        return;
    }
    let command = workspace_binary("ingest").display().to_string();
    let output =
        under_a_terminal(&command, &[("RUST_LOG".into(), "info".into())]).expect("script runs");
    assert!(output.contains("QUEUE_URL"), "{output:?}");
    assert!(
        output.contains('\u{1b}'),
        "colour on a terminal: {output:?}"
    );
}

/// Runs `command` under a pseudo-terminal (util-linux `script`); None when it is missing.
fn under_a_terminal(command: &str, env: &[(String, String)]) -> Option<String> {
    let mut script = Command::new("script");
    script
        .args(["-q", "-e", "-c", command, "/dev/null"])
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default())
        .env("TERM", "xterm")
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .stdin(Stdio::null());
    let output = run_with_timeout(script, Duration::from_secs(120))?;
    Some(String::from_utf8_lossy(&output.stdout).into_owned())
}

#[tokio::test]
async fn dlq_stats_shows_progress_on_a_terminal_and_only_there() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("util-linux `script` is missing: skipping the terminal half");
        return;
    }
    let emulator = Emulator::connect().await;
    let resources = emulator.create_resources().await;
    let bodies: Vec<String> = (0..25).map(|i| format!("{{\"n\":{i}}}")).collect();
    emulator.send_bodies(&resources.dlq_url, &bodies).await;
    let mut env = resources.env(&emulator);
    env.push(("RUST_LOG".into(), "warn".into()));

    let command = format!("{} dlq stats", workspace_binary("worker").display());
    let on_terminal = under_a_terminal(&command, &env).expect("script runs");
    assert!(on_terminal.contains("scanned: 25"), "{on_terminal}");
    assert!(
        on_terminal.contains("scanning the DLQ: 25 read"),
        "progress on a terminal: {on_terminal:?}"
    );

    let piped = run("worker", &["dlq", "stats"], &env);
    let all = text(&piped);
    assert_eq!(piped.status.code(), Some(0), "{all}");
    assert!(all.contains("scanned: 25"), "{all}");
    assert!(
        !all.contains("scanning the DLQ"),
        "no progress into a pipe: {all}"
    );
}
