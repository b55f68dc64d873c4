//! Property tests of everything that reads guest output: the line splitter, the line
//! classifier and the parsers of metric event, app metric, span and access lines. Guests are
//! untrusted (an app prints what it likes, a Spin log file holds anything), so on any bytes
//! none of them may panic, and what they accept stays within the contracts: one line per line,
//! bounded labels, a scrape Prometheus can read. They run with the test suite; the cargo-fuzz
//! target `host_lines` (`fuzz/`) drives the same code for longer.

use crate::app_metrics::AppMetrics;
use crate::lines::{LineKind, LineSplitter, MAX_LINE};
use crate::metric_event;
use crate::otlp::{log_line, span_line};
use opentelemetry_proto::tonic::logs::v1::ScopeLogs;
use opentelemetry_proto::tonic::trace::v1::ScopeSpans;
use prometheus_client::registry::Registry;
use proptest::prelude::*;

/// Valid lines of every kind, which the strategies below cut and splice.
const SEEDS: [&str; 4] = [
    r#"{"schema":"edge_obs.metric.v1","time":"2026-11-23T11:47:43.405Z","duration_s":0.001709,"request_body_bytes":0,"response_body_bytes":319,"attributes":{"http.request.method":"GET","http.route":"/users/{id}","http.response.status_code":200,"url.scheme":"http"}}"#,
    r#"{"schema":"edge_obs.app_metric.v1","type":"histogram","name":"order.value","value":42.5,"buckets":[10,100],"attributes":{"k":"a\"b\\c","n":3}}"#,
    r#"{"schema":"edge_obs.span.v1","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"2dcccfb598f4c644","parent_span_id":"00f067aa0ba902b7","name":"GET /users/{id}","kind":"server","start_time_unix_nano":1795000000000000000,"end_time_unix_nano":1795000000001000000,"status":"unset","attributes":{"http.request.method":"GET"}}"#,
    r#"{"timestamp":"2026-11-23T11:47:43.405Z","level":"info","event":"http.request","request_id":"01a2083b-c0ab-754c-b262-d7516f6b9a70","trace_id":"4bf92f3577b34da6a3ce929d0e0e4736","span_id":"2dcccfb598f4c644","http.request.method":"GET","url.path":"/users/42","http.response.status_code":200,"duration_ms":1.709}"#,
];

/// A seed line with one range replaced by arbitrary bytes: near-valid input, which reaches
/// deeper into the parsers than random bytes do.
fn mutated_line() -> impl Strategy<Value = Vec<u8>> {
    (
        0..SEEDS.len(),
        any::<prop::sample::Index>(),
        0usize..24,
        prop::collection::vec(any::<u8>(), 0..24),
    )
        .prop_map(|(seed, at, cut, insert)| {
            let mut line = SEEDS[seed].as_bytes().to_vec();
            let start = at.index(line.len());
            let end = (start + cut).min(line.len());
            line.splice(start..end, insert);
            line
        })
}

fn any_line() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..512),
        mutated_line(),
        (0..SEEDS.len()).prop_map(|i| SEEDS[i].as_bytes().to_vec()),
    ]
}

