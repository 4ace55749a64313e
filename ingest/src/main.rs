use std::process::ExitCode;

use ingest::settings::IngestSettings;

fn main() -> ExitCode {
    shared::telemetry::init();
    let result = IngestSettings::from_source(&shared::settings::Env)
        .map_err(anyhow::Error::from)
        .and_then(|settings| {
            let runtime = shared::runtime::build()?;
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
