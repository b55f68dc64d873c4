//! The `tracestate` cases of the W3C Trace Context test suite (w3c/trace-context,
//! `test/test.py`, class `TraceContextTest`, strict level 2 as shipped), run natively through
//! [`process`]: each case's request headers go in, and the test checks the forwarded headers.
//!
//! The suite drives a service over HTTP and reads the headers it sends on; here the forwarded
//! header map is that request. Inputs are restated from the suite, expectations follow the
//! current key grammar (spec `20-http_request_header_format.md`): `@` is an ordinary key
//! character, and duplicated keys are inherited. Older copies of `test.py` still expected
//! `foo@=1`, `foo@@bar`, `foo@bar@baz`, `'t' * 242 + '@v'`, `'t@' + 'v' * 15` and duplicated
//! keys to be discarded; those expectations were written for the tenant@system grammar.

use super::*;

/// The `traceparent` every case sends (sampled flag off).
const TP: &str = "00-12345678901234567890123456789012-1234567890123456-00";
const TRACE_ID: [u8; 16] = [
    0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56, 0x78, 0x90, 0x12,
];

/// What the service must send on.
#[derive(Debug)]
enum Expect {
    /// The `tracestate` lines, untouched.
    Inherited,
    /// No `tracestate` at all.
    Discarded,
}
use Expect::{Discarded, Inherited};

/// Sends `headers` (name, value; names as the suite spells them) and checks the outcome:
/// the trace is continued when a valid `traceparent` came, and `tracestate` is forwarded
/// untouched or not at all.
fn check(case: &str, headers: &[(&str, &str)], expect: Expect) {
    let mut h = HeaderMap::new();
    for (name, value) in headers {
        h.append(
            HeaderName::from_bytes(name.as_bytes()).unwrap(),
            HeaderValue::from_str(value).unwrap(),
        );
    }
    let sent: Vec<String> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("tracestate"))
        .map(|(_, v)| (*v).to_owned())
        .collect();
    let continued = headers.iter().any(|(n, v)| *n == "traceparent" && *v == TP);
    let out = process(&mut h, &[0x5A; 24], &RatioSampler::default());

    let forwarded = parse_traceparent(h[TRACEPARENT].as_bytes()).unwrap();
    assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1, "{case}");
    if continued {
        assert_eq!(forwarded.trace_id, TRACE_ID, "{case}: same trace id");
        assert_ne!(
            forwarded.parent_id,
            [0x12, 0x34, 0x56, 0x78, 0x90, 0x12, 0x34, 0x56]
        );
        assert_eq!(forwarded.flags, 0, "{case}: flags kept");
    } else {
        assert_ne!(forwarded.trace_id, TRACE_ID, "{case}");
        assert_eq!(out.ids.parent_span_id, None, "{case}");
    }
    let got: Vec<&[u8]> = h.get_all(TRACESTATE).iter().map(|v| v.as_bytes()).collect();
    match expect {
        Inherited => {
            let want: Vec<&[u8]> = sent.iter().map(|v| v.as_bytes()).collect();
            assert_eq!(got, want, "{case}: tracestate inherited untouched");
        }
        Discarded => assert!(got.is_empty(), "{case}: tracestate forwarded: {got:?}"),
    }
}

fn tp_and(lines: &[&str]) -> Vec<(&'static str, String)> {
    let mut v = vec![("traceparent", TP.to_owned())];
    v.extend(lines.iter().map(|l| ("tracestate", (*l).to_owned())));
    v
}

/// `check` with the suite's `traceparent` and these `tracestate` lines.
fn check_lines(case: &str, lines: &[&str], expect: Expect) {
    let owned = tp_and(lines);
    let headers: Vec<(&str, &str)> = owned.iter().map(|(n, v)| (*n, v.as_str())).collect();
    check(case, &headers, expect);
}

#[test]
fn test_tracestate_included_traceparent_missing() {
    for ts in ["foo=1", "foo=1,bar=2"] {
        check(
            "test_tracestate_included_traceparent_missing",
            &[("tracestate", ts)],
            Discarded,
        );
    }
}

#[test]
fn test_tracestate_included_traceparent_included() {
    check_lines(
        "test_tracestate_included_traceparent_included",
        &["foo=1,bar=2"],
        Inherited,
    );
}

#[test]
fn test_tracestate_header_name() {
    // Wrong names are other headers: passed on as they are, never read as `tracestate`.
    for name in ["trace-state", "trace.state"] {
        let headers = [("traceparent", TP), (name, "foo=1")];
        check("test_tracestate_header_name", &headers, Discarded);
    }
}

