use std::process::ExitCode;

// See the workspace Cargo.toml: per-record strings and maps, and the SDK's per-request ones.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    // clap prints help (exit 0) or a usage error (exit 2) itself.
    let cli = worker::Cli::from_command_line();
    platform::telemetry::init();
    let result = platform::runtime::build()
        .map_err(anyhow::Error::from)
        .and_then(|runtime| runtime.block_on(worker::main_with(cli)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "worker stopped");
            eprintln!("worker: {e:#}");
            if let Some(hint) = platform::aws::emulator_hint(&e) {
                eprintln!("worker: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
