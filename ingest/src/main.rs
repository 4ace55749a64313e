use std::process::ExitCode;

use ingest::settings::IngestSettings;

#[tokio::main]
async fn main() -> ExitCode {
    shared::telemetry::init();
    let result = match IngestSettings::from_source(&shared::settings::Env) {
        Ok(settings) => ingest::run(settings).await,
        Err(e) => Err(e.into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error = %format!("{e:#}"), "ingest stopped");
            eprintln!("ingest: {e:#}");
            ExitCode::FAILURE
        }
    }
}
