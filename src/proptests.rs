//! Property tests over hostile input: whatever the request looks like, every output line is one
//! JSON object without raw control characters, under 4000 bytes, without secrets, and every
//! forwarded or returned header is a valid header value.

use std::time::{Duration, Instant, SystemTime};

use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use proptest::prelude::*;

use crate::exchange::{Completion, ErrorType, Middleware, RequestHead};
use crate::json;

/// Bytes a `HeaderValue` accepts (visible ASCII, space, tab, obs-text 0x80-0xFF).
fn header_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        any::<u8>().prop_map(|b| {
            if b >= 0x20 && b != 0x7f || b == b'\t' {
                b
            } else {
                b'#'
            }
        }),
        0..max,
    )
}

/// Request ids: mostly plausible (valid or near-valid), sometimes anything, sometimes huge.
fn request_id() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        "[!-~]{0,140}".prop_map(String::into_bytes),
        "[a-zA-Z0-9\"\\\\{}:, \t<>'`;-]{0,40}".prop_map(String::into_bytes),
        header_bytes(300),
        (1000usize..70_000).prop_map(|n| vec![b'a'; n]),
    ]
}

/// traceparent values: well-formed, mutated and random.
fn traceparent() -> impl Strategy<Value = Vec<u8>> {
    let well_formed = (
        "[0-9a-fA-F]{2}",
        "[0-9a-f]{32}",
        "[0-9a-f]{16}",
        "[0-9a-fA-F]{2}",
        prop::option::of("-[ -~]{0,10}"),
    )
        .prop_map(|(v, t, p, f, tail)| {
            format!("{v}-{t}-{p}-{f}{}", tail.unwrap_or_default()).into_bytes()
        });
    prop_oneof![
        well_formed,
        "[0-9a-fA-F\\- x]{50,60}".prop_map(String::into_bytes),
        header_bytes(80),
    ]
}

/// Strings rich in the characters escaping must handle (ASCII and C1 controls, quotes,
/// backslashes, line separators), mixed with arbitrary Unicode.
fn hostile_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[\\x00-\\x7f\u{80}-\u{a0}\u{2028}\u{2029}\u{fffd}é]{0,60}",
    ]
}

fn method() -> impl Strategy<Value = Method> {
    prop_oneof![
        prop::sample::select(vec![
            Method::GET,
            Method::POST,
            Method::HEAD,
            Method::PATCH,
            Method::OPTIONS,
        ]),
        "[A-Za-z!#$%&'*+.^_`|~0-9-]{1,80}".prop_map(|m| Method::from_bytes(m.as_bytes()).unwrap()),
    ]
}

fn middleware(pretty: bool) -> Middleware {
    let mut vars = vec![
        (
            "EDGE_OBS_LOG_REQUEST_HEADERS",
            "authorization,cookie,x-api-key,x-session,accept,x-a",
        ),
        (
            "EDGE_OBS_LOG_RESPONSE_HEADERS",
            "set-cookie,x-session,content-type,x-b",
        ),
        ("EDGE_OBS_REDACT_HEADERS", "x-session"),
        ("EDGE_OBS_ROUTES", "/users/{id},/static/*"),
        ("EDGE_OBS_TRUSTED_PROXY_HOPS", "1"),
        ("EDGE_OBS_SERVICE_NAME", "svc"),
    ];
    if pretty {
        vars.push(("EDGE_OBS_LOG_FORMAT", "pretty"));
    }
    let (m, issues) =
        Middleware::from_env(vars.into_iter().map(|(k, v)| (k.to_owned(), v.to_owned())));
    assert!(issues.is_empty());
    m
}

fn value(bytes: &[u8]) -> HeaderValue {
    HeaderValue::from_bytes(bytes).unwrap()
}

fn assert_valid_headers(h: &HeaderMap) {
    for (name, v) in h {
        assert!(
            HeaderValue::from_bytes(v.as_bytes()).is_ok(),
            "{name}: {v:?}"
        );
    }
}

fn assert_lines(out: &str, json_lines: bool, secret: &str) {
    assert!(out.is_empty() || out.ends_with('\n'));
    assert!(!out.contains(secret), "secret leaked: {out}");
    for line in out.lines() {
        assert!(line.len() < 4000, "{}", line.len());
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "raw control byte in {line:?}"
        );
        if json_lines || line.starts_with(crate::metrics::LINE_PREFIX) {
            let v: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(v.is_object());
        }
    }
}

