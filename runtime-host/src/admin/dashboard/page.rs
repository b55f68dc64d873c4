//! The admin page: one HTML document with its style sheet and script inlined, all embedded in
//! the binary, so it needs no network and no other request. Its Content-Security-Policy allows
//! exactly the inlined script and style (by SHA-256 hash) and requests to the admin address.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use bytes::Bytes;
use sha2::{Digest, Sha256};

const HTML: &str = include_str!("../../../assets/dashboard.html");
const CSS: &str = include_str!("../../../assets/dashboard.css");
const JS: &str = include_str!("../../../assets/dashboard.js");

/// Placeholders in `dashboard.html`, replaced once at start-up.
const STYLE_SLOT: &str = "<style></style>";
const SCRIPT_SLOT: &str = "<script></script>";

/// The assembled page and the policy it is served with.
#[derive(Debug, Clone)]
pub struct Page {
    /// The HTML document.
    pub html: Bytes,
    /// The `Content-Security-Policy` header value.
    pub csp: String,
}

impl Page {
    /// Assembles the page.
    pub fn new() -> Page {
        debug_assert!(HTML.contains(STYLE_SLOT) && HTML.contains(SCRIPT_SLOT));
        let html = HTML
            .replacen(STYLE_SLOT, &format!("<style>{CSS}</style>"), 1)
            .replacen(SCRIPT_SLOT, &format!("<script>{JS}</script>"), 1);
        let csp = format!(
            "default-src 'none'; script-src '{}'; style-src '{}'; connect-src 'self'; \
             img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            hash(JS),
            hash(CSS)
        );
        Page {
            html: Bytes::from(html),
            csp,
        }
    }
}

impl Default for Page {
    fn default() -> Self {
        Page::new()
    }
}

/// A CSP source expression for an inline element's content.
fn hash(content: &str) -> String {
    format!(
        "sha256-{}",
        STANDARD.encode(Sha256::digest(content.as_bytes()))
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_is_self_contained() {
        let page = Page::new();
        let html = std::str::from_utf8(&page.html).unwrap();
        assert!(html.contains(CSS) && html.contains(JS));
        // Nothing is loaded from elsewhere.
        // (The script names the SVG namespace URI, which is an identifier, not a request.)
        for needle in ["src=", "href=\"http", "@import", "<link rel=\"stylesheet\""] {
            assert!(!html.contains(needle), "the page references {needle}");
        }
        // `url(#id)` names an SVG pattern in the page itself; any other `url(` would load.
        assert_eq!(html.matches("url(").count(), html.matches("url(#").count());
        assert!(page.csp.contains("script-src 'sha256-"));
        assert!(page.csp.contains("default-src 'none'"));
    }
}
