//! The live admin page (`GET /`) and its data (`GET /api/v1/stats`).
//!
//! Everything shown comes from the host itself: the chain and settings fixed at start-up,
//! readiness from [`Health`], RED figures from the running totals [`HostMetrics`] keeps next
//! to its Prometheus families (sampled every [`SAMPLE_INTERVAL`] into a short history, so
//! rates and quantiles over the last minute and five minutes are bucket deltas), host counters,
//! and the newest access-log lines the middleware wrote (already redacted). The JSON format is
//! documented in `docs/admin-api.md`.

pub mod auth;
pub mod page;
pub mod settings;

use crate::health::Health;
use serde::Serialize;
use settings::SettingsView;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};
use telemetry::metrics::{HostCounters, HostMetrics};
use telemetry::recent::{self, Entry, Filter, RecentRequests};
use telemetry::window::{
    self, History, Objectives, Point, STATUS_CLASSES, Sample, SloStatus, WindowFigures,
};

/// How often the running totals are sampled into the history.
pub const SAMPLE_INTERVAL: Duration = Duration::from_secs(5);

/// The windows reported, by name. The last one is the longest; the SLO is judged over it.
pub const WINDOWS: [(&str, Duration); 2] = [
    ("1m", Duration::from_secs(60)),
    ("5m", Duration::from_secs(300)),
];

/// Version of the JSON document; bumped on incompatible changes.
pub const SCHEMA: &str = "runtime-host.stats.v1";

/// Settings of the page.
#[derive(Clone, Debug, Default)]
pub struct DashboardConfig {
    /// Objectives the SLO panel judges.
    pub objectives: Objectives,
}

/// One component of the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ComponentInfo {
    /// `middleware` or `app`.
    pub role: &'static str,
    /// The file path, or `embedded`.
    pub source: String,
    /// A short name: the file name, or the embedded component's name.
    pub name: String,
    /// Size of the component binary.
    pub size_bytes: usize,
}

/// What the host serves.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ChainInfo {
    /// `composed` or `linked`.
    pub mode: &'static str,
    /// The components, outermost first.
    pub components: Vec<ComponentInfo>,
    /// The origin behind the chain in upstream mode (credentials in it masked).
    pub upstream: Option<String>,
}

impl ComponentInfo {
    /// Describes one component: `origin` is its file path, or `embedded NAME`.
    pub fn new(role: &'static str, origin: &str, size_bytes: usize) -> ComponentInfo {
        let (source, name) = match origin.strip_prefix("embedded ") {
            Some(name) => ("embedded".to_owned(), name.to_owned()),
            None => (
                origin.to_owned(),
                std::path::Path::new(origin)
                    .file_name()
                    .map_or_else(|| origin.to_owned(), |n| n.to_string_lossy().into_owned()),
            ),
        };
        ComponentInfo {
            role,
            source,
            name,
            size_bytes,
        }
    }
}

impl ChainInfo {
    /// Describes the chain being served: `mode` is `composed` or `linked`, `components` the
    /// middlewares and the app (outermost first), `upstream` the origin in upstream mode
    /// (credentials in it are masked here).
    pub fn new(
        mode: &'static str,
        components: Vec<ComponentInfo>,
        upstream: Option<String>,
    ) -> ChainInfo {
        ChainInfo {
            mode,
            components,
            upstream: upstream.map(|u| mask_userinfo(&u)),
        }
    }
}

