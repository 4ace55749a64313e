//! The built binaries run as they ship: ingest and the worker as processes (start-up, the
//! command lines, `make dev`, the whole pipeline), in Lambda mode behind a fake Runtime API,
//! in container images, and as the Lambda functions of infra/template.yaml deployed into the
//! emulator; and the spike test (`make soak`, ignored in the default run). Build them first:
//! `cargo build --workspace --bins` (scripts/test.sh does). One test binary, a module per area.

mod auth_gateway;
mod cli;
mod deployed_stack;
mod dev_script;
mod end_to_end;
mod images;
mod ingest_start_up;
mod lambda_entry_points;
mod observability;
mod soak;
