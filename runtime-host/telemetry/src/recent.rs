//! The most recent access-log lines, for the admin page's request list.
//!
//! The middleware's lines reach the host's stdout sink already redacted. The sink hands each
//! line to [`RecentRequests::offer`], which keeps the access lines (`"event":"http.request"`)
//! in a bounded ring, as they are. The serving path only pays for a prefix check, a short lock
//! and one copy; the lines are parsed when the page asks for them.

use edge_observability::access_log::{self, EVENT_REQUEST, fields, is_access_line};
use serde::Serialize;
use serde_json::Value;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, PoisonError};

/// Default number of lines kept.
pub const DEFAULT_CAPACITY: usize = 200;

/// A bounded ring of the newest access-log lines.
#[derive(Debug)]
pub struct RecentRequests {
    /// Shared, so readers copy pointers under the lock and parse outside it (the request
    /// path takes the lock for every line it offers).
    lines: Mutex<VecDeque<Arc<str>>>,
    capacity: usize,
}

impl RecentRequests {
    /// Keeps up to `capacity` lines (at least 1).
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RecentRequests {
            lines: Mutex::new(VecDeque::with_capacity(capacity)),
            capacity,
        }
    }

    /// How many lines are kept at most.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Keeps `line` if it is an access-log line (JSON format) no longer than the middleware
    /// writes them ([`access_log::MAX_LINE_BYTES`]), so the ring's memory is bounded by its
    /// capacity; ignores anything else.
    pub fn offer(&self, line: &[u8]) {
        let line = line.strip_suffix(b"\n").unwrap_or(line);
        if line.len() > access_log::MAX_LINE_BYTES || !is_access_line(line) {
            return;
        }
        let Ok(line) = std::str::from_utf8(line) else {
            return;
        };
        let line: Arc<str> = line.into();
        let mut lines = self.lines.lock().unwrap_or_else(PoisonError::into_inner);
        if lines.len() == self.capacity {
            lines.pop_front();
        }
        lines.push_back(line);
    }

    /// The kept lines, oldest first: pointers copied under the lock, so callers parse
    /// outside it.
    fn snapshot(&self) -> Vec<Arc<str>> {
        self.lines
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    /// The kept lines that pass `filter`, newest first, parsed, at most `limit`.
    pub fn list(&self, filter: &Filter, limit: usize) -> Vec<Entry> {
        self.snapshot()
            .iter()
            .rev()
            .filter_map(|line| Entry::parse(line))
            .filter(|entry| filter.matches(entry))
            .take(limit)
            .collect()
    }

    /// The distinct routes of the kept lines, sorted, for the page's route filter.
    pub fn routes(&self) -> Vec<String> {
        let mut routes: Vec<String> = self
            .snapshot()
            .iter()
            .filter_map(|line| Entry::parse(line))
            .filter_map(|entry| entry.route)
            .collect();
        routes.sort();
        routes.dedup();
        routes
    }
}

/// One access-log line: the fields the list shows, and the whole line for the detail view.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Entry {
    /// End time, RFC 3339.
    pub time: Option<String>,
    /// `info`, `warn` or `error`.
    pub level: Option<String>,
    /// Request method.
    pub method: Option<String>,
    /// Request path (already truncated by the middleware).
    pub path: Option<String>,
    /// Matched route template.
    pub route: Option<String>,
    /// Response status.
    pub status: Option<u16>,
    /// Duration in milliseconds.
    pub duration_ms: Option<f64>,
    /// Request id.
    pub request_id: Option<String>,
    /// Trace id.
    pub trace_id: Option<String>,
    /// `error.type`, on failures and 5xx.
    pub error_type: Option<String>,
    /// The whole line, as the middleware wrote it (redacted).
    pub line: String,
}

