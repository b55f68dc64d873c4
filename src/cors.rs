//! CORS (the Fetch standard's CORS protocol) for browser clients: which origins may read
//! responses, the preflight answer, and the headers added to actual requests.
//!
//! Pure logic: [`CorsConfig::classify`] looks at a request's headers once, when it arrives;
//! [`CorsConfig::preflight_headers`] builds the preflight answer (the middleware answers it
//! without calling the app) and [`CorsConfig::apply`] decorates every other response.
//!
//! The middleware owns CORS while it is on: `Access-Control-*` headers the app set are removed
//! from responses, so a client never sees two contradicting values, and a disallowed origin
//! gets no CORS header at all (the browser then refuses to hand the response to the page).
//!
//! Origins are compared as the browser serializes them (`scheme://host[:port]`, lowercase, no
//! path). An `Origin` that is not of that form (`null`, a list, control characters, longer than
//! [`MAX_ORIGIN_LEN`]) or that comes in several headers is never allowed and never echoed.

use http::header::{
    ACCESS_CONTROL_ALLOW_CREDENTIALS, ACCESS_CONTROL_ALLOW_HEADERS, ACCESS_CONTROL_ALLOW_METHODS,
    ACCESS_CONTROL_ALLOW_ORIGIN, ACCESS_CONTROL_EXPOSE_HEADERS, ACCESS_CONTROL_MAX_AGE,
    ACCESS_CONTROL_REQUEST_HEADERS, ACCESS_CONTROL_REQUEST_METHOD, ORIGIN, VARY,
};
use http::{HeaderMap, HeaderName, HeaderValue, Method};

/// Longest `Origin` considered: a scheme, a DNS name (253) and a port fit easily.
pub const MAX_ORIGIN_LEN: usize = 300;

/// Largest `EDGE_OBS_CORS_MAX_AGE` (one day; browsers cap it at 2 h or 24 h anyway).
pub const MAX_AGE_LIMIT: u32 = 86_400;

/// Default `EDGE_OBS_CORS_ALLOW_METHODS`: the CORS-safelisted methods.
pub const DEFAULT_METHODS: &str = "GET,HEAD,POST";

/// One entry of `EDGE_OBS_CORS_ALLOW_ORIGINS`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OriginRule {
    /// `*`: any origin (answered with `Access-Control-Allow-Origin: *`).
    Any,
    /// An exact origin, e.g. `https://app.example.com`.
    Exact(String),
    /// `https://*.example.com`: any subdomain (one label or more) of `example.com` with this
    /// scheme (and port, if given); not `example.com` itself.
    Subdomains {
        /// `https://`
        scheme: String,
        /// `.example.com` (with `:port` if the pattern had one).
        suffix: String,
    },
}

impl OriginRule {
    /// Parses one configured entry. Errors are reasons for a configuration issue.
    pub fn parse(entry: &str) -> Result<OriginRule, &'static str> {
        if entry == "*" {
            return Ok(OriginRule::Any);
        }
        if entry.eq_ignore_ascii_case("null") {
            return Err(
                "the null origin cannot be allowed (sandboxed documents and file: URLs share it)",
            );
        }
        let lower = entry.to_ascii_lowercase();
        if let Some(at) = find(lower.as_bytes(), b"://*.") {
            let (scheme, rest) = (&lower[..at + 3], &lower[at + 5..]);
            let mut probe = String::with_capacity(lower.len());
            probe.push_str(scheme);
            probe.push_str("x.");
            probe.push_str(rest);
            if parse_origin(&probe).is_none() || !rest.contains('.') {
                return Err("expected an origin pattern like https://*.example.com");
            }
            return Ok(OriginRule::Subdomains {
                scheme: scheme.to_owned(),
                suffix: lower[at + 4..].to_owned(),
            });
        }
        if parse_origin(&lower).is_none() {
            return Err(
                "expected an origin like https://app.example.com (scheme, host, optional port; no path)",
            );
        }
        Ok(OriginRule::Exact(lower))
    }

    fn matches(&self, origin: &str) -> bool {
        match self {
            OriginRule::Any => true,
            OriginRule::Exact(o) => o == origin,
            OriginRule::Subdomains { scheme, suffix } => origin
                .strip_prefix(scheme.as_str())
                .and_then(|host| host.strip_suffix(suffix.as_str()))
                // The remaining labels are checked by the origin syntax; `:` would mean the
                // suffix matched inside a port.
                .is_some_and(|label| !label.is_empty() && !label.contains(':')),
        }
    }
}

