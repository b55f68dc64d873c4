//! A small hand-written JSON writer for log and metric lines.
//!
//! Why not serde: serde_json's serializer and derive code would cost tens of kilobytes in a
//! component that must stay under 300 KB, and we only ever write flat objects of strings and
//! numbers. Every string that may come from a client goes through [`escape_limited`], which
//! escapes it and cuts it to a size budget, so hostile input can neither break a line nor make
//! it unbounded.

/// Appended to a value that was cut short, so a reader knows the value is incomplete.
pub const TRUNCATION_MARKER: &str = "...[truncated]";

/// The replacement for a secret value. Never reveals length or prefix of the secret.
pub const REDACTED: &str = "[REDACTED]";

/// Whether `c` must be written as an escape sequence.
///
/// Besides what JSON requires (`"`, `\`, C0 controls) we also escape DEL, the C1 controls
/// (U+0080..U+009F, which some terminals interpret as escape sequences) and U+2028/U+2029
/// (line separators for JavaScript and some log viewers), so a value can never start a new
/// line or smuggle terminal control sequences into a viewer.
#[inline]
fn needs_escape(c: char) -> bool {
    let u = c as u32;
    u < 0x20 || c == '"' || c == '\\' || (0x7F..=0x9F).contains(&u) || u == 0x2028 || u == 0x2029
}

/// Printable ASCII that needs no escaping: the common case, checked byte-wise so typical
/// values are copied in one go instead of character by character.
#[inline]
fn is_plain(b: u8) -> bool {
    (0x20..0x7F).contains(&b) & (b != b'"') & (b != b'\\')
}

/// Whether every byte is plain; without short-circuiting so the loop can be vectorised.
#[inline]
fn all_plain(bytes: &[u8]) -> bool {
    bytes.iter().fold(true, |ok, &b| ok & is_plain(b))
}

/// Writes the escape sequence for a character for which [`needs_escape`] is true, or the
/// character itself.
#[inline]
fn push_char(out: &mut String, c: char) {
    match c {
        '"' => out.push_str("\\\""),
        '\\' => out.push_str("\\\\"),
        c if needs_escape(c) => {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            let u = c as u32;
            out.push_str("\\u");
            for shift in [12u32, 8, 4, 0] {
                out.push(HEX[((u >> shift) & 0xF) as usize] as char);
            }
        }
        c => out.push(c),
    }
}

/// `s` cut to at most `max` bytes on a character boundary (no marker; the escaping functions
/// below mark what they cut).
pub fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Escapes `s` for use inside a JSON string (without the surrounding quotes), unbounded.
///
/// Used for trusted or already bounded values (configuration, validated ids).
pub fn escape_into(out: &mut String, s: &str) {
    escape_str_limited(out, s, usize::MAX, usize::MAX);
}

/// A source of characters for [`escape_limited`]. A one-method trait object instead of
/// `dyn Iterator`, whose vtables would pull `size_hint`, `nth` and friends of every iterator
/// type into the component.
pub trait CharSource {
    /// The next character, or `None` at the end.
    fn next_char(&mut self) -> Option<char>;
}

impl<I: Iterator<Item = char>> CharSource for I {
    fn next_char(&mut self) -> Option<char> {
        self.next()
    }
}

/// Decodes bytes as UTF-8, yielding U+FFFD for each invalid sequence (like
/// `String::from_utf8_lossy`, but without allocating).
pub fn lossy_chars(bytes: &[u8]) -> impl Iterator<Item = char> + '_ {
    bytes.utf8_chunks().flat_map(|chunk| {
        let bad = (!chunk.invalid().is_empty()).then_some('\u{FFFD}');
        chunk.valid().chars().chain(bad)
    })
}

