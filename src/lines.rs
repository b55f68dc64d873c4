//! The lines an exchange writes to stdout, with where each one ends.
//!
//! The glue writes each line in a write of its own: hosts such as Spin turn every write of a
//! component into one log record, so a write holding several lines would glue JSON documents
//! together. The writer of the lines knows where each ends; recording that here spares the
//! glue a search for every `\n` of every line (a scan of about 1.3 KB per request with the
//! default lines, bench/README.md).

use std::ops::Deref;

/// Line ends recorded; an exchange writes at most three lines (access log, span event, metric
/// event). Lines beyond are still written one per write, found by searching.
const MAX_LINES: usize = 4;

/// Whole lines, each ending in `\n`, and the end of each.
///
/// ```
/// use edge_observability_core::lines::Lines;
///
/// let mut lines = Lines::default();
/// lines.text_mut().push_str("{\"a\":1}\n");
/// lines.end_line();
/// lines.text_mut().push_str("{\"b\":2}\n");
/// lines.end_line();
/// assert_eq!(lines.writes().collect::<Vec<_>>(), ["{\"a\":1}\n", "{\"b\":2}\n"]);
/// assert_eq!(&*lines, "{\"a\":1}\n{\"b\":2}\n");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Lines {
    text: String,
    ends: [usize; MAX_LINES],
    count: usize,
}

impl Lines {
    /// The text to append the next line to; [`Lines::end_line`] once it ends in `\n`.
    pub fn text_mut(&mut self) -> &mut String {
        &mut self.text
    }

    /// Marks the end of the text as the end of a line. Nothing written since the last end
    /// records nothing (no empty write follows).
    pub fn end_line(&mut self) {
        let last = self.count.checked_sub(1).map_or(0, |i| self.ends[i]);
        if self.text.len() == last {
            return;
        }
        debug_assert!(self.text.ends_with('\n'), "a line ends in \\n");
        if self.count < MAX_LINES {
            self.ends[self.count] = self.text.len();
            self.count += 1;
        }
    }

    /// The pieces to write, one write each: every piece is one line with its `\n`. Text
    /// after the last recorded end (lines beyond the fourth, or not ended with
    /// [`Lines::end_line`]) is split at each `\n`.
    pub fn writes(&self) -> impl Iterator<Item = &str> {
        let ends = &self.ends[..self.count];
        let recorded_end = ends.last().copied().unwrap_or(0);
        let mut start = 0;
        ends.iter()
            .map(move |&end| {
                let piece = &self.text[start..end];
                start = end;
                piece
            })
            .chain(self.text[recorded_end..].split_inclusive('\n'))
    }

    /// All lines as one string.
    pub fn into_string(self) -> String {
        self.text
    }
}

impl Deref for Lines {
    type Target = str;

    fn deref(&self) -> &str {
        &self.text
    }
}

impl PartialEq<&str> for Lines {
    fn eq(&self, other: &&str) -> bool {
        self.text == *other
    }
}

impl std::fmt::Display for Lines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(parts: &[&str]) -> Lines {
        let mut l = Lines::default();
        for p in parts {
            l.text_mut().push_str(p);
            l.end_line();
        }
        l
    }

    #[test]
    fn each_recorded_line_is_one_write() {
        let l = lines(&["a\n", "bb\n", "ccc\n"]);
        assert_eq!(l.writes().collect::<Vec<_>>(), ["a\n", "bb\n", "ccc\n"]);
        assert_eq!(l.writes().count(), 3);
    }

    #[test]
    fn nothing_gives_no_write() {
        assert_eq!(Lines::default().writes().count(), 0);
        let l = lines(&["", "a\n", ""]);
        assert_eq!(l.writes().collect::<Vec<_>>(), ["a\n"]);
    }

    #[test]
    fn lines_beyond_the_bound_and_unended_text_are_kept() {
        let l = lines(&["1\n", "2\n", "3\n", "4\n", "5\n", "6\n"]);
        let writes: Vec<_> = l.writes().collect();
        assert_eq!(writes, ["1\n", "2\n", "3\n", "4\n", "5\n", "6\n"]);
        assert_eq!(writes.concat(), &*l);

        let mut l = lines(&["a\n"]);
        l.text_mut().push_str("b\nc\n");
        assert_eq!(l.writes().collect::<Vec<_>>(), ["a\n", "b\n", "c\n"]);
    }
}
