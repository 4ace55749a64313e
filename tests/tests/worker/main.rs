//! The worker against the emulator, nothing lost and nothing doubled: its processor, poller
//! and Lambda handler with faults injected through the fault proxy (and the proxy itself),
//! producers writing straight to the queue, the real binary killed mid-drain and asked for
//! its health, and the DLQ tools. One test binary, a module per area.

mod batch_producers;
mod crash;
mod dlq_tools;
mod fault_proxy;
mod faults;
mod worker_batches;
mod worker_health;

/// Held by the tests that load the emulator heavily and by the tests whose assertions need
/// it to answer promptly, so that no two of them run at once. One emulator serves every test
/// of this binary: beside the 500-message gathering test, moto took 1.3 s on average (2.7 s at
/// worst) to answer the lease tests' renewals, longer than their visibility timeout left them.
static EMULATOR_LOAD: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