/// Whether every label value of a text-format sample line is properly quoted: the scrape
/// Prometheus would reject otherwise (all of it).
fn labels_are_well_formed(sample: &str) -> bool {
    let Some(open) = sample.find('{') else {
        return !sample.contains('"');
    };
    let Some(close) = sample.rfind('}') else {
        return false;
    };
    let labels = &sample[open + 1..close];
    let mut chars = labels.chars();
    loop {
        // name="value"
        let name: String = chars.by_ref().take_while(|c| *c != '=').collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            return false;
        }
        if chars.next() != Some('"') {
            return false;
        }
        loop {
            match chars.next() {
                None | Some('\n') => return false,
                Some('\\') => match chars.next() {
                    Some('\\' | '"' | 'n') => {}
                    _ => return false,
                },
                Some('"') => break,
                Some(_) => {}
            }
        }
        match chars.next() {
            None => return true,
            Some(',') => {}
            Some(_) => return false,
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// However the bytes are cut into writes, every line passed on holds exactly one `\n`, at
    /// its end, and nothing is lost: the lines are the input, plus a `\n` for each line the
    /// splitter had to end itself (over MAX_LINE, or at flush).
    #[test]
    fn the_splitter_passes_on_whole_lines_and_loses_nothing(
        chunks in prop::collection::vec(
            prop_oneof![
                prop::collection::vec(any::<u8>(), 0..64),
                prop::collection::vec(prop_oneof![Just(b'\n'), Just(b'x')], 0..64),
                (0usize..3).prop_map(|n| vec![b'y'; MAX_LINE * n / 2 + 1]),
            ],
            0..12,
        )
    ) {
        let mut splitter = LineSplitter::default();
        let mut lines: Vec<Vec<u8>> = Vec::new();
        let mut input = Vec::new();
        for chunk in &chunks {
            input.extend_from_slice(chunk);
            splitter.push(chunk, &mut |l| lines.push(l.to_vec()));
        }
        splitter.flush(&mut |l| lines.push(l.to_vec()));
        let newlines = input.iter().filter(|b| **b == b'\n').count();
        prop_assert!(lines.len() >= newlines);
        for line in &lines {
            prop_assert_eq!(line.last(), Some(&b'\n'));
            prop_assert_eq!(line.iter().filter(|b| **b == b'\n').count(), 1);
        }
        let total: usize = lines.iter().map(Vec::len).sum();
        prop_assert_eq!(total, input.len() + lines.len() - newlines);
        let joined: Vec<u8> = lines.concat();
        let without_added: Vec<u8> = if lines.len() == newlines {
            joined.clone()
        } else {
            // Only the splitter's own line ends differ; the bytes in between are the input's.
            joined.iter().copied().filter(|b| *b != b'\n').collect()
        };
        let expected: Vec<u8> = if lines.len() == newlines {
            input.clone()
        } else {
            input.iter().copied().filter(|b| *b != b'\n').collect()
        };
        prop_assert_eq!(without_added, expected);
    }

    /// No parser panics on any line, what the metric event parser accepts keeps its labels
    /// within their bounds, and what the OTLP encoders write decodes with the official
    /// definitions (one span or record per accepted line, nothing for a refused one).
    #[test]
    fn the_parsers_take_any_line(line in any_line()) {
        let _ = LineKind::of(&line);
        if let Ok(event) = metric_event::parse(&line) {
            prop_assert!(event.duration_s().is_finite() && event.duration_s() >= 0.0);
            prop_assert!(event.route().is_none_or(|r| r.len() <= edge_observability::metrics::MAX_ROUTE_LEN));
            prop_assert!(event.route().is_none_or(|r| !r.contains(['"', '\\', '\n'])));
            prop_assert!(event.status_code().is_none_or(|s| (100..=999).contains(&s)));
            prop_assert!(event.error_type().is_none_or(|e| e.len() <= edge_observability::metrics::MAX_ERROR_TYPE_LEN));
        }
        use prost::Message as _;
        let mut buf = Vec::new();
        match span_line::encode(&line, &mut buf) {
            Ok(()) => {
                let spans = ScopeSpans::decode(&buf[..]).unwrap().spans;
                prop_assert_eq!(spans.len(), 1);
                prop_assert_eq!(spans[0].trace_id.len(), 16);
                prop_assert!(spans[0].attributes.len() <= crate::otlp::attributes::MAX_ATTRIBUTES);
            }
            Err(_) => prop_assert!(buf.is_empty()),
        }
        buf.clear();
        if log_line::encode(&line, &mut buf, 1) {
            let records = ScopeLogs::decode(&buf[..]).unwrap().log_records;
            prop_assert_eq!(records.len(), 1);
            prop_assert!(records[0].attributes.len() <= crate::otlp::attributes::MAX_ATTRIBUTES);
        } else {
            prop_assert!(buf.is_empty());
        }
    }

    /// Whatever app metric lines arrive, the scrape stays one Prometheus can read: every
    /// label value quoted and escaped, every sample on one line.
    #[test]
    fn app_metrics_never_break_the_scrape(lines in prop::collection::vec(any_line(), 1..8)) {
        let mut registry = Registry::default();
        let app = AppMetrics::register(&mut registry);
        for line in &lines {
            let _ = app.record_line(line);
        }
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).unwrap();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            prop_assert!(labels_are_well_formed(sample), "{sample}");
        }
    }
}

#[test]
fn the_label_checker_tells_good_from_bad() {
    assert!(labels_are_well_formed(
        r#"app_x_total{k="a\"b\\c",n="3"} 1"#
    ));
    assert!(labels_are_well_formed("app_x_total 1"));
    assert!(!labels_are_well_formed(r#"app_x_total{k="a"b"} 1"#));
    assert!(!labels_are_well_formed(r#"app_x_total{k="a\qb"} 1"#));
}
