//! Errors as one line of text for the log.

/// `error` with its causes, `outer: inner: ...`: hyper's and the HTTP clients' own messages
/// alone say little ("client error (Connect)"); the cause says what happened.
pub fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        out.push_str(": ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn causes_follow_the_message() {
        assert_eq!(super::chain(&std::io::Error::other("refused")), "refused");
        #[derive(Debug)]
        struct Outer(std::io::Error);
        impl std::fmt::Display for Outer {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("client error (Connect)")
            }
        }
        impl std::error::Error for Outer {
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                Some(&self.0)
            }
        }
        let e = Outer(std::io::Error::other("refused"));
        assert_eq!(super::chain(&e), "client error (Connect): refused");
    }
}