/// Escapes the characters of `chars` into `out`, keeping at most `max_chars` source characters
/// and at most `max_bytes` output bytes (marker included). When the value is cut,
/// [`TRUNCATION_MARKER`] is appended and `true` returned.
///
/// If `max_bytes` is smaller than the marker itself, a cut value ends up longer than
/// `max_bytes`; callers with such tiny budgets check the result ([`ObjectLine`] drops the field).
pub fn escape_limited(
    out: &mut String,
    chars: &mut dyn CharSource,
    max_chars: usize,
    max_bytes: usize,
) -> bool {
    // Dynamic dispatch keeps one copy of this loop in the component; common values take the
    // fast paths of escape_str_limited/escape_bytes_limited and never get here.
    let start = out.len();
    let soft = max_bytes.saturating_sub(TRUNCATION_MARKER.len());
    // The last output position at which the marker would still fit within `max_bytes`.
    let mut cut = start;
    let mut n = 0;
    while let Some(c) = chars.next_char() {
        if n == max_chars {
            if out.len() - start + TRUNCATION_MARKER.len() > max_bytes {
                out.truncate(cut);
            }
            out.push_str(TRUNCATION_MARKER);
            return true;
        }
        n += 1;
        push_char(out, c);
        let written = out.len() - start;
        if written <= soft {
            cut = out.len();
        }
        if written > max_bytes {
            out.truncate(cut);
            out.push_str(TRUNCATION_MARKER);
            return true;
        }
    }
    false
}

/// [`escape_limited`] for a string, with a fast path for plain ASCII that fits.
pub fn escape_str_limited(out: &mut String, s: &str, max_chars: usize, max_bytes: usize) -> bool {
    if s.len() <= max_chars && s.len() <= max_bytes && all_plain(s.as_bytes()) {
        out.push_str(s);
        return false;
    }
    escape_limited(out, &mut s.chars(), max_chars, max_bytes)
}

/// [`escape_limited`] for raw bytes (invalid UTF-8 becomes U+FFFD), with the same fast path.
pub fn escape_bytes_limited(
    out: &mut String,
    b: &[u8],
    max_chars: usize,
    max_bytes: usize,
) -> bool {
    if b.len() <= max_chars
        && b.len() <= max_bytes
        && all_plain(b)
        && let Ok(s) = std::str::from_utf8(b)
    {
        out.push_str(s);
        return false;
    }
    escape_limited(out, &mut lossy_chars(b), max_chars, max_bytes)
}

/// A short ASCII string on the stack (numbers, hex ids, timestamps): formatting without
/// allocating and without `core::fmt`, which is large in wasm.
#[derive(Clone, Copy)]
pub struct Small {
    buf: [u8; 40],
    len: usize,
}

impl Default for Small {
    fn default() -> Self {
        Small {
            buf: [0; 40],
            len: 0,
        }
    }
}

impl Small {
    /// Appends one ASCII byte (ignored when full; callers stay far below 40 bytes).
    pub fn push(&mut self, b: u8) {
        self.push_bytes(&[b]);
    }

    /// Appends ASCII bytes (cut when full; non-ASCII makes [`Small::as_str`] empty).
    pub fn push_bytes(&mut self, bytes: &[u8]) {
        let n = bytes.len().min(self.buf.len() - self.len);
        self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
        self.len += n;
    }

    /// Appends the decimal form of `n`.
    pub fn push_u64(&mut self, mut n: u64) {
        let mut digits = [0u8; 20];
        let mut i = digits.len();
        loop {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
            if n == 0 {
                break;
            }
        }
        self.push_bytes(&digits[i..]);
    }

    /// Appends `n` zero-padded to `width` digits (at most 20).
    #[inline(never)]
    pub fn push_padded(&mut self, mut n: u64, width: u32) {
        // Division by the constant 10 compiles to a multiplication; a variable power-of-ten
        // divisor would cost a real division per digit.
        let mut digits = [b'0'; 20];
        let mut i = digits.len();
        for _ in 0..width.min(20) {
            i -= 1;
            digits[i] = b'0' + (n % 10) as u8;
            n /= 10;
        }
        self.push_bytes(&digits[i..]);
    }

    /// The bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Only ASCII is ever pushed.
        std::str::from_utf8(&self.buf[..self.len]).unwrap_or("")
    }
}

