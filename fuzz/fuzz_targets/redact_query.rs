//! Query redaction: every parameter with a secret name (percent-decoded, any case) has its
//! value replaced by `[REDACTED]`, nothing else changes, and the structure is kept.
#![no_main]

use edge_observability::redact::Redaction;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|query: &str| {
    let redaction = Redaction::default();
    let mut out = String::new();
    redaction.redact_query(query, &mut out);

    let params = |s: &str| -> Vec<String> { s.split(['&', ';']).map(str::to_owned).collect() };
    let (input, output) = (params(query), params(&out));
    assert_eq!(input.len(), output.len(), "{query:?} -> {out:?}");
    for (before, after) in input.iter().zip(&output) {
        match before.split_once('=') {
            Some((name, _)) if redaction.is_secret_param(name) => {
                assert_eq!(after, &format!("{name}=[REDACTED]"), "{query:?}");
            }
            _ => assert_eq!(before, after),
        }
    }
    // Separators are kept in place.
    let separators = |s: &str| {
        s.bytes()
            .filter(|b| matches!(b, b'&' | b';'))
            .collect::<Vec<_>>()
    };
    assert_eq!(separators(query), separators(&out));
});
