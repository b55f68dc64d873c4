//! Prometheus rules for the service-level objectives, generated from parameters (the plan's
//! values are the defaults): recording rules for the SLIs, multi-window multi-burn-rate alerts
//! (Google SRE workbook, chapter 5), alerts on the host's own signals, and `promtool test
//! rules` unit tests that show each alert firing at a burn it must catch and staying silent
//! just under its threshold.
//!
//! `runtime-host slo-rules --out deploy/prometheus` writes the files; metric names and the
//! latency bucket come from the core crate (`edge_observability::metrics`), so the rules cannot drift from what the host
//! exports.
//!
//! The SLIs:
//! - availability: the share of requests without a 5xx status and without `error_type`
//!   (`http_server_requests_total`);
//! - latency: the share of requests answered within the threshold, from the
//!   `http_server_request_duration_seconds` bucket whose `le` is the threshold.

use anyhow::{Context, Result, bail, ensure};
use edge_observability::metrics::DURATION_BUCKETS;
use std::fmt::Write as _;

/// Name of the rule file [`render_rules`] produces.
pub const RULES_FILE: &str = "slo-rules.yml";
/// Name of the main unit test file [`render_tests`] produces (the finest sample interval).
pub const TESTS_FILE: &str = "slo-rules.test.yml";

/// A Prometheus duration (`30s`, `5m`, `1h`, `3d`), kept in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct PromDuration(pub u64);

impl PromDuration {
    /// Parses one number and one unit out of `s`, `m`, `h`, `d`.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        let at = text
            .find(|c: char| !c.is_ascii_digit())
            .with_context(|| format!("`{text}` has no unit (s, m, h or d)"))?;
        let value: u64 = text[..at]
            .parse()
            .with_context(|| format!("`{text}` is not a duration like 30s, 5m, 1h or 3d"))?;
        let unit = match &text[at..] {
            "s" => 1,
            "m" => 60,
            "h" => 3600,
            "d" => 86_400,
            other => bail!("`{text}`: unknown unit `{other}` (use s, m, h or d)"),
        };
        Ok(Self(value * unit))
    }

    /// Like [`Self::parse`], for windows: zero is refused.
    pub fn parse_window(text: &str) -> Result<Self> {
        let window = Self::parse(text)?;
        ensure!(window.0 > 0, "window `{text}` must be greater than zero");
        Ok(window)
    }

    /// Seconds.
    pub fn seconds(self) -> u64 {
        self.0
    }
}

impl std::fmt::Display for PromDuration {
    /// The largest unit that divides the duration: `3d`, `90m`, `20s`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = self.0;
        if s == 0 {
            return f.write_str("0s");
        }
        for (unit, size) in [("d", 86_400), ("h", 3600), ("m", 60)] {
            if s.is_multiple_of(size) {
                return write!(f, "{}{unit}", s / size);
            }
        }
        write!(f, "{s}s")
    }
}

/// Who gets told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    /// Wake someone up.
    Page,
    /// Handle during working hours.
    Ticket,
}

impl Severity {
    fn label(self) -> &'static str {
        match self {
            Severity::Page => "page",
            Severity::Ticket => "ticket",
        }
    }
}

/// One burn-rate alert tier: fires when the error ratio over both windows exceeds
/// `factor` times the error budget.
#[derive(Clone, Debug)]
pub struct BurnTier {
    /// Part of the alert name: `FastBurn`, `SlowBurn`, `BudgetBurn`.
    pub name: &'static str,
    /// The long window (how much budget is spent).
    pub long: PromDuration,
    /// The short window (is it still burning?).
    pub short: PromDuration,
    /// Burn-rate factor: 1 spends the budget exactly over the SLO period.
    pub factor: f64,
    /// How long the condition must hold.
    pub hold: PromDuration,
    /// Page or ticket.
    pub severity: Severity,
}

impl BurnTier {
    /// Parses `LONG,SHORT,FACTOR,FOR`, e.g. `1h,5m,14.4,2m`.
    pub fn parse(name: &'static str, severity: Severity, text: &str) -> Result<Self> {
        let parts: Vec<&str> = text.split(',').map(str::trim).collect();
        let [long, short, factor, hold] = parts[..] else {
            bail!("`{text}` is not LONG,SHORT,FACTOR,FOR (e.g. 1h,5m,14.4,2m)");
        };
        let factor: f64 = factor
            .parse()
            .with_context(|| format!("`{factor}` is not a burn-rate factor"))?;
        ensure!(
            factor.is_finite() && factor > 0.0,
            "burn-rate factor `{factor}` must be positive"
        );
        let tier = Self {
            name,
            long: PromDuration::parse_window(long)?,
            short: PromDuration::parse_window(short)?,
            factor,
            hold: PromDuration::parse(hold)?,
            severity,
        };
        ensure!(
            tier.short < tier.long,
            "`{text}`: the short window must be shorter than the long one"
        );
        Ok(tier)
    }
}

