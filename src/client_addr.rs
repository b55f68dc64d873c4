//! The client address from `Forwarded` (RFC 7239) or `X-Forwarded-For`.
//!
//! These headers are written by proxies, but a client can send them too, so they are only read
//! when `EDGE_OBS_TRUSTED_PROXY_HOPS` says how many proxies in front of us append to them. With
//! N trusted hops the N-th entry from the right is the address the outermost trusted proxy saw;
//! everything left of it may be forged.
//!
//! WASI HTTP does not give a component the peer address, but hosts do, in a request header of
//! their own: Spin sets `spin-client-addr` (`ip:port`) and runtime-host does the same, after
//! removing any value a client sent. When no trusted proxy header applies, the address comes
//! from that header (`EDGE_OBS_PEER_ADDRESS_HEADER`; set it to `off` on a host that passes a
//! client's header through unchecked).
//!
//! Which header: `EDGE_OBS_CLIENT_ADDRESS_HEADER` names the one the proxies write. In `auto`
//! mode (the default) the middleware does not know it, and a client can always add the header
//! its proxy does not write: behind a proxy that appends only `X-Forwarded-For`, a
//! client-sent `Forwarded: for=1.2.3.4` must not decide the address (nor the rate-limit key
//! that runtime-host derives from it). So `auto` reads a header only when it is the only one
//! of the two in the request; when both are present it trusts neither and the address is the
//! peer's (the nearest proxy). Proxies that write both need the header named.
//!
//! Addresses are validated by a small hand-written checker and logged as written (IPv6 hex
//! lowercased), rather than with `std::net` parsing and formatting, which would add several
//! kilobytes to the component.

use http::{HeaderMap, HeaderName, header::FORWARDED};

/// Largest accepted `EDGE_OBS_TRUSTED_PROXY_HOPS`.
pub const MAX_TRUSTED_HOPS: usize = 32;

/// Which header carries the client address (`EDGE_OBS_CLIENT_ADDRESS_HEADER`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Source {
    /// Whichever of `Forwarded` and `X-Forwarded-For` the request has; neither when it has
    /// both, since one of them may then come from the client (the default).
    Auto,
    /// Only `Forwarded`.
    Forwarded,
    /// Only `X-Forwarded-For`.
    XForwardedFor,
}

/// Client address settings.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClientAddrConfig {
    /// Number of trusted proxies in front of the middleware; 0 = never read the headers.
    pub trusted_hops: usize,
    /// Header to read.
    pub source: Source,
    /// The header in which the host passes the TCP peer address, if any.
    pub peer_header: Option<HeaderName>,
}

/// The header Spin (and runtime-host) set to the client's TCP peer address, `ip:port`.
pub const SPIN_CLIENT_ADDR: &str = "spin-client-addr";

const X_FORWARDED_FOR: &str = "x-forwarded-for";

/// A validated client IP address in text form (at most 45 characters: an IPv6 address with
/// an embedded IPv4 address). Only hex digits, `.` and `:` occur, so it never needs escaping.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct ClientIp {
    buf: [u8; 45],
    len: u8,
}

impl ClientIp {
    /// The address text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[..usize::from(self.len)]).unwrap_or("")
    }
}

