//! Test harness: starts the real `runtime-host` binary on loopback (ephemeral ports) and
//! talks to it with a small raw HTTP/1.1 client, so tests can send bytes no well-behaved
//! client library would (control characters, obs-text, duplicate headers).

#![allow(dead_code)]

pub mod otlp_receiver;

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A running runtime-host process.
pub struct Host {
    child: Option<Child>,
    /// The HTTP address.
    pub addr: SocketAddr,
    /// The admin (probes, metrics) address.
    pub admin: SocketAddr,
    stdout: Arc<Mutex<Vec<String>>>,
    stderr: Arc<Mutex<Vec<String>>>,
}

/// Receives every stdout line of a host started with [`Host::start_tapped`].
pub type StdoutTap = Box<dyn FnMut(&str) + Send>;

fn cache_dir() -> String {
    format!("{}/compile-cache", env!("CARGO_TARGET_TMPDIR"))
}

impl Host {
    /// Starts the host with `args` (plus ephemeral ports) and waits until it serves.
    pub fn start(args: &[&str]) -> Host {
        Host::try_start(args)
            .unwrap_or_else(|stderr| panic!("runtime-host did not start:\n{stderr}"))
    }

    /// Starts the host; its stdout lines go to `tap` instead of being kept (long runs would
    /// otherwise hold every log line in memory). [`Host::stdout`] stays empty.
    pub fn start_tapped(args: &[&str], tap: impl FnMut(&str) + Send + 'static) -> Host {
        Host::spawn(args, &[], Some(Box::new(tap)))
            .unwrap_or_else(|stderr| panic!("runtime-host did not start:\n{stderr}"))
    }

    /// Starts the host; on failure returns its stderr.
    pub fn try_start(args: &[&str]) -> Result<Host, String> {
        Host::spawn(args, &[], None)
    }

    /// Starts the host with extra environment variables for the host process (settings read
    /// from the environment, such as `RUNTIME_HOST_ADMIN_TOKEN` or `OTEL_*`).
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Host {
        Host::spawn(args, env, None)
            .unwrap_or_else(|stderr| panic!("runtime-host did not start:\n{stderr}"))
    }

