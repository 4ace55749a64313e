//! What belongs to the one Lambda invocation a task is running, for code far from the handler
//! that needs it: its metrics ([`crate::metrics::scoped`]) and its X-Ray trace header.
//!
//! A process-wide value cannot carry either once one execution environment serves several
//! invocations at once (Lambda Managed Instances): the runtime then sets no
//! `_X_AMZN_TRACE_ID`, and one invocation's value would be read by another. Each invocation
//! runs in [`scope`] instead, a tokio task-local read only by the task running it.

use std::future::Future;

tokio::task_local! {
    static TRACE: Option<String>;
}

/// Runs one invocation (Lambda's `request_id` and `Lambda-Runtime-Trace-Id`) with its own
/// metrics and trace header.
pub async fn scope<F: Future>(
    request_id: String,
    trace_id: Option<String>,
    invocation: F,
) -> F::Output {
    let trace_id = trace_id.filter(|t| !t.is_empty());
    TRACE
        .scope(trace_id, crate::metrics::scoped(request_id, invocation))
        .await
}

/// The trace header of the invocation this task is running; `None` outside one.
pub fn trace_header() -> Option<String> {
    TRACE.try_with(Clone::clone).ok().flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_invocations_each_see_their_own_trace() {
        let invocations: Vec<_> = (0..16)
            .map(|i| {
                tokio::spawn(scope(
                    format!("request-{i}"),
                    Some(format!("Root=1-{i}")),
                    async move {
                        tokio::task::yield_now().await;
                        trace_header()
                    },
                ))
            })
            .collect();
        for (i, invocation) in invocations.into_iter().enumerate() {
            let seen = invocation.await.expect("the invocation ran");
            assert_eq!(seen, Some(format!("Root=1-{i}")));
        }
    }

    #[test]
    fn outside_an_invocation_there_is_no_trace() {
        assert_eq!(trace_header(), None);
    }
}