#[derive(Debug, Clone)]
struct Input {
    method: Method,
    path: String,
    query: String,
    id: Vec<u8>,
    alias: Option<Vec<u8>>,
    traceparent: Option<Vec<u8>>,
    tracestate: Option<Vec<u8>>,
    extra: Vec<u8>,
    forwarded_for: Vec<u8>,
    secret: String,
    status: u16,
    failure: Option<usize>,
    duration_ms: u64,
}

fn input() -> impl Strategy<Value = Input> {
    (
        (
            method(),
            hostile_string(),
            hostile_string(),
            request_id(),
            prop::option::of(request_id()),
        ),
        (
            prop::option::of(traceparent()),
            prop::option::of(header_bytes(600)),
            header_bytes(400),
            header_bytes(60),
            "[A-Za-z0-9]{12,24}",
        ),
        (100u16..600, prop::option::of(0usize..7), 0u64..3000),
    )
        .prop_map(
            |(
                (method, path, query, id, alias),
                (traceparent, tracestate, extra, forwarded_for, secret),
                (status, failure, duration_ms),
            )| Input {
                method,
                path: format!("/{path}"),
                query,
                id,
                alias,
                traceparent,
                tracestate,
                extra,
                forwarded_for,
                secret: format!("SeCrEt{secret}"),
                status,
                failure,
                duration_ms,
            },
        )
}

