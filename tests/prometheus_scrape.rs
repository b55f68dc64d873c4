//! A real Prometheus server (Debian's `prometheus` package, installed by `scripts/test.sh`)
//! scrapes the host's `/metrics` on loopback; the expected series must arrive in its database,
//! and with exemplar storage on, the exemplars of sampled requests (and only those).

mod common;

use common::{Host, get, promtool_check};
use serde_json::Value;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A Prometheus server on loopback, killed when dropped.
struct Prometheus {
    child: Child,
    addr: std::net::SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second, with `flags` added.
    fn start(target: std::net::SocketAddr, flags: &[&str]) -> Prometheus {
        // Tests run in parallel threads of one process: each server gets its own directory.
        static SERVERS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = SERVERS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("prometheus-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: runtime-host\n    scrape_interval: 1s\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            probe.local_addr().unwrap()
        };
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
            .arg(format!("--web.listen-address={addr}"))
            .args(flags)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `prometheus` ({e}); run the tests with `bash scripts/test.sh`, which installs Debian's prometheus package")
            });
        Prometheus { child, addr, log }
    }

    /// Runs an instant query; `None` until Prometheus answers.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        self.api(&format!("/api/v1/query?query={}", url_encode(promql)))
    }

    /// The exemplars of the series `promql` selects, stored in the last hour.
    fn query_exemplars(&self, promql: &str) -> Option<Vec<Value>> {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.api(&format!(
            "/api/v1/query_exemplars?query={}&start={}&end={}",
            url_encode(promql),
            now - 3600,
            now + 3600
        ))
    }

    /// A GET of Prometheus' HTTP API: its `data`; `None` until Prometheus answers.
    fn api(&self, path: &str) -> Option<Vec<Value>> {
        std::net::TcpStream::connect(self.addr).ok()?;
        let response = get(self.addr, path, &[]);
        if response.status != 200 {
            return None;
        }
        let body = response.json();
        assert_eq!(body["status"], "success", "{body}");
        let data = &body["data"];
        // Queries answer {"result": [...]}, query_exemplars a list.
        let list = data.get("result").unwrap_or(data);
        Some(list.as_array().unwrap().clone())
    }

    /// Waits (at most 30 s) until `promql` returns a result that satisfies `pred`.
    fn wait_for(&self, promql: &str, pred: impl Fn(&[Value]) -> bool) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(result) = self.query(promql)
                && pred(&result)
            {
                return result;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus never returned the expected result for {promql}: {:?}\nits log:\n{}",
                self.query(promql),
                std::fs::read_to_string(&self.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }
}

fn url_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

#[test]
fn prometheus_scrapes_the_expected_series() {
    let host = Host::start(&["--env", "EDGE_OBS_ROUTES=/users/{id},/status/{code}"]);
    for i in 0..5 {
        assert_eq!(get(host.addr, &format!("/users/{i}"), &[]).status, 200);
    }
    assert_eq!(get(host.addr, "/status/503", &[]).status, 503);
    assert_eq!(get(host.addr, "/trap", &[]).status, 500);
    let metrics = host.wait_metrics("all 7 requests", |text| {
        common::metric_sum(text, "http_server_requests_total", &[]) == 7.0
    });
    promtool_check(&metrics);

    let prometheus = Prometheus::start(host.admin, &[]);
    let up = prometheus.wait_for("up{job=\"runtime-host\"}", |r| {
        r.len() == 1 && value(&r[0]) == 1.0
    });
    assert_eq!(up[0]["metric"]["instance"], host.admin.to_string());

    let requests = prometheus.wait_for("http_server_requests_total", |r| r.len() == 3);
    let find = |route: &str, status: &str| {
        requests
            .iter()
            .find(|s| {
                s["metric"]["http_route"].as_str().unwrap_or("") == route
                    && s["metric"]["http_response_status_code"] == status
            })
            .unwrap_or_else(|| panic!("no series for {route} {status}: {requests:?}"))
    };
    let users = find("/users/{id}", "200");
    assert_eq!(value(users), 5.0);
    assert_eq!(users["metric"]["http_request_method"], "GET");
    assert_eq!(users["metric"]["url_scheme"], "http");
    let failed = find("/status/{code}", "503");
    assert_eq!(failed["metric"]["error_type"], "503");
    let trapped = find("", "500");
    assert_eq!(trapped["metric"]["error_type"], "guest_trap");

    let buckets = prometheus.wait_for(
        "http_server_request_duration_seconds_bucket{http_route=\"/users/{id}\"}",
        |r| r.len() == 15,
    );
    assert!(
        buckets
            .iter()
            .any(|b| b["metric"]["le"] == "+Inf" && value(b) == 5.0)
    );
    for series in [
        "http_server_request_duration_seconds_count",
        "http_server_response_body_size_bytes_count",
        "http_server_active_requests",
        "runtime_host_guest_traps_total",
        "runtime_host_rejected_requests_total",
        "runtime_host_build_info",
    ] {
        prometheus.wait_for(series, |r| !r.is_empty());
    }
    let traps = prometheus.wait_for("runtime_host_guest_traps_total", |r| r.len() == 1);
    assert_eq!(value(&traps[0]), 1.0);
}

