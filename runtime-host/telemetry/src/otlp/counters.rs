//! The exporter's own Prometheus counters, served on `/metrics` with the host's.

use std::collections::BTreeMap;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

use super::settings::Signal;

/// `signal` label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SignalLabels {
    /// `traces`, `metrics` or `logs`.
    pub signal: &'static str,
}

/// Counters of what the OTLP exporters could not deliver.
#[derive(Clone, Debug, Default)]
pub struct OtlpCounters {
    dropped: Family<SignalLabels, Counter>,
    export_errors: Family<SignalLabels, Counter>,
    exported: Family<SignalLabels, Counter>,
}

impl OtlpCounters {
    /// Registers the counters (`runtime_host_otlp_dropped_total`,
    /// `runtime_host_otlp_export_errors_total`, `runtime_host_otlp_exported_total`) and
    /// creates every series at 0, so a dashboard sees them before the first drop.
    pub fn register(registry: &mut Registry) -> Self {
        let c = OtlpCounters::default();
        registry.register(
            "runtime_host_otlp_dropped",
            "Spans or log records not delivered over OTLP: queue full, or their export failed",
            c.dropped.clone(),
        );
        registry.register(
            "runtime_host_otlp_export_errors",
            "OTLP exports that failed after retries (or timed out)",
            c.export_errors.clone(),
        );
        registry.register(
            "runtime_host_otlp_exported",
            "Spans, log records or metric collections delivered over OTLP",
            c.exported.clone(),
        );
        for s in Signal::ALL {
            let l = SignalLabels { signal: s.as_str() };
            drop(c.dropped.get_or_create(&l));
            drop(c.export_errors.get_or_create(&l));
            drop(c.exported.get_or_create(&l));
        }
        c
    }

    /// Drops so far, by signal (for the admin page).
    pub fn dropped_by_signal(&self) -> BTreeMap<&'static str, u64> {
        by_signal(&self.dropped)
    }

    /// Failed exports so far, by signal (for the admin page).
    pub fn export_errors_by_signal(&self) -> BTreeMap<&'static str, u64> {
        by_signal(&self.export_errors)
    }

    /// `n` items of `signal` were dropped.
    pub fn dropped(&self, signal: Signal, n: u64) {
        self.dropped
            .get_or_create(&SignalLabels {
                signal: signal.as_str(),
            })
            .inc_by(n);
    }

    /// An export of `signal` failed.
    pub fn export_error(&self, signal: Signal) {
        self.export_errors
            .get_or_create(&SignalLabels {
                signal: signal.as_str(),
            })
            .inc();
    }

    /// `n` items of `signal` were delivered.
    pub fn exported(&self, signal: Signal, n: u64) {
        self.exported
            .get_or_create(&SignalLabels {
                signal: signal.as_str(),
            })
            .inc_by(n);
    }
}

/// Every signal's count in `family` (0 for a signal never counted).
fn by_signal(family: &Family<SignalLabels, Counter>) -> BTreeMap<&'static str, u64> {
    Signal::ALL
        .iter()
        .map(|s| {
            let n = family
                .get(&SignalLabels { signal: s.as_str() })
                .map_or(0, |c| c.get());
            (s.as_str(), n)
        })
        .collect()
}
