//! Windowed RED figures (rate, errors, duration quantiles) from running totals.
//!
//! The host keeps one set of running totals for all requests ([`RedTotals`]: counts, errors,
//! status classes and the duration histogram with the `http_server_request_duration_seconds`
//! buckets). A sampler copies them into a [`History`] every few seconds; a figure over the
//! last minute is the difference between the totals now and a sample about a minute old, so
//! quantiles come from histogram bucket deltas, as Prometheus' `histogram_quantile` over a
//! `rate()` does. Everything here is pure arithmetic on counts, tested on its own.

use edge_observability::metrics::DURATION_BUCKETS;
use serde::Serialize;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Number of duration buckets: the finite bounds plus `+Inf`.
pub const BUCKETS: usize = DURATION_BUCKETS.len() + 1;

/// Status classes counted, in this order: `1xx` to `5xx`, and `none` for requests that got no
/// response status (the guest failed before answering).
pub const STATUS_CLASSES: [&str; 6] = ["1xx", "2xx", "3xx", "4xx", "5xx", "none"];

/// Index into [`STATUS_CLASSES`] of a status code (`None`, or out of range: `none`).
pub fn status_class_index(status: Option<u16>) -> usize {
    match status {
        Some(s @ 100..=599) => usize::from(s / 100 - 1),
        _ => 5,
    }
}

/// Running totals over every request the host recorded; lock-free, updated with each metric
/// event next to the Prometheus families.
#[derive(Debug, Default)]
pub struct RedTotals {
    requests: AtomicU64,
    errors: AtomicU64,
    classes: [AtomicU64; STATUS_CLASSES.len()],
    buckets: [AtomicU64; BUCKETS],
}

impl RedTotals {
    /// Records one request. `failed` follows OpenTelemetry: an `error.type` was set (failures
    /// and 5xx answers).
    pub fn record(&self, status: Option<u16>, failed: bool, duration_s: f64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        if failed || status.is_none_or(|s| s >= 500) {
            self.errors.fetch_add(1, Ordering::Relaxed);
        }
        self.classes[status_class_index(status)].fetch_add(1, Ordering::Relaxed);
        // `le` semantics: a duration equal to a bound belongs to that bound's bucket.
        let bucket = DURATION_BUCKETS
            .iter()
            .position(|bound| duration_s <= *bound)
            .unwrap_or(BUCKETS - 1);
        self.buckets[bucket].fetch_add(1, Ordering::Relaxed);
    }

    /// A copy of the totals. Fields are read one by one, so under load they may disagree by the
    /// requests recorded meanwhile; windows of seconds make that invisible.
    pub fn snapshot(&self) -> Counts {
        Counts {
            requests: self.requests.load(Ordering::Relaxed),
            errors: self.errors.load(Ordering::Relaxed),
            classes: std::array::from_fn(|i| self.classes[i].load(Ordering::Relaxed)),
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
        }
    }
}

/// Counts per status class, in [`STATUS_CLASSES`] order; serialized as a map from class name
/// (`"2xx"`) to count.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClassCounts(pub [u64; STATUS_CLASSES.len()]);

impl Serialize for ClassCounts {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(STATUS_CLASSES.len()))?;
        for (name, count) in STATUS_CLASSES.iter().zip(self.0) {
            map.serialize_entry(name, &count)?;
        }
        map.end()
    }
}

/// Request counts, as totals or as the difference of two totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counts {
    /// Requests recorded.
    pub requests: u64,
    /// Of which failed (5xx, no response, or `error.type` set).
    pub errors: u64,
    /// Per status class, see [`STATUS_CLASSES`].
    pub classes: [u64; STATUS_CLASSES.len()],
    /// Per duration bucket (not cumulative): `buckets[i]` counts durations in
    /// `(DURATION_BUCKETS[i-1], DURATION_BUCKETS[i]]`, the last one those above 10 s.
    pub buckets: [u64; BUCKETS],
}

