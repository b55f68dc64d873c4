//! User-defined header rules: set, append and remove headers on the forwarded request or on the
//! response (`EDGE_OBS_{REQUEST,RESPONSE}_{SET,APPEND,REMOVE}_HEADERS`).
//!
//! Set/append values are `name: value` entries separated by newlines or `|` (so a value cannot
//! contain `|`); remove is a comma list of names. Rules run in the order remove, set, append.

use http::{HeaderMap, HeaderName, HeaderValue};

/// Headers a rule may not set or append: message framing and hop-by-hop headers, which the
/// WASI HTTP host either forbids (the request would fail) or computes itself.
pub const FORBIDDEN_TO_SET: [&str; 10] = [
    "connection",
    "content-length",
    "host",
    "http2-settings",
    "keep-alive",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Header rules for one direction.
#[derive(Clone, Debug, Default)]
pub struct HeaderRules {
    /// Replace all values of the header with this one.
    pub set: Vec<(HeaderName, HeaderValue)>,
    /// Add this value, keeping existing ones.
    pub append: Vec<(HeaderName, HeaderValue)>,
    /// Remove every value of the header.
    pub remove: Vec<HeaderName>,
}

impl HeaderRules {
    /// Whether there is nothing to do.
    pub fn is_empty(&self) -> bool {
        self.set.is_empty() && self.append.is_empty() && self.remove.is_empty()
    }

    /// Applies the rules: remove, then set, then append.
    pub fn apply(&self, headers: &mut HeaderMap) {
        for name in &self.remove {
            headers.remove(name);
        }
        for (name, value) in &self.set {
            headers.insert(name.clone(), value.clone());
        }
        for (name, value) in &self.append {
            headers.append(name.clone(), value.clone());
        }
    }
}

/// Why a `name: value` entry was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EntryError {
    /// No `:` between name and value.
    MissingColon,
    /// The name is not a valid header name.
    InvalidName,
    /// The value contains characters not allowed in a header value (control characters).
    InvalidValue,
    /// The header is a framing or hop-by-hop header ([`FORBIDDEN_TO_SET`]).
    Forbidden,
}

impl EntryError {
    /// Human readable reason for a configuration issue.
    pub fn as_str(self) -> &'static str {
        match self {
            EntryError::MissingColon => "expected `name: value`",
            EntryError::InvalidName => "invalid header name",
            EntryError::InvalidValue => "invalid header value (control characters are not allowed)",
            EntryError::Forbidden => "framing and hop-by-hop headers cannot be set",
        }
    }
}

/// Trims ASCII whitespace. One out-of-line copy: `str::trim` would pull in Unicode whitespace
/// tables and an inlined `trim_ascii` at every call site costs more than this call.
#[inline(never)]
pub fn trim(s: &str) -> &str {
    s.trim_ascii()
}

/// Splits a set/append variable into its entries (newline or `|` separated, blank ones
/// skipped).
pub fn split_entries(s: &str) -> impl Iterator<Item = &str> {
    s.split(['\n', '|']).map(trim).filter(|e| !e.is_empty())
}

/// Splits a comma list, trimming items and skipping empty ones.
pub fn split_list(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(trim).filter(|e| !e.is_empty())
}

/// Parses a header name (case-insensitive, stored lowercase).
pub fn parse_name(name: &str) -> Option<HeaderName> {
    HeaderName::from_bytes(trim(name).as_bytes()).ok()
}

/// Parses one `name: value` entry for set/append.
pub fn parse_entry(entry: &str) -> Result<(HeaderName, HeaderValue), EntryError> {
    let (name, value) = entry.split_once(':').ok_or(EntryError::MissingColon)?;
    let name = parse_name(name).ok_or(EntryError::InvalidName)?;
    if FORBIDDEN_TO_SET.contains(&name.as_str()) {
        return Err(EntryError::Forbidden);
    }
    let value = HeaderValue::from_str(trim(value)).map_err(|_| EntryError::InvalidValue)?;
    Ok((name, value))
}

/// The form of an entry safe to show in a configuration issue: the value may be a credential
/// (`authorization: Bearer ...`), so only the name part is shown.
pub fn entry_for_display(entry: &str) -> String {
    match entry.split_once(':') {
        Some((name, _)) => {
            let mut shown = trim(name).to_owned();
            shown.push_str(": ");
            shown.push_str(crate::json::REDACTED);
            shown
        }
        None => crate::json::REDACTED.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_entries_on_newlines_and_pipes() {
        let v: Vec<_> = split_entries("a: 1\nb: 2 | c: 3\r\n\n|").collect();
        assert_eq!(v, ["a: 1", "b: 2", "c: 3"]);
        let v: Vec<_> = split_list(" a, ,b ,").collect();
        assert_eq!(v, ["a", "b"]);
        assert_eq!(split_entries("").count(), 0);
    }

    #[test]
    fn parses_entries() {
        let (n, v) = parse_entry("X-Edge: on: yes").unwrap();
        assert_eq!(n, "x-edge");
        assert_eq!(v, "on: yes");
        let (n, v) = parse_entry("x-empty:").unwrap();
        assert_eq!(n, "x-empty");
        assert_eq!(v, "");
    }

    #[test]
    fn rejects_bad_entries() {
        assert_eq!(parse_entry("no colon"), Err(EntryError::MissingColon));
        assert_eq!(parse_entry(": value"), Err(EntryError::InvalidName));
        assert_eq!(parse_entry("bad name: v"), Err(EntryError::InvalidName));
        assert_eq!(parse_entry("bäd: v"), Err(EntryError::InvalidName));
        assert_eq!(parse_entry("x-a: a\u{1}b"), Err(EntryError::InvalidValue));
        assert_eq!(parse_entry("x-a: a\u{7f}"), Err(EntryError::InvalidValue));
        assert_eq!(parse_entry("Content-Length: 5"), Err(EntryError::Forbidden));
        assert_eq!(
            parse_entry("transfer-encoding: chunked"),
            Err(EntryError::Forbidden)
        );
        assert_eq!(parse_entry("host: evil"), Err(EntryError::Forbidden));
    }

    #[test]
    fn display_form_hides_values() {
        assert_eq!(
            entry_for_display("authorization: Bearer s3cret"),
            "authorization: [REDACTED]"
        );
        assert_eq!(entry_for_display("Bearer s3cret"), "[REDACTED]");
    }

    #[test]
    fn applies_remove_set_append_in_order() {
        let rules = HeaderRules {
            set: vec![parse_entry("x-set: new").unwrap()],
            append: vec![
                parse_entry("x-set: extra").unwrap(),
                parse_entry("x-app: 1").unwrap(),
            ],
            remove: vec![parse_name("X-Gone").unwrap(), parse_name("x-app").unwrap()],
        };
        assert!(!rules.is_empty());
        let mut h = HeaderMap::new();
        h.append("x-set", HeaderValue::from_static("old1"));
        h.append("x-set", HeaderValue::from_static("old2"));
        h.append("x-gone", HeaderValue::from_static("a"));
        h.append("x-gone", HeaderValue::from_static("b"));
        h.append("x-app", HeaderValue::from_static("0"));
        rules.apply(&mut h);
        let set: Vec<_> = h.get_all("x-set").iter().collect();
        assert_eq!(set, ["new", "extra"]);
        assert!(!h.contains_key("x-gone"));
        // Removed first, then appended by the append rule.
        let app: Vec<_> = h.get_all("x-app").iter().collect();
        assert_eq!(app, ["1"]);
        assert!(HeaderRules::default().is_empty());
    }
}
