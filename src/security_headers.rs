//! The security response header baseline (OWASP Secure Headers project) and the removal of
//! headers that leak server details.
//!
//! The default CSP only contains directives that cannot break a working page
//! (`frame-ancestors 'none'; object-src 'none'; base-uri 'self'`): it does not restrict
//! `script-src`/`style-src`, so apps that load scripts or styles from CDNs keep working. Apps
//! that want a strict CSP set `EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY`.
//!
//! HSTS is sent whatever the scheme: browsers ignore it over plain HTTP, and behind a TLS
//! terminating proxy the middleware sees `http` even though the client used HTTPS.

use http::{HeaderMap, HeaderName, HeaderValue};

/// How the baseline treats headers the app already set (`EDGE_OBS_SECURITY_HEADERS_MODE`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Replace the app's values (never leaves duplicates); the default.
    Override,
    /// Only add a header when the app did not set it.
    IfAbsent,
}

/// Which set of baseline values applies (`EDGE_OBS_SECURITY_PROFILE`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Profile {
    /// For pages a browser renders: the baseline that suits a website (the default).
    #[default]
    Website,
    /// For JSON APIs, after OWASP's REST Security Cheat Sheet: `Cache-Control: no-store`, a CSP
    /// that allows nothing, and none of the headers that mean nothing to an API client
    /// (`Permissions-Policy`, COOP, CORP, `X-XSS-Protection`).
    Api,
    /// [`Profile::Website`] plus `Cross-Origin-Embedder-Policy: require-corp` and
    /// `Cache-Control: no-store`.
    Strict,
}

impl Profile {
    /// Every profile, in the order of [`BaselineHeader::values`].
    pub const ALL: [Profile; 3] = [Profile::Website, Profile::Api, Profile::Strict];

    /// Its name in `EDGE_OBS_SECURITY_PROFILE`.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Website => "website",
            Profile::Api => "api",
            Profile::Strict => "strict",
        }
    }
}

/// One baseline header: its name, the variable that overrides it and its value in each
/// profile.
#[derive(Clone, Debug)]
pub struct BaselineHeader {
    /// Header name (a compile-time constant: no parsing at startup).
    pub name: HeaderName,
    /// Environment variable overriding the value (`off` drops the header).
    pub variable: &'static str,
    /// The value in each profile ([`Profile::ALL`] order); `None`: not sent in that profile
    /// unless its variable is set.
    pub values: [Option<&'static str>; 3],
}

impl BaselineHeader {
    /// The value `profile` sends, if any.
    pub fn value(&self, profile: Profile) -> Option<&'static str> {
        self.values[profile as usize]
    }
}

/// The same value in every profile.
const fn all(v: &'static str) -> [Option<&'static str>; 3] {
    [Some(v), Some(v), Some(v)]
}

/// A website's value, also in `strict`; `api` leaves it out.
const fn pages(v: &'static str) -> [Option<&'static str>; 3] {
    [Some(v), None, Some(v)]
}