impl std::fmt::Debug for ClientIp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The client address of a request, or `None` (no trusted hops, header absent, or the chosen
/// entry is not an IP address, e.g. `unknown` or an obfuscated `_id`).
pub fn client_address(cfg: &ClientAddrConfig, headers: &HeaderMap) -> Option<ClientIp> {
    forwarded_address(cfg, headers).or_else(|| peer_address(cfg, headers))
}

/// The address the host saw, from its peer header (a single value).
fn peer_address(cfg: &ClientAddrConfig, headers: &HeaderMap) -> Option<ClientIp> {
    let mut values = headers.get_all(cfg.peer_header.as_ref()?).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    parse_node(value.as_bytes())
}

/// The address the outermost trusted proxy saw.
fn forwarded_address(cfg: &ClientAddrConfig, headers: &HeaderMap) -> Option<ClientIp> {
    if cfg.trusted_hops == 0 {
        return None;
    }
    let mut entries: Vec<&[u8]> = Vec::new();
    let use_forwarded = match cfg.source {
        Source::Forwarded => true,
        Source::XForwardedFor => false,
        // Both present: a proxy that writes one of them passes the other through from the
        // client, and we cannot tell which, so neither is trusted.
        Source::Auto => match (
            headers.contains_key(FORWARDED),
            headers.contains_key(X_FORWARDED_FOR),
        ) {
            (true, true) => return None,
            (forwarded, _) => forwarded,
        },
    };
    if use_forwarded {
        for v in headers.get_all(FORWARDED) {
            forwarded_for_values(v.as_bytes(), &mut entries);
        }
    } else {
        for v in headers.get_all(X_FORWARDED_FOR) {
            entries.extend(v.as_bytes().split(|&b| b == b','));
        }
    }
    let chosen = entries
        .len()
        .checked_sub(cfg.trusted_hops)
        .map_or(entries.first(), |i| entries.get(i))?;
    parse_node(chosen)
}

/// Collects the `for=` value of each element of one `Forwarded` header value, in order. An
/// element without `for=` contributes an empty entry so hop positions stay aligned. `,` and
/// `;` inside quoted strings do not separate (backslash escapes are not needed for addresses).
fn forwarded_for_values<'a>(v: &'a [u8], out: &mut Vec<&'a [u8]>) {
    let mut start = 0;
    let mut quoted = false;
    let mut current: Option<&'a [u8]> = None;
    let mut has_content = false;
    for i in 0..=v.len() {
        let b = v.get(i).copied();
        if b == Some(b'"') {
            quoted = !quoted;
        }
        let end_of_pair = b.is_none() || (!quoted && matches!(b, Some(b';' | b',')));
        if !end_of_pair {
            continue;
        }
        let pair = v[start..i].trim_ascii();
        if !pair.is_empty() {
            has_content = true;
            if current.is_none() && pair.len() >= 4 && pair[..4].eq_ignore_ascii_case(b"for=") {
                current = Some(&pair[4..]);
            }
        }
        if b != Some(b';') {
            if has_content {
                out.push(current.unwrap_or(b""));
            }
            current = None;
            has_content = false;
        }
        start = i + 1;
    }
}

/// Parses one node: an IPv4 address with optional port, or an IPv6 address, bare or in
/// brackets with optional port; surrounding quotes and whitespace are ignored.
pub fn parse_node(node: &[u8]) -> Option<ClientIp> {
    let mut s = node.trim_ascii();
    if let [b'"', inner @ .., b'"'] = s {
        s = inner.trim_ascii();
    }
    let addr = if let Some(rest) = s.strip_prefix(b"[") {
        let end = rest.iter().position(|&b| b == b']')?;
        let after = &rest[end + 1..];
        if !(after.is_empty() || is_port(after)) {
            return None;
        }
        let a = &rest[..end];
        is_ipv6(a).then_some(a)?
    } else if is_ipv6(s) || is_ipv4(s) {
        s
    } else {
        // IPv4 with port.
        let colon = s.iter().position(|&b| b == b':')?;
        let (a, port) = s.split_at(colon);
        (is_ipv4(a) && is_port(port)).then_some(a)?
    };
    let mut ip = ClientIp {
        buf: [0; 45],
        len: 0,
    };
    if addr.len() > ip.buf.len() {
        return None;
    }
    for (o, b) in ip.buf.iter_mut().zip(addr) {
        *o = b.to_ascii_lowercase();
    }
    ip.len = addr.len() as u8;
    Some(ip)
}