impl Entry {
    /// Parses an access-log line; `None` for anything that is not a JSON `http.request` line.
    pub fn parse(line: &str) -> Option<Entry> {
        let v: Value = serde_json::from_str(line).ok()?;
        if v.get(fields::EVENT)?.as_str()? != EVENT_REQUEST {
            return None;
        }
        let text = |key: &str| v.get(key).and_then(Value::as_str).map(str::to_owned);
        Some(Entry {
            time: text(fields::TIMESTAMP),
            level: text(fields::LEVEL),
            method: text(fields::METHOD),
            path: text(fields::PATH),
            route: text(fields::ROUTE),
            status: v
                .get(fields::STATUS_CODE)
                .and_then(Value::as_u64)
                .and_then(|s| u16::try_from(s).ok()),
            duration_ms: v.get(fields::DURATION_MS).and_then(Value::as_f64),
            request_id: text(fields::REQUEST_ID),
            trace_id: text(fields::TRACE_ID),
            error_type: text(fields::ERROR_TYPE),
            line: line.to_owned(),
        })
    }
}

/// Which lines to list; every set criterion must hold.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Filter {
    /// Status class digit: 1 to 5 for `1xx`–`5xx`, 0 for "no status".
    pub status_class: Option<u8>,
    /// Exact route template.
    pub route: Option<String>,
    /// Request id or trace id, exact (case-insensitive), or a prefix of at least 4 characters
    /// so a pasted partial id still finds its request.
    pub id: Option<String>,
}

impl Filter {
    /// Parses the filter from a query string: `status=5xx` (or `5`, or `none`), `route=...`,
    /// `id=...` (percent-encoded). Unknown keys and empty values are ignored; an invalid
    /// status class is an error.
    pub fn from_query(query: Option<&str>) -> Result<Filter, String> {
        let mut filter = Filter::default();
        for (key, value) in form_pairs(query.unwrap_or("")) {
            if value.is_empty() {
                continue;
            }
            match key.as_str() {
                "status" => {
                    filter.status_class = Some(match value.as_str() {
                        "none" => 0,
                        v => v
                            .strip_suffix("xx")
                            .unwrap_or(v)
                            .parse::<u8>()
                            .ok()
                            .filter(|d| (1..=5).contains(d))
                            .ok_or_else(|| {
                                format!("status `{v}` is not one of 1xx..5xx or none")
                            })?,
                    });
                }
                "route" => filter.route = Some(value),
                "id" => filter.id = Some(value.trim().to_owned()),
                _ => {}
            }
        }
        Ok(filter)
    }

    /// Whether `entry` passes.
    pub fn matches(&self, entry: &Entry) -> bool {
        if let Some(class) = self.status_class {
            let actual = entry
                .status
                .filter(|s| (100..=599).contains(s))
                .map_or(0, |s| (s / 100) as u8);
            if actual != class {
                return false;
            }
        }
        if let Some(route) = &self.route
            && entry.route.as_deref() != Some(route.as_str())
        {
            return false;
        }
        if let Some(id) = &self.id {
            let hit = |candidate: &Option<String>| {
                candidate.as_deref().is_some_and(|c| {
                    c.eq_ignore_ascii_case(id)
                        || (id.len() >= 4
                            && c.len() >= id.len()
                            && c.is_char_boundary(id.len())
                            && c[..id.len()].eq_ignore_ascii_case(id))
                })
            };
            if !hit(&entry.request_id) && !hit(&entry.trace_id) {
                return false;
            }
        }
        true
    }
}

/// `application/x-www-form-urlencoded` pairs of a query string, decoded (`+` is a space).
pub fn form_pairs(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            (decode(k), decode(v))
        })
        .collect()
}

