//! Soak: steady concurrent keep-alive load through the middleware chain, on loopback.
//!
//! Checks that nothing breaks and nothing leaks: no unexpected error, every response's request
//! id matches exactly one complete access-log line, `/metrics` counts exactly the requests sent,
//! no request is left active, and the host's resident memory is flat after warm-up.
//!
//! `short_soak` runs in the default test suite (a few seconds). `long_soak` is ignored by
//! default and run by `scripts/soak.sh` (`SOAK_SECS`, default 180; `SOAK_CONCURRENCY`,
//! default 32).

mod common;

use common::{Conn, Host, Response, metric_sum};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Request ids seen in access-log lines, and how often; lines that were not valid JSON.
#[derive(Default)]
struct Seen {
    ids: HashMap<String, u32>,
    other_lines: u64,
    bad_lines: Vec<String>,
}

/// How long the load runs.
#[derive(Clone, Copy)]
enum Length {
    /// This many requests per client.
    Requests(u64),
    /// Until this much time has passed.
    Time(Duration),
}

struct Figures {
    requests: u64,
    concurrency: usize,
    elapsed: Duration,
    errors: u64,
    rss_warm_kib: u64,
    rss_end_kib: u64,
    rss_max_kib: u64,
}

/// Sends one of a mix of requests (cheap text, JSON echo with a secret query, request body
/// echo, an app 404) and checks its answer. Returns a description of anything unexpected.
fn one_request(conn: &mut Conn, id: &str, n: u64) -> Result<(), String> {
    let headers = [("x-request-id", id)];
    let check = |response: &Response, status: u16| -> Result<(), String> {
        if response.status != status {
            return Err(format!(
                "{id}: status {} instead of {status}",
                response.status
            ));
        }
        match response.header("x-request-id") {
            Some(echoed) if echoed == id => Ok(()),
            other => Err(format!("{id}: response request id {other:?}")),
        }
    };
    match n % 8 {
        0..=3 => {
            let response = conn.get("/hello", &headers);
            check(&response, 200)?;
            if response.body != b"hello\n" {
                return Err(format!("{id}: body {:?}", response.text()));
            }
        }
        4 | 5 => {
            let response = conn.get(&format!("/users/{n}?token=s3cr3t&page=2"), &headers);
            check(&response, 200)?;
            if response.json()["path"] != format!("/users/{n}").as_str() {
                return Err(format!("{id}: echo {}", response.text()));
            }
        }
        6 => {
            let body = format!("body of {id} ").repeat(64);
            let response = conn.request("POST", "/echo-body", &headers, body.as_bytes());
            check(&response, 200)?;
            if response.body != body.as_bytes() {
                return Err(format!("{id}: echoed {} bytes", response.body.len()));
            }
        }
        _ => check(&conn.get("/status/404", &headers), 404)?,
    }
    Ok(())
}

