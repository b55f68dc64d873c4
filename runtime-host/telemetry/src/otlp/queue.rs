//! A bounded queue in front of an exporter, drained in batches by one background task.
//!
//! The request path only ever takes a short lock and pushes (or counts a drop when the queue
//! is full): it never waits for the network. The task sends a batch when it is full or when
//! the schedule delay has passed, one export at a time, each bounded by the export timeout
//! (the exporter's retries with backoff and `Retry-After` happen inside it). A failed export
//! drops its batch, counted; memory stays at most the queue size.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::counters::OtlpCounters;
use super::settings::{BatchSettings, Signal};

/// Sends one batch (for spans and log records: `Lines` in the parent module).
pub trait Export<T>: Send + Sync + 'static {
    /// Delivers `batch`; an error message when it could not.
    fn export(&self, batch: Vec<T>) -> impl Future<Output = Result<(), String>> + Send;
}

struct Inner<T> {
    items: Mutex<State<T>>,
    wake: Notify,
    settings: BatchSettings,
    signal: Signal,
    counters: OtlpCounters,
    /// Items dropped at a full queue since the export task last said so in the log (the
    /// request path only counts; the task logs at most once per wake-up).
    unreported_drops: AtomicU64,
}

struct State<T> {
    queue: VecDeque<T>,
    /// Set by [`BatchQueue::shutdown`]: flush what is queued, then stop.
    closing: bool,
}

/// The producer side; cheap to share.
pub struct BatchQueue<T> {
    inner: Arc<Inner<T>>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl<T: Send + 'static> BatchQueue<T> {
    /// Starts the export task on the current tokio runtime.
    pub fn start<E: Export<T>>(
        exporter: E,
        settings: BatchSettings,
        signal: Signal,
        counters: OtlpCounters,
    ) -> Self {
        let inner = Arc::new(Inner {
            items: Mutex::new(State {
                queue: VecDeque::new(),
                closing: false,
            }),
            wake: Notify::new(),
            settings,
            signal,
            counters,
            unreported_drops: AtomicU64::new(0),
        });
        let task = tokio::spawn(run(inner.clone(), exporter));
        BatchQueue {
            inner,
            task: Mutex::new(Some(task)),
        }
    }

    /// Counts an item dropped before it was queued (it broke a bound of its own).
    pub fn drop_one(&self) {
        self.inner.counters.dropped(self.inner.signal, 1);
        self.inner.unreported_drops.fetch_add(1, Ordering::Relaxed);
    }