impl Counts {
    /// What was added between `older` and `self`.
    pub fn since(&self, older: &Counts) -> Counts {
        Counts {
            requests: self.requests.saturating_sub(older.requests),
            errors: self.errors.saturating_sub(older.errors),
            classes: std::array::from_fn(|i| self.classes[i].saturating_sub(older.classes[i])),
            buckets: std::array::from_fn(|i| self.buckets[i].saturating_sub(older.buckets[i])),
        }
    }

    /// The `q`-quantile (0 < q ≤ 1) of the durations, in seconds, interpolated linearly inside
    /// the bucket that holds it, as Prometheus' `histogram_quantile` does. `None` without
    /// requests. A quantile in the `+Inf` bucket is reported as the highest finite bound.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total: u64 = self.buckets.iter().sum();
        if total == 0 || !(q > 0.0 && q <= 1.0) {
            return None;
        }
        let rank = q * total as f64;
        let mut cumulative = 0u64;
        for (i, count) in self.buckets.iter().enumerate() {
            let before = cumulative;
            cumulative += count;
            if cumulative as f64 >= rank {
                let Some(&upper) = DURATION_BUCKETS.get(i) else {
                    return DURATION_BUCKETS.last().copied();
                };
                let lower = if i == 0 { 0.0 } else { DURATION_BUCKETS[i - 1] };
                // `count > 0` here: rank > 0 and the previous buckets held less than rank.
                let within = (rank - before as f64) / *count as f64;
                return Some(lower + (upper - lower) * within);
            }
        }
        DURATION_BUCKETS.last().copied()
    }

    /// Estimated number of requests that took longer than `threshold_s`: whole buckets above
    /// it, plus the linear share of the bucket it falls in. Exact when the threshold is a
    /// bucket bound (500 ms is one).
    pub fn slower_than(&self, threshold_s: f64) -> f64 {
        let mut slow = 0.0;
        for (i, count) in self.buckets.iter().enumerate() {
            let lower = if i == 0 { 0.0 } else { DURATION_BUCKETS[i - 1] };
            let Some(&upper) = DURATION_BUCKETS.get(i) else {
                // The +Inf bucket: everything above 10 s counts as slow once the threshold is
                // below 10 s; above that we cannot tell, and count it all (conservative).
                slow += *count as f64;
                continue;
            };
            if lower >= threshold_s {
                slow += *count as f64;
            } else if upper > threshold_s {
                slow += *count as f64 * (upper - threshold_s) / (upper - lower);
            }
        }
        slow
    }
}

/// Totals at one moment, `at` measured from the host's start.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sample {
    /// Time since the host started.
    pub at: Duration,
    /// The totals then.
    pub counts: Counts,
}

/// The most recent samples, oldest first, enough to cover the longest window.
#[derive(Debug)]
pub struct History {
    samples: VecDeque<Sample>,
    capacity: usize,
}

impl History {
    /// Room for samples taken every `interval` over `span` (plus one so a full `span` is
    /// always covered).
    pub fn new(span: Duration, interval: Duration) -> Self {
        let capacity = (span.as_secs_f64() / interval.as_secs_f64().max(0.001)).ceil() as usize + 2;
        History {
            samples: VecDeque::with_capacity(capacity),
            capacity,
        }
    }

    /// Adds a sample, dropping the oldest when full. Samples must come in time order.
    pub fn push(&mut self, sample: Sample) {
        if self.samples.len() == self.capacity {
            self.samples.pop_front();
        }
        self.samples.push_back(sample);
    }

    /// The sample a window of length `window` ending at `now` is measured from: the newest one
    /// at least `window` old, else (the host is younger than the window) the oldest one.
    pub fn baseline(&self, now: Duration, window: Duration) -> Option<&Sample> {
        let start = now.checked_sub(window);
        start
            .and_then(|start| self.samples.iter().rev().find(|s| s.at <= start))
            .or_else(|| self.samples.front())
    }

