//! W3C Trace Context (`traceparent` / `tracestate`) for one proxy hop.
//!
//! A valid incoming `traceparent` is continued: same trace id and flags, a new span id for this
//! hop. Anything invalid starts a new trace, because a half-trusted malformed context would
//! corrupt traces downstream. `tracestate` is only meaningful with the `traceparent` it came
//! with, so it is kept untouched with a valid one (when it parses) and dropped otherwise.

use http::{HeaderMap, HeaderValue, header::HeaderName};

/// `traceparent` header name.
pub const TRACEPARENT: HeaderName = HeaderName::from_static("traceparent");
/// `tracestate` header name.
pub const TRACESTATE: HeaderName = HeaderName::from_static("tracestate");

/// Longest `tracestate` (all header lines joined with `", "`) we forward. The spec requires
/// propagating at least 512 characters and allows a vendor to drop longer values.
pub const TRACESTATE_MAX_LEN: usize = 512;
/// Most `tracestate` list members allowed by the spec.
pub const TRACESTATE_MAX_MEMBERS: usize = 32;

/// Trace flags of a trace we start when the sampler says yes: `01` (sampled); otherwise
/// `00`.
pub const NEW_TRACE_FLAGS: u8 = FLAG_SAMPLED;

/// A parsed, valid `traceparent`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceParent {
    /// 16-byte trace id, never all zero.
    pub trace_id: [u8; 16],
    /// 8-byte id of the caller's span, never all zero.
    pub parent_id: [u8; 8],
    /// Trace flags byte.
    pub flags: u8,
}

/// Why a `traceparent` was not continued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TraceParentError {
    /// The header appeared more than once.
    Multiple,
    /// Wrong length (version 00 must be exactly 55 characters).
    Length,
    /// Version is not two lowercase hex digits.
    Version,
    /// Version `ff`, forbidden by the spec.
    ForbiddenVersion,
    /// A `-` separator is missing.
    Separator,
    /// Trace id is not 32 lowercase hex digits.
    TraceId,
    /// Trace id is all zeros.
    ZeroTraceId,
    /// Parent id is not 16 lowercase hex digits.
    ParentId,
    /// Parent id is all zeros.
    ZeroParentId,
    /// Flags are not two lowercase hex digits.
    Flags,
}

/// The trace identifiers of this hop.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TraceIds {
    /// Trace id (continued or new).
    pub trace_id: [u8; 16],
    /// Our span id for this hop (always new).
    pub span_id: [u8; 8],
    /// The caller's span id when the trace was continued.
    pub parent_span_id: Option<[u8; 8]>,
    /// Trace flags forwarded downstream.
    pub flags: u8,
}

impl TraceIds {
    /// Whether this hop's trace is sampled (the flag we forward).
    pub fn sampled(&self) -> bool {
        self.flags & FLAG_SAMPLED != 0
    }

    /// The `traceparent` value to forward: `00-<trace>-<our span>-<flags>`.
    pub fn traceparent(&self) -> [u8; 55] {
        let mut out = [b'-'; 55];
        out[0] = b'0';
        out[1] = b'0';
        hex_into(&mut out[3..35], &self.trace_id);
        hex_into(&mut out[36..52], &self.span_id);
        hex_into(&mut out[53..55], &[self.flags]);
        out
    }
}

/// What [`process`] decided.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Outcome {
    /// The ids of this hop.
    pub ids: TraceIds,
    /// Why the incoming `traceparent` was not continued (`None` if continued or absent).
    pub rejected: Option<TraceParentError>,
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Writes lowercase hex of `bytes` into `out` (`out.len() == 2 * bytes.len()`).
pub fn hex_into(out: &mut [u8], bytes: &[u8]) {
    for (pair, b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 0xF)];
    }
}

/// Appends lowercase hex of `bytes` to a string.
pub fn push_hex(out: &mut String, bytes: &[u8]) {
    for b in bytes {
        out.push(HEX[usize::from(b >> 4)] as char);
        out.push(HEX[usize::from(b & 0xF)] as char);
    }
}

/// The value of each byte as a lowercase hex digit; `INVALID` for every other byte.
const UNHEX: [u8; 256] = {
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 16 {
        table[HEX[i] as usize] = i as u8;
        i += 1;
    }
    table
};
/// Set in [`UNHEX`] for a byte that is not a lowercase hex digit (never set in a digit's value).
const INVALID: u8 = 0x80;