/// Parses a decimal `u64` (ASCII digits only, no sign, at most 19 digits so it cannot
/// overflow): the inverse of [`small_u64`], without `core`'s generic parser.
pub fn parse_u64(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    Some(s.iter().fold(0, |n, d| n * 10 + u64::from(d - b'0')))
}

/// `n` in decimal.
pub fn small_u64(n: u64) -> Small {
    let mut s = Small::default();
    s.push_u64(n);
    s
}

/// A duration in milliseconds with 3 decimals (microsecond resolution), e.g. `12.345`.
pub fn duration_ms(d: std::time::Duration) -> Small {
    let micros = d.as_micros().min(u128::from(u64::MAX)) as u64;
    let mut s = small_u64(micros / 1000);
    s.push(b'.');
    s.push_padded(micros % 1000, 3);
    s
}

/// A duration in seconds with 6 decimals (microsecond resolution), e.g. `0.001234`.
pub fn duration_s(d: std::time::Duration) -> Small {
    let mut s = small_u64(d.as_secs());
    s.push(b'.');
    s.push_padded(u64::from(d.subsec_micros()), 6);
    s
}

/// Appends the decimal form of `n`.
pub fn push_u64(out: &mut String, n: u64) {
    out.push_str(small_u64(n).as_str());
}

/// Builds one JSON object line inside a shared output buffer, under a byte budget.
///
/// Fields are written in call order; a field that no longer fits is truncated (strings) or
/// left out (everything else), so callers write the important, small fields first. The closing
/// braces and the final `\n` are always reserved, so the line is always complete.
pub struct ObjectLine<'a> {
    out: &'a mut String,
    start: usize,
    limit: usize,
    depth: usize,
    first: bool,
}

impl<'a> ObjectLine<'a> {
    /// Starts a line (`{`) at the end of `out`; the finished line, `\n` included, will be at
    /// most `limit` bytes.
    pub fn begin(out: &'a mut String, limit: usize) -> Self {
        let start = out.len();
        out.push('{');
        ObjectLine {
            out,
            start,
            limit,
            depth: 1,
            first: true,
        }
    }

    /// Bytes still free for fields, after reserving closing braces and newline.
    fn room(&self) -> usize {
        self.limit
            .saturating_sub(self.out.len() - self.start)
            .saturating_sub(self.depth + 1)
    }

    /// Overhead of a field with this key, excluding the value: `,"key":`.
    fn overhead(key: &str) -> usize {
        key.len() + 4
    }

    fn key(&mut self, key: &str) {
        if !self.first {
            self.out.push(',');
        }
        self.first = false;
        self.out.push('"');
        // Keys are our own constants or header names (tokens: no quotes, backslashes or
        // control characters), so they need no escaping; checked in debug builds.
        debug_assert!(key.bytes().all(is_plain));
        self.out.push_str(key);
        self.out.push_str("\":");
    }

    /// Writes a raw (already valid JSON) value if it fits entirely; returns whether written.
    pub fn raw(&mut self, key: &str, raw: &str) -> bool {
        if Self::overhead(key) + raw.len() > self.room() {
            return false;
        }
        self.key(key);
        self.out.push_str(raw);
        true
    }

    /// Writes a string value that needs no escaping (hex ids, timestamps, validated
    /// addresses) if it fits entirely.
    pub fn plain(&mut self, key: &str, value: &str) -> bool {
        debug_assert!(value.bytes().all(is_plain));
        if Self::overhead(key) + value.len() + 2 > self.room() {
            return false;
        }
        self.key(key);
        self.out.push('"');
        self.out.push_str(value);
        self.out.push('"');
        true
    }

    /// Writes a string value, escaped and truncated to `max_chars` characters and to the
    /// remaining budget. Returns whether the field was written at all.
    pub fn str(&mut self, key: &str, value: &str, max_chars: usize) -> bool {
        self.string_with(key, &mut |o, max_bytes| {
            escape_str_limited(o, value, max_chars, max_bytes)
        })
    }

