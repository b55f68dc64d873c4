//! End-to-end: CORS, log context from the app, the app's own metrics and the host's rate
//! limiting, through the real runtime-host binary, middleware and demo app on loopback.

mod common;

use common::{Host, get, metric_sum, promtool_check, request, unique};

const ORIGIN: &str = "https://app.example.com";

fn cors_host() -> Host {
    Host::start(&[
        "--env",
        "EDGE_OBS_CORS_ALLOW_ORIGINS=https://app.example.com,https://*.example.org",
        "--env",
        "EDGE_OBS_CORS_ALLOW_METHODS=GET,PUT,DELETE",
        "--env",
        "EDGE_OBS_CORS_ALLOW_HEADERS=content-type,x-request-id",
        "--env",
        "EDGE_OBS_CORS_EXPOSE_HEADERS=x-request-id",
        "--env",
        "EDGE_OBS_CORS_MAX_AGE=600",
    ])
}

#[test]
fn a_preflight_is_answered_by_the_middleware_without_reaching_the_app() {
    let host = cors_host();
    let id = unique("preflight");
    let response = request(
        host.addr,
        "OPTIONS",
        "/api/items/7",
        &[
            ("origin", ORIGIN),
            ("access-control-request-method", "PUT"),
            ("access-control-request-headers", "content-type"),
            ("x-request-id", &id),
        ],
        b"",
    );
    assert_eq!(response.status, 204, "{response:?}");
    // The demo app answers every OPTIONS request on this path with a 200 JSON echo: an empty
    // 204 means it was not called.
    assert!(response.body.is_empty(), "{response:?}");
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );
    assert_eq!(
        response.header("access-control-allow-methods").as_deref(),
        Some("GET, PUT, DELETE")
    );
    assert_eq!(
        response.header("access-control-allow-headers").as_deref(),
        Some("content-type, x-request-id")
    );
    assert_eq!(
        response.header("access-control-max-age").as_deref(),
        Some("600")
    );
    assert!(response.header("vary").unwrap().contains("origin"));
    assert_eq!(response.request_id(), id);
    // Logged and counted like any request.
    let line = host.log_line(&id);
    assert_eq!(line["http.request.method"], "OPTIONS");
    assert_eq!(line["http.response.status_code"], 204);
    let text = host.wait_metrics("the preflight", |t| {
        metric_sum(
            t,
            "http_server_requests_total",
            &[
                ("http_request_method", "OPTIONS"),
                ("http_response_status_code", "204"),
            ],
        ) == 1.0
    });
    promtool_check(&text);

    // An OPTIONS request that is not a preflight reaches the app, which echoes it.
    let plain = request(
        host.addr,
        "OPTIONS",
        "/api/items/7",
        &[("origin", ORIGIN)],
        b"",
    );
    assert_eq!(plain.status, 200);
    assert_eq!(plain.json()["method"], "OPTIONS");
    assert_eq!(
        plain.header("access-control-allow-origin").as_deref(),
        Some(ORIGIN)
    );

    // A preflight from a disallowed origin is answered too, without any CORS grant.
    let denied = request(
        host.addr,
        "OPTIONS",
        "/api/items/7",
        &[
            ("origin", "https://evil.example.com"),
            ("access-control-request-method", "PUT"),
        ],
        b"",
    );
    assert_eq!(denied.status, 204);
    assert!(
        denied
            .headers
            .iter()
            .all(|(n, _)| !n.to_ascii_lowercase().starts_with("access-control-")),
        "{denied:?}"
    );
}