/// Decodes lowercase hex into `out` (uppercase is invalid in trace context); false when `s`
/// is not exactly `2 * out.len()` lowercase hex digits.
///
/// One table lookup per digit, and the validity of all of them checked once at the end: ids
/// are decoded on every request, by the component and again by the host.
///
/// ```
/// # use edge_observability_core::trace_context::parse_lower_hex;
/// let mut id = [0u8; 2];
/// assert!(parse_lower_hex(b"0aff", &mut id));
/// assert_eq!(id, [0x0a, 0xff]);
/// assert!(!parse_lower_hex(b"0AFF", &mut id));
/// assert!(!parse_lower_hex(b"0af", &mut id));
/// ```
pub fn parse_lower_hex(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    let mut seen = 0u8;
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        let (high, low) = (UNHEX[usize::from(pair[0])], UNHEX[usize::from(pair[1])]);
        seen |= high | low;
        *o = high << 4 | low;
    }
    seen & INVALID == 0
}

/// Parses one `traceparent` value.
///
/// Surrounding spaces/tabs (HTTP optional whitespace) are ignored. For versions above `00`
/// the first 55 characters are parsed and any longer value must continue with `-`, as the spec
/// asks, so future versions that only append fields are still understood.
pub fn parse_traceparent(value: &[u8]) -> Result<TraceParent, TraceParentError> {
    let v = value.trim_ascii();
    if v.len() < 55 {
        return Err(TraceParentError::Length);
    }
    let mut version = [0u8; 1];
    if !parse_lower_hex(&v[0..2], &mut version) {
        return Err(TraceParentError::Version);
    }
    if version[0] == 0xFF {
        return Err(TraceParentError::ForbiddenVersion);
    }
    if version[0] == 0 && v.len() != 55 {
        return Err(TraceParentError::Length);
    }
    if v.len() > 55 && v[55] != b'-' {
        return Err(TraceParentError::Separator);
    }
    if v[2] != b'-' || v[35] != b'-' || v[52] != b'-' {
        return Err(TraceParentError::Separator);
    }
    let mut trace_id = [0u8; 16];
    if !parse_lower_hex(&v[3..35], &mut trace_id) {
        return Err(TraceParentError::TraceId);
    }
    if trace_id == [0; 16] {
        return Err(TraceParentError::ZeroTraceId);
    }
    let mut parent_id = [0u8; 8];
    if !parse_lower_hex(&v[36..52], &mut parent_id) {
        return Err(TraceParentError::ParentId);
    }
    if parent_id == [0; 8] {
        return Err(TraceParentError::ZeroParentId);
    }
    let mut flags = [0u8; 1];
    if !parse_lower_hex(&v[53..55], &mut flags) {
        return Err(TraceParentError::Flags);
    }
    Ok(TraceParent {
        trace_id,
        parent_id,
        flags: flags[0],
    })
}

/// Reads the (single) `traceparent` of a request.
fn incoming(headers: &HeaderMap) -> Option<Result<TraceParent, TraceParentError>> {
    let mut values = headers.get_all(TRACEPARENT).iter();
    let first = values.next()?;
    if values.next().is_some() {
        return Some(Err(TraceParentError::Multiple));
    }
    Some(parse_traceparent(first.as_bytes()))
}

/// Whether the request carries a `tracestate` that may be forwarded as is: every list member
/// parses against the current W3C grammar (see [`valid_member`]), there is at least one
/// member, and the whole is at most [`TRACESTATE_MAX_LEN`] characters (header lines joined
/// with `", "`) and [`TRACESTATE_MAX_MEMBERS`] members. A `tracestate` that does not parse
/// must not be propagated, so anything else drops it whole.
///
/// Duplicated keys (`foo=1,foo=2`) do not make it unparsable: the spec leaves it to the
/// vendor whose key it is, and the W3C test suite expects such a header to be inherited, with
/// the duplicates kept or one dropped. It is kept untouched, duplicates included.
pub fn tracestate_forwardable(headers: &HeaderMap) -> bool {
    let mut len = 0usize;
    let mut members = 0usize;
    for (i, v) in headers.get_all(TRACESTATE).iter().enumerate() {
        len += v.len() + if i > 0 { 2 } else { 0 };
        if len > TRACESTATE_MAX_LEN {
            return false;
        }
        for m in v.as_bytes().split(|&b| b == b',') {
            let m = trim_ows(m);
            // Empty members (`a=1,,b=2`) are allowed by the list grammar and skipped.
            if m.is_empty() {
                continue;
            }
            if members == TRACESTATE_MAX_MEMBERS || valid_member(m).is_none() {
                return false;
            }
            members += 1;
        }
    }
    // Empty lines only: nothing to propagate.
    members > 0
}