    /// Starts the host with its open files limit (soft and hard) set to `limit`, through
    /// util-linux's `prlimit`.
    pub fn start_with_open_files_limit(args: &[&str], limit: u64) -> Host {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={limit}:{limit}"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_runtime-host"));
        Host::spawn_command(command, args, &[], None)
            .unwrap_or_else(|stderr| panic!("runtime-host did not start:\n{stderr}"))
    }

    fn spawn(args: &[&str], env: &[(&str, &str)], tap: Option<StdoutTap>) -> Result<Host, String> {
        let command = Command::new(env!("CARGO_BIN_EXE_runtime-host"));
        Host::spawn_command(command, args, env, tap)
    }

    fn spawn_command(
        mut command: Command,
        args: &[&str],
        env: &[(&str, &str)],
        tap: Option<StdoutTap>,
    ) -> Result<Host, String> {
        let cache = cache_dir();
        // A mode other than serving (`collect FILE...`) takes only the shared flags, after it.
        let serving = args.first().is_none_or(|a| a.starts_with('-'));
        if serving {
            if !args.contains(&"--addr") {
                command.args(["--addr", "127.0.0.1:0"]);
            }
            command.args(["--cache-dir", &cache]);
        }
        command.args(args);
        if !args.contains(&"--admin-addr") {
            command.args(["--admin-addr", "127.0.0.1:0"]);
        }
        command
            .env("RUNTIME_HOST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning runtime-host");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let stdout_sink: StdoutTap = match tap {
            Some(tap) => tap,
            None => {
                let lines = stdout.clone();
                Box::new(move |line: &str| lines.lock().unwrap().push(line.to_owned()))
            }
        };
        collect(child.stdout.take().unwrap(), stdout_sink);
        let stderr_lines = stderr.clone();
        collect(
            child.stderr.take().unwrap(),
            Box::new(move |line: &str| stderr_lines.lock().unwrap().push(line.to_owned())),
        );

        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            // Serving mode names both addresses; collect mode only the admin address.
            let serving = stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| {
                    line.contains("runtime-host serving")
                        || line.contains("runtime-host collecting")
                })
                .cloned();
            if let Some(line) = serving {
                let admin = field(&line, "admin_addr=");
                let addr = if line.contains("runtime-host serving") {
                    field(&line, "addr=")
                } else {
                    admin
                };
                return Ok(Host {
                    child: Some(child),
                    addr,
                    admin,
                    stdout,
                    stderr,
                });
            }
            if let Ok(Some(_)) = child.try_wait() {
                std::thread::sleep(Duration::from_millis(100));
                return Err(stderr.lock().unwrap().join("\n"));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!(
                    "timed out; stderr so far:\n{}",
                    stderr.lock().unwrap().join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Lines the host printed on stdout so far (guest log lines).
    pub fn stdout(&self) -> Vec<String> {
        self.stdout.lock().unwrap().clone()
    }

    /// Lines the host printed on stderr so far (its own log).
    pub fn stderr(&self) -> Vec<String> {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until a stdout line satisfies `pred`.
    pub fn wait_stdout(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stdout, what, pred)
    }

    /// Waits until a stderr line satisfies `pred`.
    pub fn wait_stderr(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        wait_line(&self.stderr, what, pred)
    }

    /// The access-log line (JSON) for `request_id`.
    pub fn log_line(&self, request_id: &str) -> serde_json::Value {
        let needle = format!("\"request_id\":\"{request_id}\"");
        let line = self.wait_stdout(&format!("log line of {request_id}"), |l| {
            l.contains(&needle) && l.contains("\"event\":\"http.request\"")
        });
        serde_json::from_str(&line).unwrap_or_else(|e| panic!("log line is not JSON ({e}): {line}"))
    }

    /// GET on the admin address.
    pub fn admin_get(&self, path: &str) -> Response {
        get(self.admin, path, &[])
    }

    /// The `/metrics` text.
    pub fn metrics(&self) -> String {
        let response = self.admin_get("/metrics");
        assert_eq!(response.status, 200);
        response.text()
    }

    /// Every access-log line (`"event":"http.request"`) printed so far, parsed.
    pub fn log_lines(&self) -> Vec<serde_json::Value> {
        self.stdout()
            .iter()
            .filter(|l| l.contains("\"event\":\"http.request\""))
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// The access-log lines once `enough` holds for them, or after 10 s whatever there is (the
    /// caller asserts): a line the host wrote can reach the test's reader of its stdout a
    /// moment after a count on `/metrics` shows it.
    pub fn wait_log_lines(
        &self,
        enough: impl Fn(&[serde_json::Value]) -> bool,
    ) -> Vec<serde_json::Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let lines = self.log_lines();
            if enough(&lines) || Instant::now() > deadline {
                return lines;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls `/metrics` until `pred` holds (metric events arrive after the response), for
    /// at most 10 s; returns the last scrape.
    pub fn wait_metrics(&self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let text = self.metrics();
            if pred(&text) {
                return text;
            }
            assert!(
                Instant::now() < deadline,
                "/metrics never showed {what}:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    /// Resident set size of the host process, in KiB (`VmRSS` in `/proc/<pid>/status`).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid()))
            .expect("reading /proc/<pid>/status");
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("no VmRSS in /proc/{}/status", self.pid()))
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.as_mut().unwrap().try_wait(), Ok(None))
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = self.child.as_ref().unwrap().id().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> ExitStatus {
        let child = self.child.as_mut().unwrap();
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "runtime-host did not exit within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn collect(stream: impl Read + Send + 'static, mut sink: StdoutTap) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf);
            sink(line.trim_end_matches('\n'));
            buf.clear();
        }
    });
}

fn wait_line(lines: &Mutex<Vec<String>>, what: &str, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(line) = lines.lock().unwrap().iter().find(|l| pred(l)) {
            return line.clone();
        }
        if Instant::now() > deadline {
            panic!(
                "no line for {what}; lines:\n{}",
                lines.lock().unwrap().join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn field(line: &str, key: &str) -> SocketAddr {
    line.split_whitespace()
        .find_map(|token| token.strip_prefix(key))
        .unwrap_or_else(|| panic!("no {key} in start-up line: {line}"))
        .trim_matches('"')
        .parse()
        .unwrap()
}

/// A parsed HTTP response.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
    /// The fields after the body (chunked HTTP/1.1 or HTTP/2), lowercase names.
    pub trailers: Vec<(String, Vec<u8>)>,
}

impl std::fmt::Debug for Response {
    /// Headers as text and at most 300 bytes of the body, so a failed assertion stays readable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let headers: Vec<String> = self
            .headers
            .iter()
            .map(|(n, v)| format!("{n}: {}", String::from_utf8_lossy(v)))
            .collect();
        f.debug_struct("Response")
            .field("status", &self.status)
            .field("headers", &headers)
            .field("body_len", &self.body.len())
            .field(
                "body",
                &String::from_utf8_lossy(&self.body[..self.body.len().min(300)]),
            )
            .finish()
    }
}

impl Response {
    /// The only value of `name`; panics if there are several.
    pub fn header(&self, name: &str) -> Option<String> {
        let values = self.all(name);
        assert!(
            values.len() <= 1,
            "{name} appears {} times: {values:?}",
            values.len()
        );
        values.into_iter().next()
    }

    /// Every value of `name`.
    pub fn all(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
            .collect()
    }

    /// The body as text.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body as JSON.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    /// The request id the middleware answered with.
    pub fn request_id(&self) -> String {
        self.header("x-request-id")
            .expect("x-request-id on the response")
    }

    /// Checks what every answer of the middleware with default settings carries, whoever
    /// delivers it (the component or library mode): a generated UUID v7 request id, the
    /// security baseline and `Server-Timing` for the app. Returns the request id.
    pub fn assert_default_decoration(&self) -> String {
        let id = self.request_id();
        assert_eq!(id.len(), 36, "generated id is a UUID: {id}");
        assert_eq!(&id[14..15], "7", "UUID v7 by default: {id}");
        assert_eq!(
            self.header("strict-transport-security").as_deref(),
            Some("max-age=63072000; includeSubDomains")
        );
        assert_eq!(
            self.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(self.header("x-xss-protection").as_deref(), Some("0"));
        let csp = self.header("content-security-policy").unwrap_or_default();
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        let timing = self.header("server-timing").unwrap_or_default();
        assert!(timing.starts_with("app;dur="), "{timing}");
        id
    }
}

/// GET `path` with extra headers (values given as raw bytes via `send` when needed).
pub fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    request(addr, "GET", path, headers, b"")
}

/// A request with a body.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Response {
    let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n");
    for (name, value) in headers {
        raw.push_str(&format!("{name}: {value}\r\n"));
    }
    if !body.is_empty() {
        raw.push_str(&format!("content-length: {}\r\n", body.len()));
    }
    raw.push_str("\r\n");
    let mut bytes = raw.into_bytes();
    bytes.extend_from_slice(body);
    send(addr, &bytes)
}

/// Sends raw bytes on a new connection and reads one response.
pub fn send(addr: SocketAddr, raw: &[u8]) -> Response {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.write_all(raw).expect("write request");
    read_response(&mut BufReader::new(stream))
}

/// Reads one response from a buffered stream.
pub fn read_response(reader: &mut impl BufRead) -> Response {
    let mut line = Vec::new();
    reader.read_until(b'\n', &mut line).expect("status line");
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"))
        .parse()
        .unwrap();
    let headers = read_fields(reader);
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    if let Some(length) = response.all("content-length").first() {
        let mut body = vec![0; length.parse().unwrap()];
        reader.read_exact(&mut body).unwrap();
        response.body = body;
    } else if response
        .all("transfer-encoding")
        .iter()
        .any(|v| v.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_until(b'\n', &mut line).unwrap();
            let size = usize::from_str_radix(String::from_utf8_lossy(&line).trim(), 16).unwrap();
            if size == 0 {
                response.trailers = read_fields(reader);
                break;
            }
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        reader.read_to_end(&mut response.body).unwrap();
    }
    response
}

/// Reads header (or trailer) fields up to and including the empty line that ends them.
fn read_fields(reader: &mut impl BufRead) -> Vec<(String, Vec<u8>)> {
    let mut fields = Vec::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        reader.read_until(b'\n', &mut line).unwrap();
        let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
        if trimmed.is_empty() {
            break;
        }
        let at = trimmed
            .iter()
            .position(|b| *b == b':')
            .expect("header colon");
        let name = String::from_utf8_lossy(&trimmed[..at]).to_ascii_lowercase();
        let value = trimmed[at + 1..].trim_ascii().to_vec();
        fields.push((name, value));
    }
    fields
}