/// A serialized origin `scheme://host[:port]` in the form browsers send, or `None`. Only
/// lowercase ASCII letters, digits, `.`, `-` in the host (or a bracketed IPv6 address), a port
/// of 1 to 5 digits.
pub fn parse_origin(origin: &str) -> Option<&str> {
    if origin.len() > MAX_ORIGIN_LEN {
        return None;
    }
    let at = find(origin.as_bytes(), b"://")?;
    let (scheme, rest) = (&origin[..at], &origin[at + 3..]);
    let scheme_ok = scheme
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_lowercase())
        && scheme.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'+' | b'-' | b'.')
        });
    if !scheme_ok {
        return None;
    }
    let (host_ok, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (addr, after) = v6.split_once(']')?;
        let ok = !addr.is_empty()
            && addr
                .bytes()
                .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        (ok, port)
    } else {
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (rest, None),
        };
        let ok = !host.is_empty()
            && host
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'.' || b == b'-')
            && !matches!(host.as_bytes()[0], b'.' | b'-')
            && !matches!(host.as_bytes()[host.len() - 1], b'.' | b'-')
            && find(host.as_bytes(), b"..").is_none();
        (ok, port)
    };
    let port_ok =
        port.is_none_or(|p| (1..=5).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()));
    if !host_ok || !port_ok {
        return None;
    }
    Some(origin)
}

/// Position of `needle` in `haystack`: byte windows rather than `str` searching, which would
/// add a general string-search routine (8 KB) to the component for a few configuration checks.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// CORS settings (`EDGE_OBS_CORS_*`). CORS is on when at least one origin rule is set.
#[derive(Clone, Debug, Default)]
pub struct CorsConfig {
    /// Allowed origins; empty: CORS off.
    pub origins: Vec<OriginRule>,
    /// `Access-Control-Allow-Methods` of the preflight answer (upper case, comma separated).
    pub allow_methods: Vec<Method>,
    /// Request headers a page may send (lowercase); `*` entry: whatever the preflight asks.
    pub allow_headers: Vec<HeaderName>,
    /// Whether any requested header is allowed (`EDGE_OBS_CORS_ALLOW_HEADERS=*`).
    pub allow_any_header: bool,
    /// Response headers the page may read beyond the safelisted ones.
    pub expose_headers: Vec<HeaderName>,
    /// `Access-Control-Allow-Credentials: true` (cookies, HTTP auth). Never with `*`.
    pub allow_credentials: bool,
    /// `Access-Control-Max-Age` in seconds, if set.
    pub max_age: Option<u32>,
}

/// What a request is, for CORS; decided once when it arrives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum CorsRequest {
    /// CORS is off, or the request carries no `Origin`.
    #[default]
    None,
    /// An `Origin` that is not allowed (or not valid): no CORS headers.
    Disallowed,
    /// An allowed origin; the value to answer in `Access-Control-Allow-Origin`.
    Allowed(HeaderValue),
}

/// The classification of one request.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsDecision {
    /// The origin's verdict.
    pub origin: CorsRequest,
    /// Whether this is a preflight (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), which the middleware answers itself.
    pub preflight: bool,
    /// For an allowed preflight with `EDGE_OBS_CORS_ALLOW_HEADERS=*`: the requested headers,
    /// reflected.
    pub requested_headers: Option<HeaderValue>,
}