/// `:digits` (RFC 7239 also allows obfuscated `:_port`, accepted here too since it is dropped).
fn is_port(s: &[u8]) -> bool {
    match s {
        [b':', b'_', ..] => true,
        [b':', digits @ ..] => !digits.is_empty() && digits.iter().all(u8::is_ascii_digit),
        _ => false,
    }
}

/// Dotted-quad IPv4: four decimal octets 0-255, no leading zeros (which some parsers read as
/// octal).
pub fn is_ipv4(s: &[u8]) -> bool {
    let mut parts = 0;
    for part in s.split(|&b| b == b'.') {
        parts += 1;
        let ok = match part {
            [d] => d.is_ascii_digit(),
            [b'1'..=b'9', rest @ ..] if rest.len() <= 2 && rest.iter().all(u8::is_ascii_digit) => {
                part.iter().fold(0u32, |n, d| n * 10 + u32::from(d - b'0')) <= 255
            }
            _ => false,
        };
        if !ok || parts > 4 {
            return false;
        }
    }
    parts == 4
}

/// Counts the 16-bit groups of one side of an IPv6 address (`None` if malformed); an embedded
/// IPv4 address is allowed as the last group of the last side and counts twice.
fn ipv6_groups(part: &[u8], last: bool) -> Option<usize> {
    if part.is_empty() {
        return Some(0);
    }
    let count = part.split(|&b| b == b':').count();
    let mut n = 0;
    for (i, g) in part.split(|&b| b == b':').enumerate() {
        if last && i + 1 == count && g.contains(&b'.') {
            if !is_ipv4(g) {
                return None;
            }
            n += 2;
        } else if (1..=4).contains(&g.len()) && g.iter().all(u8::is_ascii_hexdigit) {
            n += 1;
        } else {
            return None;
        }
    }
    Some(n)
}

