//! runtime-host's reading of guest output (`runtime-host/telemetry`): the line splitter, the
//! line classifier and the metric event, app metric, span and access line parsers, on any
//! bytes cut into any writes. Nothing panics, every line passed on holds one `\n` at its end,
//! and the app metrics scrape keeps every label value quoted. The property tests in
//! `runtime-host/telemetry/src/proptests.rs` run the same checks in the test suite.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prometheus_client::registry::Registry;
use telemetry::app_metrics::AppMetrics;
use telemetry::lines::{LineKind, LineSplitter};
use telemetry::metric_event;
use telemetry::otlp::{log_line, span_line};

fuzz_target!(|data: &[u8]| {
    // The first byte decides where the writes are cut.
    let Some((&step, data)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut splitter = LineSplitter::default();
    let mut lines: Vec<Vec<u8>> = Vec::new();
    for chunk in data.chunks(step) {
        splitter.push(chunk, &mut |l| lines.push(l.to_vec()));
    }
    splitter.flush(&mut |l| lines.push(l.to_vec()));

    let mut registry = Registry::default();
    let app = AppMetrics::register(&mut registry);
    let mut otlp = Vec::new();
    for line in &lines {
        assert_eq!(line.last(), Some(&b'\n'));
        assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        match LineKind::of(line) {
            LineKind::AppMetric => {
                let _ = app.record_line(line);
            }
            _ => {
                let content = &line[..line.len() - 1];
                if let Ok(event) = metric_event::parse(content) {
                    assert!(event.duration_s().is_finite() && event.duration_s() >= 0.0);
                    assert!(event.route().is_none_or(|r| !r.contains(['"', '\\', '\n'])));
                }
                // A refused line writes nothing.
                otlp.clear();
                if span_line::encode(content, &mut otlp).is_err() {
                    assert!(otlp.is_empty());
                }
                otlp.clear();
                if !log_line::encode(content, &mut otlp, 1) {
                    assert!(otlp.is_empty());
                }
            }
        }
    }
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
    for sample in text.lines().filter(|l| l.starts_with("app_")) {
        // Outside the braces no quote; inside, quotes come in escaped or closing pairs.
        let mut quoted = false;
        let mut escaped = false;
        for c in sample.chars() {
            match (quoted, escaped, c) {
                (true, false, '\\') => escaped = true,
                (true, true, _) => escaped = false,
                (_, false, '"') => quoted = !quoted,
                _ => {}
            }
        }
        assert!(!quoted, "{sample}");
    }
});