impl CorsConfig {
    /// Whether CORS is on.
    pub fn enabled(&self) -> bool {
        !self.origins.is_empty()
    }

    fn any_origin(&self) -> bool {
        self.origins.contains(&OriginRule::Any)
    }

    /// Classifies a request from its headers as received.
    pub fn classify(&self, method: &Method, headers: &HeaderMap) -> CorsDecision {
        let mut values = headers.get_all(ORIGIN).iter();
        let Some(first) = values.next() else {
            return CorsDecision::default();
        };
        let preflight =
            method == Method::OPTIONS && headers.contains_key(ACCESS_CONTROL_REQUEST_METHOD);
        let origin = if values.next().is_some() {
            // Two Origin headers: ambiguous, so nobody's.
            CorsRequest::Disallowed
        } else {
            match first.to_str().ok().and_then(parse_origin) {
                Some(o) if self.origins.iter().any(|r| r.matches(o)) => {
                    if self.any_origin() && !self.allow_credentials {
                        CorsRequest::Allowed(HeaderValue::from_static("*"))
                    } else {
                        CorsRequest::Allowed(first.clone())
                    }
                }
                _ => CorsRequest::Disallowed,
            }
        };
        let requested_headers = match (&origin, preflight && self.allow_any_header) {
            (CorsRequest::Allowed(_), true) => headers
                .get(ACCESS_CONTROL_REQUEST_HEADERS)
                .filter(|v| v.len() <= 1024 && valid_token_list(v.as_bytes()))
                .cloned(),
            _ => None,
        };
        CorsDecision {
            origin,
            preflight,
            requested_headers,
        }
    }

    /// Whether the answer depends on the request's `Origin` (so caches need `Vary: Origin`):
    /// always, unless every origin gets `*`.
    fn varies(&self) -> bool {
        !self.any_origin() || self.allow_credentials
    }

    /// Headers of the preflight answer (status 204, no body).
    pub fn preflight_headers(&self, decision: &CorsDecision, headers: &mut HeaderMap) {
        let vary = if self.varies() {
            "origin, access-control-request-method, access-control-request-headers"
        } else {
            "access-control-request-method, access-control-request-headers"
        };
        headers.append(VARY, HeaderValue::from_static(vary));
        if !self.grant(decision, headers) {
            return;
        }
        if let Some(v) = join(self.allow_methods.iter().map(Method::as_str)) {
            headers.insert(ACCESS_CONTROL_ALLOW_METHODS, v);
        }
        let allow_headers = match &decision.requested_headers {
            Some(requested) => Some(requested.clone()),
            None => join(self.allow_headers.iter().map(HeaderName::as_str)),
        };
        if let Some(v) = allow_headers {
            headers.insert(ACCESS_CONTROL_ALLOW_HEADERS, v);
        }
        if let Some(age) = self.max_age {
            headers.insert(ACCESS_CONTROL_MAX_AGE, HeaderValue::from(age));
        }
    }

    /// Adds the grant shared by preflight and actual answers (the allowed origin, and
    /// credentials when configured); false, and nothing added, for a disallowed origin.
    fn grant(&self, decision: &CorsDecision, headers: &mut HeaderMap) -> bool {
        let CorsRequest::Allowed(allow_origin) = &decision.origin else {
            return false;
        };
        headers.insert(ACCESS_CONTROL_ALLOW_ORIGIN, allow_origin.clone());
        if self.allow_credentials {
            headers.insert(
                ACCESS_CONTROL_ALLOW_CREDENTIALS,
                HeaderValue::from_static("true"),
            );
        }
        true
    }