/// Every parameter of the generated rules. [`SloConfig::default`] is the service-level plan.
#[derive(Clone, Debug)]
pub struct SloConfig {
    /// Availability objective, e.g. 0.995.
    pub availability_objective: f64,
    /// Latency objective: the share of requests within [`Self::latency_threshold`], e.g. 0.95
    /// (p95 under the threshold).
    pub latency_objective: f64,
    /// Latency threshold in seconds; must be a bucket bound of the duration histogram.
    pub latency_threshold: f64,
    /// Label matchers that select this service's series, e.g. `job="runtime-host"`.
    pub selector: String,
    /// Prefix of every `runbook_url`; the runbook file name is appended.
    pub runbook_base_url: String,
    /// Burn-rate tiers, each applied to both SLIs.
    pub tiers: Vec<BurnTier>,
    /// Window and `for:` of the alerts on the host's own counters.
    pub host_window: PromDuration,
    /// `for:` of the traps/timeouts/overload alerts.
    pub host_hold: PromDuration,
    /// Share of requests that may time out before a ticket.
    pub timeout_ratio: f64,
    /// Share of requests that may be rejected for overload before a page.
    pub overload_ratio: f64,
    /// How long the scrape may fail before a page.
    pub down_hold: PromDuration,
}

/// The service-level plan: the defaults of [`SloConfig`], in the text forms the command line
/// takes, so `runtime-host slo-rules` and [`SloConfig::default`] cannot disagree.
pub mod defaults {
    /// Availability objective.
    pub const AVAILABILITY_OBJECTIVE: f64 = 0.995;
    /// Latency objective.
    pub const LATENCY_OBJECTIVE: f64 = 0.95;
    /// Latency threshold, seconds.
    pub const LATENCY_THRESHOLD: f64 = 0.5;
    /// Series selector.
    pub const SELECTOR: &str = r#"job="runtime-host""#;
    /// Runbook URL prefix.
    pub const RUNBOOK_BASE_URL: &str = "docs/runbooks";
    /// Fast page tier: LONG,SHORT,FACTOR,FOR.
    pub const PAGE_FAST: &str = "1h,5m,14.4,2m";
    /// Slow page tier.
    pub const PAGE_SLOW: &str = "6h,30m,6,15m";
    /// Ticket tier.
    pub const TICKET: &str = "3d,6h,1,1h";
    /// Window of the host alerts.
    pub const HOST_WINDOW: &str = "10m";
    /// `for:` of the host alerts.
    pub const HOST_FOR: &str = "5m";
    /// Share of requests that may time out.
    pub const TIMEOUT_RATIO: f64 = 0.01;
    /// Share of requests that may be rejected for overload.
    pub const OVERLOAD_RATIO: f64 = 0.01;
    /// How long scrapes may fail.
    pub const DOWN_FOR: &str = "2m";
}

impl SloConfig {
    /// The fast, slow and ticket tiers from their text forms (`LONG,SHORT,FACTOR,FOR`).
    pub fn tiers(page_fast: &str, page_slow: &str, ticket: &str) -> Result<Vec<BurnTier>> {
        Ok(vec![
            BurnTier::parse("FastBurn", Severity::Page, page_fast).context("--page-fast")?,
            BurnTier::parse("SlowBurn", Severity::Page, page_slow).context("--page-slow")?,
            BurnTier::parse("BudgetBurn", Severity::Ticket, ticket).context("--ticket")?,
        ])
    }
}

impl Default for SloConfig {
    fn default() -> Self {
        let d = |s| PromDuration::parse(s).expect("valid default");
        Self {
            availability_objective: defaults::AVAILABILITY_OBJECTIVE,
            latency_objective: defaults::LATENCY_OBJECTIVE,
            latency_threshold: defaults::LATENCY_THRESHOLD,
            selector: defaults::SELECTOR.to_owned(),
            runbook_base_url: defaults::RUNBOOK_BASE_URL.to_owned(),
            tiers: SloConfig::tiers(defaults::PAGE_FAST, defaults::PAGE_SLOW, defaults::TICKET)
                .expect("valid default tiers"),
            host_window: PromDuration::parse_window(defaults::HOST_WINDOW).expect("valid default"),
            host_hold: d(defaults::HOST_FOR),
            timeout_ratio: defaults::TIMEOUT_RATIO,
            overload_ratio: defaults::OVERLOAD_RATIO,
            down_hold: d(defaults::DOWN_FOR),
        }
    }
}

/// The two SLIs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sli {
    /// Requests without a 5xx or `error_type`.
    Availability,
    /// Requests within the latency threshold.
    Latency,
}

impl Sli {
    const ALL: [Sli; 2] = [Sli::Availability, Sli::Latency];

    fn label(self) -> &'static str {
        match self {
            Sli::Availability => "availability",
            Sli::Latency => "latency",
        }
    }

    fn title(self) -> &'static str {
        match self {
            Sli::Availability => "Availability",
            Sli::Latency => "Latency",
        }
    }

    /// The recording rule holding this SLI's error ratio over `window`.
    fn record(self, window: PromDuration) -> String {
        match self {
            Sli::Availability => format!("job:slo_availability_errors:ratio_rate{window}"),
            Sli::Latency => format!("job:slo_latency_slow:ratio_rate{window}"),
        }
    }
}

/// An alert the rules define: its name, severity and runbook file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AlertInfo {
    /// `alertname`.
    pub name: String,
    /// `severity` label.
    pub severity: &'static str,
    /// Runbook file name under `docs/runbooks/`.
    pub runbook: String,
}

/// Host alert names, their severities and what they watch; shared by the rules and the tests.
const HOST_ALERTS: [(&str, Severity); 5] = [
    ("RuntimeHostGuestTraps", Severity::Ticket),
    ("RuntimeHostRequestTimeouts", Severity::Ticket),
    ("RuntimeHostOverloaded", Severity::Page),
    ("RuntimeHostDown", Severity::Page),
    ("RuntimeHostOtlpDropping", Severity::Ticket),
];

