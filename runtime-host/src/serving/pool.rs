//! The instance pool policy: how chain instances are made, how many requests each serves
//! (in turn and at once), when one is expired, and what happens when one ends.
//!
//! wasmtime-wasi-http's [`ProxyHandler`](wasmtime_wasi_http::handler::ProxyHandler) runs the
//! serving loop; the three types here are the policy it asks: [`InstanceFactory`] makes
//! instances, [`InstancePolicy`] decides per instance, [`InstanceDeadline`] expires them.

use crate::serving::chain::LinkedPre;
use crate::serving::store::{StoreState, StoreTemplate};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use telemetry::metrics::HostMetrics;
use tokio::sync::Notify;
use wasmtime::component::GuestTaskId;
use wasmtime::{Store, StoreContextMut};
use wasmtime_wasi_http::WasiHttpView;
use wasmtime_wasi_http::handler::{
    HandlerState, Instance, Proxy, ProxyPre, ShouldAccept, WorkerExpiration, WorkerState,
    WorkerStatus,
};

/// How a chain is instantiated.
pub enum ChainPre {
    /// One component composed with wac-graph.
    Composed(ProxyPre<StoreState>),
    /// Separate instances wired by the host.
    Linked(LinkedPre),
}

impl ChainPre {
    /// Instantiates the chain into `store`.
    pub async fn instantiate(&self, store: &mut Store<StoreState>) -> wasmtime::Result<Proxy> {
        match self {
            ChainPre::Composed(pre) => pre.instantiate_async(store).await,
            ChainPre::Linked(pre) => Ok(Proxy::P3(pre.instantiate(store).await?)),
        }
    }
}

/// Per-instance limits from the command line.
#[derive(Clone, Copy, Debug)]
pub struct PoolLimits {
    /// Requests one instance serves before it is replaced.
    pub max_reuse: usize,
    /// Requests one instance serves at once.
    pub max_concurrency: usize,
    /// Deadline of one request until its response head.
    pub request_timeout: Duration,
}

/// Makes chain instances, each in a store of its own.
pub struct InstanceFactory {
    /// How stores are made.
    pub stores: StoreTemplate,
    /// The pre-instantiated chain.
    pub pre: ChainPre,
    /// Host metrics (instantiation time, traps).
    pub metrics: Arc<HostMetrics>,
    /// Per-instance limits.
    pub limits: PoolLimits,
    /// Instances with work in progress (requests, or work after the response such as the
    /// middleware's log line); the shutdown drain waits for it to reach zero.
    pub busy_instances: Arc<AtomicUsize>,
    /// Set once the host has drained and stops: the workers dropped after it are idle ones
    /// the runtime lets go, not traps.
    pub stopped: Arc<AtomicBool>,
    /// Woken whenever an instance is dropped, which frees its slot in the pooling allocator.
    pub slot_freed: Arc<Notify>,
}

/// No instance slot came free before the request's deadline: every slot of the pooling
/// allocator held an instance. The host's own capacity, answered as overload (503), never
/// blamed on the guest.
#[derive(Debug)]
pub struct PoolExhausted;

impl std::fmt::Display for PoolExhausted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("no instance slot came free before the request deadline")
    }
}

impl std::error::Error for PoolExhausted {}

/// How long an instantiation that found the pool full waits for a freed slot before it tries
/// again anyway (a wakeup can be missed between the attempt and the wait).
const SLOT_RETRY: Duration = Duration::from_millis(10);

/// The instantiation of a chain took longer than the request timeout.
#[derive(Debug)]
pub struct InstantiationTimedOut;

impl std::fmt::Display for InstantiationTimedOut {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("instantiation timed out")
    }
}

impl std::error::Error for InstantiationTimedOut {}

impl HandlerState for InstanceFactory {
    type StoreData = StoreState;
    type WorkerExpiration = InstanceDeadline;
    type WorkerState = InstancePolicy;

    async fn instantiate(
        &self,
    ) -> wasmtime::Result<Instance<StoreState, InstanceDeadline, InstancePolicy>> {
        let start = Instant::now();
        let timeout = self.limits.request_timeout;
        let deadline = tokio::time::Instant::now() + timeout;
        // Under load, instances that are draining (reuse used up) or finishing work after
        // their responses can hold every slot for a moment: wait for one within the deadline.
        let (store, proxy) = loop {
            let mut store = self.stores.new_store();
            let attempt = tokio::time::timeout_at(deadline, self.pre.instantiate(&mut store))
                .await
                .map_err(|_| wasmtime::Error::new(InstantiationTimedOut))?;
            match attempt {
                Ok(proxy) => break (store, proxy),
                Err(error) if error.is::<wasmtime::PoolConcurrencyLimitError>() => {
                    drop(store);
                    let now = tokio::time::Instant::now();
                    if now >= deadline {
                        return Err(wasmtime::Error::new(PoolExhausted));
                    }
                    let wait = (now + SLOT_RETRY).min(deadline);
                    let _ = tokio::time::timeout_at(wait, self.slot_freed.notified()).await;
                }
                Err(error) => return Err(error),
            }
        };
        self.metrics.instantiated(start.elapsed());
        let expired = Arc::new(AtomicBool::new(false));
        Ok(Instance {
            store,
            proxy,
            view: WasiHttpView::http,
            expiration: InstanceDeadline {
                idle_timeout: Duration::from_secs(5),
                request_timeout: timeout,
                sleep: Box::pin(tokio::time::sleep(Duration::MAX)),
                busy_instances: self.busy_instances.clone(),
                busy: false,
                expired: expired.clone(),
            },
            state: InstancePolicy {
                limits: self.limits,
                metrics: self.metrics.clone(),
                expired,
                stopped: self.stopped.clone(),
                slot_freed: self.slot_freed.clone(),
            },
        })
    }
}

