//! A real Prometheus server (Debian's `prometheus` package, installed by `scripts/test.sh`)
//! scrapes the host's `/metrics` on loopback; the expected series must arrive in its database.

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
    /// Starts Prometheus scraping `target` every second.
    fn start(target: std::net::SocketAddr) -> Prometheus {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("prometheus-{}", std::process::id()));
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
        std::net::TcpStream::connect(self.addr).ok()?;
        let encoded: String = promql
            .bytes()
            .map(|b| match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => (b as char).to_string(),
                _ => format!("%{b:02X}"),
            })
            .collect();
        let response = get(self.addr, &format!("/api/v1/query?query={encoded}"), &[]);
        if response.status != 200 {
            return None;
        }
        let body = response.json();
        assert_eq!(body["status"], "success", "{body}");
        Some(body["data"]["result"].as_array().unwrap().clone())
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

    let prometheus = Prometheus::start(host.admin);
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