/// `http://user:pw@host` becomes `http://[REDACTED]@host`.
fn mask_userinfo(url: &str) -> String {
    match url.split_once("://") {
        Some((scheme, rest)) => match rest.split_once('@') {
            Some((_, host)) => format!("{scheme}://{}@{host}", edge_observability::json::REDACTED),
            None => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

/// The host's limits, as configured.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Limits {
    /// Requests served at once before 503.
    pub max_concurrent_requests: usize,
    /// Deadline of one request, seconds.
    pub request_timeout_s: f64,
    /// Largest request body, bytes.
    pub max_body_bytes: u64,
    /// Largest request header section, bytes.
    pub max_header_bytes: u64,
    /// Largest linear memory of an instance, bytes.
    pub max_memory_bytes: u64,
    /// Requests one instance serves before it is replaced.
    pub max_instance_reuse: usize,
    /// Requests one instance serves at once.
    pub max_instance_concurrency: usize,
    /// Grace period of a shutdown, seconds.
    pub shutdown_grace_s: f64,
}

/// Logs a warning when the admin address is reachable from other machines without a token:
/// the page shows request paths, settings and metrics.
pub fn warn_if_exposed(admin_addr: std::net::SocketAddr, has_token: bool) {
    if !admin_addr.ip().is_loopback() && !has_token {
        tracing::warn!(
            %admin_addr,
            "the admin address is not loopback and has no --admin-token: anyone who can reach it sees the admin page and metrics"
        );
    }
}

/// State behind the page: fixed facts, the sample history and the recent access lines.
pub struct Dashboard {
    started: Instant,
    started_at: SystemTime,
    chain: ChainInfo,
    settings: SettingsView,
    limits: Limits,
    objectives: Objectives,
    health: Arc<Health>,
    metrics: Arc<HostMetrics>,
    history: Mutex<History>,
    recent: Option<Arc<RecentRequests>>,
    page: page::Page,
}

impl Dashboard {
    /// Creates the page's state and takes the first sample (all zero, or what was recorded so
    /// far), so windows are measured from the start. `env` is the components' environment,
    /// `recent` the ring of access lines the telemetry pipeline keeps, if any.
    pub fn new(
        config: &DashboardConfig,
        limits: Limits,
        env: &[(String, String)],
        chain: ChainInfo,
        health: Arc<Health>,
        metrics: Arc<HostMetrics>,
        recent: Option<Arc<RecentRequests>>,
    ) -> Arc<Dashboard> {
        let longest = WINDOWS[WINDOWS.len() - 1].1;
        let dashboard = Dashboard {
            started: Instant::now(),
            started_at: SystemTime::now(),
            chain,
            settings: SettingsView::new(env),
            limits,
            objectives: config.objectives,
            health,
            metrics,
            history: Mutex::new(History::new(longest, SAMPLE_INTERVAL)),
            recent,
            page: page::Page::new(),
        };
        dashboard.sample();
        Arc::new(dashboard)
    }

    /// The assembled page.
    pub fn page(&self) -> &page::Page {
        &self.page
    }

    fn now(&self) -> Sample {
        Sample {
            at: self.started.elapsed(),
            counts: self.metrics.red_totals(),
        }
    }

    /// Records the running totals into the history.
    pub fn sample(&self) {
        let now = self.now();
        self.history
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(now);
    }

    /// Samples every [`SAMPLE_INTERVAL`] until the task is dropped or aborted.
    pub async fn run_sampler(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SAMPLE_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        // The first tick fires at once; the first sample was taken at creation.
        tick.tick().await;
        loop {
            tick.tick().await;
            self.sample();
        }
    }

    /// The JSON document of `GET /api/v1/stats`, with the request list filtered by `query`
    /// (`status`, `route`, `id`, `limit`). An invalid filter is an error message for a 400.
    pub fn stats(&self, query: Option<&str>) -> Result<Stats<'_>, String> {
        let filter = Filter::from_query(query)?;
        let limit = recent::form_pairs(query.unwrap_or(""))
            .into_iter()
            .find(|(k, _)| k == "limit")
            .map(|(_, v)| {
                v.parse::<usize>()
                    .map_err(|_| format!("limit `{v}` is not a number"))
            })
            .transpose()?;
        let now = self.now();
        let (windows, series, slo) = {
            let history = self.history.lock().unwrap_or_else(PoisonError::into_inner);
            let windows: Vec<NamedWindow> = WINDOWS
                .iter()
                .filter_map(|(name, length)| {
                    history.window(&now, *length).map(|figures| NamedWindow {
                        name,
                        target_s: length.as_secs_f64(),
                        figures,
                    })
                })
                .collect();
            let slo = windows.last().map(|w| self.objectives.judge(&w.figures));
            (windows, history.series(&now), slo)
        };
        let checks: Vec<Check> = self
            .health
            .report()
            .into_iter()
            .map(|(name, ok)| Check { name, ok })
            .collect();
        let recent = match &self.recent {
            Some(ring) => RecentView {
                enabled: true,
                capacity: ring.capacity(),
                routes: ring.routes(),
                requests: ring.list(&filter, limit.unwrap_or(ring.capacity())),
            },
            None => RecentView {
                enabled: false,
                capacity: 0,
                routes: Vec::new(),
                requests: Vec::new(),
            },
        };
        let generated_at = SystemTime::now();
        Ok(Stats {
            schema: SCHEMA,
            generated_at: edge_observability::timestamp::rfc3339_millis(generated_at),
            host: HostInfo {
                version: env!("CARGO_PKG_VERSION"),
                started_at: edge_observability::timestamp::rfc3339_millis(self.started_at),
                uptime_s: now.at.as_secs_f64(),
            },
            chain: &self.chain,
            settings: &self.settings,
            readiness: Readiness {
                ready: checks.iter().all(|c| c.ok),
                checks,
            },
            traffic: Traffic {
                active_requests: self.metrics.active_requests_total(),
                total: Totals {
                    requests: now.counts.requests,
                    errors: now.counts.errors,
                    status_classes: window::ClassCounts(now.counts.classes),
                },
                sample_interval_s: SAMPLE_INTERVAL.as_secs_f64(),
                windows,
                series,
            },
            slo,
            host_counters: self.metrics.counters(),
            limits: &self.limits,
            recent,
        })
    }
}

/// The document of `GET /api/v1/stats` (see `docs/admin-api.md`).
#[derive(Serialize)]
pub struct Stats<'a> {
    schema: &'static str,
    generated_at: String,
    host: HostInfo,
    chain: &'a ChainInfo,
    settings: &'a SettingsView,
    readiness: Readiness,
    traffic: Traffic,
    slo: Option<SloStatus>,
    host_counters: HostCounters,
    limits: &'a Limits,
    recent: RecentView,
}

