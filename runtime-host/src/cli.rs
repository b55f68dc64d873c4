//! Command-line interface: every clap type. Flag names are a public interface: scripts and the
//! README use them. Only the app layer ([`crate::app`]) reads these types; it turns them into
//! each part's own settings.

use crate::admin::dashboard::auth::AdminToken;
use crate::serving::outbound::Pattern;
use crate::serving::rate_limit::{self, KeySource, Rate};
use anyhow::{Context, Result, bail};
use clap::{Args as ClapArgs, Parser, Subcommand, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;
use telemetry::recent;
use telemetry::slo::defaults as slo_defaults;
use telemetry::window::Objectives;

/// Serve WASI 0.3 HTTP components locally: the edge observability middleware in front of an app
/// component (chained the way Spin 4.1 does it) or in front of an upstream HTTP origin, with
/// probe endpoints and Prometheus metrics on a separate admin address.
///
/// With no arguments it serves the embedded middleware in front of the embedded demo app.
#[derive(Parser, Debug, Clone)]
#[command(name = "runtime-host", version, about, long_about = None)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    /// A mode other than serving (`collect`, `compose`, `slo-rules`).
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Address to serve HTTP on. Port 0 picks a free port (the start-up line shows it).
    #[arg(long, default_value = "127.0.0.1:3000")]
    pub addr: SocketAddr,

    /// Address for /livez, /readyz, /healthz, /startupz and /metrics. Port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9464", global = true)]
    pub admin_addr: SocketAddr,

    /// A middleware component (`wasi:http/middleware@0.3.0`). Repeat for a chain, outermost
    /// first. Default: the embedded edge observability middleware.
    #[arg(long = "middleware", value_name = "PATH")]
    pub middleware: Vec<PathBuf>,

    /// Serve the app alone, without any middleware (the benchmarks' baseline).
    #[arg(long, conflicts_with = "middleware")]
    pub no_middleware: bool,

    /// The app observes itself with the edge observability library (library mode, e.g.
    /// `examples/library-app`): its metric event lines feed /metrics as a middleware's do.
    /// Without it an app's metric event lines are printed and never counted (an app cannot
    /// count requests that did not happen). Only with --no-middleware, which would otherwise
    /// count every request twice.
    #[arg(long, requires = "no_middleware")]
    pub library_mode: bool,

    /// The app component (exports `wasi:http/handler@0.3.0`). Default: the embedded demo app.
    #[arg(long, value_name = "PATH", conflicts_with = "upstream")]
    pub app: Option<PathBuf>,

    /// Put the middleware chain in front of this HTTP origin instead of an app component,
    /// e.g. `http://127.0.0.1:8080`. Requests keep their path and query.
    #[arg(long, value_name = "URL")]
    pub upstream: Option<String>,

    /// An environment variable for the components, e.g. `EDGE_OBS_ROUTES=/users/{id}`.
    /// Repeatable; wins over --env-file.
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub env: Vec<(String, String)>,

    /// A file of `KEY=VALUE` lines for the components' environment (`#` starts a comment).
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// Stop with an error when the middleware's settings are invalid, instead of reporting
    /// them and serving with defaults.
    #[arg(long)]
    pub strict_config: bool,

    /// Wall-clock limit for one request until its response headers; a guest still running
    /// after it is interrupted and the client gets 504.
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Largest linear memory one component instance may grow to, e.g. `128MiB`.
    #[arg(long, default_value = "128MiB", value_parser = parse_size)]
    pub max_memory: u64,

    /// Requests served at once; beyond it clients get 503 with Retry-After at once instead
    /// of waiting in an unbounded queue.
    #[arg(long, default_value_t = 512)]
    pub max_concurrent_requests: usize,

    /// Connections served at once on --addr; beyond it new connections wait in the listen
    /// backlog until one closes. Lowered at start to leave file descriptors for the admin
    /// address, the components and the upstream when the process limit is lower.
    #[arg(long, default_value_t = 10_000)]
    pub max_connections: usize,

    /// Largest request header section accepted, e.g. `64KiB`; larger requests get 431.
    #[arg(long, default_value = "64KiB", value_parser = parse_size)]
    pub max_header_bytes: u64,

    /// Largest request body accepted, e.g. `16MiB`; larger bodies get 413.
    #[arg(long, default_value = "16MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// How long in-flight requests may run after SIGTERM/SIGINT before the process exits.
    #[arg(long, default_value = "30s", value_parser = parse_duration, global = true)]
    pub shutdown_grace: Duration,

    /// After SIGTERM/SIGINT, how long to keep accepting connections while `/readyz` already
    /// answers 503, so load balancers and Kubernetes endpoints stop sending traffic before
    /// the listener closes (set it to a few probe periods). The grace period follows it.
    #[arg(long, default_value = "0s", value_parser = parse_duration)]
    pub shutdown_delay: Duration,

    /// Requests one component instance serves before it is replaced.
    #[arg(long, default_value_t = 128)]
    pub max_instance_reuse: usize,

    /// Requests one component instance serves at the same time (WASI 0.3 allows several).
    #[arg(long, default_value_t = 16)]
    pub max_instance_concurrency: usize,

    /// How the chain is put together: `composed` into one component with wac-graph (as Spin
    /// does), or `linked`: separate instances in one store, wired by the host.
    #[arg(long, value_enum, default_value_t = ChainMode::Composed)]
    pub chain: ChainMode,

    /// Exit at start-up when the upstream origin is not reachable, instead of serving with
    /// `/readyz` at 503 until it is.
    #[arg(long, requires = "upstream")]
    pub require_upstream: bool,

    /// A host the components' own outgoing requests may reach (an app's calls, the
    /// middleware's OTLP export), in Spin's `allowed_outbound_hosts` syntax:
    /// `http://127.0.0.1:4318`, `https://*.example.com`, `*://*:*` for any. Repeatable or
    /// comma-separated; with none, guests may call nothing (as under Spin). Upstream mode's
    /// origin needs no entry.
    #[arg(long, value_name = "PATTERN", value_delimiter = ',', value_parser = parse_outbound_pattern)]
    pub allowed_outbound_hosts: Vec<Pattern>,

    /// Connect timeout for the upstream origin.
    #[arg(long, default_value = "5s", value_parser = parse_duration)]
    pub upstream_connect_timeout: Duration,

    /// Also print the middleware's metric event lines (they always feed /metrics).
    #[arg(long)]
    pub print_metric_events: bool,

    /// Also print the middleware's span event lines (they feed OTLP export when it is on).
    #[arg(long)]
    pub print_span_events: bool,

    /// OTLP/HTTP base URL to export spans, metrics and log records to (`/v1/traces`, ... are
    /// appended); per-signal URLs and every other `OTEL_*` setting are read from the
    /// environment (README, "OpenTelemetry export").
    #[arg(long, env = "OTEL_EXPORTER_OTLP_ENDPOINT", global = true)]
    pub otlp_endpoint: Option<String>,

    /// `service.name` of the exported telemetry (default: from `OTEL_RESOURCE_ATTRIBUTES`, else
    /// `unknown_service`).
    #[arg(long, env = "OTEL_SERVICE_NAME", global = true)]
    pub otel_service_name: Option<String>,

    /// Format of the host's own log lines on stderr.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,

    /// Host log filter (tracing `EnvFilter` syntax), e.g. `info` or `runtime_host=debug`.
    #[arg(long, default_value = "info", env = "RUNTIME_HOST_LOG", global = true)]
    pub log: String,

    /// Directory for compiled components, so later starts skip compilation.
    /// Default: `$XDG_CACHE_HOME/runtime-host` or `~/.cache/runtime-host`.
    #[arg(long, value_name = "DIR")]
    pub cache_dir: Option<PathBuf>,

    /// Write a perf map (`/tmp/perf-<pid>.map`) so `perf record` can name guest functions.
    #[arg(long)]
    pub perfmap: bool,

    /// Do not read or write the compilation cache.
    #[arg(long)]
    pub no_cache: bool,

    /// Rate limit per key, e.g. `100/s` or `6000/min` (GCRA). Off unless set; over it,
    /// clients get 429 with Retry-After and RateLimit / RateLimit-Policy.
    #[arg(long, value_name = "RATE", value_parser = rate_limit::parse_rate)]
    pub rate_limit: Option<Rate>,

    /// Requests a key may send at once above the steady rate. Default: the rate's count.
    #[arg(long, value_name = "N", requires = "rate_limit")]
    pub rate_limit_burst: Option<std::num::NonZeroU32>,

    /// What the rate limit is counted per: `client-address` (the TCP peer, or what
    /// EDGE_OBS_TRUSTED_PROXY_HOPS trusted proxies give), `header:NAME` or `global`.
    #[arg(long, value_name = "KEY", default_value = "client-address", value_parser = rate_limit::parse_key_source)]
    pub rate_limit_key: KeySource,

    /// Most keys the rate limiter tracks; beyond it new keys share one bucket (counted in
    /// runtime_host_rate_limit_key_overflow_total). Idle keys are evicted every 10 s.
    #[arg(long, value_name = "N", default_value_t = rate_limit::DEFAULT_MAX_KEYS)]
    pub rate_limit_max_keys: usize,
    /// Require this token for every admin path except the probes (/livez, /readyz, /healthz,
    /// /startupz): `Authorization: Bearer TOKEN`, or `/?token=TOKEN` to open the page.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "RUNTIME_HOST_ADMIN_TOKEN",
        hide_env_values = true
    )]
    pub admin_token: Option<String>,

    /// A DNS name the admin address answers to (repeatable or comma-separated), besides IP
    /// addresses and `localhost`: other names get 403 on every path but the probes, so a web
    /// page cannot read the admin address through a name of its own (DNS rebinding).
    #[arg(long, value_name = "NAME", value_delimiter = ',', global = true)]
    pub admin_host: Vec<String>,

    /// Do not serve the live page (/) and its data (/api/v1/stats) on the admin address.
    #[arg(long)]
    pub no_admin_page: bool,

    /// Access-log lines the admin page keeps for its request list; 0 keeps none.
    #[arg(long, default_value_t = recent::DEFAULT_CAPACITY, value_name = "N")]
    pub recent_requests: usize,

    /// Availability objective of the admin page's SLO panel, in percent of requests that
    /// must not fail (5xx or no answer).
    #[arg(long, default_value_t = Objectives::DEFAULT_AVAILABILITY_PERCENT, value_name = "PERCENT")]
    pub slo_availability: f64,

    /// Latency objective of the admin page's SLO panel: p95 must stay under this.
    #[arg(long, default_value_t = DurationArg(Objectives::DEFAULT.latency), value_name = "DURATION")]
    pub slo_latency: DurationArg,
}