/// Spaces and tabs around a list member (HTTP optional whitespace).
fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Characters allowed after the first one of a key (`keychar`).
fn key_char(c: u8) -> bool {
    matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'-' | b'*' | b'/' | b'@')
}

/// A key by the current W3C grammar: `( lcalpha / DIGIT ) 0*255 ( keychar )`, `keychar =
/// lcalpha / DIGIT / "_" / "-" / "*" / "/" / "@"`. The older `tenant@system` split (with its
/// 241/14 character parts) is gone: `@` is an ordinary key character after the first one, so
/// `foo@=1` and a 256-character key with an `@` anywhere are valid.
pub fn valid_key(key: &[u8]) -> bool {
    match key {
        [first, rest @ ..] => {
            key.len() <= 256
                && (first.is_ascii_lowercase() || first.is_ascii_digit())
                && rest.iter().all(|&c| key_char(c))
        }
        [] => false,
    }
}

/// A value: 1 to 256 printable ASCII characters (0x20-0x7E) except `,` and `=`, not ending in
/// a space.
pub fn valid_value(value: &[u8]) -> bool {
    (1..=256).contains(&value.len())
        && value
            .iter()
            .all(|&c| (0x20..=0x7E).contains(&c) && c != b',' && c != b'=')
        && value.last() != Some(&b' ')
}

/// Parses one list member `key=value` (already stripped of surrounding whitespace); returns
/// its key when valid.
pub fn valid_member(member: &[u8]) -> Option<&[u8]> {
    let eq = member.iter().position(|&c| c == b'=')?;
    let (key, value) = (&member[..eq], &member[eq + 1..]);
    (valid_key(key) && valid_value(value)).then_some(key)
}

/// The parent-based sampler's rule for new traces, as OpenTelemetry's `TraceIdRatioBased`
/// decides it: a trace is sampled when the last 8 bytes of its id, read big-endian and
/// shifted right by one, are below `ratio * 2^63`. Every hop that uses the same rule and
/// ratio reaches the same decision for the same trace id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RatioSampler {
    /// `None` samples everything (ratio 1); else the exclusive upper bound of the 63-bit
    /// value taken from the trace id.
    bound: Option<u64>,
}

impl Default for RatioSampler {
    fn default() -> Self {
        RatioSampler::from_ppm(1_000_000)
    }
}

impl RatioSampler {
    /// A sampler for a ratio given in millionths (`1_000_000` = every trace).
    pub fn from_ppm(ppm: u32) -> Self {
        let bound = (ppm < 1_000_000).then(|| ((u128::from(ppm) << 63) / 1_000_000) as u64);
        RatioSampler { bound }
    }

    /// Whether every new trace is sampled.
    pub fn samples_all(&self) -> bool {
        self.bound.is_none()
    }

    /// Whether a new trace with this id is sampled.
    pub fn sampled(&self, trace_id: &[u8; 16]) -> bool {
        let Some(bound) = self.bound else {
            return true;
        };
        let mut low = [0u8; 8];
        low.copy_from_slice(&trace_id[8..]);
        (u64::from_be_bytes(low) >> 1) < bound
    }
}

/// The `sampled` bit of the trace flags.
pub const FLAG_SAMPLED: u8 = 0x01;

/// Makes sure an id from random bytes is not all zero (which the spec forbids).
fn non_zero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id == [0; N] {
        id[N - 1] = 1;
    }
    id
}

/// Decides the trace ids of this hop from the request headers and `random` (24 random bytes:
/// 16 for a possible new trace id, 8 for the span id), and updates `headers` for forwarding:
/// `traceparent` replaced with ours, `tracestate` kept or removed. Sampling is parent-based: a
/// continued trace keeps its flags, a new one is sampled by `sampler`.
pub fn process(headers: &mut HeaderMap, random: &[u8; 24], sampler: &RatioSampler) -> Outcome {
    let mut span_id = [0u8; 8];
    span_id.copy_from_slice(&random[16..]);
    let span_id = non_zero(span_id);
    let (ids, rejected) = match incoming(headers) {
        Some(Ok(tp)) => {
            if !tracestate_forwardable(headers) {
                headers.remove(TRACESTATE);
            }
            let ids = TraceIds {
                trace_id: tp.trace_id,
                span_id,
                parent_span_id: Some(tp.parent_id),
                flags: tp.flags,
            };
            (ids, None)
        }
        other => {
            headers.remove(TRACESTATE);
            let mut trace_id = [0u8; 16];
            trace_id.copy_from_slice(&random[..16]);
            let trace_id = non_zero(trace_id);
            let flags = if sampler.sampled(&trace_id) {
                NEW_TRACE_FLAGS
            } else {
                0
            };
            let ids = TraceIds {
                trace_id,
                span_id,
                parent_span_id: None,
                flags,
            };
            (ids, other.and_then(Result::err))
        }
    };
    if let Ok(v) = HeaderValue::from_bytes(&ids.traceparent()) {
        headers.insert(TRACEPARENT, v);
    }
    Outcome { ids, rejected }
}

