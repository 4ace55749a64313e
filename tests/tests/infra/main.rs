//! What the repository ships besides the code, checked as files, with no emulator: the SAM
//! template (its invariants, dashboard and alarms), infra/ecs.yaml and deploy/k8s, the
//! Markdown's links and the README's prerequisites, and the log scan `make test` ends with.
//! One test binary, a module per area.

mod infra_ecs;
mod infra_observability;
mod infra_template;
mod log_scan;
mod repo_docs;