    /// Decorates the response of an actual (non-preflight) request: removes the app's own
    /// `Access-Control-*` headers, adds the allowed origin, credentials and exposed headers,
    /// and `Vary: Origin` when the answer depends on the origin.
    pub fn apply(&self, decision: &CorsDecision, headers: &mut HeaderMap) {
        for name in [
            ACCESS_CONTROL_ALLOW_ORIGIN,
            ACCESS_CONTROL_ALLOW_CREDENTIALS,
            ACCESS_CONTROL_EXPOSE_HEADERS,
            ACCESS_CONTROL_ALLOW_METHODS,
            ACCESS_CONTROL_ALLOW_HEADERS,
            ACCESS_CONTROL_MAX_AGE,
        ] {
            headers.remove(name);
        }
        if self.varies() && !vary_covers_origin(headers) {
            headers.append(VARY, HeaderValue::from_static("origin"));
        }
        if !self.grant(decision, headers) {
            return;
        }
        if let Some(v) = join(self.expose_headers.iter().map(HeaderName::as_str)) {
            headers.insert(ACCESS_CONTROL_EXPOSE_HEADERS, v);
        }
    }
}

/// Whether the response already varies on `Origin` (or on everything).
fn vary_covers_origin(headers: &HeaderMap) -> bool {
    headers.get_all(VARY).iter().any(|v| {
        v.as_bytes()
            .split(|b| *b == b',')
            .map(<[u8]>::trim_ascii)
            .any(|t| t == b"*" || t.eq_ignore_ascii_case(b"origin"))
    })
}

/// `a, b, c` as a header value; `None` for an empty list.
fn join<'a>(items: impl Iterator<Item = &'a str>) -> Option<HeaderValue> {
    let mut s = String::new();
    for item in items {
        if !s.is_empty() {
            s.push_str(", ");
        }
        s.push_str(item);
    }
    (!s.is_empty()).then(|| HeaderValue::from_str(&s).ok())?
}

