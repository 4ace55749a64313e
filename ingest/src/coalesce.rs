//! Single calls made at the same moment, sent as one batched call: concurrent writes become one
//! SendMessageBatch, their idempotency lookups one BatchGetItem.
//!
//! Nothing waits for a batch to fill, and nothing waits behind a full one. A batch leaves when
//! it is full, or when fewer than `partial_in_flight` batches that were not full are still in
//! flight: alone, a call goes out at once; under load, calls gather behind the partial batch
//! in flight and leave together when it returns, or as soon as ten have gathered. Throughput
//! is then bounded by full batches (up to `MAX_IN_FLIGHT` of them), not by round trips,
//! while the requests per call stay near `max_batch` (AWS bills SQS and DynamoDB per
//! request, and the emulators' cost is per request too). Each caller still waits for its
//! own result, so ingest still answers 202 only once SQS has its message.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};

type Pending<In, Out> = (In, oneshot::Sender<Out>);

/// Batch calls in flight at once, full or not: a bound, not a target.
const MAX_IN_FLIGHT: usize = 64;

/// A handle that callers share; the batching task lives as long as one handle does.
pub struct Coalescer<In, Out> {
    calls: mpsc::UnboundedSender<Pending<In, Out>>,
}

/// The batching task ended (its runtime shut down) or the batch call gave this input no
/// result.
#[derive(Debug, thiserror::Error)]
#[error("the batched call gave no result for this input")]
pub struct NoResult;

