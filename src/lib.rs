//! Edge observability middleware: request ids, W3C trace context, security headers, JSON access
//! logs and metric events for any WASI 0.3 HTTP app.
//!
//! Everything except the `component` and `library` modules is plain Rust, compiled and tested
//! natively; the wasm glue in `component` (the middleware component, feature `component`, on by
//! default) and in `library` (library mode inside a Rust app, feature `library`) calls the API
//! re-exported here ([`Middleware`], [`Exchange`]).
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
pub mod otlp;
pub mod problem;
pub mod redact;
pub mod request_id;
pub mod route;
pub mod security_headers;
pub mod span;
pub mod timestamp;
pub mod trace_context;

#[cfg(all(target_family = "wasm", feature = "component"))]
mod component;
#[cfg(all(target_family = "wasm", feature = "library"))]
pub mod library;
#[cfg(all(target_family = "wasm", feature = "component"))]
mod otlp_glue;
#[cfg(all(
    target_family = "wasm",
    any(feature = "component", feature = "library")
))]
mod wasi_glue;

#[cfg(test)]
mod proptests;

#[cfg(any(test, all(target_family = "wasm", feature = "component")))]
mod small_alloc;

/// The component's allocator: small blocks recycled per size class in front of wasi-libc's
/// (see `small_alloc`). Only in the component: an app that links the crate in library mode
/// keeps its own allocator.
#[cfg(all(
    target_family = "wasm",
    feature = "component",
    not(target_feature = "atomics")
))]
#[global_allocator]
static ALLOCATOR: small_alloc::SmallFront<std::alloc::System> =
    small_alloc::SmallFront::new(std::alloc::System);

pub use config::{BodySizeMode, Config, ConfigIssue};
pub use exchange::{
    Answer, Completion, ErrorType, Exchange, FailureResponse, Middleware, PreflightResponse,
    RequestHead,
};
