//! Operating the product: the generated SLO rules (promtool unit tests for every alert), a real
//! Prometheus and Alertmanager delivering a burn-rate alert to a webhook while runtime-host
//! serves a burst of 5xx, the Grafana dashboard's queries against that Prometheus, the
//! runbooks, the Kubernetes manifests (`kubernetes-validate`) and `runtime-host compose`.
//!
//! `scripts/test.sh` installs what these tests run: Debian's `prometheus` (with `promtool`)
//! and `prometheus-alertmanager` (with `amtool`), and PyPI's `kubernetes-validate`.

mod common;

use common::{Conn, Host, get};
use serde_json::Value;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_runtime-host");

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// A fresh scratch directory for one test.
fn scratch(name: &str) -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("operations-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Runs a tool the test script installs; a missing tool is a clear failure.
fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("cannot run `{program}` ({e}); run the tests with `bash scripts/test.sh`, which installs it")
        })
}

fn text(output: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn rules_path() -> PathBuf {
    repo().join("deploy/prometheus/slo-rules.yml")
}

/// `(alertname, runbook_url)` of every alert in a rule file.
fn alerts_in(rules: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut current = None;
    for line in rules.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix("- alert: ") {
            current = Some(name.to_owned());
        } else if let Some(url) = line.strip_prefix("runbook_url: ") {
            let name = current.take().expect("runbook_url after an alert");
            out.push((name, serde_json::from_str::<String>(url).unwrap()));
        }
    }
    out
}

// ---------------------------------------------------------------------------------------
// Rules, their unit tests and the runbooks
// ---------------------------------------------------------------------------------------

/// The generated files in `dir`: the rule file and its unit test files.
fn generated_files(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("slo-rules"))
        .collect();
    names.sort();
    names
}

/// The committed unit test files.
fn test_files() -> Vec<PathBuf> {
    let dir = repo().join("deploy/prometheus");
    generated_files(&dir)
        .into_iter()
        .filter(|n| n.starts_with("slo-rules.test"))
        .map(|n| dir.join(n))
        .collect()
}

