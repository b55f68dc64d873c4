//! Test harness: starts the real `runtime-host` binary on loopback (ephemeral ports) and
//! talks to it with a small raw HTTP/1.1 client, so tests can send bytes no well-behaved
//! client library would (control characters, obs-text, duplicate headers).

#![allow(dead_code)]

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

fn cache_dir() -> String {
    format!("{}/compile-cache", env!("CARGO_TARGET_TMPDIR"))
}

impl Host {
    /// Starts the host with `args` (plus ephemeral ports) and waits until it serves.
    pub fn start(args: &[&str]) -> Host {
        Host::try_start(args)
            .unwrap_or_else(|stderr| panic!("runtime-host did not start:\n{stderr}"))
    }

    /// Starts the host; on failure returns its stderr.
    pub fn try_start(args: &[&str]) -> Result<Host, String> {
        let cache = cache_dir();
        let mut command = Command::new(env!("CARGO_BIN_EXE_runtime-host"));
        if !args.contains(&"--addr") {
            command.args(["--addr", "127.0.0.1:0"]);
        }
        if !args.contains(&"--admin-addr") {
            command.args(["--admin-addr", "127.0.0.1:0"]);
        }
        command
            .args(["--cache-dir", &cache])
            .args(args)
            .env("RUNTIME_HOST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("spawning runtime-host");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        collect(child.stdout.take().unwrap(), stdout.clone());
        collect(child.stderr.take().unwrap(), stderr.clone());

        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let serving = stderr
                .lock()
                .unwrap()
                .iter()
                .find(|line| line.contains("runtime-host serving"))
                .cloned();
            if let Some(line) = serving {
                return Ok(Host {
                    child: Some(child),
                    addr: field(&line, "addr="),
                    admin: field(&line, "admin_addr="),
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

fn collect(stream: impl Read + Send + 'static, lines: Arc<Mutex<Vec<String>>>) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(stream);
        let mut buf = Vec::new();
        while let Ok(n) = reader.read_until(b'\n', &mut buf) {
            if n == 0 {
                break;
            }
            let line = String::from_utf8_lossy(&buf)
                .trim_end_matches('\n')
                .to_owned();
            lines.lock().unwrap().push(line);
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
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
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
    let mut headers = Vec::new();
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
        headers.push((name, value));
    }
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
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
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).unwrap();
            if size == 0 {
                break;
            }
            response.body.extend_from_slice(&chunk[..size]);
        }
    } else if status != 204 && status != 304 {
        reader.read_to_end(&mut response.body).unwrap();
    }
    response
}

/// A small native HTTP origin for upstream mode: answers every request with a JSON echo of
/// its request line and headers. Runs on a thread until the process ends.
pub fn start_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
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
