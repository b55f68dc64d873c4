//! Which hosts the guests' own outgoing requests (`wasi:http/client`) may reach: Spin's
//! `allowed_outbound_hosts` rule, so that an app (or the middleware's OTLP export) that works
//! here works under `spin up` too. Nothing is allowed unless listed.
//!
//! A pattern is `scheme://host[:port]`:
//! - scheme `http`, `https` or `*` (either);
//! - host a name (`api.example.com`, matched without regard to case), `*.example.com` (that
//!   domain's subdomains), `*` (any host), an IP address (`127.0.0.1`, `[::1]`) or an IPv4
//!   network (`10.0.0.0/8`);
//! - port a number or `*`; without one, the scheme's default (80 for http, 443 for https; `*`
//!   as scheme then needs a port).
//!
//! `*://*:*` allows everything. Patterns are checked when the flag is parsed.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};

/// The most patterns one host takes (a bound like every other list it reads).
pub const MAX_PATTERNS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
    Any,
}

impl Scheme {
    fn matches(&self, scheme: &str) -> bool {
        match self {
            Scheme::Http => scheme.eq_ignore_ascii_case("http"),
            Scheme::Https => scheme.eq_ignore_ascii_case("https"),
            Scheme::Any => true,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Host {
    Any,
    /// `*.suffix`: the subdomains of `suffix` (stored with its leading dot).
    Subdomains(String),
    Name(String),
    Ip(IpAddr),
    Net4 {
        network: u32,
        prefix: u32,
    },
}

impl Host {
    fn matches(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        match self {
            Host::Any => true,
            Host::Subdomains(suffix) => {
                host.len() > suffix.len()
                    && host[host.len() - suffix.len()..].eq_ignore_ascii_case(suffix)
            }
            Host::Name(name) => host.eq_ignore_ascii_case(name),
            Host::Ip(ip) => host.parse::<IpAddr>().is_ok_and(|h| h == *ip),
            Host::Net4 { network, prefix } => host.parse::<Ipv4Addr>().is_ok_and(|h| {
                let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
                u32::from(h) & mask == *network
            }),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Port {
    Any,
    Is(u16),
}

/// One `scheme://host[:port]` pattern.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pattern {
    text: String,
    scheme: Scheme,
    host: Host,
    port: Port,
}

/// Why a pattern was refused.
#[derive(Debug, PartialEq, Eq)]
pub struct BadPattern {
    pattern: String,
    reason: &'static str,
}

impl fmt::Display for BadPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "`{}`: {} (e.g. http://127.0.0.1:4318, https://*.example.com, *://*:*)",
            self.pattern, self.reason
        )
    }
}

impl std::error::Error for BadPattern {}

const BAD_HOST: &str = "the host is not a name, *, *.domain, an IP address or an IPv4 network";

impl Pattern {
    /// Parses one pattern.
    pub fn parse(text: &str) -> Result<Pattern, BadPattern> {
        let bad = |reason| BadPattern {
            pattern: text.to_owned(),
            reason,
        };
        let (scheme, rest) = text.split_once("://").ok_or(bad("no scheme"))?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "http" => Scheme::Http,
            "https" => Scheme::Https,
            "*" => Scheme::Any,
            _ => return Err(bad("the scheme is not http, https or *")),
        };
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        let (host, port) = split_port(rest).ok_or(bad(BAD_HOST))?;
        if (host.contains('/') && !is_cidr(host)) || port.is_some_and(|p| p.contains('/')) {
            return Err(bad("a pattern names a host, not a path"));
        }
        let port = match port {
            None => None,
            Some("*") => Some(Port::Any),
            Some(p) => Some(Port::Is(
                p.parse()
                    .map_err(|_| bad("the port is not a number or *"))?,
            )),
        };
        let port = match (port, &scheme) {
            (Some(p), _) => p,
            (None, Scheme::Http) => Port::Is(80),
            (None, Scheme::Https) => Port::Is(443),
            (None, Scheme::Any) => return Err(bad("`*://` needs a port (a number or *)")),
        };
        let host = parse_host(host).ok_or(bad(BAD_HOST))?;
        Ok(Pattern {
            text: text.to_owned(),
            scheme,
            host,
            port,
        })
    }

    /// Whether a request to `scheme://host:port` is allowed by this pattern.
    pub fn allows(&self, scheme: &str, host: &str, port: u16) -> bool {
        self.scheme.matches(scheme)
            && self.host.matches(host)
            && match self.port {
                Port::Any => true,
                Port::Is(p) => p == port,
            }
    }
}

fn is_cidr(s: &str) -> bool {
    s.split_once('/')
        .is_some_and(|(ip, bits)| ip.parse::<Ipv4Addr>().is_ok() && bits.parse::<u8>().is_ok())
}

/// `host[:port]` (the port as written), with `[v6]` literals; `None` for a malformed literal.
fn split_port(s: &str) -> Option<(&str, Option<&str>)> {
    if let Some(v6) = s.strip_prefix('[') {
        let (inside, after) = v6.split_once(']')?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':')?),
        };
        return Some((&s[..inside.len() + 2], port));
    }
    Some(match s.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (s, None),
    })
}

