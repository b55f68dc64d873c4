//! A reader of the plain JSON the middleware writes, for the lines the host reads on every
//! request (metric events, and the span and access lines it exports); anything else is left
//! to serde_json.
//!
//! The middleware writes those lines with no whitespace, no escapes in the common case,
//! non-negative numbers and at most one nested object. Reading the access line of
//! `GET /hello` into what its log record is made of took serde_json 9,400 instructions, most
//! of them its per-token machinery rather than the bytes; this reader, which knows only that
//! subset, takes 5,700 for the same work (bench/README.md; `sonic-rs` and `jiter` were no
//! faster than serde_json here). On the first byte outside the subset it gives up, and the
//! caller reads the line again with serde_json, the reference: a string with an escape or a
//! control character, whitespace, a negative number, an exponent, more digits than both read
//! exactly, an array. What it does accept, it reads to the same values as serde_json
//! (property tests compare the two on hostile lines).

/// A value as read; strings borrow from the line (they have no escapes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Plain<'a> {
    /// A string without escapes.
    Str(&'a str),
    /// A non-negative integer that fits `u64`.
    Uint(u64),
    /// A number with a fraction and at most [`MAX_FLOAT_DIGITS`] digits, which serde_json and
    /// Rust's `f64` parse read exactly alike.
    Float(f64),
    /// `true` or `false`.
    Bool(bool),
    /// `null`.
    Null,
    /// An object starts here: the caller reads it with [`Reader::object`] or gives up.
    Object,
}

/// Most digits of a number with a fraction read here: below 2^53 and with a power of ten
/// of at most 10^15, both readers compute the one correctly rounded `f64`.
pub const MAX_FLOAT_DIGITS: usize = 15;

/// Which readers a line goes through.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readers {
    /// The plain reader, then serde_json for a line outside its subset: what the exporters do.
    PlainFirst,
    /// serde_json alone: the reference, for the tests that compare the two.
    SerdeOnly,
}

/// Why a line is left to serde_json (nothing more is known: it may be valid JSON outside the
/// subset, or not JSON at all).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotPlain;

