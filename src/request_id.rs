//! Request ids: accept a well-formed client id, otherwise generate one.
//!
//! Client ids are untrusted input that ends up in logs and in headers of other services, so we
//! only accept short, visible-ASCII tokens without quoting or list characters, and we never
//! rewrite an accepted id (other systems may already have logged it).

use std::time::{SystemTime, UNIX_EPOCH};

use http::{HeaderMap, HeaderName, HeaderValue};

/// Largest allowed `EDGE_OBS_REQUEST_ID_MAX_LEN`.
pub const MAX_LEN_LIMIT: usize = 1024;

/// How many characters of a rejected client id are logged (`request_id.received`).
pub const RECEIVED_MAX_CHARS: usize = 64;

/// How many bytes of a rejected id we keep: enough for [`RECEIVED_MAX_CHARS`] characters of
/// up to 4 bytes plus one, so truncation is still detected, without copying a 64 KB header.
const RECEIVED_KEEP_BYTES: usize = RECEIVED_MAX_CHARS * 4 + 1;

/// Whether client-supplied ids are trusted (`EDGE_OBS_REQUEST_ID_POLICY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// Use a valid client id (the default).
    Accept,
    /// Never trust clients: always generate an id.
    Reject,
}

/// Format of generated ids (`EDGE_OBS_REQUEST_ID_FORMAT`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum IdFormat {
    /// UUID version 7 (time-ordered, sorts by creation time in logs); the default.
    UuidV7,
    /// UUID version 4 (fully random).
    UuidV4,
}

/// Request id settings.
#[derive(Clone, Debug)]
pub struct RequestIdConfig {
    /// Primary header: read first, and the one set on the forwarded request and the response.
    pub header: HeaderName,
    /// Further headers a client id is read from, in order, after the primary one.
    pub aliases: Vec<HeaderName>,
    /// Longest accepted client id, in characters (1..=1024).
    pub max_len: usize,
    /// Whether client ids are accepted at all.
    pub policy: Policy,
    /// Format of generated ids.
    pub format: IdFormat,
}

/// Why a client-supplied id was not used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplaceReason {
    /// The header was present but empty.
    Empty,
    /// Longer than the configured maximum.
    TooLong,
    /// Contains a character outside the allowed set.
    InvalidCharacter,
    /// The header appeared more than once, so the id is ambiguous.
    MultipleValues,
    /// Policy `reject`: client ids are never used.
    Policy,
}

impl ReplaceReason {
    /// The value logged as `request_id.replaced`.
    pub fn as_str(self) -> &'static str {
        match self {
            ReplaceReason::Empty => "empty",
            ReplaceReason::TooLong => "too long",
            ReplaceReason::InvalidCharacter => "invalid character",
            ReplaceReason::MultipleValues => "multiple values",
            ReplaceReason::Policy => "policy",
        }
    }
}

/// A client id that was replaced by a generated one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Replaced {
    /// Why it was replaced.
    pub reason: ReplaceReason,
    /// The start of the received value (raw bytes, at most 257), for the log.
    pub received: Vec<u8>,
}

/// The request id chosen for an exchange.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// The id (visible ASCII only).
    pub id: String,
    /// The id as a header value, ready to insert.
    pub value: HeaderValue,
    /// Set when a client id was present but not used.
    pub replaced: Option<Replaced>,
}

/// Whether `b` may appear in a request id: visible ASCII except characters that quote,
/// escape, delimit lists/parameters or start markup in common log and header formats.
#[inline]
pub fn is_id_byte(b: u8) -> bool {
    matches!(b, 0x21..=0x7E)
        && !matches!(b, b'"' | b'\\' | b'\'' | b'`' | b'<' | b'>' | b',' | b';')
}

/// Checks one client-supplied value.
pub fn validate(value: &[u8], max_len: usize) -> Result<(), ReplaceReason> {
    if value.is_empty() {
        return Err(ReplaceReason::Empty);
    }
    // Length first: a 64 KB value is rejected without scanning it. Valid ids are ASCII, so
    // bytes equal characters.
    if value.len() > max_len {
        return Err(ReplaceReason::TooLong);
    }
    if value.iter().all(|&b| is_id_byte(b)) {
        Ok(())
    } else {
        Err(ReplaceReason::InvalidCharacter)
    }
}