    /// The figures over `window` ending at `now`.
    pub fn window(&self, now: &Sample, window: Duration) -> Option<WindowFigures> {
        let base = self.baseline(now.at, window)?;
        Some(WindowFigures::between(base, now))
    }

    /// One point per sampling interval, oldest first, and a last one from the newest sample
    /// to `now` when at least a second has passed since it.
    pub fn series(&self, now: &Sample) -> Vec<Point> {
        let mut points: Vec<Point> = self
            .samples
            .iter()
            .zip(self.samples.iter().skip(1))
            .map(|(a, b)| Point::between(a, b))
            .collect();
        if let Some(last) = self.samples.back()
            && now.at >= last.at + Duration::from_secs(1)
        {
            points.push(Point::between(last, now));
        }
        points
    }
}

/// RED figures over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WindowFigures {
    /// The time actually covered, in seconds (shorter than asked while the host is young).
    pub seconds: f64,
    /// Requests in the window.
    pub requests: u64,
    /// Failed requests in the window.
    pub errors: u64,
    /// Requests per second.
    pub request_rate: f64,
    /// Failed requests per second.
    pub error_rate: f64,
    /// Failed share of the requests (0–1); `None` without requests.
    pub error_ratio: Option<f64>,
    /// Median duration in seconds.
    pub p50_s: Option<f64>,
    /// 95th percentile duration in seconds.
    pub p95_s: Option<f64>,
    /// 99th percentile duration in seconds.
    pub p99_s: Option<f64>,
    /// Requests per status class.
    pub status_classes: ClassCounts,
    /// The counts themselves, for the SLO arithmetic.
    #[serde(skip)]
    pub counts: Counts,
}

impl WindowFigures {
    /// The figures between two samples (`older` first).
    pub fn between(older: &Sample, newer: &Sample) -> Self {
        let counts = newer.counts.since(&older.counts);
        let seconds = newer.at.saturating_sub(older.at).as_secs_f64();
        let per_second = |n: u64| {
            if seconds > 0.0 {
                n as f64 / seconds
            } else {
                0.0
            }
        };
        WindowFigures {
            seconds,
            requests: counts.requests,
            errors: counts.errors,
            request_rate: per_second(counts.requests),
            error_rate: per_second(counts.errors),
            error_ratio: (counts.requests > 0)
                .then(|| counts.errors as f64 / counts.requests as f64),
            p50_s: counts.quantile(0.5),
            p95_s: counts.quantile(0.95),
            p99_s: counts.quantile(0.99),
            status_classes: ClassCounts(counts.classes),
            counts,
        }
    }
}

/// One point of the charts: the interval ending at `at`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    /// End of the interval, seconds since the host started.
    pub at_s: f64,
    /// Requests per second in the interval.
    pub request_rate: f64,
    /// Failed requests per second in the interval.
    pub error_rate: f64,
    /// 95th percentile duration in the interval, seconds; `None` without requests.
    pub p95_s: Option<f64>,
}

impl Point {
    fn between(older: &Sample, newer: &Sample) -> Self {
        let f = WindowFigures::between(older, newer);
        Point {
            at_s: newer.at.as_secs_f64(),
            request_rate: f.request_rate,
            error_rate: f.error_rate,
            p95_s: f.p95_s,
        }
    }
}

/// Service level objectives the page measures the longest window against.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Objectives {
    /// Share of requests that must not fail, e.g. 0.995.
    pub availability: f64,
    /// Duration the latency quantile must stay under.
    pub latency: Duration,
    /// The latency quantile, e.g. 0.95.
    pub latency_quantile: f64,
}

impl Objectives {
    /// The page's objectives unless configured: 99.5 % availability, p95 under 500 ms.
    pub const DEFAULT: Objectives = Objectives {
        availability: Objectives::DEFAULT_AVAILABILITY_PERCENT / 100.0,
        latency: Duration::from_millis(500),
        latency_quantile: 0.95,
    };