/// How a middleware chain is instantiated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ChainMode {
    /// One component, composed with wac-graph (Spin's way).
    Composed,
    /// One instance per component in the same store; the host wires the handler imports.
    Linked,
}

/// Format of the host's own log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

impl Args {
    /// The environment handed to the components: the env file first, then `--env` flags.
    pub fn component_env(&self) -> Result<Vec<(String, String)>> {
        let mut vars = Vec::new();
        if let Some(path) = &self.env_file {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("reading env file {}", path.display()))?;
            for (n, line) in text.lines().enumerate() {
                let line = line.trim();
                if line.is_empty() || line.starts_with('#') {
                    continue;
                }
                let pair = parse_key_value(line)
                    .map_err(anyhow::Error::msg)
                    .with_context(|| format!("{}:{}", path.display(), n + 1))?;
                vars.push(pair);
            }
        }
        vars.extend(self.env.iter().cloned());
        // Later entries win, as with a shell's environment.
        let mut deduped: Vec<(String, String)> = Vec::with_capacity(vars.len());
        for (key, value) in vars {
            match deduped.iter_mut().find(|(k, _)| *k == key) {
                Some(entry) => entry.1 = value,
                None => deduped.push((key, value)),
            }
        }
        Ok(deduped)
    }

    /// Checks combinations clap cannot express.
    pub fn validate(&self) -> Result<()> {
        if !(1..=MAX_CONCURRENT_REQUESTS).contains(&self.max_concurrent_requests) {
            bail!("--max-concurrent-requests must be between 1 and {MAX_CONCURRENT_REQUESTS}");
        }
        if !(1..=MAX_CONNECTIONS).contains(&self.max_connections) {
            bail!("--max-connections must be between 1 and {MAX_CONNECTIONS}");
        }
        if self.max_instance_reuse == 0 {
            bail!("--max-instance-reuse must be at least 1");
        }
        if !(1..=MAX_INSTANCE_CONCURRENCY).contains(&self.max_instance_concurrency) {
            bail!("--max-instance-concurrency must be between 1 and {MAX_INSTANCE_CONCURRENCY}");
        }
        if self.max_memory > MAX_MEMORY {
            bail!("--max-memory is at most 4GiB (a 32-bit linear memory)");
        }
        if self.request_timeout.is_zero() {
            bail!("--request-timeout must be greater than zero");
        }
        if !(self.slo_availability > 0.0 && self.slo_availability < 100.0) {
            bail!("--slo-availability must be a percentage above 0 and below 100, e.g. 99.5");
        }
        if self.slo_latency.0.is_zero() {
            bail!("--slo-latency must be greater than zero");
        }
        if self.recent_requests > 10_000 {
            bail!("--recent-requests is at most 10000");
        }
        if let Some(token) = &self.admin_token {
            AdminToken::new(token).map_err(|reason| anyhow::anyhow!("--admin-token: {reason}"))?;
        }
        Ok(())
    }
}