#[test]
fn actual_requests_get_cors_headers_only_for_allowed_origins() {
    let host = cors_host();
    let allowed = get(
        host.addr,
        "/hello",
        &[("origin", "https://a.b.example.org")],
    );
    assert_eq!(allowed.status, 200);
    assert_eq!(
        allowed.header("access-control-allow-origin").as_deref(),
        Some("https://a.b.example.org")
    );
    assert_eq!(
        allowed.header("access-control-expose-headers").as_deref(),
        Some("x-request-id")
    );
    assert_eq!(allowed.header("vary").as_deref(), Some("origin"));
    assert!(allowed.header("access-control-allow-credentials").is_none());
    // The default Cross-Origin-Resource-Policy stays; CORS-mode fetches are not subject to it.
    assert_eq!(
        allowed.header("cross-origin-resource-policy").as_deref(),
        Some("same-origin")
    );

    let long = format!("https://{}.example.org", "a".repeat(4000));
    for hostile in [
        vec![("origin", "null")],
        vec![("origin", "https://example.org")],
        vec![("origin", "https://app.example.com.evil.net")],
        vec![("origin", "https://app.exam\tple.com")],
        vec![("origin", long.as_str())],
        vec![("origin", ORIGIN), ("origin", "https://evil.net")],
        vec![("origin", "https://app.example.com, https://evil.net")],
    ] {
        let response = get(host.addr, "/hello", &hostile);
        assert_eq!(response.status, 200, "{hostile:?}");
        assert!(
            response.header("access-control-allow-origin").is_none(),
            "{hostile:?}: {response:?}"
        );
        assert_eq!(response.header("vary").as_deref(), Some("origin"));
    }
    // Without CORS settings nothing CORS-related is added.
    let plain = Host::start(&[]);
    let response = get(plain.addr, "/hello", &[("origin", ORIGIN)]);
    assert!(response.header("access-control-allow-origin").is_none());
    assert!(response.header("vary").is_none());
}

#[test]
fn credentials_with_the_wildcard_origin_are_reported_and_not_granted() {
    let host = Host::start(&[
        "--env",
        "EDGE_OBS_CORS_ALLOW_ORIGINS=*",
        "--env",
        "EDGE_OBS_CORS_ALLOW_CREDENTIALS=on",
    ]);
    host.wait_stderr("the configuration error", |l| {
        l.contains("EDGE_OBS_CORS_ALLOW_CREDENTIALS") && l.contains("wildcard")
    });
    let response = get(host.addr, "/hello", &[("origin", ORIGIN)]);
    assert_eq!(
        response.header("access-control-allow-origin").as_deref(),
        Some("*")
    );
    assert!(
        response
            .header("access-control-allow-credentials")
            .is_none()
    );
}

#[test]
fn log_context_from_the_app_goes_into_the_line_not_to_the_client() {
    let host = Host::start(&[]);
    let id = unique("ctx");
    let response = get(
        host.addr,
        "/headers?obs-context-user-id=42&obs-context-tenant=acme%22corp&obs-context-authorization=Bearer%20s3cr3t&x-other=kept",
        &[("x-request-id", &id)],
    );
    assert_eq!(response.status, 200, "{response:?}");
    assert!(
        response
            .headers
            .iter()
            .all(|(n, _)| !n.to_ascii_lowercase().starts_with("obs-context-")),
        "{response:?}"
    );
    assert_eq!(response.header("x-other").as_deref(), Some("kept"));
    let line = host.log_line(&id);
    assert_eq!(line["context.user-id"], "42");
    assert_eq!(line["context.tenant"], "acme\"corp");
    // A context field named like a secret header is redacted (the query, which also carries
    // it in this test, is logged as a query).
    assert_eq!(line["context.authorization"], "[REDACTED]");

    // Switched off: the headers reach the client and the line has no context.
    let off = Host::start(&["--env", "EDGE_OBS_LOG_CONTEXT=off"]);
    let id = unique("ctx-off");
    let response = get(
        off.addr,
        "/headers?obs-context-user-id=42",
        &[("x-request-id", &id)],
    );
    assert_eq!(
        response.header("obs-context-user-id").as_deref(),
        Some("42")
    );
    assert!(off.log_line(&id).get("context.user-id").is_none());
}