/// What the host learns about a request from the instance that served it: whether a guest
/// of that instance was refused memory (so a failure is the memory limit, not a bug).
#[derive(Clone, Default)]
pub struct RequestFate {
    memory_exceeded: Arc<OnceLock<Arc<AtomicBool>>>,
}

impl RequestFate {
    /// Whether the instance serving the request ran into its memory limit.
    pub fn memory_exceeded(&self) -> bool {
        self.memory_exceeded
            .get()
            .is_some_and(|flag| flag.load(Ordering::Relaxed))
    }
}

/// Per-instance policy: how many requests, how long, and what to do when it ends.
pub struct InstancePolicy {
    limits: PoolLimits,
    metrics: Arc<HostMetrics>,
    /// Set by this instance's [`InstanceDeadline`] when it expired the instance with work in
    /// progress: the error the instance then ends with is the timeout, not a trap.
    expired: Arc<AtomicBool>,
    /// See [`InstanceFactory::stopped`].
    stopped: Arc<AtomicBool>,
    /// See [`InstanceFactory::slot_freed`].
    slot_freed: Arc<Notify>,
}

impl WorkerState for InstancePolicy {
    type StoreData = StoreState;
    type RequestData = RequestFate;

    fn should_accept_request(&self, concurrent: usize, total: usize) -> ShouldAccept {
        if total >= self.limits.max_reuse {
            ShouldAccept::Never
        } else if concurrent >= self.limits.max_concurrency {
            ShouldAccept::No
        } else {
            ShouldAccept::Yes
        }
    }

    fn on_request_start(
        &self,
        store: StoreContextMut<'_, StoreState>,
        fate: RequestFate,
        _task: GuestTaskId,
    ) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
        let _ = fate.memory_exceeded.set(store.data().memory_exceeded());
        Box::pin(tokio::time::sleep(self.limits.request_timeout))
    }

    fn drop(&self, store: Store<StoreState>, result: wasmtime::Result<()>) {
        if let Err(error) = result {
            // Told apart by what the host knows, not by wasmtime-wasi-http's messages.
            if self.expired.load(Ordering::SeqCst) {
                tracing::warn!("dropped an instance whose guest ran past the request timeout");
            } else if self.stopped.load(Ordering::SeqCst) && !std::thread::panicking() {
                // The runtime drops the idle workers as the host stops; that is no trap, and
                // must not be logged as an error on every shutdown.
                tracing::debug!("instance dropped as the host stopped");
            } else {
                self.metrics.trap();
                tracing::error!(error = %format!("{error:#}"), "guest trapped; its instance was dropped");
            }
        }
        store.into_data().flush_output();
        // The store is gone, and its instance slot with it.
        self.slot_freed.notify_waiters();
    }
}

/// Second line of defence for deadlines (see `WorkerState::on_request_start` in
/// wasmtime-wasi-http): expire the whole instance once its newest request is overdue.
pub struct InstanceDeadline {
    idle_timeout: Duration,
    request_timeout: Duration,
    sleep: Pin<Box<tokio::time::Sleep>>,
    /// Shared count of busy instances, and whether this one is counted in it.
    busy_instances: Arc<AtomicUsize>,
    busy: bool,
    /// Shared with the instance's [`InstancePolicy`].
    expired: Arc<AtomicBool>,
}

impl Drop for InstanceDeadline {
    fn drop(&mut self) {
        if self.busy {
            self.busy_instances.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

impl WorkerExpiration for InstanceDeadline {
    fn poll(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        status: WorkerStatus,
        start: Instant,
    ) -> Poll<()> {
        // The worker polls this whenever it waits, with its current status.
        let busy = status != WorkerStatus::Idle;
        if busy != self.busy {
            self.busy = busy;
            if busy {
                self.busy_instances.fetch_add(1, Ordering::SeqCst);
            } else {
                self.busy_instances.fetch_sub(1, Ordering::SeqCst);
            }
        }
        let timeout = match status {
            WorkerStatus::Idle => self.idle_timeout,
            // Work after the response (streaming a body, writing the log line) gets the
            // same allowance as a request.
            WorkerStatus::Requests | WorkerStatus::PostReturn => self.request_timeout * 2,
        };
        let Some(deadline) = start.checked_add(timeout) else {
            return Poll::Pending;
        };
        let deadline = tokio::time::Instant::from_std(deadline);
        if self.sleep.deadline() != deadline {
            self.sleep.as_mut().reset(deadline);
        }
        let fired = self.sleep.as_mut().poll(cx);
        if fired.is_ready() && busy {
            self.expired.store(true, Ordering::SeqCst);
        }
        fired
    }
}