    /// [`Objectives::DEFAULT`]'s availability in percent, as the command line takes it.
    pub const DEFAULT_AVAILABILITY_PERCENT: f64 = 99.5;
}

impl Default for Objectives {
    fn default() -> Self {
        Objectives::DEFAULT
    }
}

/// Where one objective stands over a window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ObjectiveStatus {
    /// The objective: availability as a share (0.995), latency in seconds.
    pub objective: f64,
    /// The measured value (availability share, or the quantile in seconds); `None` without
    /// requests.
    pub actual: Option<f64>,
    /// Whether the objective is met; `None` without requests.
    pub met: Option<bool>,
    /// Share of the window's error budget used (1.0 = all of it; more when overspent).
    /// The budget is the number of bad requests the objective allows among the window's
    /// requests: failures for availability, requests slower than the threshold for latency.
    pub budget_used: Option<f64>,
}

/// Both objectives over one window.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SloStatus {
    /// The window judged, in seconds.
    pub window_s: f64,
    /// Failed requests against the availability objective.
    pub availability: ObjectiveStatus,
    /// The latency quantile against its threshold.
    pub latency: ObjectiveStatus,
    /// The latency quantile judged (0.95 for p95).
    pub latency_quantile: f64,
}

impl Objectives {
    /// Judges the figures of one window.
    pub fn judge(&self, w: &WindowFigures) -> SloStatus {
        let requests = w.requests as f64;
        let traffic = w.requests > 0;
        let availability = ObjectiveStatus {
            objective: self.availability,
            actual: traffic.then(|| 1.0 - w.errors as f64 / requests),
            met: traffic.then(|| 1.0 - w.errors as f64 / requests >= self.availability),
            budget_used: traffic.then(|| w.errors as f64 / ((1.0 - self.availability) * requests)),
        };
        let threshold = self.latency.as_secs_f64();
        let actual = w.counts.quantile(self.latency_quantile);
        let latency = ObjectiveStatus {
            objective: threshold,
            actual,
            met: actual.map(|a| a <= threshold),
            budget_used: traffic.then(|| {
                w.counts.slower_than(threshold) / ((1.0 - self.latency_quantile) * requests)
            }),
        };
        SloStatus {
            window_s: w.seconds,
            availability,
            latency,
            latency_quantile: self.latency_quantile,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts_with(durations: &[(f64, u64)]) -> Counts {
        let totals = RedTotals::default();
        for (d, n) in durations {
            for _ in 0..*n {
                totals.record(Some(200), false, *d);
            }
        }
        totals.snapshot()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn status_classes() {
        assert_eq!(status_class_index(Some(101)), 0);
        assert_eq!(status_class_index(Some(204)), 1);
        assert_eq!(status_class_index(Some(399)), 2);
        assert_eq!(status_class_index(Some(404)), 3);
        assert_eq!(status_class_index(Some(599)), 4);
        assert_eq!(status_class_index(Some(600)), 5);
        assert_eq!(status_class_index(Some(42)), 5);
        assert_eq!(status_class_index(None), 5);
    }

    #[test]
    fn totals_count_errors_classes_and_buckets() {
        let t = RedTotals::default();
        t.record(Some(200), false, 0.005); // on the bound: first bucket
        t.record(Some(404), false, 0.0051);
        t.record(Some(502), true, 0.3);
        t.record(Some(500), false, 11.0); // 5xx is an error even without error.type
        t.record(None, true, 1.0);
        t.record(Some(200), true, 0.2); // a body that broke after a 200
        let c = t.snapshot();
        assert_eq!(c.requests, 6);
        assert_eq!(c.errors, 4);
        assert_eq!(c.classes, [0, 2, 0, 1, 2, 1]);
        assert_eq!(c.buckets[0], 1);
        assert_eq!(c.buckets[1], 1);
        assert_eq!(c.buckets[6], 1); // (0.1, 0.25]
        assert_eq!(c.buckets[7], 1); // (0.25, 0.5]
        assert_eq!(c.buckets[9], 1); // (0.75, 1]
        assert_eq!(c.buckets[BUCKETS - 1], 1);
    }

    #[test]
    fn quantiles_interpolate_within_buckets() {
        // 100 requests spread evenly: 50 in (0, 5 ms], 50 in (50, 75 ms].
        let c = counts_with(&[(0.003, 50), (0.06, 50)]);
        // p50: rank 50, the end of the first bucket.
        assert!(close(c.quantile(0.5).unwrap(), 0.005));
        // p95: rank 95, 45 of 50 into (0.05, 0.075].
        assert!(close(c.quantile(0.95).unwrap(), 0.05 + 0.025 * 45.0 / 50.0));
        assert!(close(c.quantile(1.0).unwrap(), 0.075));
        // p25 in the first bucket, from 0.
        assert!(close(c.quantile(0.25).unwrap(), 0.0025));
        assert_eq!(Counts::default().quantile(0.5), None);
        assert_eq!(c.quantile(0.0), None);
        assert_eq!(c.quantile(1.5), None);
    }

    #[test]
    fn quantile_in_the_overflow_bucket_is_the_highest_bound() {
        let c = counts_with(&[(0.001, 1), (30.0, 99)]);
        assert_eq!(c.quantile(0.99), Some(10.0));
        assert_eq!(c.quantile(0.5), Some(10.0));
        assert!(close(c.quantile(0.01).unwrap(), 0.005));
    }

    #[test]
    fn slower_than_is_exact_on_bounds_and_linear_inside() {
        let c = counts_with(&[(0.1, 10), (0.3, 4), (0.6, 6), (20.0, 1)]);
        assert!(close(c.slower_than(0.5), 7.0));
        assert!(close(c.slower_than(0.25), 11.0));
        // 0.375 is the middle of (0.25, 0.5]: half of its 4.
        assert!(close(c.slower_than(0.375), 2.0 + 7.0));
        assert!(
            close(c.slower_than(100.0), 1.0),
            "the +Inf bucket always counts"
        );
        assert!(close(c.slower_than(0.0), 21.0));
    }

    fn sample(at_s: u64, counts: Counts) -> Sample {
        Sample {
            at: Duration::from_secs(at_s),
            counts,
        }
    }

    fn n_requests(requests: u64, errors: u64) -> Counts {
        let mut c = Counts {
            requests,
            errors,
            ..Counts::default()
        };
        c.buckets[0] = requests;
        c.classes[1] = requests - errors;
        c.classes[4] = errors;
        c
    }

    #[test]
    fn windows_use_the_newest_sample_old_enough() {
        let mut h = History::new(Duration::from_secs(300), Duration::from_secs(5));
        // 10 requests per second, 1 error per second, sampled every 5 s for 10 minutes.
        for i in 0..=120u64 {
            h.push(sample(i * 5, n_requests(i * 50, i * 5)));
        }
        assert_eq!(h.samples.len(), h.capacity, "old samples dropped");
        let now = sample(602, n_requests(6020, 602));
        let w1 = h.window(&now, Duration::from_secs(60)).unwrap();
        // Baseline: the sample at 540 s (newest at or before 542 s).
        assert!(close(w1.seconds, 62.0));
        assert_eq!(w1.requests, 6020 - 5400);
        assert!(close(w1.request_rate, 620.0 / 62.0));
        assert!(close(w1.error_rate, 62.0 / 62.0));
        assert!(close(w1.error_ratio.unwrap(), 0.1));
        assert_eq!(w1.status_classes.0[4], 62);
        let w5 = h.window(&now, Duration::from_secs(300)).unwrap();
        assert!(close(w5.seconds, 302.0));
        assert_eq!(w5.requests, 6020 - 3000);
    }

    #[test]
    fn a_young_host_measures_from_its_first_sample() {
        let mut h = History::new(Duration::from_secs(300), Duration::from_secs(5));
        assert!(
            h.window(&sample(1, Counts::default()), Duration::from_secs(60))
                .is_none()
        );
        h.push(sample(0, Counts::default()));
        h.push(sample(5, n_requests(20, 0)));
        let now = sample(8, n_requests(32, 2));
        let w = h.window(&now, Duration::from_secs(60)).unwrap();
        assert!(close(w.seconds, 8.0));
        assert_eq!((w.requests, w.errors), (32, 2));
        assert!(close(w.request_rate, 4.0));
        // Without traffic: rates 0, no ratio, no quantiles.
        let idle = h.window(&sample(5, n_requests(20, 0)), Duration::from_secs(0));
        let idle = idle.unwrap();
        assert_eq!(
            (idle.requests, idle.error_ratio, idle.p95_s),
            (0, None, None)
        );
    }

    #[test]
    fn counter_resets_do_not_underflow() {
        let w = WindowFigures::between(&sample(0, n_requests(10, 5)), &sample(5, n_requests(3, 0)));
        assert_eq!((w.requests, w.errors), (0, 0));
    }

    #[test]
    fn series_has_one_point_per_interval_and_a_live_one() {
        let mut h = History::new(Duration::from_secs(60), Duration::from_secs(5));
        h.push(sample(0, Counts::default()));
        h.push(sample(5, n_requests(50, 5)));
        h.push(sample(10, n_requests(50, 5)));
        let points = h.series(&sample(10, n_requests(50, 5)));
        assert_eq!(
            points.len(),
            2,
            "no live point less than a second after the last sample"
        );
        assert!(close(points[0].request_rate, 10.0));
        assert!(close(points[0].error_rate, 1.0));
        assert!(points[0].p95_s.is_some());
        assert!(close(points[1].request_rate, 0.0));
        assert_eq!(points[1].p95_s, None);
        let points = h.series(&sample(12, n_requests(60, 5)));
        assert_eq!(points.len(), 3);
        assert!(close(points[2].request_rate, 5.0));
        assert!(close(points[2].at_s, 12.0));
    }

    #[test]
    fn slo_judgement_and_error_budget() {
        let o = Objectives::default();
        // 1000 requests, 4 failed: 99.6 % >= 99.5 %, 4 of 5 allowed failures used.
        let mut c = counts_with(&[(0.02, 940), (0.6, 60)]);
        c.errors = 4;
        let w = WindowFigures::between(
            &sample(0, Counts::default()),
            &Sample {
                at: Duration::from_secs(300),
                counts: c,
            },
        );
        let s = o.judge(&w);
        assert_eq!(s.availability.met, Some(true));
        assert!(close(s.availability.actual.unwrap(), 0.996));
        assert!(close(s.availability.budget_used.unwrap(), 0.8));
        // 60 of 1000 slower than 500 ms: p95 lies in (0.5, 0.75], missed; 60 of 50 allowed.
        assert_eq!(s.latency.met, Some(false));
        let p95 = s.latency.actual.unwrap();
        assert!(p95 > 0.5 && p95 <= 0.75, "{p95}");
        assert!(close(s.latency.budget_used.unwrap(), 1.2));
        assert!(close(s.window_s, 300.0));

        // Over budget on availability.
        let mut c = counts_with(&[(0.02, 100)]);
        c.errors = 2;
        let w = WindowFigures::between(
            &sample(0, Counts::default()),
            &Sample {
                at: Duration::from_secs(60),
                counts: c,
            },
        );
        let s = o.judge(&w);
        assert_eq!(s.availability.met, Some(false));
        assert!(close(s.availability.budget_used.unwrap(), 4.0));
        assert_eq!(s.latency.met, Some(true));
        assert!(close(s.latency.budget_used.unwrap(), 0.0));

        // No traffic: nothing to judge.
        let w = WindowFigures::between(
            &sample(0, Counts::default()),
            &sample(60, Counts::default()),
        );
        let s = o.judge(&w);
        assert_eq!(
            (
                s.availability.met,
                s.latency.met,
                s.availability.budget_used
            ),
            (None, None, None)
        );
    }
}
