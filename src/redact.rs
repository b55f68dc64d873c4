//! Redaction of secrets in logged headers and query strings.
//!
//! Credentials in access logs are a classic leak (logs are kept longer and read by more people
//! than the services that receive them), so some headers are redacted whatever the
//! configuration says, and query parameter values with secret-looking names are replaced before
//! the query is ever written.

use http::HeaderName;

use crate::json::REDACTED;

/// Headers whose values are never logged, even when allow-listed.
pub const ALWAYS_REDACTED_HEADERS: [&str; 5] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
    "x-api-key",
];

/// Default `EDGE_OBS_REDACT_QUERY_PARAMS`: names of query parameters that commonly carry
/// credentials (OAuth, API keys, signed URLs such as S3 pre-signed URLs).
pub const DEFAULT_QUERY_PARAMS: &str = "token,access_token,id_token,refresh_token,api_key,apikey,key,password,passwd,secret,client_secret,signature,sig,code,auth,session,jwt,x-amz-signature,x-amz-credential,x-amz-security-token";

/// Redaction settings.
#[derive(Clone, Debug)]
pub struct Redaction {
    /// Extra header names to redact (`EDGE_OBS_REDACT_HEADERS`), on top of
    /// [`ALWAYS_REDACTED_HEADERS`].
    pub headers: Vec<HeaderName>,
    /// Query parameter names whose values are redacted, lowercase (`EDGE_OBS_REDACT_QUERY_PARAMS`).
    pub query_params: Vec<String>,
}

impl Redaction {
    /// Whether the values of this header must never be logged.
    pub fn is_secret_header(&self, name: &HeaderName) -> bool {
        ALWAYS_REDACTED_HEADERS.contains(&name.as_str()) || self.headers.contains(name)
    }

    /// Whether a raw (percent-encoded) query parameter name is a secret one. Names are
    /// compared case-insensitively after percent-decoding, so `Access%5FToken` is caught too.
    pub fn is_secret_param(&self, raw_name: &str) -> bool {
        self.query_params
            .iter()
            .any(|p| decoded_eq_ignore_case(raw_name.as_bytes(), p.as_bytes()))
    }

    /// Appends `query` (without `?`) to `out` with the values of secret parameters replaced by
    /// `[REDACTED]`. Both `&` and `;` separate parameters, since some servers accept either.
    pub fn redact_query(&self, query: &str, out: &mut String) {
        let mut start = 0;
        let bytes = query.as_bytes();
        for i in 0..=bytes.len() {
            if i < bytes.len() && bytes[i] != b'&' && bytes[i] != b';' {
                continue;
            }
            let param = &query[start..i];
            match param.find('=') {
                Some(eq) if self.is_secret_param(&param[..eq]) => {
                    out.push_str(&param[..=eq]);
                    out.push_str(REDACTED);
                }
                _ => out.push_str(param),
            }
            if i < bytes.len() {
                out.push(bytes[i] as char);
            }
            start = i + 1;
        }
    }
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// Compares percent-decoded (and `+` as space) `raw` with `target`, ASCII case-insensitively,
/// without allocating.
fn decoded_eq_ignore_case(raw: &[u8], target: &[u8]) -> bool {
    // Decoding never makes a name longer, and without '%' it keeps the length.
    if raw.len() < target.len() || (raw.len() != target.len() && !raw.contains(&b'%')) {
        return false;
    }
    let mut i = 0;
    let mut t = target.iter();
    while i < raw.len() {
        let b = match raw[i] {
            b'%' if i + 2 < raw.len() => match (hex_val(raw[i + 1]), hex_val(raw[i + 2])) {
                (Some(h), Some(l)) => {
                    i += 2;
                    h << 4 | l
                }
                _ => b'%',
            },
            b'+' => b' ',
            b => b,
        };
        i += 1;
        match t.next() {
            Some(&c) if c.eq_ignore_ascii_case(&b) => {}
            _ => return false,
        }
    }
    t.next().is_none()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redact(q: &str) -> String {
        let mut s = String::new();
        crate::Config::default().redaction.redact_query(q, &mut s);
        s
    }

    #[test]
    fn always_redacted_headers() {
        let r = Redaction {
            headers: vec![HeaderName::from_static("x-secret")],
            ..crate::Config::default().redaction
        };
        for n in [
            "authorization",
            "proxy-authorization",
            "cookie",
            "set-cookie",
            "x-api-key",
            "x-secret",
        ] {
            assert!(r.is_secret_header(&HeaderName::from_static(n)), "{n}");
        }
        assert!(!r.is_secret_header(&HeaderName::from_static("user-agent")));
        // Configuration cannot un-redact the fixed list.
        let empty = Redaction {
            headers: vec![],
            query_params: vec![],
        };
        assert!(empty.is_secret_header(&HeaderName::from_static("authorization")));
    }

    #[test]
    fn redacts_secret_query_values() {
        assert_eq!(redact("a=1&token=abc&b=2"), "a=1&token=[REDACTED]&b=2");
        assert_eq!(redact("ACCESS_TOKEN=abc"), "ACCESS_TOKEN=[REDACTED]");
        assert_eq!(redact("access%5Ftoken=abc"), "access%5Ftoken=[REDACTED]");
        assert_eq!(redact("access%5ftoken=abc"), "access%5ftoken=[REDACTED]");
        assert_eq!(
            redact("X-Amz-Signature=f00d&X-Amz-Credential=AKIA"),
            "X-Amz-Signature=[REDACTED]&X-Amz-Credential=[REDACTED]"
        );
        assert_eq!(redact("a=1;password=hunter2"), "a=1;password=[REDACTED]");
        assert_eq!(redact("token=a=b=c"), "token=[REDACTED]");
        assert_eq!(redact("token="), "token=[REDACTED]");
        assert_eq!(redact("key=1&key=2"), "key=[REDACTED]&key=[REDACTED]");
    }

    #[test]
    fn leaves_other_params_alone() {
        assert_eq!(redact(""), "");
        assert_eq!(redact("a=1&&b"), "a=1&&b");
        assert_eq!(redact("token"), "token");
        assert_eq!(
            redact("tokens=1&mytoken=2&keyboard=3"),
            "tokens=1&mytoken=2&keyboard=3"
        );
        assert_eq!(redact("q=token%3Dabc"), "q=token%3Dabc");
        assert_eq!(redact("%=1&%4=2&%zz=3"), "%=1&%4=2&%zz=3");
    }

    #[test]
    fn decoding_comparison() {
        assert!(decoded_eq_ignore_case(b"a%20b", b"a b"));
        assert!(decoded_eq_ignore_case(b"a+b", b"a b"));
        assert!(!decoded_eq_ignore_case(b"ab", b"abc"));
        assert!(!decoded_eq_ignore_case(b"abc", b"ab"));
        assert!(decoded_eq_ignore_case(b"%", b"%"));
        assert!(decoded_eq_ignore_case(b"%4", b"%4"));
        assert!(decoded_eq_ignore_case(b"", b""));
    }

    #[test]
    fn configured_params_replace_the_defaults() {
        let r = Redaction {
            headers: vec![],
            query_params: vec!["otp".into()],
        };
        let mut s = String::new();
        r.redact_query("otp=1&token=2", &mut s);
        assert_eq!(s, "otp=[REDACTED]&token=2");
    }
}