fn soak(concurrency: usize, warm_up: Length, length: Length) -> Figures {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let tap = {
        let seen = seen.clone();
        move |line: &str| {
            let mut seen = seen.lock().unwrap();
            match serde_json::from_str::<serde_json::Value>(line) {
                Ok(v) if v["event"] == "http.request" => {
                    let id = v["request_id"].as_str().unwrap_or("").to_owned();
                    *seen.ids.entry(id).or_default() += 1;
                }
                Ok(_) => seen.other_lines += 1,
                Err(_) => seen.bad_lines.push(line.to_owned()),
            }
        }
    };
    let host = Host::start_tapped(
        &["--env", "EDGE_OBS_ROUTES=/users/{id},/status/{code}"],
        tap,
    );

    let sent = AtomicU64::new(0);
    let errors = Mutex::new(Vec::<String>::new());
    let run = |phase: &str, length: Length| {
        let started = Instant::now();
        std::thread::scope(|scope| {
            for client in 0..concurrency {
                let (sent, errors) = (&sent, &errors);
                scope.spawn(move || {
                    let mut conn = Conn::open(host.addr);
                    let mut n = 0u64;
                    loop {
                        let done = match length {
                            Length::Requests(count) => n >= count,
                            Length::Time(limit) => started.elapsed() >= limit,
                        };
                        if done {
                            break;
                        }
                        let id = format!("soak-{phase}-{client}-{n}");
                        sent.fetch_add(1, Ordering::Relaxed);
                        let outcome =
                            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                                one_request(&mut conn, &id, n)
                            }));
                        match outcome {
                            Ok(Ok(())) => {}
                            Ok(Err(error)) => errors.lock().unwrap().push(error),
                            Err(_) => {
                                let error =
                                    format!("{id}: no valid response (see the panic above)");
                                errors.lock().unwrap().push(error);
                                conn = Conn::open(host.addr);
                            }
                        }
                        n += 1;
                    }
                });
            }
        });
    };

    run("warm", warm_up);
    let rss_warm_kib = host.rss_kib();
    let rss_max = AtomicU64::new(rss_warm_kib);
    let started = Instant::now();
    let sampling = AtomicBool::new(true);
    std::thread::scope(|scope| {
        scope.spawn(|| {
            while sampling.load(Ordering::Relaxed) {
                rss_max.fetch_max(host.rss_kib(), Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(200));
            }
        });
        run("load", length);
        sampling.store(false, Ordering::Relaxed);
    });
    let elapsed = started.elapsed();
    let requests = sent.load(Ordering::Relaxed);

    // Log lines and metric events are written after each response: wait until all arrived.
    let deadline = Instant::now() + Duration::from_secs(30);
    while (seen.lock().unwrap().ids.len() as u64) < requests && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    let metrics = host.wait_metrics("every request counted", |text| {
        metric_sum(text, "http_server_requests_total", &[]) as u64 == requests
            && metric_sum(text, "http_server_active_requests", &[]) == 0.0
    });
    let rss_end_kib = host.rss_kib();
    let errors = errors.into_inner().unwrap();
    let seen = seen.lock().unwrap();
    let warm_requests = seen
        .ids
        .keys()
        .filter(|id| id.starts_with("soak-warm-"))
        .count();
    let figures = Figures {
        requests,
        concurrency,
        elapsed,
        errors: errors.len() as u64,
        rss_warm_kib,
        rss_end_kib,
        rss_max_kib: rss_max.load(Ordering::Relaxed).max(rss_end_kib),
    };
    println!(
        "soak: {} requests ({} of them after warm-up, in {:.1} s: {:.0} req/s) at concurrency {}, {} errors; host RSS after warm-up {} KiB, at the end {} KiB, max {} KiB",
        figures.requests,
        figures.requests - warm_requests as u64,
        figures.elapsed.as_secs_f64(),
        (figures.requests - warm_requests as u64) as f64 / figures.elapsed.as_secs_f64().max(0.001),
        figures.concurrency,
        figures.errors,
        figures.rss_warm_kib,
        figures.rss_end_kib,
        figures.rss_max_kib
    );

    assert!(
        errors.is_empty(),
        "{} unexpected errors, first ones:\n{}",
        errors.len(),
        errors[..errors.len().min(20)].join("\n")
    );
    assert!(
        seen.bad_lines.is_empty(),
        "incomplete or invalid log lines: {:?}",
        &seen.bad_lines[..seen.bad_lines.len().min(5)]
    );
    assert_eq!(seen.other_lines, 0, "unexpected stdout lines");
    let duplicated: Vec<_> = seen.ids.iter().filter(|(_, n)| **n != 1).take(10).collect();
    assert!(
        duplicated.is_empty(),
        "ids logged more than once: {duplicated:?}"
    );
    // Every id logged is one we sent, once; as many as we sent: each request exactly once.
    assert!(seen.ids.keys().all(|id| id.starts_with("soak-")));
    assert_eq!(seen.ids.len() as u64, requests, "every request logged once");
    for status in ["200", "404"] {
        assert!(
            metric_sum(
                &metrics,
                "http_server_requests_total",
                &[("http_response_status_code", status)]
            ) > 0.0
        );
    }
    assert_eq!(
        metric_sum(&metrics, "runtime_host_guest_traps_total", &[]),
        0.0
    );
    assert_eq!(
        metric_sum(&metrics, "runtime_host_rejected_requests_total", &[]),
        0.0
    );
    assert!(
        figures.rss_end_kib * 2 < figures.rss_warm_kib * 3,
        "host RSS grew by more than 50% after warm-up: {} KiB -> {} KiB",
        figures.rss_warm_kib,
        figures.rss_end_kib
    );
    figures
}

#[test]
fn short_soak() {
    soak(16, Length::Requests(100), Length::Requests(400));
}

/// `scripts/soak.sh`: minutes of load; `SOAK_SECS` and `SOAK_CONCURRENCY` set the length and
/// the number of clients.
#[test]
#[ignore = "minutes long; run by scripts/soak.sh"]
fn long_soak() {
    let env = |name: &str, default: u64| {
        std::env::var(name)
            .ok()
            .map(|v| {
                v.parse()
                    .unwrap_or_else(|_| panic!("{name}={v} is not a number"))
            })
            .unwrap_or(default)
    };
    let secs = env("SOAK_SECS", 180);
    let concurrency = env("SOAK_CONCURRENCY", 32) as usize;
    let warm_up = Duration::from_secs((secs / 10).clamp(5, 30));
    soak(
        concurrency,
        Length::Time(warm_up),
        Length::Time(Duration::from_secs(secs)),
    );
}