/// Reads one line, front to back.
pub struct Reader<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Reader<'a> {
    /// A reader of `text`, unless the line has a backslash (an escape to undo) or a control
    /// character (which serde_json rejects in a string, and the middleware never writes).
    /// One look at the whole line is cheaper than one per string.
    pub fn new(text: &'a str) -> Result<Self, NotPlain> {
        // `fold` rather than `any`: no early exit, so the compiler checks many bytes at once.
        let outside = text
            .bytes()
            .fold(false, |found, b| found | (b < 0x20) | (b == b'\\'));
        if outside {
            return Err(NotPlain);
        }
        Ok(Reader { text, at: 0 })
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, byte: u8) -> Result<(), NotPlain> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            Err(NotPlain)
        }
    }

    /// Reads an object at the current position, calling `each` with every member's name; `each`
    /// must read the member's value (with [`Reader::value`]).
    pub fn object<F>(&mut self, mut each: F) -> Result<(), NotPlain>
    where
        F: FnMut(&'a str, &mut Self) -> Result<(), NotPlain>,
    {
        self.eat(b'{')?;
        if self.peek() == Some(b'}') {
            self.at += 1;
            return Ok(());
        }
        loop {
            self.eat(b'"')?;
            let name = self.string()?;
            self.eat(b':')?;
            each(name, self)?;
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {
                    self.at += 1;
                    return Ok(());
                }
                _ => return Err(NotPlain),
            }
        }
    }

    /// Reads the value at the current position ([`Plain::Object`] reads nothing).
    pub fn value(&mut self) -> Result<Plain<'a>, NotPlain> {
        match self.peek().ok_or(NotPlain)? {
            b'"' => {
                self.at += 1;
                self.string().map(Plain::Str)
            }
            b'0'..=b'9' => self.number(),
            b't' => self.word("true", Plain::Bool(true)),
            b'f' => self.word("false", Plain::Bool(false)),
            b'n' => self.word("null", Plain::Null),
            b'{' => Ok(Plain::Object),
            _ => Err(NotPlain),
        }
    }

    /// A string value; anything else is left to serde_json.
    pub fn str(&mut self) -> Result<&'a str, NotPlain> {
        match self.value()? {
            Plain::Str(s) => Ok(s),
            _ => Err(NotPlain),
        }
    }

    /// A string value or `null`.
    pub fn optional_str(&mut self) -> Result<Option<&'a str>, NotPlain> {
        match self.value()? {
            Plain::Str(s) => Ok(Some(s)),
            Plain::Null => Ok(None),
            _ => Err(NotPlain),
        }
    }

    /// A non-negative integer value.
    pub fn uint(&mut self) -> Result<u64, NotPlain> {
        match self.value()? {
            Plain::Uint(n) => Ok(n),
            _ => Err(NotPlain),
        }
    }

    /// A non-negative integer value or `null`.
    pub fn optional_uint(&mut self) -> Result<Option<u64>, NotPlain> {
        match self.value()? {
            Plain::Uint(n) => Ok(Some(n)),
            Plain::Null => Ok(None),
            _ => Err(NotPlain),
        }
    }

    /// An unknown member's value, read and dropped (an object is left to serde_json).
    pub fn skip(&mut self) -> Result<(), NotPlain> {
        match self.value()? {
            Plain::Object => Err(NotPlain),
            _ => Ok(()),
        }
    }

    /// Whether the whole line has been read.
    pub fn finish(&self) -> Result<(), NotPlain> {
        if self.at == self.text.len() {
            Ok(())
        } else {
            Err(NotPlain)
        }
    }

    /// The rest of a string whose opening quote has been read, up to its closing quote
    /// ([`Reader::new`] made sure the line has no escapes).
    fn string(&mut self) -> Result<&'a str, NotPlain> {
        let start = self.at;
        let end = start + memchr::memchr(b'"', &self.text.as_bytes()[start..]).ok_or(NotPlain)?;
        self.at = end + 1;
        // A quote is ASCII, so both ends are on character boundaries.
        Ok(&self.text[start..end])
    }

    fn word(&mut self, word: &str, value: Plain<'a>) -> Result<Plain<'a>, NotPlain> {
        if self.text.as_bytes()[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(NotPlain)
        }
    }

    /// `0`, or digits not starting with 0, then optionally `.` and digits.
    fn number(&mut self) -> Result<Plain<'a>, NotPlain> {
        let bytes = self.text.as_bytes();
        let start = self.at;
        let digits = |from: usize| {
            bytes[from..]
                .iter()
                .position(|b| !b.is_ascii_digit())
                .map_or(bytes.len(), |n| from + n)
        };
        let int_end = digits(start);
        if bytes[start] == b'0' && int_end > start + 1 {
            return Err(NotPlain);
        }
        if bytes.get(int_end) != Some(&b'.') {
            if matches!(bytes.get(int_end), Some(b'e' | b'E')) {
                return Err(NotPlain);
            }
            self.at = int_end;
            let mut n: u64 = 0;
            for &b in &bytes[start..int_end] {
                n = n
                    .checked_mul(10)
                    .and_then(|n| n.checked_add(u64::from(b - b'0')))
                    .ok_or(NotPlain)?;
            }
            return Ok(Plain::Uint(n));
        }
        let end = digits(int_end + 1);
        if end == int_end + 1
            || matches!(bytes.get(end), Some(b'e' | b'E'))
            || end - start - 1 > MAX_FLOAT_DIGITS
        {
            return Err(NotPlain);
        }
        self.at = end;
        self.text[start..end]
            .parse()
            .map(Plain::Float)
            .map_err(|_| NotPlain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn members(line: &str) -> Result<Vec<(&str, Plain<'_>)>, NotPlain> {
        let mut r = Reader::new(line)?;
        let mut out = Vec::new();
        r.object(|name, r| {
            out.push((name, r.value()?));
            Ok(())
        })?;
        r.finish()?;
        Ok(out)
    }

    #[test]
    fn reads_the_subset() {
        assert_eq!(
            members(
                r#"{"a":"x","b":0,"c":18446744073709551615,"d":0.811,"e":true,"f":false,"g":null,"h":""}"#
            ),
            Ok(vec![
                ("a", Plain::Str("x")),
                ("b", Plain::Uint(0)),
                ("c", Plain::Uint(u64::MAX)),
                ("d", Plain::Float(0.811)),
                ("e", Plain::Bool(true)),
                ("f", Plain::Bool(false)),
                ("g", Plain::Null),
                ("h", Plain::Str("")),
            ])
        );
        assert_eq!(members("{}"), Ok(vec![]));
        assert_eq!(members(r#"{"é":"ü"}"#), Ok(vec![("é", Plain::Str("ü"))]));
    }

    #[test]
    fn leaves_everything_else_to_serde_json() {
        for line in [
            r#"{"a":"x\"y"}"#,
            "{\"a\":\"x\ty\"}",
            r#"{"a": 1}"#,
            r#" {"a":1}"#,
            r#"{"a":1} "#,
            r#"{"a":-1}"#,
            r#"{"a":01}"#,
            r#"{"a":1e3}"#,
            r#"{"a":1.5E3}"#,
            r#"{"a":1.}"#,
            r#"{"a":.5}"#,
            r#"{"a":18446744073709551616}"#,
            r#"{"a":1.234567890123456}"#,
            r#"{"a":[1]}"#,
            r#"{"a":tru}"#,
            r#"{"a":1,}"#,
            r#"{"a":1"#,
            r#"{"a""#,
            r#"{"a":"x"}{}"#,
            "",
        ] {
            assert_eq!(members(line), Err(NotPlain), "{line}");
        }
        // A nested object is the caller's to read.
        let mut r = Reader::new(r#"{"o":{"k":1}}"#).unwrap();
        r.object(|name, r| {
            assert_eq!((name, r.value()?), ("o", Plain::Object));
            r.object(|name, r| {
                assert_eq!((name, r.value()?), ("k", Plain::Uint(1)));
                Ok(())
            })
        })
        .unwrap();
        r.finish().unwrap();
    }
}