/// One request over HTTP/2 with prior knowledge (cleartext, as gRPC clients send it), by
/// hyper's client: the response's status, headers, body and trailers.
pub fn get_http2(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Response {
    use http_body_util::BodyExt;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (mut sender, connection) = hyper::client::conn::http2::handshake(
            hyper_util::rt::TokioExecutor::new(),
            hyper_util::rt::TokioIo::new(stream),
        )
        .await
        .expect("HTTP/2 handshake");
        tokio::spawn(connection);
        let mut request = hyper::Request::get(format!("http://{addr}{path}"));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request
            .body(http_body_util::Empty::<bytes::Bytes>::new())
            .unwrap();
        let response = tokio::time::timeout(Duration::from_secs(60), sender.send_request(request))
            .await
            .expect("HTTP/2 response within 60 s")
            .expect("HTTP/2 response");
        let fields = |map: &http::HeaderMap| -> Vec<(String, Vec<u8>)> {
            map.iter()
                .map(|(n, v)| (n.as_str().to_owned(), v.as_bytes().to_vec()))
                .collect()
        };
        let status = response.status().as_u16();
        let headers = fields(response.headers());
        let collected = response.into_body().collect().await.expect("HTTP/2 body");
        let trailers = collected.trailers().map(fields).unwrap_or_default();
        Response {
            status,
            headers,
            body: collected.to_bytes().to_vec(),
            trailers,
        }
    })
}

