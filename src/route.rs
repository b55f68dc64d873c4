//! Route templates (`EDGE_OBS_ROUTES`) that turn raw paths into low-cardinality `http.route`
//! values, so metrics never carry raw paths (ids in paths would explode label cardinality).
//!
//! Syntax: a template starts with `/`; segments are literals (matched exactly, case-sensitive,
//! against the raw percent-encoded path) or `{name}` (one non-empty segment); a final `/*`
//! matches one or more further segments (`/static/*` matches `/static/` and `/static/a/b`, not
//! `/static`). A trailing `/` in a template must also be present in the path.

/// Longest accepted template, in bytes.
pub const MAX_TEMPLATE_LEN: usize = 256;

/// A validated route template. Only the text is kept: matching walks it segment by segment,
/// which is as fast as a pre-split form for short templates and smaller in code.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteTemplate {
    text: String,
}

/// Why a template was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RouteError {
    /// Does not start with `/`.
    MissingLeadingSlash,
    /// Longer than [`MAX_TEMPLATE_LEN`].
    TooLong,
    /// `//` (an empty segment) inside the template.
    EmptySegment,
    /// A `{...}` parameter with an empty or invalid name, or braces mixed with other text.
    InvalidParameter,
    /// The same parameter name twice.
    DuplicateParameter,
    /// `*` anywhere but as the whole last segment.
    MisplacedWildcard,
    /// A character not allowed in a path segment.
    InvalidCharacter,
}

impl RouteError {
    /// Human readable reason for a configuration issue.
    pub fn as_str(self) -> &'static str {
        match self {
            RouteError::MissingLeadingSlash => "a route template must start with '/'",
            RouteError::TooLong => "route template longer than 256 bytes",
            RouteError::EmptySegment => "empty segment ('//') in route template",
            RouteError::InvalidParameter => {
                "a parameter must be a whole segment '{name}' with name of letters, digits, '_'"
            }
            RouteError::DuplicateParameter => "duplicate parameter name in route template",
            RouteError::MisplacedWildcard => "'*' is only allowed as the last segment '/*'",
            RouteError::InvalidCharacter => "character not allowed in a route template",
        }
    }
}

/// Characters allowed in literal segments: RFC 3986 `pchar` minus `*` (our wildcard) and
/// `,` (the list separator of `EDGE_OBS_ROUTES`).
fn is_literal_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'+'
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}

impl RouteTemplate {
    /// Parses and validates a template.
    pub fn parse(text: &str) -> Result<RouteTemplate, RouteError> {
        let text = crate::header_rules::trim(text);
        if text.len() > MAX_TEMPLATE_LEN {
            return Err(RouteError::TooLong);
        }
        let Some(rest) = text.strip_prefix('/') else {
            return Err(RouteError::MissingLeadingSlash);
        };
        let mut params: Vec<&str> = Vec::new();
        let mut segments = rest.split('/').peekable();
        while let Some(seg) = segments.next() {
            let last = segments.peek().is_none();
            if seg == "*" && last {
                continue;
            }
            if seg.contains('*') {
                return Err(RouteError::MisplacedWildcard);
            }
            if seg.contains(['{', '}']) {
                let name = seg
                    .strip_prefix('{')
                    .and_then(|s| s.strip_suffix('}'))
                    .filter(|n| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
                    })
                    .ok_or(RouteError::InvalidParameter)?;
                if params.contains(&name) {
                    return Err(RouteError::DuplicateParameter);
                }
                params.push(name);
            } else if seg.is_empty() && !last {
                return Err(RouteError::EmptySegment);
            } else if !seg.bytes().all(is_literal_byte) {
                return Err(RouteError::InvalidCharacter);
            }
        }
        Ok(RouteTemplate {
            text: text.to_owned(),
        })
    }

    /// The template text, as reported in `http.route`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `path` (without query) matches this template.
    pub fn matches(&self, path: &str) -> bool {
        let Some(rest) = path.strip_prefix('/') else {
            return false;
        };
        let mut parts = rest.split('/');
        for seg in self.text[1..].split('/') {
            // A final `*` needs at least one more (possibly empty) segment.
            if seg == "*" {
                return parts.next().is_some();
            }
            let Some(part) = parts.next() else {
                return false;
            };
            let ok = if seg.starts_with('{') {
                !part.is_empty()
            } else {
                part == seg
            };
            if !ok {
                return false;
            }
        }
        parts.next().is_none()
    }
}