/// A mode to run instead of serving.
#[derive(Subcommand, Debug, Clone)]
pub enum Command {
    /// Follow the log files Spin writes (`.spin/logs/<component>_stdout.txt`) and serve the
    /// same /metrics, probes and OTLP export as serving mode, from the middleware's lines in
    /// them. Rotation and truncation are handled.
    Collect(CollectArgs),
    /// Compose the middleware chain and an app into one component (the same wac-graph
    /// composition runtime-host serves), for `wasmtime serve`, wasmCloud or jco.
    Compose(ComposeArgs),
    /// Write the Prometheus SLO rules (recording rules, burn-rate and host alerts) and their
    /// `promtool test rules` unit tests.
    SloRules(SloRulesArgs),
}

/// Arguments of `runtime-host collect` (the admin address, grace period, OTLP and log flags
/// are the serving mode's, given before or after `collect`).
#[derive(ClapArgs, Debug, Clone)]
pub struct CollectArgs {
    /// The files to follow.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,

    /// Read the files from their start (default: only what is appended from now on, so past
    /// runs are not counted again).
    #[arg(long)]
    pub from_start: bool,

    /// How often the files are checked for new lines.
    #[arg(long, default_value_t = DurationArg(Duration::from_millis(250)))]
    pub poll_interval: DurationArg,
}