    /// Like [`ObjectLine::str`] for raw header bytes (invalid UTF-8 becomes U+FFFD).
    pub fn bytes(&mut self, key: &str, value: &[u8], max_chars: usize) -> bool {
        self.string_with(key, &mut |o, max_bytes| {
            escape_bytes_limited(o, value, max_chars, max_bytes)
        })
    }

    /// Writes `"key":"..."` where `write` appends the escaped content given a byte budget.
    fn string_with(
        &mut self,
        key: &str,
        write: &mut dyn FnMut(&mut String, usize) -> bool,
    ) -> bool {
        let Some(max_bytes) = self.room().checked_sub(Self::overhead(key) + 2) else {
            return false;
        };
        let (mark, first) = (self.out.len(), self.first);
        self.key(key);
        self.out.push('"');
        write(self.out, max_bytes);
        self.out.push('"');
        // escape_limited only overshoots when even the truncation marker does not fit: then
        // the field is left out entirely.
        if self.out.len() - self.start + self.depth + 1 > self.limit {
            self.out.truncate(mark);
            self.first = first;
            return false;
        }
        true
    }

    /// Writes an unsigned integer value.
    pub fn u64(&mut self, key: &str, value: u64) -> bool {
        self.raw(key, small_u64(value).as_str())
    }

    /// Opens a nested object under `key`. Returns false (nothing written) if there is no room
    /// for even an empty object.
    pub fn begin_object(&mut self, key: &str) -> bool {
        if Self::overhead(key) + 1 > self.room() {
            return false;
        }
        self.key(key);
        self.out.push('{');
        self.depth += 1;
        self.first = true;
        true
    }

    /// Closes the innermost nested object.
    pub fn end_object(&mut self) {
        if self.depth > 1 {
            self.out.push('}');
            self.depth -= 1;
            self.first = false;
        }
    }

