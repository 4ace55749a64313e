//! How the processor writes: concurrency and retry delays.

use std::time::Duration;

#[derive(Debug, Clone)]
pub struct ProcessorConfig {
    /// BatchWriteItem requests in flight at once.
    pub write_concurrency: usize,
    /// First retry delay cap; doubles each attempt up to `retry_max_delay`.
    pub retry_base_delay: Duration,
    pub retry_max_delay: Duration,
}

impl Default for ProcessorConfig {
    fn default() -> Self {
        Self {
            write_concurrency: 4,
            retry_base_delay: Duration::from_millis(50),
            retry_max_delay: Duration::from_secs(5),
        }
    }
}