/// Arguments of `runtime-host compose`.
#[derive(ClapArgs, Debug, Clone)]
pub struct ComposeArgs {
    /// Where to write the composed component.
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,

    /// A middleware component; repeat for a chain, outermost first. Default: the embedded
    /// edge observability middleware.
    #[arg(long = "middleware", value_name = "PATH")]
    pub middleware: Vec<PathBuf>,

    /// The app component. Default: the embedded demo app.
    #[arg(long, value_name = "PATH")]
    pub app: Option<PathBuf>,
}

/// Arguments of `runtime-host slo-rules`; defaults are the service-level plan
/// (`telemetry::slo::defaults`).
#[derive(ClapArgs, Debug, Clone)]
pub struct SloRulesArgs {
    /// Directory to write `slo-rules.yml` and its unit tests (`slo-rules.test*.yml`) into.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,

    /// Availability objective: share of requests without a 5xx or error_type.
    #[arg(long, default_value_t = slo_defaults::AVAILABILITY_OBJECTIVE)]
    pub availability_objective: f64,

    /// Latency objective: share of requests within --latency-threshold.
    #[arg(long, default_value_t = slo_defaults::LATENCY_OBJECTIVE)]
    pub latency_objective: f64,

    /// Latency threshold in seconds; a bucket bound of http_server_request_duration_seconds.
    #[arg(long, default_value_t = slo_defaults::LATENCY_THRESHOLD)]
    pub latency_threshold: f64,

