//! Request id validation and resolution: whatever the client sends in `x-request-id` (and
//! its alias), the chosen id is a valid id, a client id is only kept verbatim when valid, and
//! what is kept of a rejected one is bounded.
#![no_main]

use edge_observability::request_id::{self, RequestIdConfig, is_id_byte, validate};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;
use std::time::SystemTime;

fuzz_target!(|data: &[u8]| {
    let Some((&control, value)) = data.split_first() else {
        return;
    };
    // Low bits: the configured maximum length; high bits: which headers carry the value.
    let max_len = usize::from(control & 0x3f) * 3 + 1;
    let verdict = validate(value, max_len);
    if verdict.is_ok() {
        assert!(!value.is_empty() && value.len() <= max_len);
        assert!(value.iter().all(|&b| is_id_byte(b)));
    }

    let Ok(header) = HeaderValue::from_bytes(value) else {
        return;
    };
    let cfg = RequestIdConfig {
        max_len,
        ..RequestIdConfig::default()
    };
    let mut headers = HeaderMap::new();
    headers.append("x-request-id", header.clone());
    if control & 0x40 != 0 {
        headers.append("x-request-id", header.clone());
    }
    if control & 0x80 != 0 {
        headers.append("x-correlation-id", header.clone());
    }
    let resolved = request_id::resolve(&cfg, &headers, &[7; 16], SystemTime::now());
    // Generated ids are 36-character UUIDs; accepted ones are within max_len.
    assert!(validate(resolved.id.as_bytes(), max_len.max(36)).is_ok());
    assert_eq!(resolved.value.as_bytes(), resolved.id.as_bytes());
    match &resolved.replaced {
        // Kept: valid, and unambiguous in the primary header or else taken from the alias.
        None => {
            assert!(verdict.is_ok() && (control & 0x40 == 0 || control & 0x80 != 0));
            assert_eq!(resolved.id.as_bytes(), value);
        }
        Some(replaced) => {
            assert!(replaced.received.len() <= request_id::RECEIVED_MAX_CHARS * 4 + 1);
            assert!(value.starts_with(&replaced.received));
        }
    }
});