#[derive(Serialize)]
struct HostInfo {
    version: &'static str,
    started_at: String,
    uptime_s: f64,
}

#[derive(Serialize)]
struct Readiness {
    ready: bool,
    checks: Vec<Check>,
}

#[derive(Serialize)]
struct Check {
    name: String,
    ok: bool,
}

#[derive(Serialize)]
struct Traffic {
    active_requests: i64,
    total: Totals,
    sample_interval_s: f64,
    windows: Vec<NamedWindow>,
    series: Vec<Point>,
}

#[derive(Serialize)]
struct Totals {
    requests: u64,
    errors: u64,
    status_classes: window::ClassCounts,
}

#[derive(Serialize)]
struct NamedWindow {
    name: &'static str,
    target_s: f64,
    #[serde(flatten)]
    figures: WindowFigures,
}

#[derive(Serialize)]
struct RecentView {
    enabled: bool,
    capacity: usize,
    routes: Vec<String>,
    requests: Vec<Entry>,
}

// The class names are part of the JSON contract.
const _: () = assert!(STATUS_CLASSES.len() == 6);

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::metric_event::{EventFields, MetricEvent};

    #[test]
    fn chain_description() {
        let c = ChainInfo::new(
            "composed",
            vec![
                ComponentInfo::new("middleware", "embedded edge-observability middleware", 3),
                ComponentInfo::new("app", "target/x/my_app.wasm", 10),
            ],
            None,
        );
        assert_eq!(c.mode, "composed");
        assert_eq!(
            c.components,
            vec![
                ComponentInfo {
                    role: "middleware",
                    source: "embedded".into(),
                    name: "edge-observability middleware".into(),
                    size_bytes: 3,
                },
                ComponentInfo {
                    role: "app",
                    source: "target/x/my_app.wasm".into(),
                    name: "my_app.wasm".into(),
                    size_bytes: 10,
                },
            ]
        );
        let c = ChainInfo::new(
            "linked",
            vec![ComponentInfo::new(
                "middleware",
                "embedded edge-observability middleware",
                3,
            )],
            Some("http://me:pw@127.0.0.1:8080".into()),
        );
        assert_eq!(c.components.len(), 1);
        assert_eq!(
            c.upstream.as_deref(),
            Some("http://[REDACTED]@127.0.0.1:8080")
        );
        assert_eq!(mask_userinfo("http://h:1"), "http://h:1");
    }

    #[test]
    fn stats_document() {
        let metrics = Arc::new(HostMetrics::new("0.1.0", "48.0.8"));
        let health = Arc::new(Health::new(&["components"]));
        let ring = Arc::new(RecentRequests::new(recent::DEFAULT_CAPACITY));
        let d = Dashboard::new(
            &DashboardConfig::default(),
            Limits {
                max_concurrent_requests: 512,
                request_timeout_s: 30.0,
                max_body_bytes: 16 << 20,
                max_header_bytes: 64 << 10,
                max_memory_bytes: 128 << 20,
                max_instance_reuse: 128,
                max_instance_concurrency: 16,
                shutdown_grace_s: 30.0,
            },
            &[("EDGE_OBS_ROUTES".into(), "/users/{id}".into())],
            ChainInfo::new("composed", Vec::new(), None),
            health,
            metrics.clone(),
            Some(ring.clone()),
        );
        metrics.observe(&MetricEvent::new(EventFields {
            duration_s: 0.02,
            request_body_bytes: None,
            response_body_bytes: None,
            method: "GET".into(),
            route: None,
            status_code: Some(503),
            scheme: Some("http".into()),
            error_type: Some("503".into()),
            trace: None,
        }));
        ring.offer(b"{\"timestamp\":\"t\",\"level\":\"error\",\"event\":\"http.request\",\"request_id\":\"r1\",\"http.response.status_code\":503}\n");
        let v = serde_json::to_value(d.stats(None).unwrap()).unwrap();
        assert_eq!(v["schema"], SCHEMA);
        assert_eq!(v["traffic"]["total"]["requests"], 1);
        assert_eq!(v["traffic"]["total"]["status_classes"]["5xx"], 1);
        assert_eq!(v["traffic"]["windows"][0]["name"], "1m");
        assert_eq!(v["traffic"]["windows"][0]["errors"], 1);
        assert_eq!(v["slo"]["availability"]["met"], false);
        assert_eq!(v["readiness"]["ready"], false);
        assert_eq!(v["settings"]["settings"][0]["value"], "/users/{id}");
        assert_eq!(v["recent"]["requests"][0]["request_id"], "r1");
        assert_eq!(v["host_counters"]["rejected_requests"]["overload"], 0);
        let v = serde_json::to_value(d.stats(Some("status=2xx")).unwrap()).unwrap();
        assert_eq!(v["recent"]["requests"].as_array().unwrap().len(), 0);
        assert!(d.stats(Some("status=9xx")).is_err());
        assert!(d.stats(Some("limit=x")).is_err());
    }
}