/// Picks the request id: the first valid client id from the primary header then the aliases
/// (unless the policy is `reject`), else a newly generated one from `random` and `now`.
pub fn resolve(
    cfg: &RequestIdConfig,
    headers: &HeaderMap,
    random: &[u8; 16],
    now: SystemTime,
) -> Resolved {
    let mut first_bad: Option<Replaced> = None;
    for name in std::iter::once(&cfg.header).chain(cfg.aliases.iter()) {
        let mut values = headers.get_all(name).iter();
        let Some(first) = values.next() else {
            continue;
        };
        let verdict = if cfg.policy == Policy::Reject {
            Err(ReplaceReason::Policy)
        } else if values.next().is_some() {
            Err(ReplaceReason::MultipleValues)
        } else {
            validate(first.as_bytes(), cfg.max_len)
        };
        match verdict {
            Ok(()) => {
                // Valid ids are visible ASCII, so this cannot fail; keep the id verbatim.
                if let Ok(id) = first.to_str() {
                    return Resolved {
                        id: id.to_owned(),
                        value: first.clone(),
                        replaced: None,
                    };
                }
            }
            Err(reason) => {
                if first_bad.is_none() {
                    let bytes = first.as_bytes();
                    first_bad = Some(Replaced {
                        reason,
                        received: bytes[..bytes.len().min(RECEIVED_KEEP_BYTES)].to_vec(),
                    });
                }
                if reason == ReplaceReason::Policy {
                    break;
                }
            }
        }
    }
    let id = generate(cfg.format, random, now);
    let value = HeaderValue::from_str(&id).unwrap_or_else(|_| HeaderValue::from_static("-"));
    Resolved {
        id,
        value,
        replaced: first_bad,
    }
}