/// A small native HTTP origin for upstream mode: answers every request with a JSON echo of
/// its request line and headers. Runs on a thread until the process ends.
pub fn start_origin() -> SocketAddr {
    start_origin_at("127.0.0.1:0".parse().unwrap())
}

/// [`start_origin`] on a given address (e.g. one that was closed until now).
pub fn start_origin_at(addr: SocketAddr) -> SocketAddr {
    let listener = TcpListener::bind(addr).unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            std::thread::spawn(move || serve_origin(stream));
        }
    });
    addr
}

fn serve_origin(stream: TcpStream) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut headers = serde_json::Map::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            let (name, value) = (name.to_ascii_lowercase(), value.trim().to_owned());
            if name == "content-length" {
                length = value.parse().unwrap();
            }
            headers.insert(name, value.into());
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        let mut parts = request_line.split_whitespace();
        let echo = serde_json::json!({
            "origin": true,
            "method": parts.next(),
            "path": parts.next(),
            "headers": headers,
            "body_len": length,
        })
        .to_string();
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nserver: origin/1.0\r\ncontent-length: {}\r\n\r\n{echo}",
            echo.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

/// A loopback port with nothing listening on it.
pub fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr
}

/// An origin that accepts connections and closes them without answering.
pub fn start_dropping_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            drop(stream);
        }
    });
    addr
}

/// Sum of the samples of metric `name` (exact series name, e.g. `http_server_requests_total`)
/// whose labels include every `(label, value)` pair of `labels`.
pub fn metric_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    series(text, name)
        .filter(|line| {
            labels
                .iter()
                .all(|(k, v)| line.contains(&format!("{k}=\"{v}\"")))
        })
        .map(|line| {
            let value = line.rsplit_once(' ').unwrap().1;
            value
                .parse::<f64>()
                .unwrap_or_else(|_| panic!("bad sample {line}"))
        })
        .sum()
}

/// The sample lines of metric `name`.
pub fn series<'a>(text: &'a str, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    text.lines().filter(move |line| {
        line.strip_prefix(name)
            .is_some_and(|rest| rest.starts_with('{') || rest.starts_with(' '))
    })
}

/// Runs `promtool check metrics` on `text` and panics with its output when it fails.
/// `scripts/test.sh` installs promtool (Debian's `prometheus` package) when it is missing.
pub fn promtool_check(text: &str) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("promtool is not installed ({e}); run the tests with `bash scripts/test.sh`, which installs Debian's prometheus package")
        });
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "promtool check metrics failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A keep-alive client connection: many requests, one after the other.
pub struct Conn {
    reader: BufReader<TcpStream>,
}

impl Conn {
    /// Connects to `addr`.
    pub fn open(addr: SocketAddr) -> Conn {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            reader: BufReader::new(stream),
        }
    }

    /// Sends one request (without `connection: close`) and reads its response.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> Response {
        let mut raw = format!("{method} {path} HTTP/1.1\r\nhost: localhost\r\n");
        for (name, value) in headers {
            raw.push_str(&format!("{name}: {value}\r\n"));
        }
        if !body.is_empty() || method == "POST" {
            raw.push_str(&format!("content-length: {}\r\n", body.len()));
        }
        raw.push_str("\r\n");
        let mut bytes = raw.into_bytes();
        bytes.extend_from_slice(body);
        self.send(&bytes)
    }

    /// GET with extra headers.
    pub fn get(&mut self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.request("GET", path, headers, b"")
    }

    /// Sends raw bytes and reads one response.
    pub fn send(&mut self, raw: &[u8]) -> Response {
        self.reader.get_mut().write_all(raw).expect("write request");
        read_response(&mut self.reader)
    }
}