    /// Closes all open objects and ends the line with `\n`.
    pub fn finish(self) {
        for _ in 0..self.depth {
            self.out.push('}');
        }
        self.out.push('\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(s: &str) -> String {
        let mut o = String::new();
        escape_into(&mut o, s);
        o
    }

    #[test]
    fn escapes_quotes_backslashes_and_controls() {
        assert_eq!(esc(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(esc("a\nb\r\t\0"), "a\\u000ab\\u000d\\u0009\\u0000");
        assert_eq!(esc("\u{7f}\u{85}\u{9b}"), "\\u007f\\u0085\\u009b");
        assert_eq!(esc("x\u{2028}y\u{2029}"), "x\\u2028y\\u2029");
        assert_eq!(esc("héllo ✓ 🎉"), "héllo ✓ 🎉");
        assert_eq!(esc(""), "");
    }

    #[test]
    fn escaped_output_parses_back_to_the_input() {
        let input = "\"}\n{\"forged\":1,\u{1b}[31m\\ é\u{0}";
        let line = format!("{{\"v\":\"{}\"}}", esc(input));
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["v"], input);
        assert!(!line.contains('\n'));
    }

    #[test]
    fn lossy_chars_replace_invalid_utf8() {
        let s: String = lossy_chars(b"ok\xff\xfeend\xc3").collect();
        assert_eq!(s, "ok\u{FFFD}\u{FFFD}end\u{FFFD}");
        let s: String = lossy_chars("é".as_bytes()).collect();
        assert_eq!(s, "é");
    }

    #[test]
    fn limited_escape_respects_char_limit() {
        let mut o = String::new();
        assert!(!escape_limited(&mut o, &mut "abc".chars(), 3, 100));
        assert_eq!(o, "abc");
        o.clear();
        assert!(escape_limited(&mut o, &mut "abcd".chars(), 3, 100));
        assert_eq!(o, format!("abc{TRUNCATION_MARKER}"));
    }

    #[test]
    fn limited_escape_respects_byte_limit_even_with_escapes() {
        let input = "\n".repeat(1000);
        let mut o = String::new();
        assert!(escape_limited(&mut o, &mut input.chars(), 1000, 100));
        assert!(o.len() <= 100, "{}", o.len());
        assert!(o.ends_with(TRUNCATION_MARKER));
        // Never cuts inside an escape sequence.
        let body = &o[..o.len() - TRUNCATION_MARKER.len()];
        assert_eq!(body.len() % 6, 0);
        // Exactly fitting values are not truncated.
        o.clear();
        assert!(!escape_limited(
            &mut o,
            &mut "x".repeat(100).chars(),
            1000,
            100
        ));
        assert_eq!(o.len(), 100);
    }

    #[test]
    fn limited_escape_never_splits_multibyte_chars() {
        let input = "é".repeat(500);
        for max in TRUNCATION_MARKER.len()..80 {
            let mut o = String::new();
            escape_limited(&mut o, &mut input.chars(), 1000, max);
            assert!(o.len() <= max);
            assert!(o.ends_with(TRUNCATION_MARKER));
        }
    }

    #[test]
    fn numbers() {
        let mut o = String::new();
        push_u64(&mut o, 0);
        o.push(' ');
        push_u64(&mut o, u64::MAX);
        assert_eq!(o, "0 18446744073709551615");
        use std::time::Duration;
        assert_eq!(
            duration_ms(Duration::from_micros(12_345)).as_str(),
            "12.345"
        );
        assert_eq!(duration_ms(Duration::from_nanos(999)).as_str(), "0.000");
        assert_eq!(duration_ms(Duration::MAX).as_str(), "18446744073709551.615");
        assert_eq!(
            duration_s(Duration::from_micros(1_234)).as_str(),
            "0.001234"
        );
        assert_eq!(
            duration_s(Duration::from_millis(61_500)).as_str(),
            "61.500000"
        );
        let mut small = Small::default();
        small.push_bytes(&[b'x'; 50]);
        assert_eq!(
            small.as_str().len(),
            40,
            "a full Small ignores further bytes"
        );
        assert_eq!(small.as_str(), "x".repeat(40));
        let mut bad = Small::default();
        bad.push(0xff);
        assert_eq!(bad.as_str(), "", "never invalid UTF-8");
    }

    #[test]
    fn object_line_writes_valid_json_within_budget() {
        let mut out = String::from("prefix");
        let mut line = ObjectLine::begin(&mut out, 200);
        assert!(line.str("a", "x\"y", 100));
        assert!(line.u64("n", 42));
        assert!(line.begin_object("o"));
        assert!(line.bytes("b", b"\xffz", 10));
        line.end_object();
        assert!(line.str("long", &"\u{1}".repeat(500), 500));
        // The long value used the whole budget: nothing else fits any more.
        assert!(!line.u64("late", 1));
        line.finish();
        let line = ObjectLine::begin(&mut out, 200);
        line.finish();
        let text = out.strip_prefix("prefix").unwrap();
        let mut lines = text.lines();
        let first = lines.next().unwrap();
        assert!(first.len() < 200);
        let v: serde_json::Value = serde_json::from_str(first).unwrap();
        assert_eq!(v["a"], "x\"y");
        assert_eq!(v["n"], 42);
        assert_eq!(v["o"]["b"], "\u{FFFD}z");
        assert!(v["long"].as_str().unwrap().ends_with(TRUNCATION_MARKER));
        assert_eq!(lines.next(), Some("{}"));
    }

    #[test]
    fn object_line_leaves_out_fields_without_room() {
        let mut out = String::new();
        let mut line = ObjectLine::begin(&mut out, 30);
        assert!(line.str("k", "0123456789", 100));
        assert!(!line.str("k2", "0123456789", 100));
        assert!(!line.u64("k3", 123_456_789));
        line.finish();
        assert!(out.len() <= 30);
        let v: serde_json::Value = serde_json::from_str(out.trim_end()).unwrap();
        assert_eq!(v.as_object().unwrap().len(), 1);
    }
}
