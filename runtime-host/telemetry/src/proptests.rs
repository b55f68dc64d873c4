//! Property tests of everything that reads guest output: the line splitter, the line
//! classifier and the parsers of metric event, app metric, span and access lines, and the
//! plain reader against serde_json. Guests are untrusted (an app prints what it likes, a Spin
//! log file holds anything), so on any bytes none of them may panic, and what they accept
//! stays within the contracts: one line per line, bounded labels, a scrape Prometheus can
//! read. They run with the test suite; the cargo-fuzz target `host_lines` (`fuzz/`) drives the
//! same code for longer.

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

/// A JSON value as text, mostly in the subset the plain reader knows, often just outside it
/// (escapes, control characters, signs, exponents, long numbers, arrays) or not JSON at all.
fn json_value() -> impl Strategy<Value = String> {
    let scalar = prop_oneof![
        "[a-zA-Z0-9 /._:{}-]{0,16}".prop_map(|s| format!("\"{s}\"")),
        any::<String>().prop_map(|s| serde_json::to_string(&s).unwrap()),
        "[\\x00-\\x7f]{0,6}".prop_map(|s| format!("\"{s}\"")),
        "-?(0|[1-9][0-9]{0,20})(\\.[0-9]{0,17})?([eE][+-]?[0-9]{1,3})?",
        any::<u64>().prop_map(|n| n.to_string()),
        any::<f64>().prop_map(|f| serde_json::to_string(&f).unwrap()),
        (0u64..10_000, 0u32..1_000_000).prop_map(|(i, f)| format!("{i}.{f}")),
        prop::sample::select(vec![
            "true",
            "false",
            "null",
            "tru",
            "\"http.request\"",
            "\"config.invalid\"",
            "\"edge_obs.span.v1\"",
            "\"edge_obs.metric.v1\"",
            "\"server\"",
            "\"error\"",
            "\"warn\"",
            "\"4bf92f3577b34da6a3ce929d0e0e4736\"",
            "\"00f067aa0ba902b7\"",
            "\"2026-11-23T11:47:43.405Z\"",
            "1795000000000000000",
            "1795000000001000000",
            "[1,2]",
            "{}",
            "{\"k\":[{}]}",
        ])
        .prop_map(str::to_owned),
    ];
    scalar.prop_recursive(1, 16, 6, |inner| {
        prop::collection::vec((json_key(), inner), 0..6).prop_map(|members| {
            let members: Vec<String> = members.iter().map(|(k, v)| format!("{k}:{v}")).collect();
            format!("{{{}}}", members.join(","))
        })
    })
}

/// A member name: the lines' own fields (so members are taken in, and some given twice), and
/// others, some with escapes.
fn json_key() -> impl Strategy<Value = String> {
    prop_oneof![
        prop::sample::select(vec![
            "event",
            "timestamp",
            "level",
            "trace_id",
            "span_id",
            "parent_span_id",
            "http.request.method",
            "url.path",
            "http.response.status_code",
            "error.type",
            "schema",
            "duration_s",
            "request_body_bytes",
            "response_body_bytes",
            "http.route",
            "url.scheme",
            "name",
            "kind",
            "start_time_unix_nano",
            "end_time_unix_nano",
            "status",
            "attributes",
        ])
        .prop_map(|k| format!("\"{k}\"")),
        "[a-z._]{1,8}".prop_map(|k| format!("\"{k}\"")),
        any::<String>().prop_map(|k| serde_json::to_string(&k).unwrap()),
    ]
}

/// Members of an object, as text (`"name":value`), joined the way the middleware writes
/// them or with whitespace.
fn json_members(most: usize) -> impl Strategy<Value = String> {
    (
        prop::collection::vec((json_key(), json_value()), 0..most),
        prop::sample::select(vec![",", ",", ",", ", ", " ,"]),
        prop::sample::select(vec![":", ":", ":", ": "]),
    )
        .prop_map(|(members, comma, colon)| {
            let members: Vec<String> = members
                .iter()
                .map(|(k, v)| format!("{k}{colon}{v}"))
                .collect();
            members.join(comma)
        })
}

/// Near-valid metric event, span and access lines: a seed's members with others before and
/// after them, the attributes of a metric event or span replaced, and sometimes something
/// around the object.
fn json_line() -> impl Strategy<Value = String> {
    (
        json_members(2),
        json_members(2),
        json_members(12),
        prop::sample::select(vec!["", "", "", " ", "\n", "x"]),
        prop::sample::select(vec![0, 2, 3]),
    )
        .prop_map(|(before, after, attributes, around, seed)| {
            let mut members = SEEDS[seed][1..SEEDS[seed].len() - 1].to_owned();
            if seed != 3 {
                let at = members.find(",\"attributes\"").unwrap();
                members.truncate(at);
                members.push_str(&format!(",\"attributes\":{{{attributes}}}"));
            }
            let sep = |s: &str| if s.is_empty() { "" } else { "," };
            format!(
                "{{{before}{}{members}{}{after}}}{around}",
                sep(&before),
                sep(&after)
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2048, ..ProptestConfig::default() })]

    /// The plain reader is only a faster way to the same result: on any line, the metric
    /// event parser reads the same event, and the access and span encoders write the same
    /// bytes, with it as with serde_json alone (or refuse the line with the same error).
    #[test]
    fn the_plain_reader_reads_what_serde_json_reads(
        line in prop_oneof![
            3 => json_line(),
            1 => json_members(14).prop_map(|m| format!("{{{m}}}")),
            1 => any_line().prop_map(|l| String::from_utf8_lossy(&l).into_owned()),
        ]
    ) {
        use crate::plain_json::Readers;
        let line = line.as_bytes();
        let (mut plain, mut serde) = (Vec::new(), Vec::new());
        prop_assert_eq!(
            log_line::encode_with(line, &mut plain, 1, Readers::PlainFirst),
            log_line::encode_with(line, &mut serde, 1, Readers::SerdeOnly)
        );
        prop_assert_eq!(&plain, &serde);
        plain.clear();
        serde.clear();
        let event = |readers| metric_event::parse_with(line, readers).map_err(|e| e.to_string());
        prop_assert_eq!(event(Readers::PlainFirst), event(Readers::SerdeOnly));
        prop_assert_eq!(
            span_line::encode_with(line, &mut plain, Readers::PlainFirst),
            span_line::encode_with(line, &mut serde, Readers::SerdeOnly)
        );
        prop_assert_eq!(&plain, &serde);
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