    /// Queues one item, or drops it (counted) when the queue is full or closing.
    pub fn push(&self, item: T) {
        let full_batch = {
            let mut state = self.inner.items.lock().unwrap();
            if state.closing || state.queue.len() >= self.inner.settings.max_queue_size {
                drop(state);
                self.drop_one();
                return;
            }
            state.queue.push_back(item);
            state.queue.len() == self.inner.settings.max_batch_size
        };
        if full_batch {
            self.inner.wake.notify_one();
        }
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.inner.items.lock().unwrap().queue.len()
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Exports what is queued, then stops the task; gives up at `deadline` (what is left is
    /// counted as dropped).
    pub async fn shutdown(&self, deadline: Instant) {
        self.inner.items.lock().unwrap().closing = true;
        self.inner.wake.notify_one();
        let task = self.task.lock().unwrap().take();
        if let Some(mut task) = task
            && tokio::time::timeout_at(deadline, &mut task).await.is_err()
        {
            task.abort();
            let left = std::mem::take(&mut self.inner.items.lock().unwrap().queue);
            if !left.is_empty() {
                self.inner
                    .counters
                    .dropped(self.inner.signal, left.len() as u64);
            }
            tracing::warn!(
                signal = self.inner.signal.as_str(),
                "OTLP flush did not finish within the shutdown grace period"
            );
        }
    }
}

async fn run<T: Send + 'static, E: Export<T>>(inner: Arc<Inner<T>>, exporter: E) {
    let s = inner.settings;
    loop {
        // Wait for a full batch, the schedule delay, or shutdown.
        let _ = tokio::time::timeout(s.schedule_delay, inner.wake.notified()).await;
        let dropped = inner.unreported_drops.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            tracing::warn!(
                signal = inner.signal.as_str(),
                dropped,
                max_queue_size = s.max_queue_size,
                "OTLP queue full: items dropped since the last report (the collector is slow or down)"
            );
        }
        loop {
            let (batch, closing) = {
                let mut state = inner.items.lock().unwrap();
                let n = state.queue.len().min(s.max_batch_size);
                (state.queue.drain(..n).collect::<Vec<T>>(), state.closing)
            };
            if batch.is_empty() {
                if closing {
                    return;
                }
                break;
            }
            let n = batch.len() as u64;
            match tokio::time::timeout(s.export_timeout, exporter.export(batch)).await {
                Ok(Ok(())) => inner.counters.exported(inner.signal, n),
                outcome => {
                    inner.counters.export_error(inner.signal);
                    inner.counters.dropped(inner.signal, n);
                    let error = match outcome {
                        Ok(Err(e)) => e,
                        _ => "timed out".to_owned(),
                    };
                    // The error text comes from the exporter: it names the status or the
                    // connection problem, never header values.
                    tracing::warn!(signal = inner.signal.as_str(), dropped = n, %error, "OTLP export failed");
                }
            }
            // Only a full batch is sent before the delay is up again, unless closing.
            let more = {
                let state = inner.items.lock().unwrap();
                state.closing || state.queue.len() >= s.max_batch_size
            };
            if !more {
                break;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    struct Collect(Arc<Mutex<Vec<Vec<u32>>>>, bool);

    impl Export<u32> for Collect {
        async fn export(&self, batch: Vec<u32>) -> Result<(), String> {
            if self.1 {
                std::future::pending::<()>().await;
            }
            self.0.lock().unwrap().push(batch);
            Ok(())
        }
    }

    fn settings(queue: usize, batch: usize) -> BatchSettings {
        BatchSettings {
            schedule_delay: Duration::from_secs(3600),
            export_timeout: Duration::from_millis(50),
            max_queue_size: queue,
            max_batch_size: batch,
        }
    }

    fn counters() -> (OtlpCounters, prometheus_client::registry::Registry) {
        let mut r = prometheus_client::registry::Registry::default();
        (OtlpCounters::register(&mut r), r)
    }

    fn text(r: &prometheus_client::registry::Registry) -> String {
        let mut s = String::new();
        prometheus_client::encoding::text::encode(&mut s, r).unwrap();
        s
    }

    #[tokio::test]
    async fn full_batches_go_out_and_shutdown_flushes_the_rest() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = counters();
        let q = BatchQueue::start(
            Collect(seen.clone(), false),
            settings(100, 3),
            Signal::Traces,
            c,
        );
        for i in 0..7 {
            q.push(i);
        }
        q.shutdown(Instant::now() + Duration::from_secs(30)).await;
        let batches = seen.lock().unwrap().clone();
        assert_eq!(batches.concat(), (0..7).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| b.len() <= 3));
        assert!(text(&r).contains("runtime_host_otlp_exported_total{signal=\"traces\"} 7"));
        // After shutdown, pushes are dropped and counted.
        q.push(99);
        assert!(text(&r).contains("runtime_host_otlp_dropped_total{signal=\"traces\"} 1"));
    }

    #[tokio::test]
    async fn a_hanging_exporter_bounds_the_queue_and_counts_drops() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (c, r) = counters();
        let q = BatchQueue::start(Collect(seen, true), settings(10, 5), Signal::Logs, c);
        let pushed = AtomicUsize::new(0);
        for i in 0..1000 {
            q.push(i);
            pushed.fetch_add(1, Ordering::Relaxed);
            assert!(q.len() <= 10);
            tokio::task::yield_now().await;
        }
        q.shutdown(Instant::now() + Duration::from_secs(30)).await;
        let t = text(&r);
        let dropped: u64 = t
            .lines()
            .find(|l| l.starts_with("runtime_host_otlp_dropped_total{signal=\"logs\"}"))
            .and_then(|l| l.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap();
        // Nothing was delivered, so every item is counted as dropped.
        assert_eq!(dropped, 1000, "{t}");
        assert!(!t.contains("runtime_host_otlp_export_errors_total{signal=\"logs\"} 0"));
    }
}
