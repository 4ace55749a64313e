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