/// What a client saw when the server may fail mid-response.
#[derive(Debug)]
pub enum Received {
    /// The connection closed before a status line arrived.
    Nothing,
    /// A whole response (body complete per `content-length` or the final chunk).
    Complete(Response),
    /// A response head, then the connection closed before the body was complete.
    /// `body` holds at most the first 1 MiB; `body_len` counts every body byte received.
    Truncated { response: Response, body_len: u64 },
}

/// Sends `raw` on a new connection and reads until the server closes it (or `within` passes,
/// which fails the test), without assuming the response is well-formed.
pub fn send_lenient(addr: SocketAddr, raw: &[u8], within: Duration) -> Received {
    let mut stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(within)).unwrap();
    stream.write_all(raw).expect("write request");
    read_lenient(stream, within)
}

/// Reads one response from `stream` until it is complete or the connection closes.
pub fn read_lenient(stream: TcpStream, within: Duration) -> Received {
    const KEEP: usize = 1 << 20;
    let deadline = Instant::now() + within;
    let mut reader = BufReader::new(stream);
    let mut line = Vec::new();
    let timed_out = |e: &std::io::Error| {
        matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        )
    };
    match reader.read_until(b'\n', &mut line) {
        Ok(0) => return Received::Nothing,
        Ok(_) => {}
        Err(e) if timed_out(&e) => panic!("no response within {within:?}"),
        Err(_) => return Received::Nothing,
    }
    let status_line = String::from_utf8_lossy(&line).into_owned();
    let status: u16 = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
            let response = Response {
                status,
                headers,
                body: Vec::new(),
                trailers: Vec::new(),
            };
            return Received::Truncated {
                response,
                body_len: 0,
            };
        }
        let trimmed = line.strip_suffix(b"\r\n").unwrap_or(&line);
        if trimmed.is_empty() {
            break;
        }
        let at = trimmed.iter().position(|b| *b == b':').expect("colon");
        let name = String::from_utf8_lossy(&trimmed[..at]).to_ascii_lowercase();
        headers.push((name, trimmed[at + 1..].trim_ascii().to_vec()));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        trailers: Vec::new(),
    };
    let length: Option<u64> = response
        .all("content-length")
        .first()
        .map(|v| v.parse().unwrap());
    let chunked = response
        .all("transfer-encoding")
        .iter()
        .any(|v| v.contains("chunked"));
    let mut body_len = 0u64;
    let keep = |response: &mut Response, data: &[u8]| {
        let room = KEEP.saturating_sub(response.body.len());
        response
            .body
            .extend_from_slice(&data[..data.len().min(room)]);
    };
    let mut buf = vec![0u8; 64 * 1024];
    if chunked {
        loop {
            assert!(
                Instant::now() < deadline,
                "body still arriving after {within:?}"
            );
            line.clear();
            if reader.read_until(b'\n', &mut line).unwrap_or(0) == 0 {
                return Received::Truncated { response, body_len };
            }
            let text = String::from_utf8_lossy(&line);
            let Ok(size) = usize::from_str_radix(text.trim(), 16) else {
                return Received::Truncated { response, body_len };
            };
            if size == 0 {
                line.clear();
                let _ = reader.read_until(b'\n', &mut line);
                return Received::Complete(response);
            }
            let mut left = size + 2;
            while left > 0 {
                let want = left.min(buf.len());
                match reader.read(&mut buf[..want]) {
                    Ok(0) | Err(_) => return Received::Truncated { response, body_len },
                    Ok(n) => {
                        let data_end = n.min(left.saturating_sub(2));
                        body_len += data_end as u64;
                        keep(&mut response, &buf[..data_end]);
                        left -= n;
                    }
                }
            }
        }
    }
    let expected = match (length, response.status) {
        (_, 204 | 304) => Some(0),
        (length, _) => length,
    };
    loop {
        if expected.is_some_and(|n| body_len >= n) {
            return Received::Complete(response);
        }
        assert!(
            Instant::now() < deadline,
            "body still arriving after {within:?}"
        );
        match reader.read(&mut buf) {
            Ok(0) | Err(_) if expected.is_none() => return Received::Complete(response),
            Ok(0) | Err(_) => return Received::Truncated { response, body_len },
            Ok(n) => {
                body_len += n as u64;
                keep(&mut response, &buf[..n]);
            }
        }
    }
}

