//! The live admin page (`/` and `/api/v1/stats` on the admin address), checked in a real
//! headless Chromium (Debian's `chromium`, installed by `scripts/test.sh`) against the real
//! host serving real traffic.

#[path = "common/browser.rs"]
mod browser;
mod common;

use browser::Browser;
use common::{Host, get};
use serde_json::Value;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

/// Sends a steady mix of requests (2xx, 4xx, 5xx, several routes) until dropped.
struct Traffic {
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicU64>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    fn start(host: &Host) -> Traffic {
        let addr = host.addr;
        let stop = Arc::new(AtomicBool::new(false));
        let sent = Arc::new(AtomicU64::new(0));
        let thread = {
            let (stop, sent) = (stop.clone(), sent.clone());
            std::thread::spawn(move || {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let path = match i % 10 {
                        3 => "/status/404".to_owned(),
                        7 => "/status/503".to_owned(),
                        5 => "/hello".to_owned(),
                        _ => format!("/users/{}", i % 50),
                    };
                    get(addr, &path, &[]);
                    sent.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                    std::thread::sleep(Duration::from_millis(15));
                }
            })
        };
        Traffic {
            stop,
            sent,
            thread: Some(thread),
        }
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn out_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("admin_page");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn number(b: &mut Browser, id: &str) -> f64 {
    let text = b.eval(&format!("document.getElementById('{id}').textContent"));
    text.as_str()
        .and_then(|t| t.parse().ok())
        .unwrap_or_else(|| panic!("#{id} shows no number: {text}"))
}

const ROUTES: &str = "EDGE_OBS_ROUTES=/users/{id},/status/{code}";

#[test]
fn the_page_shows_live_traffic_in_headless_chromium() {
    let host = Host::start(&["--env", ROUTES]);
    let traffic = Traffic::start(&host);
    let mut b = Browser::launch(1280, 900);
    b.navigate(&format!("http://{}/", host.admin));

    // The page fills itself from /api/v1/stats.
    b.wait_for(
        "requests counted on the page",
        "Number(document.getElementById('total-requests').textContent) > 0",
    );
    let before = number(&mut b, "total-requests");
    let instantiations_before = b.eval(
        "[...document.querySelectorAll('#counters tr')].find(r => r.cells[0].textContent === 'instantiations').cells[1].textContent",
    );
    assert!(
        instantiations_before
            .as_str()
            .is_some_and(|n| n.parse::<u64>().is_ok())
    );

    // A request just sent shows up in the list, by its id.
    let id = format!("page-check-{}", std::process::id());
    let r = get(host.addr, "/users/7?page=2", &[("x-request-id", &id)]);
    assert_eq!(r.status, 200);
    let row = format!("#recent tbody tr[data-request-id='{id}']");
    b.wait_for(
        "the request just sent in the recent list",
        &format!("!!document.querySelector(\"{row}\")"),
    );
    let cells = b.eval(&format!(
        "[...document.querySelector(\"{row}\").cells].map(c => c.textContent)"
    ));
    let cells: Vec<&str> = cells
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cells[1], "GET");
    assert!(
        cells[2].starts_with("/users/7") && cells[2].contains("route /users/{id}"),
        "{cells:?}"
    );
    assert_eq!(cells[3], "200");
    assert_eq!(cells[5], id);

    // Counters move while the page is open.
    b.wait_for(
        "the request counter to move",
        &format!("Number(document.getElementById('total-requests').textContent) > {before}"),
    );
    b.wait_for(
        "a request rate",
        "parseFloat(document.getElementById('rate-1m').textContent) > 0",
    );
    b.wait_for(
        "a p95",
        "/ms$/.test(document.getElementById('p95').textContent)",
    );
    // Errors are counted too (the traffic has 503s).
    b.wait_for(
        "failed requests counted",
        "Number(document.getElementById('total-errors').textContent) > 0",
    );

    // Charts: drawn, with markers and written values, so they read without colour.
    b.wait_for(
        "chart lines with markers",
        "document.querySelectorAll('#chart-rate circle').length > 0 && !!document.querySelector('#chart-rate path.series')",
    );
    for chart in [
        "chart-rate",
        "chart-errors",
        "chart-latency",
        "chart-classes",
    ] {
        let text = b.eval(&format!(
            "document.querySelector('#{chart} svg title').textContent + ' | ' + [...document.querySelectorAll('#{chart} svg text')].map(t => t.textContent).join(' ')"
        ));
        assert!(
            text.as_str().is_some_and(|t| t.len() > 20),
            "{chart}: {text}"
        );
    }
    let classes = b.eval("document.querySelector('#chart-classes svg title').textContent");
    assert!(
        classes.as_str().unwrap().contains("5xx") && classes.as_str().unwrap().contains("2xx"),
        "{classes}"
    );
    assert_eq!(
        b.eval("document.querySelectorAll('#chart-classes pattern').length"),
        6
    );