impl SloConfig {
    /// Checks the parameters against each other and against what the host exports.
    pub fn validate(&self) -> Result<()> {
        for (name, objective) in [
            ("availability", self.availability_objective),
            ("latency", self.latency_objective),
        ] {
            ensure!(
                objective > 0.0 && objective < 1.0,
                "the {name} objective must be between 0 and 1 (exclusive), got {objective}"
            );
        }
        ensure!(
            DURATION_BUCKETS.contains(&self.latency_threshold),
            "the latency threshold {} s is not a bucket bound of http_server_request_duration_seconds ({DURATION_BUCKETS:?})",
            self.latency_threshold
        );
        for (name, ratio) in [
            ("timeout", self.timeout_ratio),
            ("overload", self.overload_ratio),
        ] {
            ensure!(
                ratio > 0.0 && ratio < 1.0,
                "the {name} ratio must be between 0 and 1 (exclusive), got {ratio}"
            );
        }
        ensure!(!self.tiers.is_empty(), "at least one burn-rate tier");
        for sli in Sli::ALL {
            for tier in &self.tiers {
                ensure!(
                    tier.factor * self.budget(sli) < 1.0,
                    "{}: a burn-rate factor of {} times a budget of {} needs more than 100 % bad requests; it can never fire",
                    slo_alert_name(sli, tier),
                    num(tier.factor),
                    num(self.budget(sli))
                );
            }
        }
        ensure!(
            !self.selector.contains(['{', '}']),
            "the selector is matchers without braces, e.g. job=\"runtime-host\""
        );
        Ok(())
    }

    /// Every alert, in rule order.
    pub fn alerts(&self) -> Vec<AlertInfo> {
        let mut out = Vec::new();
        for sli in Sli::ALL {
            for tier in &self.tiers {
                out.push(AlertInfo {
                    name: slo_alert_name(sli, tier),
                    severity: tier.severity.label(),
                    runbook: format!("{}.md", kebab(&slo_alert_name(sli, tier))),
                });
            }
        }
        for (name, severity) in HOST_ALERTS {
            out.push(AlertInfo {
                name: name.to_owned(),
                severity: severity.label(),
                runbook: format!("{}.md", kebab(name)),
            });
        }
        out
    }

    fn budget(&self, sli: Sli) -> f64 {
        match sli {
            Sli::Availability => 1.0 - self.availability_objective,
            Sli::Latency => 1.0 - self.latency_objective,
        }
    }

    fn objective(&self, sli: Sli) -> f64 {
        match sli {
            Sli::Availability => self.availability_objective,
            Sli::Latency => self.latency_objective,
        }
    }

    /// The SLO windows the alerts need, shortest first.
    fn windows(&self) -> Vec<PromDuration> {
        let mut windows: Vec<PromDuration> =
            self.tiers.iter().flat_map(|t| [t.long, t.short]).collect();
        windows.sort();
        windows.dedup();
        windows
    }

    /// `{a, b}` from the selector and extra matchers.
    fn matchers(&self, extra: &[&str]) -> String {
        let parts: Vec<&str> = std::iter::once(self.selector.trim())
            .chain(extra.iter().copied())
            .filter(|m| !m.is_empty())
            .collect();
        format!("{{{}}}", parts.join(", "))
    }

    fn runbook_url(&self, alert: &str) -> String {
        format!(
            "{}/{}.md",
            self.runbook_base_url.trim_end_matches('/'),
            kebab(alert)
        )
    }

