//! `make dev` (scripts/dev.sh) for real, detached, in its own run folder and ports: ingest
//! listens on loopback only, and `.run/dev.env` sourced in an empty shell (`env -i bash`)
//! holds everything the printed commands need.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use pipeline_tests::{run_with_timeout, workspace_binary, Emulator};

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ sits in the repository")
        .to_path_buf()
}

fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local address").port()
}

struct DevStack {
    env: Vec<(String, String)>,
    run_dir: PathBuf,
}

impl DevStack {
    fn script(&self, args: &[&str]) -> Output {
        let mut command = Command::new("bash");
        command
            .arg(repo_root().join("scripts/dev.sh"))
            .args(args)
            .env_clear()
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null());
        run_with_timeout(command, Duration::from_secs(120)).expect("dev.sh ends")
    }
}

impl Drop for DevStack {
    fn drop(&mut self) {
        let _ = self.script(&["stop"]);
        let _ = std::fs::remove_dir_all(&self.run_dir);
    }
}

#[tokio::test]
async fn dev_env_sourced_in_an_empty_shell_runs_the_printed_commands() {
    let emulator = Emulator::connect().await;
    let emulator_port = emulator
        .endpoint
        .rsplit(':')
        .next()
        .and_then(|p| p.trim_end_matches('/').parse::<u16>().ok())
        .expect("the emulator endpoint has a port");
    let bin_dir = workspace_binary("worker")
        .parent()
        .expect("binaries in a folder")
        .to_path_buf();
    let run_dir = std::env::temp_dir().join(format!("dev-script-{}", ulid::Ulid::new()));
    let (ingest_port, user_service_port) = (free_port(), free_port());
    let suffix = ulid::Ulid::new().to_string().to_lowercase();
    let env: Vec<(String, String)> = [
        ("PATH", std::env::var("PATH").unwrap_or_default()),
        ("HOME", std::env::var("HOME").unwrap_or_default()),
        ("EMULATOR_PORT", emulator_port.to_string()),
        ("PORT", ingest_port.to_string()),
        ("DEV_USER_SERVICE_PORT", user_service_port.to_string()),
        ("DEV_DETACH", "1".into()),
        ("DEV_NO_BUILD", "1".into()),
        ("DEV_BIN_DIR", bin_dir.display().to_string()),
        ("DEV_RUN_DIR", run_dir.display().to_string()),
        ("QUEUE_NAME", format!("dev-script-{suffix}")),
        ("DLQ_NAME", format!("dev-script-{suffix}-dlq")),
        ("TABLE_NAME", format!("dev-script-{suffix}")),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect();
    let stack = DevStack { env, run_dir };

    let started = stack.script(&[]);
    let stdout = String::from_utf8_lossy(&started.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&started.stderr).into_owned();
    assert!(started.status.success(), "{stdout}{stderr}");
    assert!(stdout.contains("worker dlq stats"), "printed: {stdout}");

    // `make dev` keeps ingest on loopback.
    let ingest_log = std::fs::read_to_string(stack.run_dir.join("ingest.log")).unwrap_or_default();
    assert!(
        ingest_log.contains(&format!("127.0.0.1:{ingest_port}")),
        "{ingest_log}"
    );

    // A new, empty shell: only what dev.env gives it (and PATH for the tools).
    let env_file = stack.run_dir.join("dev.env");
    let check = format!(
        r#"set -u
. '{env_file}'
for v in AWS_ENDPOINT_URL AWS_REGION AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY QUEUE_URL DLQ_URL TABLE_NAME USER_SERVICE_URL INGEST_URL TOKEN; do
  [[ -n "${{!v:-}}" ]] || {{ echo "dev.env lacks $v"; exit 3; }}
done
'{worker}' dlq stats || exit 4
curl -sf -o /dev/null -w '%{{http_code}}\n' -X POST "$INGEST_URL/v1/users/alice/credit-scores" -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' -d '{{"bureau":"experian","score":700,"reportedAt":"2020-01-01T00:00:00Z"}}' || exit 5
"#,
        env_file = env_file.display(),
        worker = bin_dir.join("worker").display(),
    );
    let mut shell = Command::new("env");
    shell
        .args([
            "-i",
            &format!("PATH={}", std::env::var("PATH").unwrap_or_default()),
        ])
        .args(["bash", "-c", &check])
        .stdin(Stdio::null());
    let output = run_with_timeout(shell, Duration::from_secs(60)).expect("the shell ends");
    let out = String::from_utf8_lossy(&output.stdout);
    let err = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "status {:?}\n{out}\n{err}",
        output.status.code()
    );
    assert!(out.contains("scanned: 0"), "{out}{err}");
    assert!(out.contains("202"), "{out}{err}");
}
