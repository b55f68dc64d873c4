//! The admin token (`--admin-token`): which admin paths need it and how a request shows it.
//!
//! Probes stay open (orchestrators call them without credentials, and they reveal nothing);
//! every other admin path, `/metrics` included, needs `Authorization: Bearer <token>`. The
//! page itself (`GET /`) may also be opened with `?token=<token>`, because a browser cannot
//! add a header to a typed address; the page then removes the token from the address bar and
//! sends it as a header on its own requests. Tokens are compared in constant time.
//!
//! The `Host` of every non-probe request is checked too ([`AdminHosts`]): a web page the
//! operator visits could otherwise read `/metrics` and `/api/v1/stats` of an admin address
//! without a token by pointing a name of its own at it (DNS rebinding).

use http::header::{AUTHORIZATION, HOST};
use http::{HeaderMap, HeaderValue};
use subtle::ConstantTimeEq;

/// Paths answered without the token.
pub const OPEN_PATHS: [&str; 4] = ["/livez", "/readyz", "/healthz", "/startupz"];

/// The page's path, the only one that also accepts `?token=`.
pub const PAGE_PATH: &str = "/";

/// The secret that admin requests must present.
#[derive(Clone)]
pub struct AdminToken(Box<[u8]>);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the token itself.
        f.write_str("AdminToken([REDACTED])")
    }
}

impl AdminToken {
    /// The token; empty or surrounding-whitespace tokens are refused (a typo there would lock
    /// the admin out, or leave it open with an empty secret).
    pub fn new(token: &str) -> Result<AdminToken, String> {
        if token.is_empty() {
            return Err("the admin token is empty".into());
        }
        if token.trim() != token || token.chars().any(|c| c.is_control() || c == ' ') {
            return Err("the admin token may not contain spaces or control characters".into());
        }
        Ok(AdminToken(token.as_bytes().into()))
    }

    fn matches(&self, presented: &[u8]) -> bool {
        // `ct_eq` on slices of different lengths returns false at once; only the length leaks.
        bool::from(self.0.as_ref().ct_eq(presented))
    }