    // SLO panel: the 503s in the mix (1 in 10) miss 99.5 % availability.
    b.wait_for(
        "the availability verdict",
        "/MISSED/.test(document.getElementById('slo').textContent)",
    );
    let slo = b.eval("document.getElementById('slo').textContent");
    assert!(slo.as_str().unwrap().contains("error budget used"), "{slo}");

    // Chain, readiness and settings as the host has them.
    let chain = b.eval("document.getElementById('chain').textContent");
    assert!(
        chain
            .as_str()
            .unwrap()
            .contains("edge-observability middleware")
            && chain.as_str().unwrap().contains("demo app"),
        "{chain}"
    );
    let readiness = b.eval("document.getElementById('readiness').textContent");
    assert!(
        readiness.as_str().unwrap().contains("[+]components ok")
            && readiness.as_str().unwrap().ends_with("readyz check passed"),
        "{readiness}"
    );
    let settings = b.eval("document.getElementById('settings').textContent");
    assert!(
        settings.as_str().unwrap().contains("/users/{id}"),
        "{settings}"
    );

    // Clicking the row shows the whole (redacted) line.
    b.eval(&format!("document.querySelector(\"{row}\").click()"));
    let detail = b.wait_for(
        "the detail view",
        "!document.getElementById('detail').hidden && document.getElementById('detail-line').textContent",
    );
    let detail: Value =
        serde_json::from_str(detail.as_str().unwrap()).expect("detail is the JSON line");
    assert_eq!(detail["request_id"], id.as_str());
    assert_eq!(detail["event"], "http.request");
    assert_eq!(detail["url.query"], "page=2");

    // Filters: status class, then a pasted id.
    b.eval("{ const s = document.getElementById('f-status'); s.value = '5xx'; s.dispatchEvent(new Event('change')); }");
    b.wait_for(
        "only 5xx rows",
        "(() => { const rows = [...document.querySelectorAll('#recent tbody tr')]; return rows.length > 0 && rows.every(r => r.cells[3].textContent.startsWith('5')); })()",
    );
    b.eval("{ const s = document.getElementById('f-status'); s.value = ''; s.dispatchEvent(new Event('change')); }");
    b.eval(&format!(
        "{{ const i = document.getElementById('f-id'); i.value = '{id}'; i.dispatchEvent(new Event('input')); }}"
    ));
    b.wait_for(
        "only the pasted id",
        &format!("(() => {{ const rows = [...document.querySelectorAll('#recent tbody tr')]; return rows.length === 1 && rows[0].dataset.requestId === '{id}'; }})()"),
    );
    b.eval("{ const i = document.getElementById('f-id'); i.value = ''; i.dispatchEvent(new Event('input')); }");
    b.wait_for(
        "the full list again",
        "document.querySelectorAll('#recent tbody tr').length > 1",
    );

    let png = b.screenshot(&out_dir().join("admin-page.png"));
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a real screenshot"
    );

    // A narrow (phone) window: one column, nothing wider than the screen.
    b.viewport(390, 844, true);
    b.wait_for(
        "the narrow layout",
        "document.documentElement.scrollWidth <= window.innerWidth",
    );
    assert_eq!(
        b.eval("getComputedStyle(document.querySelector('.charts')).gridTemplateColumns.split(' ').length"),
        1
    );
    let png = b.screenshot(&out_dir().join("admin-page-narrow.png"));
    assert!(png.starts_with(b"\x89PNG"));

    assert!(traffic.sent.load(Ordering::Relaxed) > 0);
    drop(traffic);

    // From the latency chart to a trace: a click on a point names the slowest listed request of
    // its interval with its trace id and opens it. Once the traffic has stopped, the newest
    // point's interval holds the newest requests, which the list shows.
    b.viewport(1280, 900, false);
    let picked = b.wait_for(
        "a latency point leading to a traced request",
        "(() => { const m = [...document.querySelectorAll('#chart-latency .point')].pop(); if (!m) return false; m.dispatchEvent(new MouseEvent('click')); const t = document.getElementById('latency-pick-trace'); return !!t && /^[0-9a-f]{32}$/.test(t.textContent) && t.textContent; })()",
    );
    let picked = picked.as_str().unwrap().to_owned();
    assert_eq!(
        b.eval("document.querySelector('#chart-latency .point').getAttribute('role')"),
        "button"
    );
    let detail = b.wait_for(
        "the picked request's line",
        "!document.getElementById('detail').hidden && document.getElementById('detail-line').textContent",
    );
    let detail: Value = serde_json::from_str(detail.as_str().unwrap()).unwrap();
    assert_eq!(detail["trace_id"], picked.as_str(), "{detail}");
    assert_eq!(
        b.eval("document.getElementById('f-id').value"),
        picked.as_str()
    );
    assert_eq!(b.errors(), Vec::<String>::new(), "the console shows errors");
}