/// Textual IPv6 (RFC 4291): eight groups of 1-4 hex digits, `::` once for one or more zero
/// groups, optionally ending in an embedded IPv4 address. No zone ids.
pub fn is_ipv6(s: &[u8]) -> bool {
    match s.windows(2).position(|w| w == b"::") {
        Some(i) => matches!(
            (ipv6_groups(&s[..i], false), ipv6_groups(&s[i + 2..], true)),
            (Some(h), Some(t)) if h + t <= 7
        ),
        None => ipv6_groups(s, true) == Some(8),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::{HeaderName, HeaderValue};

    fn h(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut m = HeaderMap::new();
        for (n, v) in pairs {
            m.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        m
    }

    fn addr(hops: usize, source: Source, headers: &HeaderMap) -> Option<String> {
        client_address(
            &ClientAddrConfig {
                trusted_hops: hops,
                source,
                peer_header: None,
            },
            headers,
        )
        .map(|ip| ip.as_str().to_owned())
    }

    fn with_peer(hops: usize, headers: &HeaderMap) -> Option<String> {
        client_address(
            &ClientAddrConfig {
                trusted_hops: hops,
                source: Source::Auto,
                peer_header: Some(HeaderName::from_static(SPIN_CLIENT_ADDR)),
            },
            headers,
        )
        .map(|ip| ip.as_str().to_owned())
    }

    #[test]
    fn peer_header_is_the_fallback() {
        let m = h(&[("spin-client-addr", "127.0.0.1:51234")]);
        assert_eq!(with_peer(0, &m).as_deref(), Some("127.0.0.1"));
        let m = h(&[("spin-client-addr", "[::1]:8080")]);
        assert_eq!(with_peer(0, &m).as_deref(), Some("::1"));
        // A trusted proxy header wins over the peer (the peer is the proxy).
        let m = h(&[
            ("spin-client-addr", "10.0.0.1:80"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(with_peer(1, &m).as_deref(), Some("203.0.113.9"));
        // Untrusted forwarding headers are ignored; the peer is used.
        assert_eq!(with_peer(0, &m).as_deref(), Some("10.0.0.1"));
        // Garbage or ambiguous peer values give no address.
        let m = h(&[("spin-client-addr", "not an address")]);
        assert_eq!(with_peer(0, &m), None);
        let m = h(&[
            ("spin-client-addr", "1.2.3.4:1"),
            ("spin-client-addr", "5.6.7.8:2"),
        ]);
        assert_eq!(with_peer(0, &m), None);
        // Switched off: nothing.
        let m = h(&[("spin-client-addr", "127.0.0.1:51234")]);
        assert_eq!(addr(0, Source::Auto, &m), None);
    }

    #[test]
    fn nothing_without_trusted_hops() {
        let m = h(&[("x-forwarded-for", "1.2.3.4")]);
        assert_eq!(addr(0, Source::Auto, &m), None);
        assert_eq!(addr(1, Source::Auto, &HeaderMap::new()), None);
    }

    #[test]
    fn xff_takes_nth_from_the_right() {
        let m = h(&[
            ("x-forwarded-for", "6.6.6.6, 1.1.1.1"),
            ("x-forwarded-for", "2.2.2.2"),
        ]);
        assert_eq!(addr(1, Source::Auto, &m).unwrap(), "2.2.2.2");
        assert_eq!(addr(2, Source::Auto, &m).unwrap(), "1.1.1.1");
        assert_eq!(addr(3, Source::Auto, &m).unwrap(), "6.6.6.6");
        // Fewer entries than hops: the leftmost.
        assert_eq!(addr(10, Source::Auto, &m).unwrap(), "6.6.6.6");
    }

    #[test]
    fn strips_ports_brackets_quotes() {
        for (raw, want) in [
            ("1.2.3.4:8080", "1.2.3.4"),
            ("[2001:db8::1]:443", "2001:db8::1"),
            ("[2001:db8::1]", "2001:db8::1"),
            ("2001:db8::1", "2001:db8::1"),
            ("\"[::1]:80\"", "::1"),
            ("  9.9.9.9  ", "9.9.9.9"),
            ("2001:DB8::A", "2001:db8::a"),
            ("::", "::"),
            ("::1", "::1"),
            ("1::", "1::"),
            ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
            ("1:2:3:4:5:6::8", "1:2:3:4:5:6::8"),
            ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
            ("1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:1.2.3.4"),
            ("[::ffff:1.2.3.4]:80", "::ffff:1.2.3.4"),
            ("0.0.0.0", "0.0.0.0"),
            ("255.255.255.255:65535", "255.255.255.255"),
            ("\"1.2.3.4:_x\"", "1.2.3.4"),
        ] {
            assert_eq!(parse_node(raw.as_bytes()).unwrap().as_str(), want, "{raw}");
        }
    }

    #[test]
    fn rejects_non_addresses() {
        for raw in [
            "",
            "unknown",
            "_hidden",
            "1.2.3",
            "1.2.3.4:",
            "1.2.3.4:x",
            "[::1",
            "[::1]x",
            "fe80::1%eth0",
            "<script>",
            "1.2.3.4:80:90",
            "example.com",
            "999.1.1.1",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3.4.5",
            "1..2.3",
            "1.2.3.",
            ".1.2.3",
            "1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:8:9",
            "1:2:3:4:5:6:7::8",
            "1::2::3",
            ":::",
            "1:::2",
            "12345::",
            "g::",
            ":1:2:3:4:5:6:7",
            "1:2:3:4:5:6:7:",
            "::1.2.3.4:5",
            "1.2.3.4::",
            "1:2:3:4:5:6:7:1.2.3.4",
            "[1.2.3.4]",
            "[]",
            "\"\"",
        ] {
            assert_eq!(parse_node(raw.as_bytes()), None, "{raw}");
        }
        assert_eq!(parse_node(b"\xff\xfe"), None);
        let m = h(&[("x-forwarded-for", "unknown")]);
        assert_eq!(addr(1, Source::Auto, &m), None);
    }

    #[test]
    fn forwarded_header() {
        let m = h(&[(
            "forwarded",
            "for=192.0.2.60;proto=http;by=203.0.113.43, For=\"[2001:db8:cafe::17]:4711\"",
        )]);
        assert_eq!(addr(1, Source::Auto, &m).unwrap(), "2001:db8:cafe::17");
        assert_eq!(addr(2, Source::Auto, &m).unwrap(), "192.0.2.60");
        // Quoted values may contain separators.
        let m = h(&[("forwarded", "for=\"_a,b;c\", for=10.0.0.1")]);
        assert_eq!(addr(1, Source::Forwarded, &m).unwrap(), "10.0.0.1");
        assert_eq!(addr(2, Source::Forwarded, &m), None);
        // An element without for= still counts as a hop.
        let m = h(&[
            ("forwarded", "for=10.0.0.1, by=10.0.0.2"),
            ("forwarded", "for=10.0.0.3"),
        ]);
        assert_eq!(addr(1, Source::Forwarded, &m).unwrap(), "10.0.0.3");
        assert_eq!(addr(2, Source::Forwarded, &m), None);
        assert_eq!(addr(3, Source::Forwarded, &m).unwrap(), "10.0.0.1");
    }

    #[test]
    fn source_selection() {
        let m = h(&[("forwarded", "for=1.1.1.1"), ("x-forwarded-for", "2.2.2.2")]);
        assert_eq!(addr(1, Source::Auto, &m), None);
        assert_eq!(addr(1, Source::Forwarded, &m).unwrap(), "1.1.1.1");
        assert_eq!(addr(1, Source::XForwardedFor, &m).unwrap(), "2.2.2.2");
        let only_xff = h(&[("x-forwarded-for", "2.2.2.2")]);
        assert_eq!(addr(1, Source::Forwarded, &only_xff), None);
        assert_eq!(addr(1, Source::Auto, &only_xff).unwrap(), "2.2.2.2");
        let only_forwarded = h(&[("forwarded", "for=1.1.1.1")]);
        assert_eq!(addr(1, Source::Auto, &only_forwarded).unwrap(), "1.1.1.1");
        assert_eq!(addr(1, Source::XForwardedFor, &only_forwarded), None);
    }

    #[test]
    fn auto_does_not_let_a_client_forwarded_header_pick_the_address() {
        // One trusted proxy that appends only X-Forwarded-For (its peer, the real client, is
        // 198.51.100.7); the client added its own Forwarded header.
        let m = h(&[
            ("spin-client-addr", "10.0.0.2:40000"),
            ("forwarded", "for=1.2.3.4"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        assert_ne!(with_peer(1, &m).as_deref(), Some("1.2.3.4"));
        // Neither header is trusted: the address is the one the host saw.
        assert_eq!(with_peer(1, &m).as_deref(), Some("10.0.0.2"));
        // Naming the header the proxy writes gives the real client.
        assert_eq!(
            addr(1, Source::XForwardedFor, &m).as_deref(),
            Some("198.51.100.7")
        );
        // Nor with a port, quotes or a list the client crafted, or several header lines.
        for forged in [
            "for=\"1.2.3.4:80\"",
            "for=1.2.3.4, for=5.6.7.8",
            "by=x;for=1.2.3.4",
        ] {
            let m = h(&[
                ("forwarded", forged),
                ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
            ]);
            assert_eq!(addr(1, Source::Auto, &m), None, "{forged}");
            assert_eq!(addr(2, Source::Auto, &m), None, "{forged}");
        }
        // The same holds the other way round, behind a proxy that writes only Forwarded.
        let m = h(&[
            ("x-forwarded-for", "1.2.3.4"),
            ("forwarded", "for=198.51.100.7"),
        ]);
        assert_eq!(addr(1, Source::Auto, &m), None);
        // Naming the header the proxy writes gives the real client.
        assert_eq!(addr(1, Source::Forwarded, &m).unwrap(), "198.51.100.7");
    }
}