#[test]
fn committed_rules_are_the_generator_output() {
    let dir = scratch("generate");
    let out = run(BIN, &["slo-rules", "--out", dir.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let names = generated_files(&dir);
    assert!(names.len() >= 2, "{names:?}");
    assert_eq!(names, generated_files(&repo().join("deploy/prometheus")));
    for file in names {
        let generated = std::fs::read_to_string(dir.join(&file)).unwrap();
        let committed =
            std::fs::read_to_string(repo().join("deploy/prometheus").join(&file)).unwrap();
        assert!(
            generated == committed,
            "deploy/prometheus/{file} differs from the generator's output; regenerate it with\n  cargo run --release -p runtime-host -- slo-rules --out deploy/prometheus"
        );
    }
    // A parameter the host cannot measure is refused with a clear message.
    let out = run(
        BIN,
        &[
            "slo-rules",
            "--out",
            dir.to_str().unwrap(),
            "--latency-threshold",
            "0.3",
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("not a bucket bound"), "{}", text(&out));
}

/// Runs `promtool test rules` on `files`.
fn promtool_test(files: &[PathBuf]) -> Output {
    let mut args = vec!["test".to_owned(), "rules".to_owned()];
    args.extend(files.iter().map(|f| f.to_str().unwrap().to_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    run("promtool", &args)
}

#[test]
fn promtool_checks_the_rules_and_every_alert_passes_its_unit_tests() {
    let rules = rules_path();
    let out = run("promtool", &["check", "rules", rules.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("SUCCESS: 21 rules found"),
        "{}",
        text(&out)
    );

    let tests = test_files();
    let started = Instant::now();
    let out = promtool_test(&tests);
    println!(
        "promtool test rules ({:.1} s):\n{}",
        started.elapsed().as_secs_f64(),
        text(&out)
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(
        text(&out).matches("  SUCCESS").count(),
        tests.len(),
        "{}",
        text(&out)
    );

    // Every alert has a case where it fires and one where it must stay silent.
    let test_text: String = tests
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    let alerts = alerts_in(&std::fs::read_to_string(&rules).unwrap());
    assert_eq!(alerts.len(), 11, "{alerts:?}");
    for (alert, _) in &alerts {
        let cases: Vec<&str> = test_text
            .split("  - interval:")
            .filter(|case| case.contains(&format!("alertname: {alert}\n")))
            .collect();
        assert!(
            cases.iter().any(|c| c.contains("exp_labels:")),
            "{alert}: no firing case"
        );
        assert!(
            cases.iter().any(|c| c.contains("exp_alerts: []")),
            "{alert}: no silent case"
        );
    }

    // The unit tests can fail: with the fast-burn threshold raised they do.
    let dir = scratch("mutated");
    let rules_text = std::fs::read_to_string(&rules).unwrap();
    assert!(rules_text.contains("> 0.072\n"));
    std::fs::write(
        dir.join("slo-rules.yml"),
        rules_text.replace("> 0.072\n", "> 0.2\n"),
    )
    .unwrap();
    let main = repo().join("deploy/prometheus/slo-rules.test.yml");
    std::fs::copy(&main, dir.join("slo-rules.test.yml")).unwrap();
    let out = promtool_test(&[dir.join("slo-rules.test.yml")]);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        text(&out).contains("EdgeObsAvailabilityFastBurn"),
        "{}",
        text(&out)
    );
}

#[test]
fn prometheus_and_alertmanager_configs_check() {
    let out = run(
        "promtool",
        &[
            "check",
            "config",
            repo()
                .join("deploy/prometheus/prometheus.yml")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    let out = run(
        "amtool",
        &[
            "check-config",
            repo()
                .join("deploy/alertmanager/alertmanager.yml")
                .to_str()
                .unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
}

#[test]
fn every_alert_links_its_own_runbook() {
    let rules = std::fs::read_to_string(rules_path()).unwrap();
    let index = std::fs::read_to_string(repo().join("docs/runbooks/README.md")).unwrap();
    for (alert, url) in alerts_in(&rules) {
        let file = url
            .strip_prefix("docs/runbooks/")
            .unwrap_or_else(|| panic!("{alert}: runbook_url {url} is not under docs/runbooks"));
        let runbook = std::fs::read_to_string(repo().join("docs/runbooks").join(file))
            .unwrap_or_else(|e| panic!("{alert}: runbook {file}: {e}"));
        assert!(
            runbook.starts_with(&format!("# {alert}\n")),
            "{file} is not the runbook of {alert}"
        );
        for section in [
            "## What it means",
            "## What to look at first",
            "## Likely causes and fixes",
            "## Silencing safely",
        ] {
            assert!(runbook.contains(section), "{file}: no `{section}`");
        }
        assert!(
            index.contains(&format!("({file})")),
            "README.md misses {file}"
        );
    }
}

// ---------------------------------------------------------------------------------------
// Kubernetes manifests
// ---------------------------------------------------------------------------------------

/// The manifest's documents as JSON (PyYAML comes with kubernetes-validate).
fn manifest_documents(path: &Path) -> Vec<Value> {
    let out = run(
        "python3",
        &[
            "-c",
            "import json, sys, yaml; print(json.dumps([d for d in yaml.safe_load_all(open(sys.argv[1])) if d]))",
            path.to_str().unwrap(),
        ],
    );
    assert!(out.status.success(), "{}", text(&out));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn kubernetes_manifests_validate_and_match_the_host_flags() {
    let manifest = repo().join("deploy/k8s/runtime-host.yaml");
    let validate = |path: &Path| {
        run(
            "python3",
            &[
                "-m",
                "kubernetes_validate",
                "--strict",
                path.to_str().unwrap(),
            ],
        )
    };
    let out = validate(&manifest);
    assert!(out.status.success(), "{}", text(&out));
    for kind in ["deployment", "service", "poddisruptionbudget"] {
        assert!(
            text(&out).contains(&format!("passed for resource {kind}/runtime-host")),
            "{}",
            text(&out)
        );
    }
    assert!(
        text(&out).contains("passed for resource service/runtime-host-admin"),
        "{}",
        text(&out)
    );
    // The validator does reject a broken manifest.
    let dir = scratch("k8s");
    let broken = dir.join("broken.yaml");
    std::fs::write(
        &broken,
        std::fs::read_to_string(&manifest)
            .unwrap()
            .replace("replicas: 2", "replicas: two"),
    )
    .unwrap();
    let out = validate(&broken);
    assert!(!out.status.success(), "{}", text(&out));

    let docs = manifest_documents(&manifest);
    let deployment = docs.iter().find(|d| d["kind"] == "Deployment").unwrap();
    let pod = &deployment["spec"]["template"];
    let container = &pod["spec"]["containers"][0];
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();

    // The args are flags this runtime-host accepts (`--shutdown-delay` is checked as soon as
    // the host has it).
    use clap::CommandFactory;
    let has_delay = runtime_host::cli::Args::command()
        .get_arguments()
        .any(|a| a.get_long() == Some("shutdown-delay"));
    let flag = |name: &str| -> Option<&str> {
        args.iter()
            .find_map(|a| a.strip_prefix(&format!("--{name}=")))
    };
    let checked: Vec<&str> = std::iter::once("runtime-host")
        .chain(
            args.iter()
                .copied()
                .filter(|a| has_delay || !a.starts_with("--shutdown-delay")),
        )
        .collect();
    let parsed = <runtime_host::cli::Args as clap::Parser>::try_parse_from(&checked)
        .unwrap_or_else(|e| panic!("the manifest's args do not parse: {e}"));
    parsed.validate().unwrap();
    assert_eq!(parsed.addr.ip().to_string(), "0.0.0.0");
    assert_eq!(parsed.admin_addr.ip().to_string(), "0.0.0.0");

    // Probes on the admin port.
    let admin_port = parsed.admin_addr.port();
    let port_named = |name: &str| {
        container["ports"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == name)
            .unwrap()["containerPort"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(port_named("admin"), u64::from(admin_port));
    assert_eq!(port_named("http"), u64::from(parsed.addr.port()));
    for (probe, path) in [
        ("startupProbe", "/startupz"),
        ("readinessProbe", "/readyz"),
        ("livenessProbe", "/livez"),
    ] {
        assert_eq!(container[probe]["httpGet"]["path"], path, "{probe}");
        assert_eq!(container[probe]["httpGet"]["port"], "admin", "{probe}");
    }

    // The kubelet waits longer than the host's delay plus grace.
    let grace = parsed.shutdown_grace.as_secs();
    let delay = runtime_host::cli::parse_duration(flag("shutdown-delay").unwrap())
        .unwrap()
        .as_secs();
    let termination = pod["spec"]["terminationGracePeriodSeconds"]
        .as_u64()
        .unwrap();
    assert!(
        termination > grace + delay,
        "terminationGracePeriodSeconds {termination} <= {delay} + {grace}"
    );

    // Memory limit covers every busy instance's memories at --max-memory, plus the host.
    let limit = container["resources"]["limits"]["memory"].as_str().unwrap();
    let limit_bytes = runtime_host::cli::parse_size(limit.trim_end_matches('i')).unwrap();
    let busy = parsed
        .max_concurrent_requests
        .div_ceil(parsed.max_instance_concurrency) as u64;
    let guests = busy * 2 * parsed.max_memory;
    assert!(
        limit_bytes >= guests + (64 << 20),
        "memory limit {limit} < {busy} instances x 2 memories x {} bytes + 64 MiB for the host",
        parsed.max_memory
    );

    // Prometheus finds the admin port through the annotations.
    let annotations = &pod["metadata"]["annotations"];
    assert_eq!(annotations["prometheus.io/scrape"], "true");
    assert_eq!(annotations["prometheus.io/port"], admin_port.to_string());
    assert_eq!(annotations["prometheus.io/path"], "/metrics");
}

// ---------------------------------------------------------------------------------------
// runtime-host compose
// ---------------------------------------------------------------------------------------

#[test]
fn composed_component_serves_the_middleware_without_runtime_host_chaining_it() {
    let dir = scratch("compose");
    let out_file = dir.join("composed.wasm");
    let out = run(BIN, &["compose", "--out", out_file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let bytes = std::fs::read(&out_file).unwrap();
    let (imports, exports) = runtime_host::serving::components::interfaces(&bytes).unwrap();
    assert_eq!(exports, [runtime_host::serving::components::HANDLER]);
    assert!(
        !imports
            .iter()
            .any(|i| i == runtime_host::serving::components::HANDLER)
    );

    // Served as a plain app: the middleware inside still does its work.
    let host = Host::start(&["--no-middleware", "--app", out_file.to_str().unwrap()]);
    let response = get(host.addr, "/hello", &[("x-request-id", "compose-check-1")]);
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "hello\n");
    assert_eq!(response.request_id(), "compose-check-1");
    assert_eq!(
        response.header("x-content-type-options").as_deref(),
        Some("nosniff")
    );
    assert_eq!(
        response.header("strict-transport-security").as_deref(),
        Some("max-age=63072000; includeSubDomains")
    );
    assert!(response.header("server-timing").is_some());
    let line = host.log_line("compose-check-1");
    assert_eq!(line["http.response.status_code"], 200);

    // Mistakes get one clear error.
    let out = run(
        BIN,
        &[
            "compose",
            "--out",
            dir.join("x.wasm").to_str().unwrap(),
            "--app",
            dir.join("missing.wasm").to_str().unwrap(),
        ],
    );
    assert!(!out.status.success());
    assert!(text(&out).contains("missing.wasm"), "{}", text(&out));
    assert!(!dir.join("x.wasm").exists());
}

// ---------------------------------------------------------------------------------------
// A real Prometheus and Alertmanager
// ---------------------------------------------------------------------------------------

/// A child process killed when dropped.
struct Daemon {
    child: Child,
    name: &'static str,
    log: PathBuf,
}

impl Daemon {
    fn spawn(name: &'static str, program: &str, args: &[String], log: PathBuf) -> Daemon {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot run `{program}` ({e}); run the tests with `bash scripts/test.sh`, which installs it")
            });
        Daemon { child, name, log }
    }

    fn log(&self) -> String {
        format!(
            "{} log:\n{}",
            self.name,
            std::fs::read_to_string(&self.log).unwrap_or_default()
        )
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// The Prometheus HTTP API on `addr`.
struct PromApi(SocketAddr);

impl PromApi {
    /// An instant query; `None` while Prometheus is not answering.
    fn query(&self, promql: &str) -> Option<Vec<Value>> {
        std::net::TcpStream::connect(self.0).ok()?;
        let response = get(
            self.0,
            &format!("/api/v1/query?query={}", encode(promql)),
            &[],
        );
        if response.status == 503 {
            // Still starting (TSDB not open yet).
            return None;
        }
        let body = response.json();
        assert_eq!(body["status"], "success", "query failed: {promql}\n{body}");
        let data = &body["data"];
        Some(match data["resultType"].as_str() {
            Some("scalar") => vec![serde_json::json!({ "value": data["result"] })],
            _ => data["result"].as_array().unwrap().clone(),
        })
    }

    fn json(&self, path: &str) -> Value {
        get(self.0, path, &[]).json()
    }
}

fn value(sample: &Value) -> f64 {
    sample["value"][1].as_str().unwrap().parse().unwrap()
}

/// Polls `check` until it returns `Some`, at most `within`.
fn wait_until<T>(
    what: &str,
    within: Duration,
    diag: impl Fn() -> String,
    mut check: impl FnMut() -> Option<T>,
) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}\n{}",
            diag()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// An HTTP server that records every JSON body POSTed to it (Alertmanager's webhook).
fn start_webhook() -> (SocketAddr, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream);
                loop {
                    let mut length = 0usize;
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 {
                        return;
                    }
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let header = line.trim_end();
                        if header.is_empty() {
                            break;
                        }
                        if let Some((name, v)) = header.split_once(':')
                            && name.eq_ignore_ascii_case("content-length")
                        {
                            length = v.trim().parse().unwrap_or(0);
                        }
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if let Ok(json) = serde_json::from_slice(&body) {
                        sink.lock().unwrap().push(json);
                    }
                    let _ = reader
                        .get_mut()
                        .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n");
                }
            });
        }
    });
    (addr, received)
}

/// Every alert the webhook received: (status, labels, annotations).
fn received_alerts(received: &Mutex<Vec<Value>>) -> Vec<Value> {
    received
        .lock()
        .unwrap()
        .iter()
        .flat_map(|n| n["alerts"].as_array().cloned().unwrap_or_default())
        .collect()
}

/// Healthy traffic from a background thread until dropped: GETs on a templated route and
/// POSTs with bodies; with `errors` set, also `/status/500`.
struct Load {
    stop: Arc<AtomicBool>,
    errors: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let (s, e, n) = (stop.clone(), errors.clone(), sent.clone());
        let thread = std::thread::spawn(move || {
            let mut conn = Conn::open(addr);
            let body = vec![b'x'; 3000];
            let mut i = 0u64;
            while !s.load(Ordering::Relaxed) {
                i += 1;
                let response = if i.is_multiple_of(2) {
                    conn.request(
                        "POST",
                        "/echo-body",
                        &[("content-type", "text/plain")],
                        &body,
                    )
                } else {
                    conn.get(&format!("/users/{i}"), &[])
                };
                assert_eq!(response.status, 200);
                if e.load(Ordering::Relaxed) {
                    assert_eq!(conn.get("/status/500", &[]).status, 500);
                }
                n.fetch_add(1, Ordering::Relaxed);
                // A steady trickle, not a benchmark: the machine is shared.
                std::thread::sleep(Duration::from_millis(5));
            }
        });
        Load {
            stop,
            errors,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let result = thread.join();
            if !std::thread::panicking() {
                result.expect("the load thread failed");
            }
        }
    }
}

/// Grafana's built-in and dashboard variables, as the dashboard would send them.
fn substitute(expr: &str, vars: &[(&str, &str)]) -> String {
    let mut out = expr.to_owned();
    // Longest names first, so `$route` does not eat `$route_x`.
    let mut vars = vars.to_vec();
    vars.sort_by_key(|(name, _)| std::cmp::Reverse(name.len()));
    for (name, value) in vars {
        out = out.replace(&format!("${{{name}}}"), value);
        out = out.replace(&format!("${name}"), value);
    }
    assert!(!out.contains('$'), "unsubstituted variable in {out}");
    out
}

#[test]
fn burn_rate_alert_reaches_alertmanager_and_dashboard_queries_return_data() {
    let started = Instant::now();
    let dir = scratch("stack");
    let host = Host::start(&[
        "--env",
        "EDGE_OBS_ROUTES=/users/{id},/status/{code},/echo-body",
    ]);

    // The same generator as deploy/, with windows and `for:` short enough for a test.
    let rules_dir = dir.join("rules");
    let out = run(
        BIN,
        &[
            "slo-rules",
            "--no-tests",
            "--out",
            rules_dir.to_str().unwrap(),
            "--page-fast",
            "20s,5s,14.4,0s",
            "--page-slow",
            "40s,10s,6,0s",
            "--ticket",
            "60s,20s,1,0s",
            "--host-window",
            "20s",
            "--host-for",
            "0s",
            "--down-for",
            "10s",
        ],
    );
    assert!(out.status.success(), "{}", text(&out));

    let (webhook, received) = start_webhook();
    let am_addr = free_addr();
    std::fs::write(
        dir.join("alertmanager.yml"),
        format!(
            "route:\n  receiver: webhook\n  group_by: [alertname]\n  group_wait: 1s\n  group_interval: 1s\n  repeat_interval: 1h\nreceivers:\n  - name: webhook\n    webhook_configs:\n      - url: http://{webhook}/alerts\n        send_resolved: false\n"
        ),
    )
    .unwrap();
    let alertmanager = Daemon::spawn(
        "alertmanager",
        "prometheus-alertmanager",
        &[
            format!("--config.file={}", dir.join("alertmanager.yml").display()),
            format!("--storage.path={}", dir.join("am-data").display()),
            format!("--web.listen-address={am_addr}"),
            "--cluster.listen-address=".to_owned(),
        ],
        dir.join("alertmanager.log"),
    );

    let prom_addr = free_addr();
    std::fs::write(
        dir.join("prometheus.yml"),
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nalerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['{am_addr}']\nscrape_configs:\n  - job_name: runtime-host\n    scrape_timeout: 1s\n    static_configs:\n      - targets: ['{}']\n",
            rules_dir.join("slo-rules.yml").display(),
            host.admin
        ),
    )
    .unwrap();
    let prometheus = Daemon::spawn(
        "prometheus",
        "prometheus",
        &[
            format!("--config.file={}", dir.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", dir.join("prom-data").display()),
            format!("--web.listen-address={prom_addr}"),
        ],
        dir.join("prometheus.log"),
    );
    let prom = PromApi(prom_addr);
    let diag = || format!("{}\n{}", prometheus.log(), alertmanager.log());

    let load = Load::start(host.addr);

    // Healthy traffic: the rules evaluate over it (each rule healthy, the longest window
    // has data) for several evaluations, and no alert is pending, firing or delivered.
    let longest = "job:slo_availability_errors:ratio_rate1m";
    let first = wait_until(
        "the SLI recording rules",
        Duration::from_secs(60),
        diag,
        || {
            let r = prom.query(&format!("timestamp({longest})"))?;
            (r.len() == 1).then(|| value(&r[0]))
        },
    );
    assert_eq!(value(&prom.query(longest).unwrap()[0]), 0.0);
    wait_until(
        "five more rule evaluations",
        Duration::from_secs(60),
        diag,
        || {
            let r = prom.query(&format!("timestamp({longest})"))?;
            (value(&r[0]) >= first + 5.0).then_some(())
        },
    );
    let rules = prom.json("/api/v1/rules");
    let all_rules: Vec<&Value> = rules["data"]["groups"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_array().unwrap())
        .collect();
    assert_eq!(all_rules.len(), 21);
    for rule in &all_rules {
        assert_eq!(rule["health"], "ok", "{rule}");
    }
    assert_eq!(
        all_rules.iter().filter(|r| r["type"] == "alerting").count(),
        11
    );
    let alerts = prom.query("ALERTS").unwrap();
    assert!(alerts.is_empty(), "alerts on healthy traffic: {alerts:?}");
    assert!(
        received_alerts(&received).is_empty(),
        "{:?}",
        received_alerts(&received)
    );
    // Alertmanager was up and reachable all along (an empty webhook proves nothing otherwise).
    let am = get(am_addr, "/api/v2/status", &[]);
    assert_eq!(am.status, 200, "{}", diag());
    let targets = prom.json("/api/v1/alertmanagers");
    assert_eq!(
        targets["data"]["activeAlertmanagers"]
            .as_array()
            .unwrap()
            .len(),
        1,
        "{targets}"
    );

    // The dashboard: every expression returns data, with the variables substituted as
    // Grafana would for this job and instance, for all routes and for one route.
    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string(repo().join("deploy/grafana/dashboards/edge-observability.json"))
            .unwrap(),
    )
    .unwrap();
    let exprs: Vec<String> = dashboard["panels"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap())
        .map(|t| t["expr"].as_str().unwrap().to_owned())
        .collect();
    assert!(exprs.len() >= 20, "{exprs:?}");
    let constants: Vec<(String, String)> = dashboard["templating"]["list"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|v| v["type"] == "constant")
        .map(|v| {
            (
                v["name"].as_str().unwrap().to_owned(),
                v["query"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let instance = host.admin.to_string();
    // The variables' own queries (`label_values`) find this job, instance and routes.
    let series = |promql: &str, label: &str| -> Vec<String> {
        prom.query(promql)
            .unwrap()
            .iter()
            .map(|s| s["metric"][label].as_str().unwrap_or("").to_owned())
            .collect()
    };
    assert_eq!(
        series("count by (job) (http_server_requests_total)", "job"),
        ["runtime-host"]
    );
    assert_eq!(
        series(
            "count by (instance) (http_server_requests_total{job=~\"runtime-host\"})",
            "instance"
        ),
        std::slice::from_ref(&instance)
    );
    let routes = series(
        &format!(
            "count by (http_route) (http_server_requests_total{{job=~\"runtime-host\", instance=~\"{instance}\"}})"
        ),
        "http_route",
    );
    assert!(routes.contains(&"/echo-body".to_owned()), "{routes:?}");
    for route in [".*", "/echo-body"] {
        let mut vars: Vec<(&str, &str)> = vec![
            ("job", "runtime-host"),
            ("instance", &instance),
            ("route", route),
            ("datasource", "prometheus"),
            ("__rate_interval", "10s"),
        ];
        vars.extend(constants.iter().map(|(k, v)| (k.as_str(), v.as_str())));
        for expr in &exprs {
            let promql = substitute(expr, &vars);
            let result = prom.query(&promql).unwrap();
            assert!(!result.is_empty(), "no data for route {route}:\n{promql}");
            for sample in &result {
                assert!(
                    !value(sample).is_nan(),
                    "NaN for route {route}:\n{promql}\n{result:?}"
                );
            }
        }
    }

    // A burst of 5xx: the fast-burn page reaches the webhook through Alertmanager.
    load.errors.store(true, Ordering::Relaxed);
    let alert = wait_until(
        "EdgeObsAvailabilityFastBurn at the webhook",
        Duration::from_secs(120),
        || {
            format!(
                "{:?}\n{:?}\n{}",
                prom.query("ALERTS"),
                received_alerts(&received),
                diag()
            )
        },
        || {
            received_alerts(&received)
                .into_iter()
                .find(|a| a["labels"]["alertname"] == "EdgeObsAvailabilityFastBurn")
        },
    );
    assert_eq!(alert["status"], "firing");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(alert["labels"]["slo"], "availability");
    assert_eq!(alert["labels"]["job"], "runtime-host");
    assert_eq!(
        alert["annotations"]["runbook_url"],
        "docs/runbooks/edge-obs-availability-fast-burn.md"
    );
    // Only availability alerts: latency and the host's own signals are fine.
    for a in received_alerts(&received) {
        let name = a["labels"]["alertname"].as_str().unwrap();
        assert!(name.starts_with("EdgeObsAvailability"), "unexpected {a}");
    }
    // The dashboard's alert annotation query sees it too.
    let firing = prom
        .query("ALERTS{alertstate=\"firing\", job=~\"runtime-host\"}")
        .unwrap();
    assert!(!firing.is_empty());
    let sent = load.sent.load(Ordering::Relaxed);
    drop(load);
    println!(
        "alert delivered after {:.1} s ({sent} request rounds)",
        started.elapsed().as_secs_f64()
    );
}

/// Out-of-range settings are refused when the flags are parsed, with the flag named, before
/// anything is served: a duration far beyond a day used to make every request end in a worker
/// panic (and SIGTERM exit 101 without draining).
#[test]
fn out_of_range_settings_are_refused_at_start() {
    let cases: [(&[&str], &str); 5] = [
        (
            &["--request-timeout", "10000000000000000000s"],
            "--request-timeout",
        ),
        (
            &["--shutdown-grace", "10000000000000000000s"],
            "--shutdown-grace",
        ),
        (
            &["--max-instance-concurrency", "100000"],
            "--max-instance-concurrency",
        ),
        (
            &["--max-concurrent-requests", "0"],
            "--max-concurrent-requests",
        ),
        (&["--max-memory", "64GiB"], "--max-memory"),
    ];
    for (args, flag) in cases {
        // Bounded: a host that accepted the setting would serve until killed.
        let mut child = Command::new(BIN)
            .args(args)
            .args(["--addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        while child.try_wait().unwrap().is_none() {
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("{args:?}: runtime-host accepted the setting and started serving");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let out = child.wait_with_output().unwrap();
        assert!(!out.status.success(), "{args:?}: {}", text(&out));
        assert!(text(&out).contains(flag), "{args:?}: {}", text(&out));
        assert!(!text(&out).contains("panicked"), "{args:?}: {}", text(&out));
    }
}