fn decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).map(|d| d as u8)
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            ) {
                (Some(hi), Some(lo)) => {
                    out.push(hi << 4 | lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(id: &str, status: u16, route: Option<&str>) -> String {
        let route = route.map_or(String::new(), |r| format!(",\"http.route\":\"{r}\""));
        format!(
            "{{\"timestamp\":\"2026-11-23T11:47:43.405Z\",\"level\":\"info\",\"event\":\"http.request\",\"request_id\":\"{id}\",\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\",\"http.request.method\":\"GET\"{route},\"http.response.status_code\":{status},\"duration_ms\":1.709,\"url.path\":\"/users/42\",\"url.query\":\"token=[REDACTED]\"}}\n"
        )
    }

    #[test]
    fn keeps_only_access_lines_newest_first_and_bounded() {
        let r = RecentRequests::new(3);
        r.offer(b"{\"schema\":\"edge_obs.metric.v1\"}\n");
        r.offer(b"plain text from an app\n");
        r.offer(b"{\"timestamp\":\"x\",\"level\":\"debug\",\"event\":\"http.request.start\"}\n");
        r.offer(b"GET /users/42 200 \"event\":\"http.request\"\n");
        for i in 0..5 {
            r.offer(line(&format!("id-{i}"), 200, None).as_bytes());
        }
        let ids: Vec<_> = r
            .list(&Filter::default(), 10)
            .into_iter()
            .map(|e| e.request_id.unwrap())
            .collect();
        assert_eq!(ids, ["id-4", "id-3", "id-2"]);
        assert_eq!(r.list(&Filter::default(), 1).len(), 1);
    }

    #[test]
    fn parses_the_fields_and_keeps_the_whole_line() {
        let raw = line("abc", 404, Some("/users/{id}"));
        let e = Entry::parse(raw.trim_end()).unwrap();
        assert_eq!(e.request_id.as_deref(), Some("abc"));
        assert_eq!(
            e.trace_id.as_deref(),
            Some("4bf92f3577b34da6a3ce929d0e0e4736")
        );
        assert_eq!(e.method.as_deref(), Some("GET"));
        assert_eq!(e.path.as_deref(), Some("/users/42"));
        assert_eq!(e.route.as_deref(), Some("/users/{id}"));
        assert_eq!(e.status, Some(404));
        assert_eq!(e.duration_ms, Some(1.709));
        assert_eq!(e.level.as_deref(), Some("info"));
        assert_eq!(e.time.as_deref(), Some("2026-11-23T11:47:43.405Z"));
        assert_eq!(e.line, raw.trim_end());
        assert!(Entry::parse("{\"event\":\"http.request.start\"}").is_none());
        assert!(Entry::parse("{not json").is_none());
    }

    #[test]
    fn filters_by_status_class_route_and_id() {
        let r = RecentRequests::new(10);
        r.offer(line("0190aaaa-1111", 200, Some("/a")).as_bytes());
        r.offer(line("0190bbbb-2222", 503, Some("/b")).as_bytes());
        r.offer(line("0190cccc-3333", 404, Some("/a")).as_bytes());
        let ids = |f: &Filter| -> Vec<String> {
            r.list(f, 10)
                .into_iter()
                .map(|e| e.request_id.unwrap())
                .collect()
        };
        let f = Filter::from_query(Some("status=5xx")).unwrap();
        assert_eq!(ids(&f), ["0190bbbb-2222"]);
        let f = Filter::from_query(Some("status=4&route=%2Fa")).unwrap();
        assert_eq!(ids(&f), ["0190cccc-3333"]);
        let f = Filter::from_query(Some("route=/a")).unwrap();
        assert_eq!(ids(&f), ["0190cccc-3333", "0190aaaa-1111"]);
        let f = Filter::from_query(Some("id=0190BBBB-2222")).unwrap();
        assert_eq!(ids(&f), ["0190bbbb-2222"]);
        let f = Filter::from_query(Some("id=0190cc")).unwrap();
        assert_eq!(ids(&f), ["0190cccc-3333"], "prefix");
        let f = Filter::from_query(Some("id=019")).unwrap();
        assert!(ids(&f).is_empty(), "prefixes shorter than 4 do not match");
        let f = Filter::from_query(Some("id=4bf92f3577b34da6a3ce929d0e0e4736")).unwrap();
        assert_eq!(ids(&f).len(), 3, "trace id");
        let f = Filter::from_query(Some("status=none")).unwrap();
        assert!(ids(&f).is_empty());
        let f = Filter::from_query(Some("status=&route=&x=1")).unwrap();
        assert_eq!(f, Filter::default());
        assert!(Filter::from_query(Some("status=7xx")).is_err());
        assert_eq!(r.routes(), ["/a", "/b"]);
    }

    #[test]
    fn form_decoding() {
        assert_eq!(
            form_pairs("a=%2Fx%7By%7D&b=c+d&e&f=%zz&g=%4"),
            vec![
                ("a".into(), "/x{y}".into()),
                ("b".into(), "c d".into()),
                ("e".into(), String::new()),
                ("f".into(), "%zz".into()),
                ("g".into(), "%4".into()),
            ]
        );
    }
}