/// The baseline, in the order the headers are added.
pub static BASELINE: [BaselineHeader; 11] = [
    BaselineHeader {
        name: HeaderName::from_static("strict-transport-security"),
        variable: "EDGE_OBS_SECURITY_STRICT_TRANSPORT_SECURITY",
        values: all("max-age=63072000; includeSubDomains"),
    },
    BaselineHeader {
        name: HeaderName::from_static("x-content-type-options"),
        variable: "EDGE_OBS_SECURITY_X_CONTENT_TYPE_OPTIONS",
        values: all("nosniff"),
    },
    BaselineHeader {
        name: HeaderName::from_static("x-frame-options"),
        variable: "EDGE_OBS_SECURITY_X_FRAME_OPTIONS",
        values: all("DENY"),
    },
    BaselineHeader {
        name: HeaderName::from_static("referrer-policy"),
        variable: "EDGE_OBS_SECURITY_REFERRER_POLICY",
        values: all("no-referrer"),
    },
    BaselineHeader {
        name: HeaderName::from_static("content-security-policy"),
        variable: "EDGE_OBS_SECURITY_CONTENT_SECURITY_POLICY",
        values: [
            Some("frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
            Some("default-src 'none'; frame-ancestors 'none'"),
            Some("frame-ancestors 'none'; object-src 'none'; base-uri 'self'"),
        ],
    },
    BaselineHeader {
        name: HeaderName::from_static("permissions-policy"),
        variable: "EDGE_OBS_SECURITY_PERMISSIONS_POLICY",
        values: pages("camera=(), microphone=(), geolocation=(), payment=(), usb=()"),
    },
    BaselineHeader {
        name: HeaderName::from_static("cross-origin-opener-policy"),
        variable: "EDGE_OBS_SECURITY_CROSS_ORIGIN_OPENER_POLICY",
        values: pages("same-origin"),
    },
    BaselineHeader {
        name: HeaderName::from_static("cross-origin-resource-policy"),
        variable: "EDGE_OBS_SECURITY_CROSS_ORIGIN_RESOURCE_POLICY",
        values: pages("same-origin"),
    },
    BaselineHeader {
        name: HeaderName::from_static("x-xss-protection"),
        variable: "EDGE_OBS_SECURITY_X_XSS_PROTECTION",
        values: pages("0"),
    },
    BaselineHeader {
        name: HeaderName::from_static("cross-origin-embedder-policy"),
        variable: "EDGE_OBS_SECURITY_CROSS_ORIGIN_EMBEDDER_POLICY",
        values: [None, None, Some("require-corp")],
    },
    BaselineHeader {
        name: HeaderName::from_static("cache-control"),
        variable: "EDGE_OBS_SECURITY_CACHE_CONTROL",
        values: [None, Some("no-store"), Some("no-store")],
    },
];

/// Default list of response headers removed because they reveal server software.
pub const DEFAULT_REMOVE: &str = "server,x-powered-by,x-aspnet-version,x-aspnetmvc-version";

/// Security header settings.
#[derive(Clone, Debug)]
pub struct SecurityHeaders {
    /// Whether the baseline is added at all (`EDGE_OBS_SECURITY_HEADERS`).
    pub enabled: bool,
    /// Override or if-absent.
    pub mode: Mode,
    /// The headers to add, after per-header overrides (dropped ones are absent).
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl SecurityHeaders {
    /// Adds the baseline to response headers.
    pub fn apply(&self, headers: &mut HeaderMap) {
        if !self.enabled {
            return;
        }
        for (name, value) in &self.headers {
            match self.mode {
                // insert() replaces every existing value: never a duplicate header.
                Mode::Override => {
                    headers.insert(name.clone(), value.clone());
                }
                Mode::IfAbsent => {
                    if !headers.contains_key(name) {
                        headers.insert(name.clone(), value.clone());
                    }
                }
            }
        }
    }
}

/// Removes every value of each listed header.
pub fn remove_headers(headers: &mut HeaderMap, names: &[HeaderName]) {
    for name in names {
        // HeaderMap::remove drops every value of the name, not only the first.
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid_and_complete() {
        let s = crate::Config::default().security;
        assert_eq!(s.headers.len(), 9);
        let mut h = HeaderMap::new();
        s.apply(&mut h);
        assert_eq!(
            h["strict-transport-security"],
            "max-age=63072000; includeSubDomains"
        );
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert_eq!(h["x-frame-options"], "DENY");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(
            h["content-security-policy"],
            "frame-ancestors 'none'; object-src 'none'; base-uri 'self'"
        );
        assert_eq!(
            h["permissions-policy"],
            "camera=(), microphone=(), geolocation=(), payment=(), usb=()"
        );
        assert_eq!(h["cross-origin-opener-policy"], "same-origin");
        assert_eq!(h["cross-origin-resource-policy"], "same-origin");
        assert_eq!(h["x-xss-protection"], "0");
        for b in &BASELINE {
            assert!(b.variable.starts_with("EDGE_OBS_SECURITY_"));
            assert_eq!(
                b.variable[18..].to_ascii_lowercase().replace('_', "-"),
                b.name.as_str()
            );
        }
    }

    #[test]
    fn profiles_send_their_own_sets() {
        let names = |p: Profile| -> Vec<&str> {
            BASELINE
                .iter()
                .filter(|b| b.value(p).is_some())
                .map(|b| b.name.as_str())
                .collect()
        };
        assert_eq!(names(Profile::Website).len(), 9);
        assert_eq!(
            names(Profile::Api),
            [
                "strict-transport-security",
                "x-content-type-options",
                "x-frame-options",
                "referrer-policy",
                "content-security-policy",
                "cache-control"
            ]
        );
        let strict = names(Profile::Strict);
        assert_eq!(strict.len(), 11);
        assert!(names(Profile::Website).iter().all(|n| strict.contains(n)));
        let csp = |p: Profile| BASELINE[4].value(p).unwrap();
        assert_eq!(
            csp(Profile::Api),
            "default-src 'none'; frame-ancestors 'none'"
        );
    }

    #[test]
    fn override_replaces_app_values_without_duplicates() {
        let mut h = HeaderMap::new();
        h.append("x-frame-options", HeaderValue::from_static("SAMEORIGIN"));
        h.append("x-frame-options", HeaderValue::from_static("ALLOW-FROM x"));
        h.append(
            "x-xss-protection",
            HeaderValue::from_static("1; mode=block"),
        );
        crate::Config::default().security.apply(&mut h);
        let v: Vec<_> = h.get_all("x-frame-options").iter().collect();
        assert_eq!(v, ["DENY"]);
        assert_eq!(h.get_all("x-xss-protection").iter().count(), 1);
        assert_eq!(h["x-xss-protection"], "0");
    }

    #[test]
    fn if_absent_keeps_app_values() {
        let mut h = HeaderMap::new();
        h.insert(
            "content-security-policy",
            HeaderValue::from_static("default-src 'self'"),
        );
        let s = SecurityHeaders {
            mode: Mode::IfAbsent,
            ..crate::Config::default().security
        };
        s.apply(&mut h);
        assert_eq!(h["content-security-policy"], "default-src 'self'");
        assert_eq!(h.get_all("content-security-policy").iter().count(), 1);
        assert_eq!(h["x-frame-options"], "DENY");
    }

    #[test]
    fn disabled_adds_nothing() {
        let mut h = HeaderMap::new();
        SecurityHeaders {
            enabled: false,
            ..crate::Config::default().security
        }
        .apply(&mut h);
        assert!(h.is_empty());
    }

    #[test]
    fn removes_all_values_of_leaky_headers() {
        let mut h = HeaderMap::new();
        h.append("server", HeaderValue::from_static("nginx/1.2"));
        h.append("server", HeaderValue::from_static("again"));
        h.append("x-powered-by", HeaderValue::from_static("PHP/5"));
        h.append("content-type", HeaderValue::from_static("text/plain"));
        let names: Vec<HeaderName> = DEFAULT_REMOVE
            .split(',')
            .map(|n| n.parse().unwrap())
            .collect();
        remove_headers(&mut h, &names);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("content-type"));
    }
}