fn run(m: &Middleware, inp: &Input, json_lines: bool) {
    let secret = inp.secret.as_bytes();
    let mut req = HeaderMap::new();
    req.insert("x-request-id", value(&inp.id));
    if let Some(a) = &inp.alias {
        req.insert("x-correlation-id", value(a));
    }
    if let Some(tp) = &inp.traceparent {
        req.insert("traceparent", value(tp));
    }
    if let Some(ts) = &inp.tracestate {
        req.insert("tracestate", value(ts));
    }
    req.insert(
        "authorization",
        value(&[b"Bearer ".as_slice(), secret].concat()),
    );
    req.insert("cookie", value(&[b"sid=".as_slice(), secret].concat()));
    req.insert("x-api-key", value(secret));
    req.insert("x-session", value(secret));
    req.insert("accept", value(&inp.extra));
    req.append("x-a", value(&inp.extra));
    req.append("x-a", value(&inp.extra));
    req.insert("user-agent", value(&inp.extra));
    req.insert("x-forwarded-for", value(&inp.forwarded_for));
    let target = format!("{}?{}&token={}&ok=1", inp.path, inp.query, inp.secret);
    let head = RequestHead {
        method: &inp.method,
        scheme: Some("https"),
        authority: Some(&inp.query),
        path_with_query: &target,
    };
    let mut ex = m.start_with(
        &head,
        &mut req,
        Some(Instant::now()),
        SystemTime::now(),
        &[7; 48],
    );

    // Forwarded request: valid headers, exactly one valid request id, a valid traceparent.
    assert_valid_headers(&req);
    let ids: Vec<_> = req.get_all("x-request-id").iter().collect();
    assert_eq!(ids.len(), 1);
    assert!(crate::request_id::validate(ids[0].as_bytes(), 128).is_ok());
    assert_eq!(ids[0].as_bytes(), ex.request_id().as_bytes());
    assert_eq!(req.get_all("traceparent").iter().count(), 1);
    assert!(crate::trace_context::parse_traceparent(req["traceparent"].as_bytes()).is_ok());

    if let Some(line) = ex.start_line() {
        assert_lines(&line, json_lines, &inp.secret);
    }
    let errors = ErrorType::ALL;
    let end = match inp.failure {
        Some(i) if i % 2 == 0 => {
            let f = ex.on_failure(errors[i % errors.len()]);
            assert_valid_headers(&f.headers);
            assert_eq!(f.headers.get_all("x-request-id").iter().count(), 1);
            if inp.method == http::Method::HEAD {
                assert!(f.body.is_empty());
            } else {
                let body: serde_json::Value = serde_json::from_slice(&f.body).unwrap();
                assert_eq!(body["request_id"], ex.request_id());
            }
            Completion::default()
        }
        other => {
            let mut resp = HeaderMap::new();
            resp.insert("set-cookie", value(&[b"sid=".as_slice(), secret].concat()));
            resp.insert("x-session", value(secret));
            resp.insert("x-request-id", value(&inp.id));
            resp.insert("x-b", value(&inp.extra));
            resp.insert("content-type", value(&inp.extra));
            ex.on_response(
                StatusCode::from_u16(inp.status).unwrap(),
                &mut resp,
                Duration::from_millis(inp.duration_ms),
            );
            assert_valid_headers(&resp);
            assert_eq!(resp["x-request-id"].as_bytes(), ex.request_id().as_bytes());
            assert_eq!(resp.get_all("x-request-id").iter().count(), 1);
            Completion {
                request_body_bytes: Some(inp.duration_ms),
                response_body_bytes: None,
                error: other.map(|i| errors[i % errors.len()]),
            }
        }
    };
    let out = ex.finish_after(end, Duration::from_millis(inp.duration_ms));
    assert!(!out.is_empty(), "metrics are always on here");
    assert_lines(&out, json_lines, &inp.secret);
    assert!(
        out.lines()
            .last()
            .unwrap()
            .starts_with(crate::metrics::LINE_PREFIX)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn json_output_is_always_safe(inp in input()) {
        run(&middleware(false), &inp, true);
    }

    #[test]
    fn pretty_output_is_always_safe(inp in input()) {
        run(&middleware(true), &inp, false);
    }

    #[test]
    fn escaping_round_trips(s in hostile_string()) {
        let mut out = String::from("\"");
        json::escape_into(&mut out, &s);
        out.push('"');
        prop_assert!(!out.bytes().any(|b| b < 0x20 || b == 0x7f));
        let back: String = serde_json::from_str(&out).unwrap();
        prop_assert_eq!(back, s);
    }

    #[test]
    fn limited_escaping_respects_both_limits(s in hostile_string(), max_chars in 0usize..100, max_bytes in 14usize..200) {
        let mut out = String::new();
        let cut = json::escape_str_limited(&mut out, &s, max_chars, max_bytes);
        prop_assert!(out.len() <= max_bytes);
        let quoted = format!("\"{out}\"");
        let back: String = serde_json::from_str(&quoted).unwrap();
        if cut {
            let kept = back.strip_suffix(json::TRUNCATION_MARKER).unwrap();
            prop_assert!(s.starts_with(kept));
            prop_assert!(kept.chars().count() <= max_chars);
        } else {
            prop_assert_eq!(back, s);
        }
    }

    #[test]
    fn any_configuration_value_is_handled(index in 0usize..crate::config::KNOWN_VARIABLES.len(), v in hostile_string()) {
        let name = crate::config::KNOWN_VARIABLES[index];
        let (m, issues) = Middleware::from_env([(name.to_owned(), v.clone())]);
        // At most one issue per value or list entry.
        prop_assert!(issues.len() <= v.split([',', '|', '\n']).count());
        for i in &issues {
            prop_assert_eq!(&i.variable, name);
        }
        let lines = m.config_issue_lines(&issues);
        prop_assert_eq!(lines.lines().count(), issues.len());
        for line in lines.lines() {
            prop_assert!(line.len() < 4000);
            prop_assert!(!line.bytes().any(|b| b < 0x20 || b == 0x7f));
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            prop_assert_eq!(&v["event"], "config.invalid");
        }
        // The configuration still works for a request.
        let mut h = HeaderMap::new();
        let head = RequestHead { method: &Method::GET, scheme: None, authority: None, path_with_query: "/x?y=1" };
        let mut ex = m.start(&head, &mut h);
        assert_valid_headers(&h);
        let mut resp = HeaderMap::new();
        ex.on_response(StatusCode::OK, &mut resp, Duration::ZERO);
        assert_valid_headers(&resp);
        assert_lines(&ex.finish(Completion::default()), m.config().log.format == crate::access_log::LogFormat::Json, "\u{0}never");
    }

    #[test]
    fn header_rule_values_survive_or_are_reported(entry in "[ -~]{0,40}") {
        let entries = crate::header_rules::split_entries(&entry).count();
        let (m, issues) = Middleware::from_env([("EDGE_OBS_RESPONSE_SET_HEADERS".to_owned(), entry.clone())]);
        // Every entry is either used or reported.
        prop_assert_eq!(entries, issues.len() + m.config().response_rules.set.len());
        let mut resp = HeaderMap::new();
        let mut h = HeaderMap::new();
        let head = RequestHead { method: &Method::GET, scheme: None, authority: None, path_with_query: "/" };
        let mut ex = m.start(&head, &mut h);
        ex.on_response(StatusCode::OK, &mut resp, Duration::ZERO);
        assert_valid_headers(&resp);
    }

    #[test]
    fn routes_never_panic(templates in prop::collection::vec("[/a-z{}*%:.]{0,20}", 0..6), path in "[/a-z0-9{}*]{0,30}") {
        let routes: Vec<_> = templates.iter().filter_map(|t| crate::route::RouteTemplate::parse(t).ok()).collect();
        if let Some(i) = crate::route::find(&routes, &path) {
            prop_assert!(routes[i].matches(&path));
            prop_assert!(routes[..i].iter().all(|r| !r.matches(&path)));
        }
    }

    #[test]
    fn client_address_is_an_ip_or_absent(xff in header_bytes(80), fwd in header_bytes(80), hops in 1usize..5) {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", value(&xff));
        h.insert("forwarded", value(&fwd));
        let cfg = crate::client_addr::ClientAddrConfig { trusted_hops: hops, source: crate::client_addr::Source::Auto, peer_header: None };
        if let Some(ip) = crate::client_addr::client_address(&cfg, &h) {
            prop_assert!(ip.as_str().parse::<std::net::IpAddr>().is_ok(), "{:?}", ip);
        }
    }

    #[test]
    fn ip_validation_agrees_with_std(s in "[0-9a-fA-F:.]{0,45}") {
        let std_ok = s.parse::<std::net::IpAddr>().is_ok();
        let ours = crate::client_addr::is_ipv4(s.as_bytes()) || crate::client_addr::is_ipv6(s.as_bytes());
        prop_assert_eq!(ours, std_ok, "{}", s);
    }

    #[test]
    fn ip_validation_agrees_with_std_on_near_misses(groups in prop::collection::vec("[0-9a-f]{0,5}|[0-9]{1,3}(\\.[0-9]{1,3}){3}", 0..10), sep in prop::collection::vec("::?", 0..10)) {
        let mut s = String::new();
        for (i, g) in groups.iter().enumerate() {
            s.push_str(g);
            if let Some(x) = sep.get(i) { s.push_str(x); }
        }
        let std_ok = s.parse::<std::net::IpAddr>().is_ok();
        let ours = crate::client_addr::is_ipv4(s.as_bytes()) || crate::client_addr::is_ipv6(s.as_bytes());
        prop_assert_eq!(ours, std_ok, "{}", s);
    }

    #[test]
    fn secret_query_values_are_always_redacted(prefix in "[a-z=&;%0-9]{0,30}", name in prop::sample::select(vec!["token", "ACCESS_TOKEN", "Sig", "x-amz-signature", "passwd"]), secret in "[A-Za-z0-9]{10,20}") {
        let q = format!("{prefix}&{name}={secret}SeCrEt");
        let mut out = String::new();
        crate::Config::default().redaction.redact_query(&q, &mut out);
        prop_assert!(!out.contains("SeCrEt"), "{}", out);
    }
}

/// `name` with every character in random case and, where `encode` says so, percent-encoded.
fn disguise(name: &str, upper: &[bool], encode: &[bool]) -> String {
    name.bytes()
        .enumerate()
        .map(|(i, b)| {
            let b = if upper[i % upper.len()] {
                b.to_ascii_uppercase()
            } else {
                b
            };
            if encode[i % encode.len()] {
                format!("%{b:02X}")
            } else {
                (b as char).to_string()
            }
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn valid_client_ids_are_kept_verbatim(id in "[!-~]{1,128}") {
        let valid = id.bytes().all(crate::request_id::is_id_byte);
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", value(id.as_bytes()));
        let cfg = crate::Config::default().request_id;
        let r = crate::request_id::resolve(&cfg, &headers, &[9; 16], SystemTime::now());
        if valid {
            prop_assert_eq!(&r.id, &id);
            prop_assert!(r.replaced.is_none());
        } else {
            prop_assert_eq!(r.id.len(), 36);
            prop_assert_eq!(r.replaced.unwrap().reason, crate::request_id::ReplaceReason::InvalidCharacter);
        }
        prop_assert!(crate::request_id::validate(r.id.as_bytes(), 128).is_ok());
    }

    #[test]
    fn traceparent_round_trips(trace_id in any::<[u8; 16]>(), span_id in any::<[u8; 8]>(), flags in any::<u8>()) {
        prop_assume!(trace_id != [0; 16] && span_id != [0; 8]);
        let ids = crate::trace_context::TraceIds { trace_id, span_id, parent_span_id: None, flags };
        let text = ids.traceparent();
        let parsed = crate::trace_context::parse_traceparent(&text).unwrap();
        prop_assert_eq!(parsed.trace_id, trace_id);
        prop_assert_eq!(parsed.parent_id, span_id);
        prop_assert_eq!(parsed.flags, flags);
    }

    #[test]
    fn a_valid_traceparent_is_continued_with_a_new_span(trace_id in any::<[u8; 16]>(), parent in any::<[u8; 8]>(), flags in any::<u8>(), random in any::<[u8; 24]>(), state in "[a-z][a-z0-9]{0,7}=[ -~&&[^,=]]{0,19}[!-~&&[^,=]]") {
        prop_assume!(trace_id != [0; 16] && parent != [0; 8]);
        let incoming = crate::trace_context::TraceIds { trace_id, span_id: parent, parent_span_id: None, flags }.traceparent();
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value(&incoming));
        headers.insert("tracestate", value(state.as_bytes()));
        let outcome = crate::trace_context::process(&mut headers, &random, &Default::default());
        prop_assert_eq!(outcome.ids.trace_id, trace_id);
        prop_assert_eq!(outcome.ids.parent_span_id, Some(parent));
        prop_assert_eq!(outcome.ids.flags, flags);
        prop_assert_ne!(outcome.ids.span_id, [0; 8]);
        let forwarded = crate::trace_context::parse_traceparent(headers["traceparent"].as_bytes()).unwrap();
        prop_assert_eq!(forwarded.trace_id, trace_id);
        prop_assert_eq!(forwarded.parent_id, outcome.ids.span_id);
        prop_assert_eq!(headers["tracestate"].as_bytes(), state.as_bytes());
    }

    #[test]
    fn tracestate_lists_that_follow_the_grammar_are_kept(
        members in prop::collection::vec((tracestate_key(), "[ -~&&[^,=]]{0,30}[!-~&&[^,=]]"), 1..12),
        ows in prop::collection::vec("[ \t]{0,2}", 24),
    ) {
        // Duplicated keys are allowed too: the list is inherited untouched.
        let mut list = String::new();
        for (i, (k, v)) in members.iter().enumerate() {
            if !list.is_empty() {
                list.push_str(&ows[2 * i]);
                list.push(',');
            }
            list.push_str(&ows[2 * i + 1]);
            list.push_str(&format!("{k}={v}"));
        }
        prop_assume!(list.len() <= 512);
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        headers.insert("tracestate", value(list.as_bytes()));
        crate::trace_context::process(&mut headers, &[7; 24], &Default::default());
        prop_assert_eq!(headers.get("tracestate").map(|v| v.as_bytes()), Some(list.as_bytes()));
    }

    #[test]
    fn one_member_off_the_grammar_drops_the_whole_tracestate(
        good in prop::collection::vec((tracestate_key(), "[a-z0-9]{1,8}"), 0..6),
        bad in prop::sample::select(vec![
            "foo =1", "@foo=1", "foo=bar=baz", "Foo=1", "_foo=1", "-foo=1", "*foo=1", "/foo=1",
            "foo.bar=1", "foo=", "=1", "foo", "foo=a b=c", "fo\u{e9}=1", "foo=\u{7f}", "foo=\u{e9}",
        ]),
        long_key in any::<bool>(),
        at in any::<prop::sample::Index>(),
    ) {
        let bad = if long_key { format!("{}@=1", "k".repeat(256)) } else { bad.to_string() };
        let mut items: Vec<String> = good.iter().enumerate().map(|(i, (k, v))| format!("{k}{i}={v}")).collect();
        items.insert(at.index(items.len() + 1), bad.clone());
        let list = items.join(",");
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        let Ok(v) = http::HeaderValue::from_bytes(list.as_bytes()) else { return Ok(()) };
        headers.insert("tracestate", v);
        crate::trace_context::process(&mut headers, &[7; 24], &Default::default());
        prop_assert!(headers.get("tracestate").is_none(), "kept {:?}", list);
    }

    #[test]
    fn a_key_of_up_to_256_key_characters_is_kept_wherever_its_at_signs_are(
        first in "[a-z0-9]",
        rest in "[a-z0-9_*/@-]{0,300}",
    ) {
        let key = format!("{first}{rest}");
        let list = format!("{key}=v,other=1");
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", value(b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
        headers.insert("tracestate", value(list.as_bytes()));
        crate::trace_context::process(&mut headers, &[7; 24], &Default::default());
        let kept = headers.get("tracestate").map(|v| v.as_bytes());
        if key.len() <= 256 {
            prop_assert_eq!(kept, Some(list.as_bytes()));
        } else {
            prop_assert_eq!(kept, None);
        }
    }

    #[test]
    fn ratio_sampling_decides_like_trace_id_ratio_based(ppm in 0u32..=1_000_000, trace_id in any::<[u8; 16]>(), more in 0u32..=1_000_000) {
        let sampler = crate::trace_context::RatioSampler::from_ppm(ppm);
        // OpenTelemetry's TraceIdRatioBased: (ratio * 2^63) as u64 against the trace id's
        // last 8 bytes (big-endian) shifted right by one.
        let ratio = f64::from(ppm) / 1e6;
        let bound = (ratio * (1u64 << 63) as f64) as u64;
        let x = u64::from_be_bytes(trace_id[8..].try_into().unwrap()) >> 1;
        // Away from the bound (float rounding), both rules agree exactly.
        if ppm == 1_000_000 || x.abs_diff(bound) > 1 << 12 {
            prop_assert_eq!(sampler.sampled(&trace_id), ppm == 1_000_000 || x < bound);
        }
        // A higher ratio samples a superset of the traces a lower one samples.
        let higher = crate::trace_context::RatioSampler::from_ppm(ppm.max(more));
        prop_assert!(!sampler.sampled(&trace_id) || higher.sampled(&trace_id));
    }

    #[test]
    fn disguised_secret_parameter_names_are_still_redacted(
        name in prop::sample::select(crate::redact::DEFAULT_QUERY_PARAMS.split(',').collect::<Vec<_>>()),
        upper in prop::collection::vec(any::<bool>(), 1..8),
        encode in prop::collection::vec(prop::bool::weighted(0.2), 1..8),
        before in "[a-z0-9=%]{0,12}",
        after in "[a-z0-9=%]{0,12}",
        sep in prop::sample::select(vec!['&', ';']),
    ) {
        let query = format!("{before}{sep}{}=SeCrEt42{sep}{after}", disguise(name, &upper, &encode));
        let mut out = String::new();
        crate::Config::default().redaction.redact_query(&query, &mut out);
        prop_assert!(!out.contains("SeCrEt42"), "{} -> {}", query, out);
        prop_assert_eq!(out.matches(['&', ';']).count(), query.matches(['&', ';']).count());
    }
}

#[test]
fn header_names_from_http_are_plain_keys() {
    // ObjectLine writes keys unescaped; header names must never need escaping.
    for n in ["x-a", "a!#$%&'*+-.^_`|~9"] {
        let name = HeaderName::from_bytes(n.as_bytes()).unwrap();
        assert!(
            name.as_str()
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'"' && b != b'\\')
        );
    }
    assert!(HeaderName::from_bytes(b"a\"b").is_err());
    assert!(HeaderName::from_bytes(b"a\\b").is_err());
}

/// A `tracestate` key by the current W3C grammar, `(lcalpha / DIGIT) 0*255(keychar)`, kept
/// short so that lists of several fit in 512 characters; `@` may come anywhere after the
/// first character, any number of times.
fn tracestate_key() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9][a-z0-9_*/-]{0,20}",
        "[a-z0-9][a-z0-9_*/@-]{0,20}",
        "[a-z0-9][a-z0-9_*/-]{0,10}@[a-z0-9_*/-]{0,10}",
    ]
}
