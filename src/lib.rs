//! Edge observability middleware: request ids, W3C trace context, security headers, JSON access
//! logs and metric events for any WASI 0.3 HTTP app.
//!
//! Everything except the `wasi_glue` and `library` modules is plain Rust, compiled and tested
//! natively; the wasm glue calls the API re-exported here ([`Middleware`], [`Exchange`]):
//! library mode inside a Rust app (`library`, feature `library`) and the middleware component,
//! which is its own package (`edge-observability`, in `component/`), so that this crate is a
//! library only and never produces a file named like the component. Both use the WASI pieces
//! in `wasi_glue` (feature `wasi`).
//! See [`config`] for the environment variables.

pub mod access_log;
pub mod app_metric;
pub mod client_addr;
pub mod config;
pub mod cors;
pub mod exchange;
pub mod header_rules;
pub mod json;
pub mod lines;
pub mod metrics;
pub mod otlp;
pub mod problem;
pub mod redact;
pub mod request_id;
pub mod route;
pub mod security_headers;
pub mod span;
pub mod timestamp;
pub mod trace_context;

#[cfg(all(target_family = "wasm", feature = "library"))]
pub mod library;
#[cfg(all(target_family = "wasm", feature = "wasi"))]
pub mod wasi_glue;

#[cfg(test)]
mod proptests;

pub use config::{BodySizeMode, Config, ConfigIssue};
pub use exchange::{
    Answer, Completion, ErrorType, Exchange, FailureResponse, Middleware, PreflightResponse,
    RequestHead, Stopwatch,
};
