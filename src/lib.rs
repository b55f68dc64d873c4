//! Edge observability middleware: request ids, W3C trace context, security headers, JSON access
//! logs and metric events for any WASI 0.3 HTTP app.
//!
//! Everything except the `component` module is plain Rust, compiled and tested natively; the
//! wasm glue in `component` calls the API re-exported here ([`Middleware`], [`Exchange`]).
//! See [`config`] for the environment variables.

pub mod access_log;
pub mod app_metric;
pub mod client_addr;
pub mod config;
pub mod cors;
pub mod exchange;
pub mod header_rules;
pub mod json;
pub mod metrics;
pub mod problem;
pub mod redact;
pub mod request_id;
pub mod route;
pub mod security_headers;
pub mod span;
pub mod timestamp;
pub mod trace_context;

#[cfg(target_family = "wasm")]
mod component;

#[cfg(test)]
mod proptests;

pub use config::{BodySizeMode, Config, ConfigIssue};
pub use exchange::{
    Answer, Completion, ErrorType, Exchange, FailureResponse, Middleware, PreflightResponse,
    RequestHead,
};