#[cfg(test)]
mod w3c_suite;

#[cfg(test)]
mod tests {
    use super::*;

    const VALID: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const RND: [u8; 24] = [0xAB; 24];

    fn err(v: &str) -> TraceParentError {
        parse_traceparent(v.as_bytes()).unwrap_err()
    }

    #[test]
    fn parses_valid_traceparent() {
        let tp = parse_traceparent(VALID.as_bytes()).unwrap();
        let mut s = String::new();
        push_hex(&mut s, &tp.trace_id);
        assert_eq!(s, "4bf92f3577b34da6a3ce929d0e0e4736");
        s.clear();
        push_hex(&mut s, &tp.parent_id);
        assert_eq!(s, "00f067aa0ba902b7");
        assert_eq!(tp.flags, 1);
        // OWS around the value is not part of it.
        assert!(parse_traceparent(format!(" {VALID}\t").as_bytes()).is_ok());
        // Unknown flag bits are kept.
        let tp = parse_traceparent(
            &VALID.as_bytes()[..53]
                .iter()
                .chain(b"ff")
                .copied()
                .collect::<Vec<_>>(),
        )
        .unwrap();
        assert_eq!(tp.flags, 0xff);
    }

    #[test]
    fn future_versions_are_parsed_leniently() {
        let v = VALID.replacen("00", "cc", 1);
        assert!(parse_traceparent(v.as_bytes()).is_ok());
        assert!(parse_traceparent(format!("{v}-what-the-future-holds").as_bytes()).is_ok());
        assert_eq!(err(&format!("{v}x")), TraceParentError::Separator);
        // Version 00 must be exactly 55 characters.
        assert_eq!(err(&format!("{VALID}-extra")), TraceParentError::Length);
    }

    #[test]
    fn rejects_every_invalid_form() {
        use TraceParentError::*;
        assert_eq!(err(""), Length);
        assert_eq!(err(&VALID[..54]), Length);
        assert_eq!(err(&VALID.replacen("00", "ff", 1)), ForbiddenVersion);
        assert_eq!(err(&VALID.replacen("00", "0g", 1)), Version);
        assert_eq!(err(&VALID.replacen("00", "0A", 1)), Version);
        assert_eq!(err(&VALID.to_uppercase()), TraceId);
        assert_eq!(err(&VALID.replace("4bf92f", "4BF92F")), TraceId);
        assert_eq!(err(&VALID.replace("00f067aa", "00F067AA")), ParentId);
        assert_eq!(
            err(&format!("00-{}-00f067aa0ba902b7-01", "0".repeat(32))),
            ZeroTraceId
        );
        assert_eq!(
            err(&format!(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-{}-01",
                "0".repeat(16)
            )),
            ZeroParentId
        );
        assert_eq!(err(&VALID.replace("-01", "-0x")), Flags);
        assert_eq!(err(&VALID.replace("-01", "-0F")), Flags);
        assert_eq!(err(&VALID.replacen('-', "_", 1)), Separator);
        assert_eq!(err(&VALID.replace("-00f0", "_00f0")), Separator);
        assert_eq!(err(&VALID.replace("b7-01", "b7_01")), Separator);
        assert_eq!(err(&VALID.replace("4736", "473g")), TraceId);
        assert_eq!(err(&VALID.replace("a902b7", "a902bz")), ParentId);
        // Spaces inside, a list of two, or garbage of the right length.
        assert_eq!(err(&VALID.replace("4bf9", "4bf ")), TraceId);
        assert_eq!(err(&format!("{VALID},{VALID}")), Length);
        assert_eq!(err(&"x".repeat(55)), Version);
        assert_eq!(err(&"é".repeat(30)), Version);
    }