impl<In: Send + 'static, Out: Send + 'static> Coalescer<In, Out> {
    /// Spawns the batching task on the current tokio runtime. `batch_call` gets up to
    /// `max_batch` inputs and must return one output per input, in order (missing outputs
    /// become [`NoResult`] for their callers).
    pub fn spawn<F, Fut>(max_batch: usize, partial_in_flight: usize, batch_call: F) -> Self
    where
        F: Fn(Vec<In>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<Out>> + Send + 'static,
    {
        let (calls, mut queued) = mpsc::unbounded_channel::<Pending<In, Out>>();
        let partial_slots = Arc::new(Semaphore::new(partial_in_flight.max(1)));
        let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
        let max_batch = max_batch.max(1);
        tokio::spawn(async move {
            loop {
                let mut batch = Vec::with_capacity(max_batch);
                if queued.recv_many(&mut batch, max_batch).await == 0 {
                    return; // every handle is gone
                }
                // Until the batch is full, it waits for a partial slot, gathering calls.
                let mut partial_slot: Option<OwnedSemaphorePermit> = None;
                while batch.len() < max_batch {
                    let room = max_batch - batch.len();
                    tokio::select! {
                        biased;
                        slot = partial_slots.clone().acquire_owned() => {
                            let Ok(slot) = slot else { return };
                            partial_slot = Some(slot);
                            // Whatever else is already queued joins without waiting.
                            while batch.len() < max_batch {
                                match queued.try_recv() {
                                    Ok(call) => batch.push(call),
                                    Err(_) => break,
                                }
                            }
                            break;
                        }
                        more = queued.recv_many(&mut batch, room) => {
                            if more == 0 {
                                break; // no more calls will come: send what is here
                            }
                        }
                    }
                }
                // A batch that filled up while waiting leaves now, its partial slot unused.
                if batch.len() == max_batch {
                    partial_slot = None;
                }
                let Ok(slot) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (inputs, replies): (Vec<In>, Vec<oneshot::Sender<Out>>) =
                    batch.into_iter().unzip();
                let call = batch_call(inputs);
                tokio::spawn(async move {
                    for (reply, out) in replies.into_iter().zip(call.await) {
                        // The caller may have gone (its request was cancelled): nothing to do.
                        let _ = reply.send(out);
                    }
                    drop((slot, partial_slot));
                });
            }
        });
        Self { calls }
    }

    /// Queues `input` for the next batch and waits for its output.
    pub async fn call(&self, input: In) -> Result<Out, NoResult> {
        let (reply, answer) = oneshot::channel();
        self.calls.send((input, reply)).map_err(|_| NoResult)?;
        answer.await.map_err(|_| NoResult)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;
    use std::time::Duration;

    /// Records the size of every batch call, and answers each input doubled.
    fn doubling(
        max_batch: usize,
        in_flight: usize,
        pause: Duration,
    ) -> (Coalescer<u32, u32>, Arc<Mutex<Vec<usize>>>) {
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let seen = sizes.clone();
        let coalescer = Coalescer::spawn(max_batch, in_flight, move |inputs: Vec<u32>| {
            seen.lock().unwrap().push(inputs.len());
            async move {
                tokio::time::sleep(pause).await;
                inputs.into_iter().map(|i| i * 2).collect()
            }
        });
        (coalescer, sizes)
    }

    #[tokio::test]
    async fn a_lone_call_goes_out_at_once_and_gets_its_own_answer() {
        let (coalescer, sizes) = doubling(10, 1, Duration::ZERO);
        assert_eq!(coalescer.call(21).await.unwrap(), 42);
        assert_eq!(*sizes.lock().unwrap(), [1]);
    }

    #[tokio::test]
    async fn calls_made_while_a_partial_batch_is_in_flight_leave_together_each_with_its_answer() {
        let (coalescer, sizes) = doubling(10, 1, Duration::from_millis(50));
        let coalescer = Arc::new(coalescer);
        let calls: Vec<_> = (0..25)
            .map(|i| {
                let c = coalescer.clone();
                tokio::spawn(async move { (i, c.call(i).await.unwrap()) })
            })
            .collect();
        for call in calls {
            let (input, output) = call.await.unwrap();
            assert_eq!(output, input * 2);
        }
        let sizes = sizes.lock().unwrap().clone();
        assert_eq!(sizes.iter().sum::<usize>(), 25);
        assert!(sizes.iter().all(|&n| n <= 10), "{sizes:?}");
        // The first call leaves alone; the rest gathered behind it, ten at a time at most.
        assert!(
            sizes.len() <= 4,
            "25 calls took {} batches: {sizes:?}",
            sizes.len()
        );
    }

    /// A coalescer of batches of ten whose partial batches hang until the gate opens (full
    /// ones answer at once), with one call already holding the partial slot at the gate.
    struct HeldPartial {
        coalescer: Arc<Coalescer<u32, u32>>,
        sizes: Arc<Mutex<Vec<usize>>>,
        gate: Arc<tokio::sync::Semaphore>,
        lone: tokio::task::JoinHandle<Result<u32, NoResult>>,
    }

    async fn with_a_partial_batch_held() -> HeldPartial {
        let gate = Arc::new(tokio::sync::Semaphore::new(0));
        let sizes = Arc::new(Mutex::new(Vec::new()));
        let (held, seen) = (gate.clone(), sizes.clone());
        let coalescer = Arc::new(Coalescer::spawn(10, 1, move |inputs: Vec<u32>| {
            let gate = held.clone();
            seen.lock().unwrap().push(inputs.len());
            async move {
                if inputs.len() < 10 {
                    let _ = gate.acquire().await;
                }
                inputs
            }
        }));
        let lone = tokio::spawn({
            let c = coalescer.clone();
            async move { c.call(0).await }
        });
        // Let the lone call take the partial slot.
        tokio::time::sleep(Duration::from_millis(20)).await;
        HeldPartial {
            coalescer,
            sizes,
            gate,
            lone,
        }
    }

    impl HeldPartial {
        async fn release(self) {
            assert!(
                !self.lone.is_finished(),
                "the partial batch is still held at the gate"
            );
            self.gate.add_permits(1);
            assert_eq!(self.lone.await.unwrap().unwrap(), 0);
        }
    }

    #[tokio::test]
    async fn a_full_batch_leaves_without_waiting_for_the_partial_one_in_flight() {
        let held = with_a_partial_batch_held().await;
        let full = futures::future::join_all((1..=10).map(|i| held.coalescer.call(i)));
        let answers = tokio::time::timeout(Duration::from_secs(5), full)
            .await
            .expect("a full batch waited behind the partial one in flight");
        assert_eq!(
            answers.into_iter().map(Result::unwrap).collect::<Vec<_>>(),
            (1..=10).collect::<Vec<_>>()
        );
        held.release().await;
    }

    #[tokio::test]
    async fn calls_arriving_one_by_one_behind_a_partial_batch_leave_once_ten_have_gathered() {
        let held = with_a_partial_batch_held().await;
        let staggered = (1..=10).map(|i| {
            let c = held.coalescer.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(3 * u64::from(i))).await;
                c.call(i).await
            })
        });
        let answers =
            tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(staggered))
                .await
                .expect("calls behind a partial batch did not leave once ten had gathered");
        assert!(answers.into_iter().all(|a| a.is_ok_and(|r| r.is_ok())));
        assert_eq!(*held.sizes.lock().unwrap(), [1, 10]);
        held.release().await;
    }

    #[tokio::test]
    async fn a_caller_whose_output_is_missing_gets_no_result_instead_of_hanging() {
        let coalescer = Coalescer::spawn(10, 1, |_: Vec<u32>| async { Vec::<u32>::new() });
        assert!(matches!(coalescer.call(1).await, Err(NoResult)));
    }
}