fn parse_host(host: &str) -> Option<Host> {
    if host == "*" {
        return Some(Host::Any);
    }
    if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        return v6.parse::<IpAddr>().ok().map(Host::Ip);
    }
    if let Some((ip, bits)) = host.split_once('/') {
        let ip: Ipv4Addr = ip.parse().ok()?;
        let prefix: u32 = bits.parse().ok().filter(|b| *b <= 32)?;
        let mask = u32::MAX.checked_shl(32 - prefix).unwrap_or(0);
        return Some(Host::Net4 {
            network: u32::from(ip) & mask,
            prefix,
        });
    }
    if let Ok(ip) = host.parse::<IpAddr>() {
        return Some(Host::Ip(ip));
    }
    let (suffix, name) = match host.strip_prefix("*.") {
        Some(name) => (true, name),
        None => (false, host),
    };
    let valid = !name.is_empty()
        && name.len() <= 253
        && name
            .split('.')
            .all(|l| !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'));
    match (valid, suffix) {
        (false, _) => None,
        (true, true) => Some(Host::Subdomains(format!(".{name}"))),
        (true, false) => Some(Host::Name(name.to_owned())),
    }
}

/// The patterns of `--allowed-outbound-hosts`; empty allows nothing.
#[derive(Clone, Debug, Default)]
pub struct AllowedHosts {
    patterns: Vec<Pattern>,
}

impl AllowedHosts {
    /// The allow list of `patterns` (at most [`MAX_PATTERNS`]).
    pub fn new(patterns: Vec<Pattern>) -> Result<AllowedHosts, String> {
        if patterns.len() > MAX_PATTERNS {
            return Err(format!(
                "--allowed-outbound-hosts takes at most {MAX_PATTERNS} patterns"
            ));
        }
        Ok(AllowedHosts { patterns })
    }

    /// Whether a guest may send a request to `uri`. A URI without a host is refused.
    pub fn allows(&self, uri: &http::Uri) -> bool {
        let scheme = uri.scheme_str().unwrap_or("http");
        let Some(host) = uri.host() else {
            return false;
        };
        let port = uri.port_u16().unwrap_or(match scheme {
            s if s.eq_ignore_ascii_case("https") => 443,
            _ => 80,
        });
        self.patterns.iter().any(|p| p.allows(scheme, host, port))
    }

    /// The patterns as given.
    pub fn patterns(&self) -> impl Iterator<Item = &str> {
        self.patterns.iter().map(|p| p.text.as_str())
    }

    /// The pattern that would allow `uri`, for the refusal's hint: `scheme://host:port`.
    pub fn hint(uri: &http::Uri) -> String {
        let scheme = uri.scheme_str().unwrap_or("http");
        let host = uri.host().unwrap_or("");
        match uri.port_u16() {
            Some(port) => format!("{scheme}://{host}:{port}"),
            None => format!("{scheme}://{host}"),
        }
    }
}

/// The allow list of the guests' outgoing requests, and what was said about refusals.
#[derive(Default)]
pub struct Outbound {
    /// The hosts guests may send requests to.
    pub allowed: AllowedHosts,
    /// Refusals logged so far.
    pub refusals: Refusals,
}