    fn headers(pairs: &[(&HeaderName, &[u8])]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append((*n).clone(), HeaderValue::from_bytes(v).unwrap());
        }
        h
    }

    #[test]
    fn continues_a_valid_trace_with_a_new_span() {
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, b"congo=t61rcWkgMzE"),
        ]);
        let out = process(&mut h, &RND, &RatioSampler::default());
        assert_eq!(out.rejected, None);
        let tp = parse_traceparent(VALID.as_bytes()).unwrap();
        assert_eq!(out.ids.trace_id, tp.trace_id);
        assert_eq!(out.ids.parent_span_id, Some(tp.parent_id));
        assert_eq!(out.ids.span_id, [0xAB; 8]);
        assert_eq!(
            h.get(TRACEPARENT).unwrap(),
            "00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01"
        );
        assert_eq!(h.get(TRACESTATE).unwrap(), "congo=t61rcWkgMzE");
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
    }

    #[test]
    fn keeps_tracestate_of_several_lines_untouched() {
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, b"a=1"),
            (&TRACESTATE, b"b=2, c=3"),
        ]);
        process(&mut h, &RND, &RatioSampler::default());
        let v: Vec<_> = h.get_all(TRACESTATE).iter().collect();
        assert_eq!(v, ["a=1", "b=2, c=3"]);
    }

    #[test]
    fn drops_oversized_tracestate() {
        let big = vec![b'a'; 513];
        let mut h = headers(&[(&TRACEPARENT, VALID.as_bytes()), (&TRACESTATE, &big)]);
        process(&mut h, &RND, &RatioSampler::default());
        assert!(h.get(TRACESTATE).is_none());
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, many.as_bytes()),
        ]);
        process(&mut h, &RND, &RatioSampler::default());
        assert!(h.get(TRACESTATE).is_none());
        let ok = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, ok.as_bytes()),
        ]);
        process(&mut h, &RND, &RatioSampler::default());
        assert_eq!(h.get(TRACESTATE).unwrap().as_bytes(), ok.as_bytes());
    }

    #[test]
    fn starts_a_new_trace_when_invalid_or_missing() {
        for tp in [
            None,
            Some(&b"garbage"[..]),
            Some(b"00-00000000000000000000000000000000-00f067aa0ba902b7-01"),
        ] {
            let mut h = match tp {
                Some(v) => headers(&[(&TRACEPARENT, v), (&TRACESTATE, b"congo=x")]),
                None => headers(&[(&TRACESTATE, b"congo=x")]),
            };
            let out = process(&mut h, &RND, &RatioSampler::default());
            assert_eq!(out.ids.parent_span_id, None);
            assert_eq!(out.ids.trace_id, [0xAB; 16]);
            assert_eq!(out.ids.flags, NEW_TRACE_FLAGS);
            assert!(
                h.get(TRACESTATE).is_none(),
                "tracestate without valid traceparent is dropped"
            );
            let fwd = parse_traceparent(h.get(TRACEPARENT).unwrap().as_bytes()).unwrap();
            assert_eq!(fwd.trace_id, [0xAB; 16]);
            assert_eq!(fwd.flags, 1);
            assert_eq!(out.rejected.is_some(), tp.is_some());
        }
    }

    #[test]
    fn multiple_traceparents_start_a_new_trace() {
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACEPARENT, VALID.as_bytes()),
        ]);
        let out = process(&mut h, &RND, &RatioSampler::default());
        assert_eq!(out.rejected, Some(TraceParentError::Multiple));
        assert_eq!(h.get_all(TRACEPARENT).iter().count(), 1);
        assert_ne!(
            out.ids.trace_id,
            parse_traceparent(VALID.as_bytes()).unwrap().trace_id
        );
    }

    #[test]
    fn zero_random_bytes_still_give_valid_ids() {
        let mut h = HeaderMap::new();
        let out = process(&mut h, &[0; 24], &RatioSampler::default());
        assert_ne!(out.ids.trace_id, [0; 16]);
        assert_ne!(out.ids.span_id, [0; 8]);
        assert!(parse_traceparent(h.get(TRACEPARENT).unwrap().as_bytes()).is_ok());
    }

    #[test]
    fn hostile_tracestates_are_dropped_whole() {
        let long_key = format!("{}=1", "a".repeat(300));
        for bad in [
            "foo =1",
            "@foo=1",
            long_key.as_str(),
            "foo=bar=baz",
            "congo=x,foo =1",
            "UPPER=1",
            "foo.bar=1",
            "_foo=1",
            "foo=",
            "=1",
            "foo",
            "foo=café",
        ] {
            let mut h = headers(&[
                (&TRACEPARENT, VALID.as_bytes()),
                (&TRACESTATE, bad.as_bytes()),
            ]);
            process(&mut h, &RND, &RatioSampler::default());
            assert!(h.get(TRACESTATE).is_none(), "{bad:?} was forwarded");
        }
        // A bad member on a second header line drops the first line too.
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, b"congo=t61rcWkgMzE"),
            (&TRACESTATE, b"foo=bar=baz"),
        ]);
        process(&mut h, &RND, &RatioSampler::default());
        assert!(h.get(TRACESTATE).is_none());
    }

    #[test]
    fn grammar_edges_are_accepted() {
        let key256 = format!("{}=1", "k".repeat(256));
        let tenant = format!("{}@{}=1", "1".repeat(241), "s".repeat(14));
        // Past the old tenant (241) and system (14) limits, still within 256 characters.
        let long_tenant = format!("{}@s=1", "1".repeat(242));
        let long_system = format!("t@{}=1", "s".repeat(15));
        let at_last = format!("{}@=1", "k".repeat(255));
        let value256 = format!("k={}", "v".repeat(256));
        for good in [
            "congo=t61rcWkgMzE, rojo=00f067aa0ba902b7",
            "a=1,,b=2",
            "a=1 ,\tb=2",
            "a_-*/9=1",
            "3tenant@sys=x",
            "1foo=1",
            "foo@=1,bar=2",
            "foo@@bar=1",
            "a@b@c=1",
            "k= leading space ok",
            key256.as_str(),
            tenant.as_str(),
            long_tenant.as_str(),
            long_system.as_str(),
            at_last.as_str(),
            value256.as_str(),
        ] {
            assert!(valid_list(good.as_bytes()), "{good:?} should be forwarded");
        }
        for bad in [
            format!("{}=1", "k".repeat(257)),
            format!("{}@s=1", "1".repeat(255)),
            "@foo=1".to_owned(),
            "foo#bar=1".to_owned(),
            format!("k={}", "v".repeat(257)),
            String::new(),
            " , ".to_owned(),
        ] {
            assert!(!valid_list(bad.as_bytes()), "{bad:?} should be dropped");
        }
    }

    fn valid_list(v: &[u8]) -> bool {
        let mut h = HeaderMap::new();
        h.insert(TRACESTATE, HeaderValue::from_bytes(v).unwrap());
        tracestate_forwardable(&h)
    }

    #[test]
    fn new_traces_are_sampled_by_ratio_and_continued_ones_keep_their_flag() {
        let never = RatioSampler::from_ppm(0);
        let half = RatioSampler::from_ppm(500_000);
        let mut h = HeaderMap::new();
        let out = process(&mut h, &RND, &never);
        assert!(!out.ids.sampled());
        assert!(
            h.get(TRACEPARENT)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-00")
        );
        // Ratio 0.5: the decision is the trace id's top bit of the last 8 bytes.
        let mut low = [0u8; 24];
        low[8] = 0x7f;
        assert!(process(&mut HeaderMap::new(), &low, &half).ids.sampled());
        low[8] = 0x80;
        assert!(!process(&mut HeaderMap::new(), &low, &half).ids.sampled());
        // A caller's decision wins, either way.
        let mut h = headers(&[(&TRACEPARENT, VALID.as_bytes())]);
        assert!(process(&mut h, &RND, &never).ids.sampled());
        let unsampled = VALID.replace("-01", "-00");
        let mut h = headers(&[(&TRACEPARENT, unsampled.as_bytes())]);
        let out = process(&mut h, &RND, &RatioSampler::default());
        assert!(!out.ids.sampled());
        assert!(
            h.get(TRACEPARENT)
                .unwrap()
                .to_str()
                .unwrap()
                .ends_with("-00")
        );
    }

    #[test]
    fn sampler_bounds() {
        assert!(RatioSampler::default().samples_all());
        assert!(!RatioSampler::from_ppm(999_999).samples_all());
        let all_ones = [0xff; 16];
        assert!(RatioSampler::default().sampled(&all_ones));
        assert!(!RatioSampler::from_ppm(999_999).sampled(&all_ones));
        assert!(!RatioSampler::from_ppm(0).sampled(&[0; 16]));
        assert!(RatioSampler::from_ppm(1).sampled(&[0; 16]));
    }
}