    /// Label matchers selecting the service's series (without braces).
    #[arg(long, default_value = slo_defaults::SELECTOR)]
    pub selector: String,

    /// Prefix of the alerts' runbook_url annotations (where docs/runbooks is browsable).
    #[arg(long, default_value = slo_defaults::RUNBOOK_BASE_URL)]
    pub runbook_base_url: String,

    /// Fast page tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = slo_defaults::PAGE_FAST)]
    pub page_fast: String,

    /// Slow page tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = slo_defaults::PAGE_SLOW)]
    pub page_slow: String,

    /// Ticket tier: LONG,SHORT,FACTOR,FOR.
    #[arg(long, default_value = slo_defaults::TICKET)]
    pub ticket: String,

    /// Window of the traps, timeouts and overload alerts.
    #[arg(long, default_value = slo_defaults::HOST_WINDOW)]
    pub host_window: String,

    /// `for:` of the timeouts and overload alerts.
    #[arg(long, default_value = slo_defaults::HOST_FOR)]
    pub host_for: String,

    /// Share of requests that may time out before a ticket.
    #[arg(long, default_value_t = slo_defaults::TIMEOUT_RATIO)]
    pub timeout_ratio: f64,

    /// Share of requests that may be rejected for overload before a page.
    #[arg(long, default_value_t = slo_defaults::OVERLOAD_RATIO)]
    pub overload_ratio: f64,

    /// How long scrapes may fail before a page.
    #[arg(long, default_value = slo_defaults::DOWN_FOR)]
    pub down_for: String,

    /// Write only the rule file (the unit tests need default-like windows).
    #[arg(long)]
    pub no_tests: bool,
}

/// A duration flag whose default comes from a constant elsewhere: clap shows the default in
/// `--help` through [`fmt::Display`] (`250ms`, `30s`), and parses with [`parse_duration`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DurationArg(pub Duration);

impl fmt::Display for DurationArg {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.subsec_nanos() == 0 {
            write!(f, "{}s", self.0.as_secs())
        } else {
            write!(f, "{}ms", self.0.as_secs_f64() * 1e3)
        }
    }
}

impl FromStr for DurationArg {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse_duration(s).map(DurationArg)
    }
}

fn parse_outbound_pattern(s: &str) -> Result<Pattern, String> {
    Pattern::parse(s.trim()).map_err(|e| e.to_string())
}