    /// Whether a request for `path` with these headers and query may proceed.
    pub fn allows(&self, path: &str, query: Option<&str>, headers: &HeaderMap) -> bool {
        if OPEN_PATHS.contains(&path) {
            return true;
        }
        let bearer = headers.get_all(AUTHORIZATION).iter().any(|value| {
            let value = value.as_bytes();
            value.len() > 7
                && value[..7].eq_ignore_ascii_case(b"bearer ")
                && self.matches(value[7..].trim_ascii())
        });
        if bearer {
            return true;
        }
        path == PAGE_PATH
            && telemetry::recent::form_pairs(query.unwrap_or(""))
                .iter()
                .any(|(k, v)| k == "token" && self.matches(v.as_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn headers(auth: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for a in auth {
            h.append(AUTHORIZATION, HeaderValue::from_str(a).unwrap());
        }
        h
    }

    #[test]
    fn probes_are_open_everything_else_needs_the_token() {
        let t = AdminToken::new("s3cret-t0ken").unwrap();
        for p in OPEN_PATHS {
            assert!(t.allows(p, None, &headers(&[])), "{p}");
        }
        for p in ["/", "/metrics", "/api/v1/stats", "/nope"] {
            assert!(!t.allows(p, None, &headers(&[])), "{p}");
            assert!(!t.allows(p, None, &headers(&["Bearer wrong"])), "{p}");
            assert!(!t.allows(p, None, &headers(&["Bearer s3cret-t0ke"])), "{p}");
            assert!(!t.allows(p, None, &headers(&["Basic s3cret-t0ken"])), "{p}");
            assert!(t.allows(p, None, &headers(&["Bearer s3cret-t0ken"])), "{p}");
            assert!(
                t.allows(p, None, &headers(&["bearer  s3cret-t0ken "])),
                "{p}"
            );
            assert!(
                t.allows(p, None, &headers(&["Bearer x", "Bearer s3cret-t0ken"])),
                "{p}"
            );
        }
    }

    #[test]
    fn query_token_only_for_the_page() {
        let t = AdminToken::new("a/b+c").unwrap();
        assert!(t.allows("/", Some("token=a%2Fb%2Bc"), &headers(&[])));
        assert!(t.allows("/", Some("x=1&token=a/b%2Bc"), &headers(&[])));
        assert!(
            !t.allows("/", Some("token=a/b+c"), &headers(&[])),
            "+ is a space"
        );
        assert!(!t.allows("/", Some("token="), &headers(&[])));
        assert!(!t.allows("/api/v1/stats", Some("token=a%2Fb%2Bc"), &headers(&[])));
        assert!(!t.allows("/metrics", Some("token=a%2Fb%2Bc"), &headers(&[])));
    }

    #[test]
    fn bad_tokens_are_refused_and_never_printed() {
        assert!(AdminToken::new("").is_err());
        assert!(AdminToken::new(" x").is_err());
        assert!(AdminToken::new("a b").is_err());
        let t = AdminToken::new("visible?").unwrap();
        assert!(!format!("{t:?}").contains("visible"));
    }
}

/// The names the admin address answers to besides IP addresses and `localhost`
/// (`--admin-host`): an IP literal or `localhost` cannot be a rebound name, and
/// orchestrators and Prometheus address pods by IP; a DNS name must be listed.
#[derive(Clone, Debug, Default)]
pub struct AdminHosts {
    names: Vec<String>,
}

impl AdminHosts {
    /// The extra names, compared without regard to case.
    pub fn new(names: &[String]) -> AdminHosts {
        AdminHosts {
            names: names.iter().map(|n| n.to_ascii_lowercase()).collect(),
        }
    }

    /// Whether a request for `path` with this `Host` may proceed. Requests without `Host`
    /// (not from a browser, which always sends one) may.
    pub fn allows(&self, path: &str, headers: &HeaderMap) -> bool {
        if OPEN_PATHS.contains(&path) {
            return true;
        }
        let mut hosts = headers.get_all(HOST).iter();
        match (hosts.next(), hosts.next()) {
            (None, _) => true,
            (Some(host), None) => self.allows_host(host),
            (Some(_), Some(_)) => false,
        }
    }

    fn allows_host(&self, host: &HeaderValue) -> bool {
        let Some(authority) = host
            .to_str()
            .ok()
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
        else {
            return false;
        };
        let name = authority.host();
        let bare = name.trim_start_matches('[').trim_end_matches(']');
        bare.parse::<std::net::IpAddr>().is_ok()
            || name.eq_ignore_ascii_case("localhost")
            || self.names.iter().any(|n| name.eq_ignore_ascii_case(n))
    }

    /// The refusal's hint: the name the request used.
    pub fn requested(headers: &HeaderMap) -> String {
        headers
            .get(HOST)
            .and_then(|h| h.to_str().ok())
            .and_then(|h| h.parse::<http::uri::Authority>().ok())
            .map(|a| a.host().to_owned())
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod host_tests {
    use super::*;

    fn with_host(h: &str) -> HeaderMap {
        let mut m = HeaderMap::new();
        m.insert(HOST, HeaderValue::from_str(h).unwrap());
        m
    }

    #[test]
    fn names_must_be_listed_addresses_pass() {
        let hosts = AdminHosts::new(&["admin.example.com".to_owned()]);
        for ok in [
            "127.0.0.1:9464",
            "10.1.2.3:9464",
            "[::1]:9464",
            "localhost:9464",
            "LOCALHOST",
            "Admin.Example.com:9464",
        ] {
            assert!(hosts.allows("/metrics", &with_host(ok)), "{ok}");
        }
        for refused in [
            "attacker.example:9464",
            "localhost.attacker.example",
            "",
            "a b",
        ] {
            assert!(!hosts.allows("/metrics", &with_host(refused)), "{refused}");
            assert!(!hosts.allows("/", &with_host(refused)), "{refused}");
            // Probes stay open.
            assert!(hosts.allows("/readyz", &with_host(refused)), "{refused}");
        }
        assert!(hosts.allows("/metrics", &HeaderMap::new()));
        let mut two = with_host("127.0.0.1");
        two.append(HOST, HeaderValue::from_static("attacker.example"));
        assert!(!hosts.allows("/metrics", &two));
    }
}