/// Trace ids of `exemplars` (a `query_exemplars` answer).
fn exemplar_trace_ids(exemplars: &[Value]) -> Vec<String> {
    exemplars
        .iter()
        .flat_map(|series| series["exemplars"].as_array().unwrap().iter())
        .map(|e| e["labels"]["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn prometheus_stores_exemplars_of_sampled_requests_only() {
    let host = Host::start(&["--env", "EDGE_OBS_ROUTES=/users/{id},/slow/{id}"]);
    let sampled: Vec<String> = (1..=3_u64).map(|i| format!("{i:032x}")).collect();
    let unsampled: Vec<String> = (1..=3)
        .map(|i| format!("{:032x}", 0xdead_0000_u64 + i))
        .collect();
    let request = |path: &str, trace_id: &str, flags: &str| {
        let traceparent = format!("00-{trace_id}-00f067aa0ba902b7-{flags}");
        let r = get(host.addr, path, &[("traceparent", &traceparent)]);
        assert_eq!(r.status, 200, "{r:?}");
    };
    // Each unsampled request comes after a sampled one in the same series and bucket: were it
    // recorded, it would be the latest exemplar there, and the one Prometheus stores.
    for (i, (yes, no)) in sampled.iter().zip(&unsampled).enumerate() {
        request(&format!("/users/{i}"), yes, "01");
        request(&format!("/users/{i}"), no, "00");
    }
    host.wait_metrics("all 6 requests", |text| {
        common::metric_sum(text, "http_server_requests_total", &[]) == 6.0
    });

    // What Prometheus negotiates: OpenMetrics with exemplars; old scrapers get the text format.
    let prometheus_accept = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
    let om = get(host.admin, "/metrics", &[("accept", prometheus_accept)]);
    assert_eq!(
        om.header("content-type").as_deref(),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    let om = om.text();
    assert!(om.ends_with("# EOF\n"), "{om}");
    let last = sampled.last().unwrap();
    assert!(
        om.lines().any(
            |l| l.starts_with("http_server_request_duration_seconds_bucket{")
                && l.contains(&format!(" # {{trace_id=\"{last}\",span_id=\""))
        ),
        "{om}"
    );
    for no in &unsampled {
        assert!(!om.contains(no.as_str()), "unsampled trace {no} in\n{om}");
    }
    let text = get(host.admin, "/metrics", &[]);
    assert_eq!(
        text.header("content-type").as_deref(),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    assert!(!text.text().contains("trace_id"), "{}", text.text());
    promtool_check(&text.text());

    let prometheus = Prometheus::start(host.admin, &["--enable-feature=exemplar-storage"]);
    // The scrape parsed (OpenMetrics, by Prometheus' own parser) and every request arrived.
    prometheus.wait_for("sum(http_server_requests_total)", |r| {
        r.len() == 1 && value(&r[0]) == 6.0
    });
    for metric in [
        "http_server_request_duration_seconds_bucket",
        "http_server_requests_total",
    ] {
        let deadline = Instant::now() + Duration::from_secs(30);
        let exemplars = loop {
            let found = prometheus.query_exemplars(metric).unwrap_or_default();
            if !exemplar_trace_ids(&found).is_empty() {
                break found;
            }
            assert!(
                Instant::now() < deadline,
                "Prometheus stored no exemplars for {metric}: {found:?}\nits log:\n{}",
                std::fs::read_to_string(&prometheus.log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        let ids = exemplar_trace_ids(&exemplars);
        for id in &ids {
            assert!(
                sampled.contains(id),
                "{metric}: exemplar of {id}, not a sampled trace: {exemplars:?}"
            );
        }
        // The latest sampled request is the counter's exemplar and its bucket's.
        assert!(
            ids.contains(last),
            "{metric}: no exemplar of {last}: {exemplars:?}"
        );
        for series in &exemplars {
            let labels = &series["seriesLabels"];
            assert_eq!(labels["http_route"], "/users/{id}", "{series}");
            for e in series["exemplars"].as_array().unwrap() {
                assert_eq!(
                    e["labels"]["span_id"].as_str().map(str::len),
                    Some(16),
                    "{e}"
                );
            }
        }
    }
}

/// The value of label `name` in the exemplar of an OpenMetrics sample line.
fn exemplar_label<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let (_, exemplar) = line.split_once(" # {")?;
    let start = exemplar.find(&format!("{name}=\""))? + name.len() + 2;
    let len = exemplar[start..].find('"')?;
    Some(&exemplar[start..start + len])
}

#[test]
fn prometheus_stores_exemplars_of_app_metrics_in_sampled_traces() {
    let host = Host::start(&[]);
    let sampled = "5a3ce929d0e0e47364bf92f3577b34da";
    let unsampled = "dead0000000000000000000000000001";
    let caller_span = "00f067aa0ba902b7";
    // The unsampled request comes last: had the app named its trace, that would be the
    // counter's exemplar.
    for (trace_id, flags) in [(sampled, "01"), (unsampled, "00")] {
        let traceparent = format!("00-{trace_id}-{caller_span}-{flags}");
        let r = get(host.addr, "/app-metric", &[("traceparent", &traceparent)]);
        assert_eq!((r.status, r.text().as_str()), (200, "counted\n"), "{r:?}");
    }
    host.wait_metrics("both app metric lines and requests", |text| {
        common::metric_sum(text, "app_demo_app_metric_requests_total", &[]) == 2.0
            && common::metric_sum(text, "http_server_requests_total", &[]) == 2.0
    });

    let prometheus_accept =
        "application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5";
    let om = get(host.admin, "/metrics", &[("accept", prometheus_accept)]).text();
    let app_line = om
        .lines()
        .find(|l| l.starts_with("app_demo_app_metric_requests_total{"))
        .unwrap_or_else(|| panic!("no app counter in\n{om}"));
    assert_eq!(exemplar_label(app_line, "trace_id"), Some(sampled), "{om}");
    assert!(!om.contains(unsampled), "unsampled trace in\n{om}");
    // The app got the middleware's traceparent: its ids are those of the middleware's server
    // span, the one the request's own exemplar names.
    let request_line = om
        .lines()
        .find(|l| l.starts_with("http_server_requests_total{") && l.contains(sampled))
        .unwrap_or_else(|| panic!("no request exemplar of {sampled} in\n{om}"));
    let server_span = exemplar_label(request_line, "span_id").unwrap();
    assert_ne!(server_span, caller_span);
    assert_eq!(
        exemplar_label(app_line, "span_id"),
        Some(server_span),
        "{om}"
    );
    // Old scrapers see the counter without it.
    let text = get(host.admin, "/metrics", &[]).text();
    assert!(!text.contains("trace_id"), "{text}");
    promtool_check(&text);

    let prometheus = Prometheus::start(host.admin, &["--enable-feature=exemplar-storage"]);
    prometheus.wait_for("app_demo_app_metric_requests_total", |r| {
        r.len() == 1 && value(&r[0]) == 2.0
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let exemplars = loop {
        let found = prometheus
            .query_exemplars("app_demo_app_metric_requests_total")
            .unwrap_or_default();
        if !exemplar_trace_ids(&found).is_empty() {
            break found;
        }
        assert!(
            Instant::now() < deadline,
            "Prometheus stored no exemplars for the app counter: {found:?}\nits log:\n{}",
            std::fs::read_to_string(&prometheus.log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    // Scraped every second, the same exemplar is stored once.
    assert_eq!(exemplar_trace_ids(&exemplars), [sampled], "{exemplars:?}");
    let series = &exemplars[0];
    assert_eq!(series["seriesLabels"]["source"], "hello-app", "{series}");
    let exemplar = &series["exemplars"][0];
    assert_eq!(exemplar["labels"]["span_id"], server_span, "{exemplar}");
    assert_eq!(exemplar["value"], "1", "{exemplar}");
}
