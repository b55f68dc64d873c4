//! Process health for Kubernetes-style probes (`/livez`, `/readyz`, `/startupz`).
//!
//! Liveness is implicit (the admin server answering at all). Readiness is "started, not draining,
//! and every named check ok". All state is in atomics: probes and the serving path read it
//! without locks, and any task can flip a check.

use std::sync::atomic::{AtomicBool, Ordering};

/// Name of the pseudo-check that [`Health::report`] adds for startup.
pub const STARTED_CHECK: &str = "started";
/// Name of the pseudo-check that [`Health::report`] adds for draining.
pub const DRAINING_CHECK: &str = "draining";

/// Readiness state: a started flag, a draining flag and a fixed set of named checks.
///
/// The set of checks is fixed at construction so the state can live in plain atomics (no map,
/// no lock). Checks start out failed: a component is not ready until something says it is.
#[derive(Debug)]
pub struct Health {
    started: AtomicBool,
    draining: AtomicBool,
    checks: Box<[(&'static str, AtomicBool)]>,
}

impl Health {
    /// Creates the state with the given named checks, all failed, not started, not draining.
    ///
    /// Duplicate names are kept once.
    pub fn new(checks: &[&'static str]) -> Self {
        let mut names: Vec<&'static str> = Vec::with_capacity(checks.len());
        for name in checks {
            if !names.contains(name) {
                names.push(name);
            }
        }
        Self {
            started: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            checks: names
                .into_iter()
                .map(|n| (n, AtomicBool::new(false)))
                .collect(),
        }
    }

    /// Sets the named check to ok or failed.
    ///
    /// An unknown name is a programming error: it panics in debug builds and is logged and
    /// ignored in release builds (a probe bug should not take the server down).
    pub fn set_check(&self, name: &'static str, ok: bool) {
        match self.checks.iter().find(|(n, _)| *n == name) {
            Some((_, flag)) => flag.store(ok, Ordering::Release),
            None => {
                debug_assert!(false, "unknown health check {name:?}");
                tracing::warn!(check = name, "set_check on an unknown health check");
            }
        }
    }

    /// Marks startup as complete (the startup probe passes from now on). Idempotent.
    pub fn set_started(&self) {
        self.started.store(true, Ordering::Release);
    }

    /// Marks the process as draining: readiness fails from now on so that load balancers stop
    /// sending traffic while in-flight requests finish. There is no way back; a drained process
    /// exits.
    pub fn set_draining(&self) {
        self.draining.store(true, Ordering::Release);
    }

    /// Whether [`set_started`](Self::set_started) has been called.
    pub fn is_started(&self) -> bool {
        self.started.load(Ordering::Acquire)
    }

    /// Whether [`set_draining`](Self::set_draining) has been called.
    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Acquire)
    }

    /// Whether the process should receive traffic: started, not draining, every check ok.
    pub fn ready(&self) -> bool {
        self.is_started()
            && !self.is_draining()
            && self.checks.iter().all(|(_, ok)| ok.load(Ordering::Acquire))
    }

    /// Every check with its state, for verbose probe output: the `started` pseudo-check first,
    /// then the named checks in construction order, then the `draining` pseudo-check (ok when not
    /// draining). [`ready`](Self::ready) is true exactly when every entry is ok.
    pub fn report(&self) -> Vec<(String, bool)> {
        let mut out = Vec::with_capacity(self.checks.len() + 2);
        out.push((STARTED_CHECK.to_owned(), self.is_started()));
        out.extend(
            self.checks
                .iter()
                .map(|(n, ok)| ((*n).to_owned(), ok.load(Ordering::Acquire))),
        );
        out.push((DRAINING_CHECK.to_owned(), !self.is_draining()));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn lifecycle() {
        let h = Health::new(&["compiled", "upstream"]);
        assert!(!h.is_started());
        assert!(!h.is_draining());
        assert!(!h.ready());

        h.set_started();
        assert!(h.is_started());
        assert!(!h.ready(), "checks start failed");

        h.set_check("compiled", true);
        assert!(!h.ready());
        h.set_check("upstream", true);
        assert!(h.ready());

        h.set_check("upstream", false);
        assert!(!h.ready());
        assert_eq!(
            h.report(),
            vec![
                ("started".to_owned(), true),
                ("compiled".to_owned(), true),
                ("upstream".to_owned(), false),
                ("draining".to_owned(), true),
            ]
        );
        h.set_check("upstream", true);
        assert!(h.ready());

        h.set_draining();
        assert!(h.is_draining());
        assert!(!h.ready());
        let report = h.report();
        assert_eq!(report.last(), Some(&("draining".to_owned(), false)));
        assert!(report[..3].iter().all(|(_, ok)| *ok));
    }

    #[test]
    fn no_checks() {
        let h = Health::new(&[]);
        assert!(!h.ready());
        h.set_started();
        assert!(h.ready());
        assert_eq!(h.report().len(), 2);
    }

    #[test]
    fn duplicates_kept_once() {
        let h = Health::new(&["a", "a", "b"]);
        assert_eq!(h.report().len(), 4);
        h.set_started();
        h.set_check("a", true);
        h.set_check("b", true);
        assert!(h.ready());
    }

    #[test]
    #[cfg_attr(debug_assertions, should_panic(expected = "unknown health check"))]
    fn unknown_check() {
        let h = Health::new(&["a"]);
        h.set_check("nope", true);
    }

    #[test]
    fn send_sync_across_threads() {
        let h = Arc::new(Health::new(&["a"]));
        let h2 = h.clone();
        std::thread::spawn(move || {
            h2.set_started();
            h2.set_check("a", true);
        })
        .join()
        .unwrap();
        assert!(h.ready());
    }
}
