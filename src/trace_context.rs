//! W3C Trace Context (`traceparent` / `tracestate`) for one proxy hop.
//!
//! A valid incoming `traceparent` is continued: same trace id and flags, a new span id for this
//! hop. Anything invalid starts a new trace, because a half-trusted malformed context would
//! corrupt traces downstream. `tracestate` is only meaningful with the `traceparent` it came
//! with, so it is kept untouched with a valid one and dropped otherwise.

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

/// Trace flags we use for traces we start: `01` (sampled), so that a request first seen by
/// this middleware is recorded by downstream tracers that honour the flag.
pub const NEW_TRACE_FLAGS: u8 = 0x01;

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

fn lower_hex_digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// Decodes lowercase hex (uppercase is invalid per spec) into `out`.
fn parse_hex(s: &[u8], out: &mut [u8]) -> bool {
    if s.len() != out.len() * 2 {
        return false;
    }
    for (o, pair) in out.iter_mut().zip(s.chunks_exact(2)) {
        match (lower_hex_digit(pair[0]), lower_hex_digit(pair[1])) {
            (Some(h), Some(l)) => *o = h << 4 | l,
            _ => return false,
        }
    }
    true
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
    if !parse_hex(&v[0..2], &mut version) {
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
    if !parse_hex(&v[3..35], &mut trace_id) {
        return Err(TraceParentError::TraceId);
    }
    if trace_id == [0; 16] {
        return Err(TraceParentError::ZeroTraceId);
    }
    let mut parent_id = [0u8; 8];
    if !parse_hex(&v[36..52], &mut parent_id) {
        return Err(TraceParentError::ParentId);
    }
    if parent_id == [0; 8] {
        return Err(TraceParentError::ZeroParentId);
    }
    let mut flags = [0u8; 1];
    if !parse_hex(&v[53..55], &mut flags) {
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

/// Whether the request's `tracestate` may be forwarded as is: at most
/// [`TRACESTATE_MAX_LEN`] characters in total and [`TRACESTATE_MAX_MEMBERS`] list members.
pub fn tracestate_forwardable(headers: &HeaderMap) -> bool {
    let mut len = 0usize;
    let mut members = 0usize;
    for (i, v) in headers.get_all(TRACESTATE).iter().enumerate() {
        len += v.len() + if i > 0 { 2 } else { 0 };
        members += v
            .as_bytes()
            .split(|&b| b == b',')
            .filter(|m| !m.trim_ascii().is_empty())
            .count();
    }
    len <= TRACESTATE_MAX_LEN && members <= TRACESTATE_MAX_MEMBERS
}

/// Makes sure an id from random bytes is not all zero (which the spec forbids).
fn non_zero<const N: usize>(mut id: [u8; N]) -> [u8; N] {
    if id == [0; N] {
        id[N - 1] = 1;
    }
    id
}

/// Decides the trace ids of this hop from the request headers and `random` (24 random bytes:
/// 16 for a possible new trace id, 8 for the span id), and updates `headers` for forwarding:
/// `traceparent` replaced with ours, `tracestate` kept or removed.
pub fn process(headers: &mut HeaderMap, random: &[u8; 24]) -> Outcome {
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
            let ids = TraceIds {
                trace_id: non_zero(trace_id),
                span_id,
                parent_span_id: None,
                flags: NEW_TRACE_FLAGS,
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
        let out = process(&mut h, &RND);
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
        process(&mut h, &RND);
        let v: Vec<_> = h.get_all(TRACESTATE).iter().collect();
        assert_eq!(v, ["a=1", "b=2, c=3"]);
    }

    #[test]
    fn drops_oversized_tracestate() {
        let big = vec![b'a'; 513];
        let mut h = headers(&[(&TRACEPARENT, VALID.as_bytes()), (&TRACESTATE, &big)]);
        process(&mut h, &RND);
        assert!(h.get(TRACESTATE).is_none());
        let many = (0..33)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, many.as_bytes()),
        ]);
        process(&mut h, &RND);
        assert!(h.get(TRACESTATE).is_none());
        let ok = (0..32)
            .map(|i| format!("k{i}=v"))
            .collect::<Vec<_>>()
            .join(",");
        let mut h = headers(&[
            (&TRACEPARENT, VALID.as_bytes()),
            (&TRACESTATE, ok.as_bytes()),
        ]);
        process(&mut h, &RND);
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
            let out = process(&mut h, &RND);
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
        let out = process(&mut h, &RND);
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
        let out = process(&mut h, &[0; 24]);
        assert_ne!(out.ids.trace_id, [0; 16]);
        assert_ne!(out.ids.span_id, [0; 8]);
        assert!(parse_traceparent(h.get(TRACEPARENT).unwrap().as_bytes()).is_ok());
    }
}
