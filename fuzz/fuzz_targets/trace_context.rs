//! W3C trace context: `traceparent` parsing and the per-hop processing. A parsed traceparent
//! agrees with its text, the forwarded traceparent is always a valid version-00 value, and a
//! tracestate is forwarded untouched only with a valid traceparent and within the limits.
#![no_main]

use edge_observability::trace_context::{
    self, TRACESTATE_MAX_LEN, TraceParentError, parse_traceparent, push_hex,
};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `traceparent` and `tracestate` are separated by the first newline.
    let (traceparent, tracestate) = match data.iter().position(|&b| b == b'\n') {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };

    match parse_traceparent(traceparent) {
        Ok(tp) => {
            let v = traceparent.trim_ascii();
            assert!(v.len() >= 55);
            assert!(v[..2] != *b"ff");
            if v[..2] == *b"00" {
                assert_eq!(v.len(), 55);
            }
            let mut hex = String::new();
            push_hex(&mut hex, &tp.trace_id);
            assert_eq!(hex.as_bytes(), &v[3..35]);
            hex.clear();
            push_hex(&mut hex, &tp.parent_id);
            assert_eq!(hex.as_bytes(), &v[36..52]);
            assert_ne!(tp.trace_id, [0; 16]);
            assert_ne!(tp.parent_id, [0; 8]);
        }
        Err(TraceParentError::Length) => {
            let v = traceparent.trim_ascii();
            assert!(v.len() < 55 || (v[..2] == *b"00" && v.len() != 55));
        }
        Err(_) => {}
    }

    let mut headers = HeaderMap::new();
    let incoming = HeaderValue::from_bytes(traceparent).ok();
    if let Some(value) = &incoming {
        headers.insert("traceparent", value.clone());
    }
    let state = tracestate.and_then(|s| HeaderValue::from_bytes(s).ok());
    if let Some(value) = &state {
        headers.insert("tracestate", value.clone());
    }
    let outcome = trace_context::process(&mut headers, &[0x5a; 24]);

    let forwarded = headers.get_all("traceparent").iter().collect::<Vec<_>>();
    assert_eq!(forwarded.len(), 1);
    let parsed = parse_traceparent(forwarded[0].as_bytes()).expect("forwarded traceparent");
    assert_eq!(&forwarded[0].as_bytes()[..3], b"00-");
    assert_eq!(parsed.trace_id, outcome.ids.trace_id);
    assert_eq!(parsed.parent_id, outcome.ids.span_id);
    let continued = incoming
        .as_ref()
        .is_some_and(|v| parse_traceparent(v.as_bytes()).is_ok());
    assert_eq!(outcome.ids.parent_span_id.is_some(), continued);
    match headers.get("tracestate") {
        Some(kept) => {
            assert!(continued);
            assert_eq!(Some(kept), state.as_ref());
            assert!(kept.len() <= TRACESTATE_MAX_LEN);
        }
        // Dropped with a valid traceparent only when over the limits.
        None => {
            if continued && let Some(state) = state {
                let mut alone = HeaderMap::new();
                alone.insert("tracestate", state);
                assert!(!trace_context::tracestate_forwardable(&alone));
            }
        }
    }
});