    /// The error-ratio expression of `sli` over `window`, per job.
    fn sli_error_ratio(&self, sli: Sli, window: PromDuration) -> String {
        match sli {
            // `or` keeps each series once: failed series (error_type set, or a 5xx) with
            // their rate, the rest at 0, so the ratio is 0 (not absent) without errors.
            Sli::Availability => {
                let all = self.matchers(&[]);
                let typed = self.matchers(&[r#"error_type!="""#]);
                let five = self.matchers(&[r#"http_response_status_code=~"5..""#]);
                format!(
                    "sum by (job) (\n  rate(http_server_requests_total{typed}[{window}])\n  or rate(http_server_requests_total{five}[{window}])\n  or 0 * rate(http_server_requests_total{all}[{window}])\n)\n/\nsum by (job) (rate(http_server_requests_total{all}[{window}]))\n"
                )
            }
            Sli::Latency => {
                let le = format!(r#"le="{:?}""#, self.latency_threshold);
                let fast = self.matchers(&[&le]);
                let all = self.matchers(&[]);
                format!(
                    "1 - (\n  sum by (job) (rate(http_server_request_duration_seconds_bucket{fast}[{window}]))\n  /\n  sum by (job) (rate(http_server_request_duration_seconds_count{all}[{window}]))\n)\n"
                )
            }
        }
    }
}

fn slo_alert_name(sli: Sli, tier: &BurnTier) -> String {
    format!("EdgeObs{}{}", sli.title(), tier.name)
}

/// `EdgeObsAvailabilityFastBurn` -> `edge-obs-availability-fast-burn`.
fn kebab(name: &str) -> String {
    let mut out = String::new();
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('-');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

/// A YAML double-quoted scalar (JSON string syntax is valid YAML).
fn quote(text: &str) -> String {
    serde_json::to_string(text).expect("strings serialize")
}

/// Appends `text` as a YAML literal block at `indent` spaces.
fn block(out: &mut String, indent: usize, text: &str) {
    for line in text.lines() {
        let _ = writeln!(out, "{:indent$}{line}", "");
    }
}

/// Formats a ratio without float noise (0.07200000000000001 -> 0.072).
fn num(x: f64) -> String {
    let rounded = format!("{x:.10}");
    let trimmed = rounded.trim_end_matches('0').trim_end_matches('.');
    if trimmed.is_empty() {
        "0".to_owned()
    } else {
        trimmed.to_owned()
    }
}

fn percent(x: f64) -> String {
    format!("{}%", num(x * 100.0))
}

struct Alert {
    name: String,
    expr: String,
    hold: PromDuration,
    labels: Vec<(&'static str, String)>,
    summary: String,
    description: String,
}

impl SloConfig {
    fn slo_alerts(&self) -> Vec<Alert> {
        let mut out = Vec::new();
        for sli in Sli::ALL {
            for tier in &self.tiers {
                let threshold = num(tier.factor * self.budget(sli));
                let name = slo_alert_name(sli, tier);
                let expr = format!(
                    "{long} > {threshold}\nand\n{short} > {threshold}\n",
                    long = sli.record(tier.long),
                    short = sli.record(tier.short),
                );
                let what = match sli {
                    Sli::Availability => "requests failing (5xx or error_type)".to_owned(),
                    Sli::Latency => {
                        format!("requests slower than {} s", num(self.latency_threshold))
                    }
                };
                out.push(Alert {
                    name,
                    expr,
                    hold: tier.hold,
                    labels: vec![
                        ("severity", tier.severity.label().to_owned()),
                        ("slo", sli.label().to_owned()),
                    ],
                    summary: format!(
                        "{{{{ $labels.job }}}}: {} error budget burning at {}x or more",
                        sli.label(),
                        num(tier.factor)
                    ),
                    description: format!(
                        "The share of {what} exceeds {threshold} ({}x the budget of the {} objective) over both {} and {}.",
                        num(tier.factor),
                        percent(self.objective(sli)),
                        tier.long,
                        tier.short,
                    ),
                });
            }
        }
        out
    }

    fn host_alerts(&self) -> Vec<Alert> {
        let w = self.host_window;
        let all = self.matchers(&[]);
        let overload = self.matchers(&[r#"reason="overload""#]);
        let requests =
            format!("sum by (job, instance) (rate(http_server_requests_total{all}[{w}]))");
        let severity = |name: &str| {
            let (_, s) = HOST_ALERTS
                .iter()
                .find(|(n, _)| *n == name)
                .expect("a host alert");
            s.label().to_owned()
        };
        let alert = |name: &str, expr: String, hold, summary: &str, description: String| Alert {
            name: name.to_owned(),
            expr,
            hold,
            labels: vec![("severity", severity(name))],
            summary: summary.to_owned(),
            description,
        };
        vec![
            alert(
                "RuntimeHostGuestTraps",
                format!(
                    "sum by (job, instance) (increase(runtime_host_guest_traps_total{all}[{w}])) > 0\n"
                ),
                PromDuration(0),
                "{{ $labels.instance }}: guest components trapped",
                format!(
                    "A guest component trapped at least once in the last {w}; each trap is a 500 answered by the host and a bug in a component."
                ),
            ),
            alert(
                "RuntimeHostRequestTimeouts",
                format!(
                    "sum by (job, instance) (rate(runtime_host_request_timeouts_total{all}[{w}]))\n/\n{requests}\n> {}\n",
                    num(self.timeout_ratio)
                ),
                self.host_hold,
                "{{ $labels.instance }}: requests hit the request timeout",
                format!(
                    "More than {} of requests over {w} were aborted by --request-timeout (504).",
                    percent(self.timeout_ratio)
                ),
            ),
            alert(
                "RuntimeHostOverloaded",
                format!(
                    "sum by (job, instance) (rate(runtime_host_rejected_requests_total{overload}[{w}]))\n/\n{requests}\n> {}\n",
                    num(self.overload_ratio)
                ),
                self.host_hold,
                "{{ $labels.instance }}: rejecting requests for overload",
                format!(
                    "More than {} of requests over {w} were turned away with 503 because --max-concurrent-requests was reached.",
                    percent(self.overload_ratio)
                ),
            ),
            alert(
                "RuntimeHostDown",
                format!("up{all} == 0\n"),
                self.down_hold,
                "{{ $labels.instance }}: /metrics cannot be scraped",
                format!(
                    "Prometheus could not scrape the admin address for {}; the SLO alerts are blind for this instance.",
                    self.down_hold
                ),
            ),
            // Per signal: traces, metrics and logs fail separately (a backend that takes
            // traces only, a full span queue).
            alert(
                "RuntimeHostOtlpDropping",
                format!(
                    "sum by (job, instance, signal) (increase(runtime_host_otlp_dropped_total{all}[{w}])) > 0\n"
                ),
                self.host_hold,
                "{{ $labels.instance }}: OTLP export is dropping telemetry",
                format!(
                    "Spans, metrics or log records were dropped for at least {} (queue full, or the backend failed or refused every retry); traces and logs in the backend have gaps. Serving is not affected.",
                    self.host_hold
                ),
            ),
        ]
    }
}

/// Renders the rule file.
pub fn render_rules(config: &SloConfig) -> Result<String> {
    config.validate()?;
    let mut out = String::new();
    out.push_str("# Generated by `runtime-host slo-rules`; edit the parameters, not this file.\n");
    let _ = writeln!(
        out,
        "# Objectives: availability {}, latency {} of requests within {} s. Selector: {}.",
        percent(config.availability_objective),
        percent(config.latency_objective),
        num(config.latency_threshold),
        config.matchers(&[])
    );
    out.push_str("groups:\n");
    // Each SLI's recording rules and the alerts reading them share a group: rules in a group
    // run in order, so an alert sees this evaluation's ratios, not the previous one's (groups
    // run in no fixed order).
    let slo_alerts = config.slo_alerts();
    for sli in Sli::ALL {
        let _ = writeln!(out, "  - name: edge-obs-slo-{}", sli.label());
        out.push_str("    rules:\n");
        for window in config.windows() {
            let _ = writeln!(out, "      - record: {}", sli.record(window));
            out.push_str("        expr: |\n");
            block(&mut out, 10, &config.sli_error_ratio(sli, window));
        }
        for alert in slo_alerts.iter().filter(|a| {
            a.labels
                .iter()
                .any(|(k, v)| *k == "slo" && v == sli.label())
        }) {
            render_alert(&mut out, config, alert);
        }
    }
    out.push_str("  - name: runtime-host\n    rules:\n");
    for alert in &config.host_alerts() {
        render_alert(&mut out, config, alert);
    }
    Ok(out)
}

fn render_alert(out: &mut String, config: &SloConfig, alert: &Alert) {
    let _ = writeln!(out, "      - alert: {}", alert.name);
    out.push_str("        expr: |\n");
    block(out, 10, &alert.expr);
    let _ = writeln!(out, "        for: {}", alert.hold);
    out.push_str("        labels:\n");
    for (k, v) in &alert.labels {
        let _ = writeln!(out, "          {k}: {}", quote(v));
    }
    out.push_str("        annotations:\n");
    let _ = writeln!(out, "          summary: {}", quote(&alert.summary));
    let _ = writeln!(out, "          description: {}", quote(&alert.description));
    let _ = writeln!(
        out,
        "          runbook_url: {}",
        quote(&config.runbook_url(&alert.name))
    );
}

/// Series values for `promtool test rules`: a counter that grows by each `(increment, steps)`
/// in turn, starting at 0.
fn counter(segments: &[(f64, u64)]) -> String {
    let mut out = String::from("0");
    let mut value = 0.0;
    for &(inc, steps) in segments {
        if steps == 0 {
            continue;
        }
        let start = value + inc;
        let _ = write!(out, " {}+{}x{}", num(start), num(inc), steps - 1);
        value += inc * steps as f64;
    }
    out
}

/// One `promtool test rules` case.
struct Case {
    comment: String,
    /// Seconds between samples of the input series.
    interval: u64,
    series: Vec<(String, String)>,
    eval_time: u64,
    alert: String,
    /// Expected labels besides alertname, or `None` for "must not fire".
    fires: Option<Vec<(String, String)>>,
    annotations: Vec<(String, String)>,
    /// An extra PromQL check at the same time: (expr, labels, value).
    check: Option<(String, String, f64)>,
}

const JOB: &str = "runtime-host";
const INSTANCE: &str = "10.0.0.1:9464";

impl SloConfig {
    /// The job label the unit tests use: taken from the selector when it names one.
    fn test_job(&self) -> Result<String> {
        let selector = self.selector.trim();
        if selector.is_empty() {
            return Ok(JOB.to_owned());
        }
        for matcher in selector.split(',') {
            if let Some(value) = matcher.trim().strip_prefix("job=\"") {
                return Ok(value.trim_end_matches('"').to_owned());
            }
        }
        bail!("unit tests are generated for selectors of the form job=\"NAME\" only")
    }

    fn annotations_for(&self, alert: &Alert, job: &str) -> Vec<(String, String)> {
        let render = |s: &str| {
            s.replace("{{ $labels.job }}", job)
                .replace("{{ $labels.instance }}", INSTANCE)
        };
        vec![
            ("description".into(), render(&alert.description)),
            ("runbook_url".into(), self.runbook_url(&alert.name)),
            ("summary".into(), render(&alert.summary)),
        ]
    }

    /// The sample interval of the unit tests: a fifth of the shortest window, at least 1 s.
    fn interval(&self) -> u64 {
        let shortest = self
            .windows()
            .into_iter()
            .chain([self.host_window])
            .min()
            .expect("windows");
        (shortest.seconds() / 5).max(1)
    }

    fn slo_cases(&self, job: &str) -> Vec<Case> {
        let per_step = 600.0; // requests per sample interval
        let alerts = self.slo_alerts();
        let mut cases = Vec::new();
        let mut alert_index = 0;
        for sli in Sli::ALL {
            for tier in &self.tiers {
                let alert = &alerts[alert_index];
                alert_index += 1;
                // Six samples per short window keep the multi-day cases cheap for promtool
                // (a 3d window at one sample a minute takes it minutes).
                let step = (tier.short.seconds() / 6).max(self.interval());
                let threshold = tier.factor * self.budget(sli);
                let steps_for = |d: PromDuration| d.seconds().div_ceil(step);
                let burn_steps = steps_for(tier.long) + steps_for(tier.hold) + 3;
                let series = |segments: &[(f64, u64)]| -> Vec<(String, String)> {
                    // segments: (bad share, steps)
                    let bad: Vec<(f64, u64)> =
                        segments.iter().map(|&(r, n)| (r * per_step, n)).collect();
                    let good: Vec<(f64, u64)> = segments
                        .iter()
                        .map(|&(r, n)| ((1.0 - r) * per_step, n))
                        .collect();
                    let total: Vec<(f64, u64)> =
                        segments.iter().map(|&(_, n)| (per_step, n)).collect();
                    let base = format!(r#"job="{job}", instance="{INSTANCE}""#);
                    match sli {
                        Sli::Availability => vec![
                            (
                                format!(
                                    r#"http_server_requests_total{{{base}, http_request_method="GET", http_route="/users/{{id}}", http_response_status_code="200", url_scheme="http"}}"#
                                ),
                                counter(&good),
                            ),
                            (
                                format!(
                                    r#"http_server_requests_total{{{base}, http_request_method="GET", http_route="/users/{{id}}", http_response_status_code="503", url_scheme="http", error_type="503"}}"#
                                ),
                                counter(&bad),
                            ),
                        ],
                        Sli::Latency => vec![
                            (
                                format!(
                                    r#"http_server_request_duration_seconds_bucket{{{base}, http_route="/users/{{id}}", le="{:?}"}}"#,
                                    self.latency_threshold
                                ),
                                counter(&good),
                            ),
                            (
                                format!(
                                    r#"http_server_request_duration_seconds_count{{{base}, http_route="/users/{{id}}"}}"#
                                ),
                                counter(&total),
                            ),
                        ],
                    }
                };
                let fired_labels = vec![
                    ("job".to_owned(), job.to_owned()),
                    ("severity".to_owned(), tier.severity.label().to_owned()),
                    ("slo".to_owned(), sli.label().to_owned()),
                ];
                let annotations = self.annotations_for(alert, job);
                let eval = burn_steps * step;
                // Just above and just under the threshold; a share cannot exceed 1.
                let above = (threshold * 1.1).min((threshold + 1.0) / 2.0);
                let high = (threshold * 3.0).min(1.0);
                let budget = self.budget(sli);
                cases.push(Case {
                    comment: format!(
                        "{}: a bad share of {} is {}x the budget over every window: fires",
                        alert.name,
                        num(above),
                        num(above / budget)
                    ),
                    series: series(&[(above, burn_steps + 1)]),
                    interval: step,
                    eval_time: eval,
                    alert: alert.name.clone(),
                    fires: Some(fired_labels.clone()),
                    annotations: annotations.clone(),
                    check: None,
                });
                cases.push(Case {
                    comment: format!(
                        "{}: a bad share of {} is {}x the budget, just under the threshold: silent",
                        alert.name,
                        num(threshold * 0.9),
                        num(tier.factor * 0.9)
                    ),
                    series: series(&[(threshold * 0.9, burn_steps + 1)]),
                    interval: step,
                    eval_time: eval,
                    alert: alert.name.clone(),
                    fires: None,
                    annotations: Vec::new(),
                    check: None,
                });
                // The burn stopped: the long window still shows it, the short one does not.
                let recovery = steps_for(tier.short) + 2;
                let burn = steps_for(tier.long) + steps_for(tier.hold) + 3;
                cases.push(Case {
                    comment: format!(
                        "{}: a {}x burn that stopped {} ago: the long window still exceeds the threshold, the short one does not: silent",
                        alert.name,
                        num(high / budget),
                        PromDuration(recovery * step)
                    ),
                    series: series(&[(high, burn), (0.0, recovery + 1)]),
                    interval: step,
            eval_time: (burn + recovery) * step,
                    alert: alert.name.clone(),
                    fires: None,
                    annotations: Vec::new(),
                    check: Some((
                        format!("{} > bool {}", sli.record(tier.long), num(threshold)),
                        format!(r#"{{job="{job}"}}"#),
                        1.0,
                    )),
                });
            }
        }
        cases
    }

    fn host_cases(&self, job: &str) -> Vec<Case> {
        let step = self.interval();
        let alerts = self.host_alerts();
        let find = |name: &str| alerts.iter().find(|a| a.name == name).expect("host alert");
        let base = format!(r#"job="{job}", instance="{INSTANCE}""#);
        let per_step = 600.0;
        let window_steps = self.host_window.seconds().div_ceil(step);
        let labels = |name: &str| {
            vec![
                ("instance".to_owned(), INSTANCE.to_owned()),
                ("job".to_owned(), job.to_owned()),
                ("severity".to_owned(), find(name).labels[0].1.clone()),
            ]
        };
        let mut cases = Vec::new();

        let traps = find("RuntimeHostGuestTraps");
        let steps = 2 * window_steps;
        cases.push(Case {
            comment: "RuntimeHostGuestTraps: one trap: fires".into(),
            series: vec![(
                format!("runtime_host_guest_traps_total{{{base}}}"),
                counter(&[(0.0, window_steps), (1.0, 1), (0.0, steps - window_steps)]),
            )],
            interval: step,
            eval_time: (window_steps + 3) * step,
            alert: traps.name.clone(),
            fires: Some(labels(&traps.name)),
            annotations: self.annotations_for(traps, job),
            check: None,
        });
        cases.push(Case {
            comment: "RuntimeHostGuestTraps: no trap: silent".into(),
            series: vec![(
                format!("runtime_host_guest_traps_total{{{base}}}"),
                counter(&[(0.0, steps)]),
            )],
            interval: step,
            eval_time: (window_steps + 3) * step,
            alert: traps.name.clone(),
            fires: None,
            annotations: Vec::new(),
            check: None,
        });

        let hold_steps = self.host_hold.seconds().div_ceil(step);
        let steps = window_steps + hold_steps + 3;
        let requests = format!(
            r#"http_server_requests_total{{{base}, http_request_method="GET", http_route="/users/{{id}}", http_response_status_code="200", url_scheme="http"}}"#
        );
        for (name, metric, ratio) in [
            (
                "RuntimeHostRequestTimeouts",
                format!("runtime_host_request_timeouts_total{{{base}}}"),
                self.timeout_ratio,
            ),
            (
                "RuntimeHostOverloaded",
                format!(r#"runtime_host_rejected_requests_total{{{base}, reason="overload"}}"#),
                self.overload_ratio,
            ),
        ] {
            let alert = find(name);
            for (factor, fires) in [(1.1, true), (0.9, false)] {
                let mut series = vec![
                    (requests.clone(), counter(&[(per_step, steps + 1)])),
                    (
                        metric.clone(),
                        counter(&[(per_step * ratio * factor, steps + 1)]),
                    ),
                ];
                if name == "RuntimeHostOverloaded" && !fires {
                    // Rejections for other reasons are not overload.
                    series.push((
                        format!(
                            r#"runtime_host_rejected_requests_total{{{base}, reason="draining"}}"#
                        ),
                        counter(&[(per_step, steps + 1)]),
                    ));
                }
                cases.push(Case {
                    comment: format!(
                        "{name}: {} of requests: {}",
                        percent(ratio * factor),
                        if fires {
                            "fires"
                        } else {
                            "just under the threshold: silent"
                        }
                    ),
                    series,
                    interval: step,
                    eval_time: steps * step,
                    alert: alert.name.clone(),
                    fires: fires.then(|| labels(name)),
                    annotations: if fires {
                        self.annotations_for(alert, job)
                    } else {
                        Vec::new()
                    },
                    check: None,
                });
            }
        }

        let otlp = find("RuntimeHostOtlpDropping");
        let steps = window_steps + hold_steps + 3;
        let dropped = format!(r#"runtime_host_otlp_dropped_total{{{base}, signal="traces"}}"#);
        let exported = format!(r#"runtime_host_otlp_exported_total{{{base}, signal="traces"}}"#);
        for (drops, fires) in [(10.0, true), (0.0, false)] {
            let mut fired = labels("RuntimeHostOtlpDropping");
            fired.insert(1, ("signal".to_owned(), "traces".to_owned()));
            cases.push(Case {
                comment: format!(
                    "RuntimeHostOtlpDropping: {}",
                    if fires {
                        "spans dropped steadily: fires"
                    } else {
                        "everything exported: silent"
                    }
                ),
                series: vec![
                    (dropped.clone(), counter(&[(drops, steps + 1)])),
                    (exported.clone(), counter(&[(per_step, steps + 1)])),
                ],
                interval: step,
                eval_time: steps * step,
                alert: otlp.name.clone(),
                fires: fires.then_some(fired),
                annotations: if fires {
                    self.annotations_for(otlp, job)
                } else {
                    Vec::new()
                },
                check: None,
            });
        }

        let down = find("RuntimeHostDown");
        let hold_steps = self.down_hold.seconds().div_ceil(step);
        let up = format!("up{{{base}}}");
        for (down_steps, fires) in [
            (hold_steps + 2, true),
            (hold_steps.saturating_sub(1), false),
        ] {
            let up_steps = 5;
            let mut values = vec!["1"; up_steps as usize + 1];
            values.extend(std::iter::repeat_n("0", down_steps as usize));
            cases.push(Case {
                comment: format!(
                    "RuntimeHostDown: scrape failing for {}: {}",
                    PromDuration(down_steps * step),
                    if fires {
                        "fires"
                    } else {
                        "shorter than for:, silent"
                    }
                ),
                series: vec![(up.clone(), values.join(" "))],
                interval: step,
                eval_time: (up_steps + down_steps) * step,
                alert: down.name.clone(),
                fires: fires.then(|| labels("RuntimeHostDown")),
                annotations: if fires {
                    self.annotations_for(down, job)
                } else {
                    Vec::new()
                },
                check: None,
            });
        }
        cases
    }
}

/// The name of the unit test file whose cases sample every `interval`: [`TESTS_FILE`] for the
/// finest interval, `slo-rules.test-<interval>.yml` for the others.
fn tests_file(interval: u64, finest: u64) -> String {
    if interval == finest {
        TESTS_FILE.to_owned()
    } else {
        format!("slo-rules.test-{}.yml", PromDuration(interval))
    }
}

/// Renders the `promtool test rules` files for the rule file of the same parameters, as
/// `(file name, content)`. promtool evaluates the rules once per evaluation interval over a
/// whole file's time range, so the multi-day cases get a file with a coarser interval (at one
/// evaluation a minute over three days they take minutes).
pub fn render_tests(config: &SloConfig) -> Result<Vec<(String, String)>> {
    config.validate()?;
    let job = config.test_job()?;
    let finest = config.interval();
    let cases: Vec<Case> = config
        .slo_cases(&job)
        .into_iter()
        .chain(config.host_cases(&job))
        .collect();
    let mut intervals: Vec<u64> = cases.iter().map(|c| c.interval).collect();
    intervals.sort_unstable();
    intervals.dedup();
    let mut files = Vec::new();
    for interval in intervals {
        let name = tests_file(interval, finest);
        let mut out = String::new();
        let _ = writeln!(
            out,
            "# Generated by `runtime-host slo-rules`: `promtool test rules {name}`.\n# Each alert fires at a burn it must catch and stays silent just under its threshold."
        );
        let _ = writeln!(out, "rule_files:\n  - {RULES_FILE}");
        let _ = writeln!(out, "evaluation_interval: {}", PromDuration(interval));
        out.push_str("tests:\n");
        for case in cases.iter().filter(|c| c.interval == interval) {
            render_case(&mut out, case);
        }
        files.push((name, out));
    }
    Ok(files)
}

fn render_case(out: &mut String, case: &Case) {
    let _ = writeln!(out, "  # {}", case.comment);
    let _ = writeln!(out, "  - interval: {}", PromDuration(case.interval));
    out.push_str("    input_series:\n");
    for (series, values) in &case.series {
        let _ = writeln!(out, "      - series: {}", quote(series));
        let _ = writeln!(out, "        values: {}", quote(values));
    }
    out.push_str("    alert_rule_test:\n");
    let _ = writeln!(out, "      - eval_time: {}", PromDuration(case.eval_time));
    let _ = writeln!(out, "        alertname: {}", case.alert);
    match &case.fires {
        None => out.push_str("        exp_alerts: []\n"),
        Some(labels) => {
            out.push_str("        exp_alerts:\n");
            out.push_str("          - exp_labels:\n");
            for (k, v) in labels {
                let _ = writeln!(out, "              {k}: {}", quote(v));
            }
            out.push_str("            exp_annotations:\n");
            for (k, v) in &case.annotations {
                let _ = writeln!(out, "              {k}: {}", quote(v));
            }
        }
    }
    if let Some((expr, labels, value)) = &case.check {
        out.push_str("    promql_expr_test:\n");
        let _ = writeln!(out, "      - expr: {}", quote(expr));
        let _ = writeln!(out, "        eval_time: {}", PromDuration(case.eval_time));
        out.push_str("        exp_samples:\n");
        let _ = writeln!(out, "          - labels: {}", quote(labels));
        let _ = writeln!(out, "            value: {}", num(*value));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_round_trip() {
        for text in ["30s", "5m", "1h", "3d", "90m", "20s"] {
            assert_eq!(PromDuration::parse(text).unwrap().to_string(), text);
        }
        assert_eq!(PromDuration::parse("60m").unwrap().to_string(), "1h");
        assert!(PromDuration::parse("5").is_err());
        assert!(PromDuration::parse("5w").is_err());
        assert!(PromDuration::parse_window("0m").is_err());
        assert_eq!(PromDuration::parse("0s").unwrap().to_string(), "0s");
    }

    #[test]
    fn tiers_parse_and_reject_mistakes() {
        let tier = BurnTier::parse("FastBurn", Severity::Page, "1h,5m,14.4,2m").unwrap();
        assert_eq!(tier.long.seconds(), 3600);
        assert_eq!(tier.factor, 14.4);
        let tier = BurnTier::parse("FastBurn", Severity::Page, "20s,4s,14.4,0s").unwrap();
        assert_eq!(tier.hold.seconds(), 0);
        assert!(BurnTier::parse("X", Severity::Page, "5m,1h,14.4,2m").is_err());
        assert!(BurnTier::parse("X", Severity::Page, "1h,5m,-1,2m").is_err());
        assert!(BurnTier::parse("X", Severity::Page, "1h,5m").is_err());
    }

    #[test]
    fn defaults_are_the_plan() {
        let rules = render_rules(&SloConfig::default()).unwrap();
        // 14.4 x 0.5 % budget, 6 x, 1 x; latency: 14.4 x 5 %.
        for threshold in ["> 0.072", "> 0.03", "> 0.005", "> 0.72", "> 0.3", "> 0.05"] {
            assert!(rules.contains(threshold), "{threshold}");
        }
        assert!(rules.contains(r#"le="0.5""#));
        for window in ["5m", "30m", "1h", "6h", "3d"] {
            assert!(rules.contains(&format!("ratio_rate{window}\n")), "{window}");
        }
    }

    #[test]
    fn rejects_thresholds_the_host_cannot_measure() {
        let config = SloConfig {
            latency_threshold: 0.3,
            ..SloConfig::default()
        };
        let err = render_rules(&config).unwrap_err();
        assert!(format!("{err:#}").contains("not a bucket bound"), "{err:#}");
        let config = SloConfig {
            availability_objective: 1.0,
            ..SloConfig::default()
        };
        assert!(render_rules(&config).is_err());
    }

    #[test]
    fn every_alert_has_a_runbook_name() {
        let alerts = SloConfig::default().alerts();
        assert_eq!(alerts.len(), 11);
        assert_eq!(alerts[0].runbook, "edge-obs-availability-fast-burn.md");
        assert!(alerts.iter().any(|a| a.runbook == "runtime-host-down.md"));
        assert!(
            alerts
                .iter()
                .any(|a| a.runbook == "runtime-host-otlp-dropping.md")
        );
    }

    #[test]
    fn counters_grow_by_segments() {
        assert_eq!(counter(&[(2.0, 3)]), "0 2+2x2");
        assert_eq!(counter(&[(2.0, 2), (0.0, 2)]), "0 2+2x1 4+0x1");
    }
}
