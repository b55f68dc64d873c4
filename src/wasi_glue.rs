//! WASI glue shared by the middleware component (`component`) and library mode (`library`):
//! the settings of the instance, stdout lines, header fields for the host and the mapping of
//! `wasi:http` error codes. Each exists once so both deliveries behave alike.

use crate::{ErrorType, Middleware};
use http::HeaderMap;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields};
use std::io::Write;
use std::sync::OnceLock;

/// Settings are read once per instance; hosts reuse instances for many requests. Problems
/// with them are reported as `config.invalid` lines when they are first read.
pub(crate) fn middleware() -> &'static Middleware {
    static MIDDLEWARE: OnceLock<Middleware> = OnceLock::new();
    MIDDLEWARE.get_or_init(|| {
        let (middleware, issues) = Middleware::from_env(std::env::vars());
        if !issues.is_empty() {
            write_stdout(&middleware.config_issue_lines(&issues));
        }
        middleware
    })
}

/// Writes whole lines in one call so lines of concurrent requests never interleave.
pub(crate) fn write_stdout(lines: &str) {
    if lines.is_empty() {
        return;
    }
    // Nothing sensible can be done when stdout is gone; the request must not fail for it.
    let _ = std::io::stdout().lock().write_all(lines.as_bytes());
}

/// The headers as `wasi:http` fields, in one host call (one call with every field costs less
/// than a call per field; bench/README.md).
pub(crate) fn to_fields(headers: &HeaderMap) -> Fields {
    let entries: Vec<(String, Vec<u8>)> = headers
        .iter()
        .map(|(name, value)| (name.as_str().to_owned(), value.as_bytes().to_vec()))
        .collect();
    // Fails only for names the host forbids guests to set (e.g. hop-by-hop headers); drop
    // those one by one instead of losing every header.
    Fields::from_list(&entries).unwrap_or_else(|_| {
        let fields = Fields::new();
        for (name, value) in entries {
            let _ = fields.append(&name, &value);
        }
        fields
    })
}

/// Maps an error of the next handler (or, in library mode, of the app) to the middleware's
/// failure kinds: 504 for timeouts, 502 for the rest.
pub(crate) fn error_type(code: &ErrorCode) -> ErrorType {
    match code {
        ErrorCode::DnsTimeout
        | ErrorCode::ConnectionTimeout
        | ErrorCode::ConnectionReadTimeout
        | ErrorCode::ConnectionWriteTimeout
        | ErrorCode::HttpResponseTimeout => ErrorType::Timeout,
        ErrorCode::ConnectionRefused => ErrorType::ConnectionRefused,
        ErrorCode::DnsError(_)
        | ErrorCode::DestinationNotFound
        | ErrorCode::DestinationUnavailable
        | ErrorCode::DestinationIpProhibited
        | ErrorCode::DestinationIpUnroutable
        | ErrorCode::ConnectionTerminated
        | ErrorCode::ConnectionLimitReached => ErrorType::DestinationUnavailable,
        ErrorCode::HttpRequestBodySize(_) => ErrorType::RequestBodyError,
        ErrorCode::InternalError(_) => ErrorType::Internal,
        _ => ErrorType::Other,
    }
}