/// Generates a new id (a lowercase hyphenated UUID) from 16 random bytes.
pub fn generate(format: IdFormat, random: &[u8; 16], now: SystemTime) -> String {
    let uuid = match format {
        IdFormat::UuidV7 => {
            let millis = now
                .duration_since(UNIX_EPOCH)
                .map(|d| d.as_millis() as u64)
                .unwrap_or(0);
            let mut rand10 = [0u8; 10];
            rand10.copy_from_slice(&random[..10]);
            uuid::Builder::from_unix_timestamp_millis(millis, &rand10).into_uuid()
        }
        IdFormat::UuidV4 => uuid::Builder::from_random_bytes(*random).into_uuid(),
    };
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    uuid.hyphenated().encode_lower(&mut buf).to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const RND: [u8; 16] = [7; 16];

    fn cfg() -> RequestIdConfig {
        crate::Config::default().request_id
    }

    fn map(pairs: &[(&str, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_bytes(v).unwrap(),
            );
        }
        h
    }

    fn resolve_now(c: &RequestIdConfig, h: &HeaderMap) -> Resolved {
        resolve(c, h, &RND, SystemTime::now())
    }

    fn is_uuid(s: &str) -> bool {
        s.len() == 36 && uuid::Uuid::parse_str(s).is_ok() && s == s.to_ascii_lowercase()
    }

    #[test]
    fn accepts_valid_client_id_verbatim() {
        for id in [
            "abc",
            "A-b_c.d:e/f+g=h~i!#$%&()*?@[]^{|}",
            "0",
            &"x".repeat(128),
        ] {
            let r = resolve_now(&cfg(), &map(&[("x-request-id", id.as_bytes())]));
            assert_eq!(r.id, id);
            assert_eq!(r.value.as_bytes(), id.as_bytes());
            assert!(r.replaced.is_none());
        }
    }

    #[test]
    fn generates_when_absent() {
        let r = resolve_now(&cfg(), &HeaderMap::new());
        assert!(is_uuid(&r.id), "{}", r.id);
        assert_eq!(uuid::Uuid::parse_str(&r.id).unwrap().get_version_num(), 7);
        assert!(r.replaced.is_none());
    }

    fn replaced(value: &[u8]) -> Resolved {
        let r = resolve_now(&cfg(), &map(&[("x-request-id", value)]));
        assert!(is_uuid(&r.id), "{}", r.id);
        r
    }

    fn reason(value: &[u8]) -> ReplaceReason {
        replaced(value).replaced.unwrap().reason
    }

    #[test]
    fn rejects_bad_values_with_reasons() {
        assert_eq!(reason(b""), ReplaceReason::Empty);
        assert_eq!(reason("x".repeat(129).as_bytes()), ReplaceReason::TooLong);
        assert_eq!(reason(&vec![b'a'; 64 * 1024]), ReplaceReason::TooLong);
        for bad in [
            &b"a b"[..],
            b"a\tb",
            b"a\"b",
            b"a\\b",
            b"a'b",
            b"a`b",
            b"<script>",
            b"a,b",
            b"a;b",
            b"caf\xc3\xa9",
            b"\xff\xfe",
            b"{\"level\":\"error\"}",
            b" leading",
        ] {
            assert_eq!(reason(bad), ReplaceReason::InvalidCharacter, "{bad:?}");
        }
    }

    #[test]
    fn control_bytes_in_raw_values_are_rejected() {
        // HeaderValue refuses CR/LF/NUL, but validate() also guards other callers.
        for bad in [&b"a\rb"[..], b"a\nb", b"a\0b", b"\x1b[31m", b"a\x7fb"] {
            assert_eq!(validate(bad, 128), Err(ReplaceReason::InvalidCharacter));
        }
    }

    #[test]
    fn received_value_is_kept_but_bounded() {
        let r = replaced(&vec![b'a'; 64 * 1024]);
        let rep = r.replaced.unwrap();
        assert_eq!(rep.received.len(), RECEIVED_KEEP_BYTES);
        let r = replaced(b"bad id");
        assert_eq!(r.replaced.unwrap().received, b"bad id");
    }

    #[test]
    fn multiple_values_are_ambiguous() {
        let r = resolve_now(
            &cfg(),
            &map(&[("x-request-id", b"a"), ("x-request-id", b"b")]),
        );
        let rep = r.replaced.unwrap();
        assert_eq!(rep.reason, ReplaceReason::MultipleValues);
        assert_eq!(rep.received, b"a");
    }

    #[test]
    fn aliases_are_read_in_order_after_the_primary() {
        let h = map(&[("x-correlation-id", b"corr")]);
        assert_eq!(resolve_now(&cfg(), &h).id, "corr");
        let h = map(&[("x-correlation-id", b"corr"), ("x-request-id", b"req")]);
        assert_eq!(resolve_now(&cfg(), &h).id, "req");
        // An invalid primary does not block a valid alias.
        let h = map(&[("x-correlation-id", b"corr"), ("x-request-id", b"bad id")]);
        let r = resolve_now(&cfg(), &h);
        assert_eq!(r.id, "corr");
        assert!(r.replaced.is_none());
        // All invalid: the first bad one is reported.
        let h = map(&[("x-correlation-id", b""), ("x-request-id", b"bad id")]);
        let r = resolve_now(&cfg(), &h);
        assert_eq!(r.replaced.unwrap().reason, ReplaceReason::InvalidCharacter);
    }

    #[test]
    fn reject_policy_always_generates() {
        let c = RequestIdConfig {
            policy: Policy::Reject,
            ..cfg()
        };
        let r = resolve_now(&c, &map(&[("x-request-id", b"good-id")]));
        assert_ne!(r.id, "good-id");
        let rep = r.replaced.unwrap();
        assert_eq!(rep.reason, ReplaceReason::Policy);
        assert_eq!(rep.received, b"good-id");
        assert!(resolve_now(&c, &HeaderMap::new()).replaced.is_none());
    }

    #[test]
    fn max_len_is_configurable() {
        let c = RequestIdConfig {
            max_len: 4,
            ..cfg()
        };
        assert_eq!(
            resolve_now(&c, &map(&[("x-request-id", b"abcd")])).id,
            "abcd"
        );
        let r = resolve_now(&c, &map(&[("x-request-id", b"abcde")]));
        assert_eq!(r.replaced.unwrap().reason, ReplaceReason::TooLong);
    }

    #[test]
    fn generated_formats() {
        let t = UNIX_EPOCH + std::time::Duration::from_millis(1_795_432_953_456);
        let v7 = generate(IdFormat::UuidV7, &RND, t);
        let u = uuid::Uuid::parse_str(&v7).unwrap();
        assert_eq!(u.get_version_num(), 7);
        let (secs, nanos) = u.get_timestamp().unwrap().to_unix();
        assert_eq!(
            secs * 1000 + u64::from(nanos) / 1_000_000,
            1_795_432_953_456
        );
        let v4 = generate(IdFormat::UuidV4, &RND, t);
        assert_eq!(uuid::Uuid::parse_str(&v4).unwrap().get_version_num(), 4);
        assert!(v7.bytes().all(is_id_byte) && v4.bytes().all(is_id_byte));
        assert_ne!(generate(IdFormat::UuidV4, &[1; 16], t), v4);
    }

    #[test]
    fn reason_strings() {
        assert_eq!(ReplaceReason::Empty.as_str(), "empty");
        assert_eq!(ReplaceReason::TooLong.as_str(), "too long");
        assert_eq!(
            ReplaceReason::InvalidCharacter.as_str(),
            "invalid character"
        );
        assert_eq!(ReplaceReason::MultipleValues.as_str(), "multiple values");
        assert_eq!(ReplaceReason::Policy.as_str(), "policy");
    }
}