/// The head of a request an origin received.
#[derive(Debug, Clone)]
pub struct OriginRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// An origin whose answers the test scripts: for every request (head and declared body read)
/// it calls `answer` with the request and the connection. `answer` returns whether to keep the
/// connection open for another request. Runs on threads until the process ends.
pub fn start_scripted_origin(
    answer: impl Fn(&OriginRequest, &mut TcpStream) -> bool + Send + Sync + 'static,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let answer = answer.clone();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut stream = stream;
                loop {
                    let mut request_line = String::new();
                    if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
                        return;
                    }
                    let mut parts = request_line.split_whitespace();
                    let mut request = OriginRequest {
                        method: parts.next().unwrap_or("").to_owned(),
                        target: parts.next().unwrap_or("").to_owned(),
                        headers: Vec::new(),
                    };
                    let mut length = 0usize;
                    loop {
                        let mut line = String::new();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 {
                            return;
                        }
                        let line = line.trim_end();
                        if line.is_empty() {
                            break;
                        }
                        let (name, value) = line.split_once(':').unwrap_or((line, ""));
                        let (name, value) = (name.to_ascii_lowercase(), value.trim().to_owned());
                        if name == "content-length" {
                            length = value.parse().unwrap_or(0);
                        }
                        request.headers.push((name, value));
                    }
                    let mut body = vec![0; length];
                    if reader.read_exact(&mut body).is_err() {
                        return;
                    }
                    if !answer(&request, &mut stream) {
                        return;
                    }
                }
            });
        }
    });
    addr
}

/// Writes a small complete response (keep-alive).
pub fn write_ok(stream: &mut TcpStream, body: &str) -> bool {
    let response = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(response.as_bytes()).is_ok()
}

/// Closes `stream` with a TCP reset (RST) instead of an orderly close (FIN).
pub fn reset(stream: TcpStream) {
    let _ = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO));
    drop(stream);
}

/// A fresh unique token for this test process (secrets, request ids).
pub fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    // The final `z` keeps one token from being a prefix of another (`x1z`, `x11z`).
    format!(
        "{prefix}{}x{}z",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// Top-level import and export names of a component.
pub fn world_of(bytes: &[u8]) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut imports = BTreeSet::new();
    let mut exports = BTreeSet::new();
    let mut depth = 0;
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        match payload.expect("valid component") {
            wasmparser::Payload::ModuleSection { .. }
            | wasmparser::Payload::ComponentSection { .. } => depth += 1,
            wasmparser::Payload::End(_) if depth > 0 => depth -= 1,
            wasmparser::Payload::ComponentImportSection(section) if depth == 0 => {
                for import in section {
                    imports.insert(import.unwrap().name.0.to_owned());
                }
            }
            wasmparser::Payload::ComponentExportSection(section) if depth == 0 => {
                for export in section {
                    exports.insert(export.unwrap().name.0.to_owned());
                }
            }
            _ => {}
        }
    }
    (imports, exports)
}

/// Requests `path`, an app route whose body fails after its first chunk, and checks what a user
/// sees: the client's transfer is cut, the access line says level `error` with `error.type`
/// `response_body_error`, `/metrics` counts the request as that error, and the next request is
/// served.
pub fn assert_failing_body_is_logged_as_an_error(host: &Host, path: &str) {
    let id = unique("failing-body");
    let raw = format!("GET {path} HTTP/1.1\r\nhost: localhost\r\nx-request-id: {id}\r\n\r\n");
    let received = send_lenient(host.addr, raw.as_bytes(), Duration::from_secs(30));
    assert!(
        !matches!(received, Received::Complete(_)),
        "the transfer must be cut"
    );
    let line = host.log_line(&id);
    assert_eq!(line["error.type"], "response_body_error", "{line}");
    assert_eq!(line["level"], "error", "{line}");
    assert_eq!(line["http.response.status_code"], 200, "{line}");
    host.wait_metrics("the failed request counted as an error", |t| {
        metric_sum(
            t,
            "http_server_requests_total",
            &[("error_type", "response_body_error")],
        ) == 1.0
    });
    assert_eq!(get(host.addr, "/hello", &[]).status, 200);
}
