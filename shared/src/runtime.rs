//! The tokio runtime each binary runs on.

use tokio::runtime::{Builder, Runtime};

/// Under Lambda a process handles one event at a time, so a single-threaded runtime does
/// the same work without waking a thread on the other core for every socket event (in a
/// profile of the worker's Lambda-path drain, that scheduling was about a fifth of its CPU
/// time) and starts no threads at init. Everywhere else (containers, the dev loop) the
/// multi-threaded runtime uses every core.
pub fn build() -> std::io::Result<Runtime> {
    let mut builder = if crate::telemetry::running_in_lambda() {
        Builder::new_current_thread()
    } else {
        Builder::new_multi_thread()
    };
    builder.enable_all().build()
}