/// A comma list of header-name tokens (what `Access-Control-Request-Headers` holds).
fn valid_token_list(v: &[u8]) -> bool {
    v.split(|b| *b == b',').map(<[u8]>::trim_ascii).all(|t| {
        !t.is_empty()
            && t.iter()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(origins: &[&str]) -> CorsConfig {
        CorsConfig {
            origins: origins
                .iter()
                .map(|o| OriginRule::parse(o).unwrap())
                .collect(),
            allow_methods: vec![Method::GET, Method::POST, Method::PUT],
            allow_headers: vec![HeaderName::from_static("content-type")],
            allow_any_header: false,
            expose_headers: vec![HeaderName::from_static("x-request-id")],
            allow_credentials: false,
            max_age: Some(600),
        }
    }

    fn request(origins: &[&[u8]], preflight: bool) -> (Method, HeaderMap) {
        let mut h = HeaderMap::new();
        for o in origins {
            h.append(ORIGIN, HeaderValue::from_bytes(o).unwrap());
        }
        if preflight {
            h.insert(
                ACCESS_CONTROL_REQUEST_METHOD,
                HeaderValue::from_static("PUT"),
            );
            h.insert(
                ACCESS_CONTROL_REQUEST_HEADERS,
                HeaderValue::from_static("content-type, x-custom"),
            );
            (Method::OPTIONS, h)
        } else {
            (Method::GET, h)
        }
    }

    fn classify(c: &CorsConfig, origins: &[&[u8]], preflight: bool) -> CorsDecision {
        let (m, h) = request(origins, preflight);
        c.classify(&m, &h)
    }

    #[test]
    fn origin_syntax() {
        for ok in [
            "https://example.com",
            "http://localhost:3000",
            "https://a-b.c.example.com:8443",
            "http://127.0.0.1:8080",
            "http://[::1]:3000",
            "http://[::1]",
            "chrome-extension://abcdef",
        ] {
            assert_eq!(parse_origin(ok), Some(ok), "{ok}");
        }
        for bad in [
            "null",
            "",
            "https://",
            "example.com",
            "https://Example.com",
            "https://example.com/",
            "https://example.com/path",
            "https://example.com:",
            "https://example.com:123456",
            "https://example.com:80a",
            "https://exa mple.com",
            "https://example.com\t",
            "https://example..com",
            "https://.example.com",
            "https://a.com, https://b.com",
            "https://a.com https://b.com",
            "https://user@example.com",
            "https://[::1",
            "https://[]",
            "1http://example.com",
        ] {
            assert_eq!(parse_origin(bad), None, "{bad:?}");
        }
        let long = format!("https://{}.com", "a".repeat(MAX_ORIGIN_LEN));
        assert_eq!(parse_origin(&long), None);
    }

    #[test]
    fn rules_parse() {
        assert_eq!(OriginRule::parse("*"), Ok(OriginRule::Any));
        assert_eq!(
            OriginRule::parse("HTTPS://App.Example.com"),
            Ok(OriginRule::Exact("https://app.example.com".into()))
        );
        assert!(matches!(
            OriginRule::parse("https://*.example.com"),
            Ok(OriginRule::Subdomains { .. })
        ));
        for bad in [
            "null",
            "NULL",
            "example.com",
            "https://*.com",
            "https://*",
            "https://a.com/x",
            "https://*.ex ample.com",
            "*.example.com",
        ] {
            assert!(OriginRule::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn exact_and_pattern_matching() {
        let c = config(&[
            "https://app.example.com",
            "https://*.example.org",
            "http://*.local.test:8080",
        ]);
        let allowed = |o: &str| {
            matches!(
                classify(&c, &[o.as_bytes()], false).origin,
                CorsRequest::Allowed(_)
            )
        };
        assert!(allowed("https://app.example.com"));
        assert!(!allowed("http://app.example.com"));
        assert!(!allowed("https://app.example.com:443"));
        assert!(!allowed("https://app.example.com.evil.com"));
        assert!(!allowed("https://evilapp.example.com"));
        assert!(allowed("https://a.example.org"));
        assert!(allowed("https://a.b.example.org"));
        assert!(!allowed("https://example.org"));
        assert!(!allowed("https://evil-example.org"));
        assert!(!allowed("https://a.example.org:8443"));
        assert!(!allowed("https://a.example.org.evil.net"));
        assert!(allowed("http://x.local.test:8080"));
        assert!(!allowed("http://x.local.test"));
        assert!(!allowed("http://x.local.test:80800"));
    }

    #[test]
    fn hostile_origins_are_never_allowed_nor_echoed() {
        let c = config(&["https://app.example.com", "https://*.example.org"]);
        let long = format!("https://{}.example.org", "a".repeat(5000));
        let cases: Vec<Vec<&[u8]>> = vec![
            vec![b"null"],
            vec![long.as_bytes()],
            vec![b"https://app.example.com\t"],
            vec![b"https://app.exa\tmple.com"],
            vec![b"HTTPS://APP.EXAMPLE.COM"],
            vec![b"https://app.example.com\xff"],
            vec![b"https://app.example.com, https://evil.com"],
            vec![b"https://app.example.com", b"https://app.example.com"],
            vec![b"https://evil.com", b"https://app.example.com"],
            vec![b"https://x.example.org\"}"],
        ];
        for origins in cases {
            for preflight in [false, true] {
                let d = classify(&c, &origins, preflight);
                assert_eq!(d.origin, CorsRequest::Disallowed, "{origins:?}");
                let mut h = HeaderMap::new();
                if preflight {
                    c.preflight_headers(&d, &mut h);
                } else {
                    c.apply(&d, &mut h);
                }
                assert!(h.get(ACCESS_CONTROL_ALLOW_ORIGIN).is_none());
                assert!(h.get(ACCESS_CONTROL_ALLOW_METHODS).is_none());
                assert!(h.get(VARY).is_some());
            }
        }
    }

    #[test]
    fn actual_request_headers() {
        let c = config(&["https://app.example.com"]);
        let d = classify(&c, &[b"https://app.example.com"], false);
        assert!(!d.preflight);
        let mut h = HeaderMap::new();
        h.insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        h.insert(VARY, HeaderValue::from_static("accept-encoding"));
        c.apply(&d, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h.get_all(ACCESS_CONTROL_ALLOW_ORIGIN).iter().count(), 1);
        assert_eq!(h[ACCESS_CONTROL_EXPOSE_HEADERS], "x-request-id");
        assert!(h.get(ACCESS_CONTROL_ALLOW_CREDENTIALS).is_none());
        let vary: Vec<_> = h.get_all(VARY).iter().collect();
        assert_eq!(vary, ["accept-encoding", "origin"]);
        // No Origin at all: no CORS headers, but the answer still varies on Origin.
        let d = classify(&c, &[], false);
        assert_eq!(d.origin, CorsRequest::None);
        let mut h = HeaderMap::new();
        c.apply(&d, &mut h);
        assert_eq!(h[VARY], "origin");
        assert_eq!(h.len(), 1);
        // Vary already naming Origin is not repeated.
        let mut h = HeaderMap::new();
        h.insert(VARY, HeaderValue::from_static("Accept, Origin"));
        c.apply(&d, &mut h);
        assert_eq!(h.get_all(VARY).iter().count(), 1);
    }

    #[test]
    fn preflight_headers() {
        let c = config(&["https://app.example.com"]);
        let d = classify(&c, &[b"https://app.example.com"], true);
        assert!(d.preflight);
        let mut h = HeaderMap::new();
        c.preflight_headers(&d, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://app.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_METHODS], "GET, POST, PUT");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_HEADERS], "content-type");
        assert_eq!(h[ACCESS_CONTROL_MAX_AGE], "600");
        assert!(h[VARY].to_str().unwrap().starts_with("origin"));
        // OPTIONS without Access-Control-Request-Method is an ordinary request.
        let (_, mut headers) = request(&[b"https://app.example.com"], false);
        assert!(!c.classify(&Method::OPTIONS, &headers).preflight);
        headers.insert(
            ACCESS_CONTROL_REQUEST_METHOD,
            HeaderValue::from_static("GET"),
        );
        assert!(!c.classify(&Method::GET, &headers).preflight);
    }

    #[test]
    fn any_header_reflects_a_valid_request_list_only() {
        let mut c = config(&["https://app.example.com"]);
        c.allow_any_header = true;
        let d = classify(&c, &[b"https://app.example.com"], true);
        assert_eq!(
            d.requested_headers.as_ref().unwrap(),
            "content-type, x-custom"
        );
        let (m, mut h) = request(&[b"https://app.example.com"], true);
        h.insert(
            ACCESS_CONTROL_REQUEST_HEADERS,
            HeaderValue::from_static("x-a, \"quoted\""),
        );
        assert_eq!(c.classify(&m, &h).requested_headers, None);
    }

    #[test]
    fn wildcard_and_credentials() {
        let mut c = config(&["*"]);
        let d = classify(&c, &[b"https://anything.example"], false);
        assert_eq!(
            d.origin,
            CorsRequest::Allowed(HeaderValue::from_static("*"))
        );
        let mut h = HeaderMap::new();
        c.apply(&d, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "*");
        assert!(
            h.get(VARY).is_none(),
            "the answer does not depend on the origin"
        );
        // Credentials with a pattern list echo the origin and vary on it.
        c.origins = vec![OriginRule::parse("https://*.example.com").unwrap()];
        c.allow_credentials = true;
        let d = classify(&c, &[b"https://a.example.com"], false);
        let mut h = HeaderMap::new();
        c.apply(&d, &mut h);
        assert_eq!(h[ACCESS_CONTROL_ALLOW_ORIGIN], "https://a.example.com");
        assert_eq!(h[ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
        assert_eq!(h[VARY], "origin");
    }

    #[test]
    fn off_means_no_decision() {
        let c = CorsConfig::default();
        assert!(!c.enabled());
    }
}