/// Secrets that the access line redacts (query parameter, `Authorization`, cookie) and
/// secrets in settings appear neither in the JSON nor on the page.
#[test]
fn secrets_never_reach_the_page_or_the_api() {
    const QUERY_SECRET: &str = "Q5ecretInQuery";
    const AUTH_SECRET: &str = "A5ecretInAuthorization";
    const COOKIE_SECRET: &str = "C5ecretInCookie";
    const SETTING_SECRET: &str = "S5ecretInSettings";
    const ENV_SECRET: &str = "E5ecretInAppEnv";
    let secrets = [
        QUERY_SECRET,
        AUTH_SECRET,
        COOKIE_SECRET,
        SETTING_SECRET,
        ENV_SECRET,
    ];
    let host = Host::start(&[
        "--env",
        ROUTES,
        "--env",
        "EDGE_OBS_LOG_REQUEST_HEADERS=authorization,cookie,accept",
        "--env",
        &format!("EDGE_OBS_REQUEST_SET_HEADERS=x-origin-key: {SETTING_SECRET}"),
        "--env",
        &format!("APP_DATABASE_PASSWORD={ENV_SECRET}"),
    ]);
    let id = format!("secret-check-{}", std::process::id());
    let r = get(
        host.addr,
        &format!("/users/1?token={QUERY_SECRET}&page=2"),
        &[
            ("x-request-id", &id),
            ("authorization", &format!("Bearer {AUTH_SECRET}")),
            ("cookie", &format!("session={COOKIE_SECRET}; theme=dark")),
            ("accept", "application/json"),
        ],
    );
    assert_eq!(r.status, 200);

    // The JSON endpoint lists the request, redacted.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let stats = loop {
        let r = host.admin_get(&format!("/api/v1/stats?id={id}"));
        assert_eq!(r.status, 200);
        let text = r.text();
        if r.json()["recent"]["requests"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
        {
            break text;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "request never listed: {text}"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let v: Value = serde_json::from_str(&stats).unwrap();
    let line: Value =
        serde_json::from_str(v["recent"]["requests"][0]["line"].as_str().unwrap()).unwrap();
    assert_eq!(line["url.query"], "token=[REDACTED]&page=2");
    assert_eq!(line["http.request.header.authorization"], "[REDACTED]");
    assert_eq!(line["http.request.header.cookie"], "[REDACTED]");
    assert_eq!(line["http.request.header.accept"], "application/json");
    for secret in secrets {
        assert!(
            !stats.contains(secret),
            "{secret} in /api/v1/stats: {stats}"
        );
    }
    let setting = v["settings"]["settings"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "EDGE_OBS_REQUEST_SET_HEADERS")
        .expect("the header rule is listed");
    assert_eq!(setting["value"], "x-origin-key: [REDACTED]");
    assert_eq!(v["settings"]["other_variables"], 1);

    // The page, with the detail view of that request open.
    let mut b = Browser::launch(1280, 900);
    b.navigate(&format!("http://{}/", host.admin));
    let row = format!("#recent tbody tr[data-request-id='{id}']");
    b.wait_for(
        "the request in the list",
        &format!("!!document.querySelector(\"{row}\")"),
    );
    b.eval(&format!("document.querySelector(\"{row}\").click()"));
    b.wait_for(
        "the detail view",
        "!document.getElementById('detail').hidden",
    );
    let page = b.eval("document.documentElement.outerHTML + document.body.innerText");
    let page = page.as_str().unwrap();
    assert!(
        page.contains(&id) && page.contains("[REDACTED]"),
        "the page shows the request"
    );
    for secret in secrets {
        assert!(!page.contains(secret), "{secret} on the page");
    }
    // The raw page as served, too.
    let html = host.admin_get("/").text();
    for secret in secrets {
        assert!(!html.contains(secret), "{secret} in the served page");
    }
    assert_eq!(b.errors(), Vec::<String>::new());
}

#[test]
fn the_admin_token_guards_everything_but_the_probes() {
    const TOKEN: &str = "t0ken-for-the-admin-page";
    let host = Host::start_with_env(&[], &[("RUNTIME_HOST_ADMIN_TOKEN", TOKEN)]);
    let admin = host.admin;
    let bearer = format!("Bearer {TOKEN}");
    for probe in [
        "/livez",
        "/readyz",
        "/readyz?verbose",
        "/healthz",
        "/startupz",
    ] {
        assert_eq!(get(admin, probe, &[]).status, 200, "{probe} stays open");
    }
    for path in ["/", "/metrics", "/api/v1/stats", "/nope"] {
        let r = get(admin, path, &[]);
        assert_eq!(r.status, 401, "{path} without the token");
        assert_eq!(
            r.header("www-authenticate").as_deref(),
            Some("Bearer realm=\"runtime-host admin\"")
        );
        assert!(!r.text().contains(TOKEN));
        assert_eq!(
            get(admin, path, &[("authorization", "Bearer not-the-token")]).status,
            401,
            "{path} with a wrong token"
        );
        let expected = if path == "/nope" { 404 } else { 200 };
        assert_eq!(
            get(admin, path, &[("authorization", &bearer)]).status,
            expected,
            "{path} with the token"
        );
    }
    // The query token opens the page only; the data needs the header.
    let page = get(admin, &format!("/?token={TOKEN}"), &[]);
    assert_eq!(page.status, 200);
    assert!(
        !page.text().contains(TOKEN),
        "the page does not echo the token"
    );
    assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(
        page.header("referrer-policy").as_deref(),
        Some("no-referrer")
    );
    assert_eq!(
        get(admin, &format!("/api/v1/stats?token={TOKEN}"), &[]).status,
        401
    );
    assert_eq!(
        get(admin, &format!("/metrics?token={TOKEN}"), &[]).status,
        401
    );

    // In the browser: the page takes the token from the address, drops it from there and
    // loads its data with it.
    get(host.addr, "/hello", &[]);
    let mut b = Browser::launch(1024, 768);
    b.navigate(&format!("http://{admin}/?token={TOKEN}"));
    b.wait_for(
        "data loaded with the token",
        "Number(document.getElementById('total-requests').textContent) > 0",
    );
    assert_eq!(b.eval("location.search"), "");
    assert_eq!(b.eval("document.getElementById('problem').hidden"), true);
    assert_eq!(b.errors(), Vec::<String>::new());
    assert!(
        host.stderr().iter().all(|l| !l.contains(TOKEN)),
        "the token is not logged"
    );
}

#[test]
fn the_page_can_be_switched_off() {
    let host = Host::start(&["--no-admin-page"]);
    assert_eq!(host.admin_get("/").status, 404);
    assert_eq!(host.admin_get("/api/v1/stats").status, 404);
    assert_eq!(host.admin_get("/metrics").status, 200);
}

/// Makes the README's screenshot (`docs/admin-page.png`) from a real run: about 90 s of mixed
/// traffic (fast and slow requests, 4xx, a few 5xx), then the page with one request opened.
/// `cargo test --release -p runtime-host --test admin_page -- --ignored readme_screenshot`
#[test]
#[ignore = "writes docs/admin-page.png; run by hand"]
fn readme_screenshot() {
    let host = Host::start(&[
        "--env",
        "EDGE_OBS_ROUTES=/users/{id},/status/{code},/delay/{ms}",
        "--env",
        "EDGE_OBS_SERVICE_NAME=shop",
        "--env",
        "EDGE_OBS_LOG_REQUEST_HEADERS=authorization,accept",
    ]);
    let stop = Arc::new(AtomicBool::new(false));
    let threads: Vec<_> = (0..3u64)
        .map(|t| {
            let (addr, stop) = (host.addr, stop.clone());
            std::thread::spawn(move || {
                let mut i = t;
                while !stop.load(Ordering::Relaxed) {
                    let path = match i % 50 {
                        7 => "/status/503".to_owned(),
                        3 | 13 | 23 => "/status/404".to_owned(),
                        11 | 31 => format!("/delay/{}", 200 + (i * 37) % 600),
                        5 | 25 | 45 => "/hello".to_owned(),
                        _ => format!("/users/{}", i % 97),
                    };
                    get(addr, &path, &[]);
                    i += 3;
                    // A rate that rises and falls over the run.
                    std::thread::sleep(Duration::from_millis(20 + (i / 40) % 30));
                }
            })
        })
        .collect();
    std::thread::sleep(Duration::from_secs(85));
    let id = "0195f3c2-7d4a-7c1e-9a53-5d2b8e4f6a10";
    get(
        host.addr,
        "/users/42?token=s3cr3t&page=2",
        &[
            ("x-request-id", id),
            ("authorization", "Bearer abc"),
            ("accept", "application/json"),
        ],
    );
    let mut b = Browser::launch(1280, 900);
    b.navigate(&format!("http://{}/", host.admin));
    let row = format!("#recent tbody tr[data-request-id='{id}']");
    b.wait_for(
        "the request",
        &format!("!!document.querySelector(\"{row}\")"),
    );
    b.eval(&format!("document.querySelector(\"{row}\").click()"));
    b.wait_for(
        "the detail view",
        "!document.getElementById('detail').hidden",
    );
    stop.store(true, Ordering::Relaxed);
    for t in threads {
        t.join().unwrap();
    }
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/admin-page.png");
    b.screenshot(&docs);
    assert_eq!(b.errors(), Vec::<String>::new());
}