/// Index of the first template (in list order) matching `path`.
pub fn find(routes: &[RouteTemplate], path: &str) -> Option<usize> {
    routes.iter().position(|r| r.matches(path))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> RouteTemplate {
        RouteTemplate::parse(s).unwrap()
    }

    #[test]
    fn params_match_one_non_empty_segment() {
        let r = t("/users/{id}");
        assert!(r.matches("/users/42"));
        assert!(r.matches("/users/a%20b"));
        assert!(!r.matches("/users/"));
        assert!(!r.matches("/users"));
        assert!(!r.matches("/users/42/"));
        assert!(!r.matches("/users/42/x"));
        assert!(!r.matches("/Users/42"));
        assert!(!r.matches("users/42"));
        assert_eq!(r.as_str(), "/users/{id}");
        let r = t("/orders/{id}/items/{item}");
        assert!(r.matches("/orders/1/items/2"));
        assert!(!r.matches("/orders/1/items"));
        assert!(!r.matches("/orders/1/things/2"));
    }

    #[test]
    fn wildcard_matches_any_rest() {
        let r = t("/static/*");
        assert!(r.matches("/static/"));
        assert!(r.matches("/static/app.js"));
        assert!(r.matches("/static/a/b/c"));
        assert!(!r.matches("/static"));
        assert!(!r.matches("/staticx/a"));
        let all = t("/*");
        assert!(all.matches("/"));
        assert!(all.matches("/anything/at/all"));
        assert!(!all.matches(""));
    }

    #[test]
    fn root_and_trailing_slash() {
        let root = t("/");
        assert!(root.matches("/"));
        assert!(!root.matches("/a"));
        let r = t("/api/");
        assert!(r.matches("/api/"));
        assert!(!r.matches("/api"));
        let r = t("/api");
        assert!(r.matches("/api"));
        assert!(!r.matches("/api/"));
    }

    #[test]
    fn first_match_in_list_order_wins() {
        let routes = [t("/users/me"), t("/users/{id}"), t("/*")];
        assert_eq!(find(&routes, "/users/me"), Some(0));
        assert_eq!(find(&routes, "/users/7"), Some(1));
        assert_eq!(find(&routes, "/x"), Some(2));
        assert_eq!(find(&routes[..2], "/x"), None);
    }

    #[test]
    fn rejects_invalid_templates() {
        use RouteError::*;
        let cases = [
            ("users", MissingLeadingSlash),
            ("", MissingLeadingSlash),
            ("/a//b", EmptySegment),
            ("/users/{}", InvalidParameter),
            ("/users/{id", InvalidParameter),
            ("/users/id}", InvalidParameter),
            ("/files/{name}.txt", InvalidParameter),
            ("/users/{i-d}", InvalidParameter),
            ("/a/{id}/b/{id}", DuplicateParameter),
            ("/static/*/x", MisplacedWildcard),
            ("/static*", MisplacedWildcard),
            ("/a b", InvalidCharacter),
            ("/a\"b", InvalidCharacter),
            ("/a\nb", InvalidCharacter),
            ("/é", InvalidCharacter),
            ("/a?b=1", InvalidCharacter),
        ];
        for (s, e) in cases {
            assert_eq!(RouteTemplate::parse(s), Err(e), "{s:?}");
        }
        let long = format!("/{}", "a".repeat(256));
        assert_eq!(RouteTemplate::parse(&long), Err(TooLong));
    }
}
