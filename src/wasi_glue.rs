//! WASI glue shared by the middleware component (the `edge-observability` package) and
//! library mode (`library`):
//! the settings of the instance, stdout lines, header fields for the host and the mapping of
//! `wasi:http` error codes. Each exists once so both deliveries behave alike.

use crate::lines::Lines;
use crate::{ConfigIssue, ErrorType, Middleware};
use http::HeaderMap;
use spin_sdk::wasip3::http::types::{ErrorCode, Fields};
use std::cell::RefCell;
use std::io::Write;
use std::sync::OnceLock;

/// The component's settings, with its own OTLP export. Settings are read once per instance;
/// hosts reuse instances for many requests. Problems with them are reported as
/// `config.invalid` lines when they are first read.
pub fn middleware() -> &'static Middleware {
    static MIDDLEWARE: OnceLock<Middleware> = OnceLock::new();
    MIDDLEWARE.get_or_init(|| reported(Middleware::from_env(std::env::vars())))
}

/// Writes the `config.invalid` lines of settings just read and returns their middleware.
pub fn reported((middleware, issues): (Middleware, Vec<ConfigIssue>)) -> Middleware {
    if !issues.is_empty() {
        write_stdout(&middleware.config_issue_lines(&issues));
    }
    middleware
}

/// Writes each line in a write of its own: a host that makes one log record per write (Spin)
/// then gets one JSON document per record. A line is never split, so lines of concurrent
/// requests never interleave.
pub fn write_stdout(lines: &str) {
    write_pieces(crate::exchange::stdout_writes(lines));
}

/// [`write_stdout`] for an exchange's lines, which know where each line ends.
pub fn write_lines(lines: &Lines) {
    write_pieces(lines.writes());
}

fn write_pieces<'a>(pieces: impl Iterator<Item = &'a str>) {
    let mut out = std::io::stdout().lock();
    for line in pieces {
        // Nothing sensible can be done when stdout is gone; the request must not fail for it.
        let _ = out.write_all(line.as_bytes());
    }
}

/// Writes one line (ending in `\n`) to stderr in one write.
pub fn write_stderr(line: &str) {
    let _ = std::io::stderr().lock().write_all(line.as_bytes());
}

/// The headers as `wasi:http` fields, in one host call (one call with every field costs less
/// than a call per field; bench/README.md).
///
/// `from-list` only reads the entries, so they are written into buffers this instance keeps
/// from one call to the next: a new `String` and `Vec` per header, twice per request, were a
/// third of the middleware's allocations. The call does not await, so concurrent requests of
/// the instance never share the buffers.
pub fn to_fields(headers: &HeaderMap) -> Fields {
    thread_local! {
        static ENTRIES: RefCell<Vec<(String, Vec<u8>)>> = const { RefCell::new(Vec::new()) };
    }
    ENTRIES
        .try_with(|entries| match entries.try_borrow_mut() {
            Ok(mut entries) => fields_via(&mut entries, headers),
            Err(_) => fields_via(&mut Vec::new(), headers),
        })
        .unwrap_or_else(|_| fields_via(&mut Vec::new(), headers))
}

/// Entries longer than this are not kept for the next call (an odd huge header must not stay
/// in memory for the instance's life).
const KEEP_ENTRY_BYTES: usize = 4096;

fn fields_via(entries: &mut Vec<(String, Vec<u8>)>, headers: &HeaderMap) -> Fields {
    let len = headers.len();
    if entries.len() < len {
        entries.resize_with(len, Default::default);
    }
    for ((name, value), (entry_name, entry_value)) in headers.iter().zip(entries.iter_mut()) {
        entry_name.clear();
        entry_name.push_str(name.as_str());
        entry_value.clear();
        entry_value.extend_from_slice(value.as_bytes());
    }
    let entries_used = &entries[..len];
    // Fails only for names the host forbids guests to set (e.g. hop-by-hop headers); drop
    // those one by one instead of losing every header.
    let fields = Fields::from_list(entries_used).unwrap_or_else(|_| {
        let fields = Fields::new();
        for (name, value) in entries_used {
            let _ = fields.append(name, value);
        }
        fields
    });
    for (name, value) in entries.iter_mut() {
        if name.capacity() > KEEP_ENTRY_BYTES || value.capacity() > KEEP_ENTRY_BYTES {
            *name = String::new();
            *value = Vec::new();
        }
    }
    fields
}

/// Maps an error of the next handler (or, in library mode, of the app) to the middleware's
/// failure kinds: 504 for timeouts, 502 for the rest.
pub fn error_type(code: &ErrorCode) -> ErrorType {
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