/// Says once per origin (for the first [`MAX_ORIGINS_LOGGED`] origins) that a guest's request
/// was refused and which flag would allow it: a busy app calling a forbidden host must not
/// flood the log.
#[derive(Default)]
pub struct Refusals {
    logged: std::sync::Mutex<std::collections::HashSet<String>>,
}

/// See [`Refusals`].
pub const MAX_ORIGINS_LOGGED: usize = 256;

impl Refusals {
    /// A guest's request to `uri` was refused.
    pub fn refused(&self, uri: &http::Uri) {
        let hint = AllowedHosts::hint(uri);
        let mut logged = self
            .logged
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if logged.len() >= MAX_ORIGINS_LOGGED || !logged.insert(hint.clone()) {
            return;
        }
        tracing::warn!(
            origin = %hint,
            "a guest's outgoing request was refused: its host is not in --allowed-outbound-hosts (add `--allowed-outbound-hosts {hint}` to allow it; said once per origin)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn allowed(patterns: &[&str]) -> AllowedHosts {
        AllowedHosts::new(
            patterns
                .iter()
                .map(|p| Pattern::parse(p).unwrap())
                .collect(),
        )
        .unwrap()
    }

    fn uri(s: &str) -> http::Uri {
        s.parse().unwrap()
    }

    #[test]
    fn nothing_is_allowed_unless_listed() {
        let none = AllowedHosts::default();
        assert!(!none.allows(&uri("http://127.0.0.1:4318/v1/traces")));
        let some = allowed(&["http://127.0.0.1:4318"]);
        assert!(some.allows(&uri("http://127.0.0.1:4318/v1/traces")));
        assert!(!some.allows(&uri("http://127.0.0.1:4319/v1/traces")));
        assert!(!some.allows(&uri("https://127.0.0.1:4318/")));
        // Cloud metadata and the host's own admin port stay out.
        assert!(!some.allows(&uri("http://169.254.169.254/latest/meta-data")));
        assert!(!some.allows(&uri("http://127.0.0.1:9464/metrics")));
    }

    #[test]
    fn default_ports_wildcards_and_networks() {
        let a = allowed(&[
            "https://api.example.com",
            "http://*.internal.example:*",
            "http://10.1.0.0/16:8080",
            "*://[::1]:*",
        ]);
        assert!(a.allows(&uri("https://API.example.com/x")));
        assert!(a.allows(&uri("https://api.example.com:443/x")));
        assert!(!a.allows(&uri("https://api.example.com:8443/x")));
        assert!(!a.allows(&uri("http://api.example.com/x")));
        assert!(a.allows(&uri("http://db.internal.example:5984/")));
        assert!(
            !a.allows(&uri("http://internal.example/")),
            "subdomains only"
        );
        assert!(!a.allows(&uri("http://evilinternal.example/")));
        assert!(a.allows(&uri("http://10.1.200.3:8080/")));
        assert!(!a.allows(&uri("http://10.2.0.1:8080/")));
        assert!(a.allows(&uri("https://[::1]:9000/")));
        let all = allowed(&["*://*:*"]);
        assert!(all.allows(&uri("https://anything.example:1/")));
    }

    #[test]
    fn bad_patterns_say_why() {
        for (p, why) in [
            ("127.0.0.1:4318", "no scheme"),
            ("ftp://x", "the scheme is not http, https or *"),
            ("http://x:port", "the port is not a number or *"),
            ("http://x:70000", "the port is not a number or *"),
            ("*://x", "`*://` needs a port (a number or *)"),
            ("http://x/v1/traces", "a pattern names a host, not a path"),
            (
                "http://x:4318/v1/traces",
                "a pattern names a host, not a path",
            ),
            ("http://ex ample", BAD_HOST),
            ("http://10.0.0.0/33", BAD_HOST),
        ] {
            let e = Pattern::parse(p).unwrap_err();
            assert_eq!(e.reason, why, "{p}");
            assert!(e.to_string().contains(p));
        }
        let many = vec![Pattern::parse("http://x").unwrap(); MAX_PATTERNS + 1];
        assert!(AllowedHosts::new(many).is_err());
    }
}