fn parse_key_value(s: &str) -> Result<(String, String), String> {
    let (key, value) = s
        .split_once('=')
        .ok_or_else(|| format!("`{s}` is not KEY=VALUE"))?;
    let key = key.trim();
    if key.is_empty() || key.contains(char::is_whitespace) {
        return Err(format!("`{key}` is not a valid variable name"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// The longest duration any flag takes. Every deadline is computed as `now + duration`,
/// which must not overflow, and nothing the host waits for is meant to last longer.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The most requests served at once, and the most one instance serves at once: bounds that
/// keep the pool's sizing arithmetic (and the memory it reserves) finite.
pub const MAX_CONCURRENT_REQUESTS: usize = 100_000;
/// See [`MAX_CONCURRENT_REQUESTS`].
pub const MAX_INSTANCE_CONCURRENCY: usize = 1024;
/// The largest `--max-connections`.
pub const MAX_CONNECTIONS: usize = 1_000_000;
/// The largest `--max-memory`: a 32-bit linear memory's 4 GiB.
pub const MAX_MEMORY: u64 = 4 << 30;

/// Parses `250ms`, `30s`, `2m` or a bare number of seconds, at most [`MAX_DURATION`].
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let (number, unit) = split_unit(s);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 250ms, 30s or 2m"))?;
    let seconds = match unit {
        "" | "s" => value,
        "ms" => value / 1e3,
        "us" => value / 1e6,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("`{s}`: unknown unit `{unit}` (use ms, s, m or h)")),
    };
    match Duration::try_from_secs_f64(seconds) {
        Ok(d) if d <= MAX_DURATION => Ok(d),
        _ => Err(format!("`{s}` is out of range (0 to 24h)")),
    }
}

/// Parses `512`, `64KiB`, `16MiB`, `1GiB` (also `KB`/`MB`/`GB`, taken as powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (number, unit) = split_unit(s);
    let value: u64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a size like 512, 64KiB or 16MiB"))?;
    let factor: u64 = match unit.to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" | "kib" => 1 << 10,
        "m" | "mb" | "mib" => 1 << 20,
        "g" | "gb" | "gib" => 1 << 30,
        _ => {
            return Err(format!(
                "`{s}`: unknown unit `{unit}` (use KiB, MiB or GiB)"
            ));
        }
    };
    value
        .checked_mul(factor)
        .ok_or_else(|| format!("`{s}` is too large"))
}

fn split_unit(s: &str) -> (&str, &str) {
    let at = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    (&s[..at], s[at..].trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("250ms").unwrap(), Duration::from_millis(250));
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("2").unwrap(), Duration::from_secs(2));
        assert_eq!(parse_duration("1m").unwrap(), Duration::from_secs(60));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("5 parsecs").is_err());
        // Beyond a day every deadline would be meaningless, and far beyond it `now + d`
        // overflows: refused when parsed, not a panic per request.
        assert_eq!(parse_duration("24h").unwrap(), MAX_DURATION);
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("10000000000000000000s").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64KiB").unwrap(), 64 * 1024);
        assert_eq!(parse_size("16MiB").unwrap(), 16 << 20);
        assert_eq!(parse_size("512").unwrap(), 512);
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999GiB").is_err());
    }

    #[test]
    fn duration_args_print_what_they_parse() {
        for text in ["250ms", "30s", "500ms", "1.5ms"] {
            let d: DurationArg = text.parse().unwrap();
            assert_eq!(d.to_string(), text);
        }
        let args = Args::try_parse_from(["runtime-host"]).unwrap();
        assert_eq!(args.slo_latency.0, Objectives::DEFAULT.latency);
        assert_eq!(
            args.slo_availability / 100.0,
            Objectives::DEFAULT.availability
        );
    }

    #[test]
    fn key_values() {
        assert_eq!(
            parse_key_value("A=b=c").unwrap(),
            ("A".to_owned(), "b=c".to_owned())
        );
        assert!(parse_key_value("novalue").is_err());
        assert!(parse_key_value("=x").is_err());
    }

    #[test]
    fn env_flags_override_env_file() {
        let dir = std::env::temp_dir().join(format!("rh-env-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("vars.env");
        std::fs::write(&file, "# comment\nA=1\nB=2\n\n").unwrap();
        let args = Args::try_parse_from([
            "runtime-host",
            "--env-file",
            file.to_str().unwrap(),
            "--env",
            "B=3",
        ])
        .unwrap();
        assert_eq!(
            args.component_env().unwrap(),
            vec![("A".into(), "1".into()), ("B".into(), "3".into())]
        );
        std::fs::write(&file, "not a pair\n").unwrap();
        let err = args.component_env().unwrap_err();
        assert!(format!("{err:#}").contains("vars.env:1"), "{err:#}");
    }
}
