//! Operating the dead-letter queue: `worker dlq stats | peek | redrive`.
//!
//! SQS cannot be queried, so stats and peek receive messages with a short visibility timeout
//! and then make them visible again at once (nothing is consumed). Redrive sends each message
//! back to QUEUE_URL and deletes it from the DLQ only after SQS acknowledged the send: an
//! interrupted run leaves at worst a message on both queues, and since its reportId maps to
//! one table item, redriving it again never stores it twice.
//!
//! A redrive takes a fixed set: at most the messages the DLQ held when it started (or
//! `--limit`). Everything it sends carries its run id (`redriveRunId`, kept by the worker when
//! it dead-letters a message again and by SQS's redrive policy), and a message carrying this
//! run's id is never taken twice: poison that comes straight back cannot keep a run going.
//!
//! * [`command`]: the clap commands;
//! * [`message`]: a DLQ message, its failure reason and what a redrive carries over;
//! * [`sqs`]: [`DlqTools`] reading, releasing and deleting DLQ messages (stats, peek);
//! * [`redrive`]: the redrive run;
//! * [`report`]: what the commands print;
//! * [`terminal`]: `worker dlq ...` on a terminal or in a log.

mod command;
mod message;
mod redrive;
mod report;
mod sqs;
mod terminal;

pub use command::DlqCommand;
pub use message::{carried_attributes, is_poison, reason_of, DlqMessage, EXHAUSTED_RETRIES};
pub use redrive::RedriveOptions;
pub use report::{format_age, progress_line, DlqStats, RedriveReport};
pub use sqs::DlqTools;
pub use terminal::run;