#[test]
fn app_metrics_reach_metrics_under_the_app_prefix() {
    let host = Host::start(&[]);
    for _ in 0..3 {
        let response = get(host.addr, "/app-metric", &[]);
        assert_eq!(response.status, 200);
        assert_eq!(response.text(), "counted\n");
    }
    let text = host.wait_metrics("three app metric increments and requests", |t| {
        metric_sum(
            t,
            "app_demo_app_metric_requests_total",
            &[("source", "hello-app")],
        ) == 3.0
            && metric_sum(t, "http_server_requests_total", &[]) == 3.0
    });
    assert!(
        text.contains("# TYPE app_demo_app_metric_requests_total counter"),
        "{text}"
    );
    assert_eq!(
        metric_sum(&text, "runtime_host_app_metric_invalid_total", &[]),
        0.0
    );
    promtool_check(&text);
    // The lines feed /metrics instead of being printed.
    assert!(
        !host
            .stdout()
            .iter()
            .any(|l| l.contains("edge_obs.app_metric.v1"))
    );
}

#[test]
fn requests_over_the_rate_limit_get_429_with_the_rate_limit_fields() {
    // 3 per hour: no token comes back while the test runs, however slow the machine.
    let host = Host::start(&["--rate-limit", "3/h"]);
    for _ in 0..3 {
        assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    }
    let response = get(host.addr, "/hello", &[]);
    assert_eq!(response.status, 429, "{response:?}");
    assert_eq!(
        response.header("content-type").as_deref(),
        Some("application/problem+json")
    );
    let retry_after: u64 = response.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=1200).contains(&retry_after), "{retry_after}");
    assert_eq!(
        response.header("ratelimit-policy").as_deref(),
        Some("\"default\";q=3;w=3600")
    );
    assert_eq!(
        response.header("ratelimit"),
        Some(format!("\"default\";r=0;t={retry_after}"))
    );
    let body = response.json();
    assert_eq!(body["status"], 429);
    assert_eq!(
        body["detail"],
        edge_observability::problem::TOO_MANY_REQUESTS_DETAIL
    );
    let text = host.metrics();
    assert_eq!(
        metric_sum(
            &text,
            "runtime_host_rejected_requests_total",
            &[("reason", "rate_limited")]
        ),
        1.0
    );
    promtool_check(&text);
    // The admin address is not limited.
    assert_eq!(host.admin_get("/readyz").status, 200);

    // Per header value: each key has its own budget.
    let keyed = Host::start(&[
        "--rate-limit",
        "1/h",
        "--rate-limit-key",
        "header:x-api-key",
    ]);
    assert_eq!(
        get(keyed.addr, "/hello", &[("x-api-key", "k1")]).status,
        200
    );
    assert_eq!(
        get(keyed.addr, "/hello", &[("x-api-key", "k1")]).status,
        429
    );
    assert_eq!(
        get(keyed.addr, "/hello", &[("x-api-key", "k2")]).status,
        200
    );
}

#[test]
fn rate_limiting_is_off_by_default() {
    let host = Host::start(&[]);
    for _ in 0..50 {
        assert_eq!(get(host.addr, "/hello", &[]).status, 200);
    }
}

/// A flood of made-up keys fills the key map, but a client whose key is already tracked keeps
/// its own bucket: only new keys share the overflow bucket.
#[test]
fn at_the_key_cap_a_tracked_client_keeps_its_own_quota() {
    let host = Host::start(&[
        "--rate-limit",
        "10/h",
        "--rate-limit-key",
        "header:x-api-key",
        "--rate-limit-max-keys",
        "50",
    ]);
    let mine = [("x-api-key", "my-own-key")];
    assert_eq!(get(host.addr, "/hello", &mine).status, 200);
    let mut limited = 0;
    for i in 0..60 {
        let key = format!("made-up-{i}");
        if get(host.addr, "/hello", &[("x-api-key", &key)]).status == 429 {
            limited += 1;
        }
    }
    assert!(limited > 0, "the keys beyond the cap share one bucket");
    assert_eq!(get(host.addr, "/hello", &mine).status, 200);
    let text = host.metrics();
    assert!(
        metric_sum(&text, "runtime_host_rate_limit_key_overflow_total", &[]) >= 10.0,
        "{text}"
    );
}