#[test]
fn test_tracestate_header_name_valid_casing() {
    for name in ["TraceState", "TrAcEsTaTe", "TRACESTATE"] {
        let headers = [("traceparent", TP), (name, "foo=1")];
        check(
            "test_tracestate_header_name_valid_casing",
            &headers,
            Inherited,
        );
    }
}

#[test]
fn test_tracestate_empty_header() {
    let case = "test_tracestate_empty_header";
    // An empty header carries nothing; the trace still continues.
    check_lines(case, &[""], Discarded);
    check_lines(case, &["foo=1", ""], Inherited);
    check_lines(case, &["", "foo=1"], Inherited);
}

#[test]
fn test_tracestate_multiple_headers_different_keys() {
    // Inherited untouched, so the order foo, bar, rojo, congo, baz is kept.
    check_lines(
        "test_tracestate_multiple_headers_different_keys",
        &["foo=1,bar=2", "rojo=1,congo=2", "baz=3"],
        Inherited,
    );
}

#[test]
fn test_tracestate_duplicated_keys() {
    let case = "test_tracestate_duplicated_keys";
    check_lines(case, &["foo=1,foo=1"], Inherited);
    check_lines(case, &["foo=1,foo=2"], Inherited);
    check_lines(case, &["foo=1", "foo=1"], Inherited);
    check_lines(case, &["foo=1", "foo=2"], Inherited);
}

#[test]
fn test_tracestate_all_allowed_characters() {
    let key_without_vendor = "abcdefghijklmnopqrstuvwxyz0123456789_-*/";
    let key_with_vendor = format!("{key_without_vendor}@a-z0-9_-*/");
    // Every printable character but `,` (0x2C) and `=` (0x3D); it starts with a space.
    let value: String = (0x20u8..=0x7E)
        .filter(|&c| c != b',' && c != b'=')
        .map(char::from)
        .collect();
    for key in [key_without_vendor, key_with_vendor.as_str()] {
        check_lines(
            "test_tracestate_all_allowed_characters",
            &[&format!("{key}={value}")],
            Inherited,
        );
    }
}

#[test]
fn test_tracestate_ows_handling() {
    for ts in [
        "foo=1 \t , \t bar=2, \t baz=3",
        "foo=1\t \t,\t \tbar=2,\t \tbaz=3",
        " foo=1",
        "\tfoo=1",
        "foo=1 ",
        "foo=1\t",
        "\t foo=1 \t",
    ] {
        check_lines("test_tracestate_ows_handling", &[ts], Inherited);
    }
}

#[test]
fn test_tracestate_key_illegal_characters() {
    for ts in ["foo =1", "FOO=1", "foo.bar=1"] {
        check_lines("test_tracestate_key_illegal_characters", &[ts], Discarded);
    }
}

#[test]
fn test_tracestate_key_illegal_vendor_format() {
    let case = "test_tracestate_key_illegal_vendor_format";
    // A key must start with a lowercase letter or a digit.
    check_lines(case, &["@foo=1,bar=2"], Discarded);
    // After that, `@` is a key character like any other.
    check_lines(case, &["foo@=1,bar=2"], Inherited);
    check_lines(case, &["foo@@bar=1,bar=2"], Inherited);
    check_lines(case, &["foo@bar@baz=1,bar=2"], Inherited);
}

#[test]
fn test_tracestate_member_count_limit() {
    let lines: Vec<String> = [1..=10, 11..=20, 21..=30, 31..=32]
        .into_iter()
        .map(|r| {
            r.map(|i| format!("bar{i:02}={i:02}"))
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let mut lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    check_lines("test_tracestate_member_count_limit", &lines, Inherited);
    let last = format!("{},bar33=33", lines[3]);
    lines[3] = &last;
    check_lines("test_tracestate_member_count_limit", &lines, Discarded);
}

#[test]
fn test_tracestate_key_length_limit() {
    let case = "test_tracestate_key_length_limit";
    let key = |k: String| format!("{k}=1");
    check_lines(case, &["foo=1", &key("z".repeat(256))], Inherited);
    check_lines(case, &["foo=1", &key("z".repeat(257))], Discarded);
    let tenant_vendor = format!("{}@{}", "t".repeat(241), "v".repeat(14));
    check_lines(case, &["foo=1", &key(tenant_vendor)], Inherited);
    // 244 and 17 characters: within the 256 a key may have, whatever precedes the `@`.
    check_lines(
        case,
        &["foo=1", &key(format!("{}@v", "t".repeat(242)))],
        Inherited,
    );
    check_lines(
        case,
        &["foo=1", &key(format!("t@{}", "v".repeat(15)))],
        Inherited,
    );
}
