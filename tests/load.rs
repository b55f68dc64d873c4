//! Load up to the concurrency limit, on loopback: every request below
//! `--max-concurrent-requests` is served, none gets a 5xx. Instances churn under load (each is
//! replaced after `--max-instance-reuse` requests and drains while the next one starts), and
//! the host once answered four in ten requests with 500 when that churn filled its instance
//! pool. Bounded: each step runs for a few seconds and stops by itself.

mod common;

use common::{Conn, Host};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long each concurrency step sends requests.
const STEP: Duration = Duration::from_secs(3);

/// `clients` keep-alive connections sending `GET /hello` for [`STEP`]; the statuses seen and
/// how often.
fn load(host: &Host, clients: usize) -> BTreeMap<u16, u64> {
    let stop = Arc::new(AtomicBool::new(false));
    let statuses = Arc::new(Mutex::new(BTreeMap::new()));
    let threads: Vec<_> = (0..clients)
        .map(|_| {
            let (addr, stop, statuses) = (host.addr, stop.clone(), statuses.clone());
            std::thread::spawn(move || {
                let mut seen = BTreeMap::<u16, u64>::new();
                let mut conn = Conn::open(addr);
                while !stop.load(Ordering::Relaxed) {
                    let response = conn.get("/hello", &[]);
                    *seen.entry(response.status).or_default() += 1;
                    if response.header("connection").as_deref() == Some("close") {
                        conn = Conn::open(addr);
                    }
                }
                let mut all = statuses.lock().unwrap();
                for (status, n) in seen {
                    *all.entry(status).or_default() += n;
                }
            })
        })
        .collect();
    std::thread::sleep(STEP);
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    Arc::try_unwrap(statuses).unwrap().into_inner().unwrap()
}

#[test]
fn load_up_to_the_concurrency_limit_gets_no_5xx() {
    // A small limit and reuse make the pool churn on two cores as it does on many at the
    // defaults (512 requests at once, 128 requests per instance).
    let host = Host::start(&[
        "--max-concurrent-requests",
        "128",
        "--max-instance-reuse",
        "16",
        "--max-instance-concurrency",
        "4",
    ]);
    for clients in [16, 64, 128] {
        let statuses = load(&host, clients);
        println!("{clients} clients: {statuses:?}");
        assert!(
            statuses.get(&200).copied().unwrap_or(0) > 0,
            "{clients} clients: {statuses:?}"
        );
        assert_eq!(
            statuses.keys().copied().collect::<Vec<_>>(),
            vec![200],
            "{clients} clients, at or below the limit of 128: every request served"
        );
    }
    // Nothing was blamed on the guest.
    assert!(
        !host
            .stderr()
            .iter()
            .any(|l| l.contains("guest_trap") || l.contains("guest trapped")),
        "{:?}",
        host.stderr()
    );
    assert_eq!(common::get(host.addr, "/hello", &[]).status, 200);
}
