use std::process::ExitCode;

use ingest::settings::IngestSettings;

fn main() -> ExitCode {
    // Everything comes from the environment: the command line only answers `--help` (exit 0)
    // and refuses anything else (exit 2), both printed by clap. Lambda and the containers pass
    // no arguments: the help text is not built on every cold start.
    if std::env::args_os().len() > 1 {
        clap::Command::new("ingest")
            .about(
                "The credit-score HTTP API: validates, authorizes and enqueues writes; serves reads.",
            )
            .after_help(ingest::settings::environment_help())
            .get_matches();
    }
    platform::telemetry::init();
    let result = IngestSettings::from_source(&platform::settings::Env)
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            let runtime = platform::runtime::build()?;
            runtime.block_on(ingest::run(settings))
        });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ingest stopped");
            eprintln!("ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
