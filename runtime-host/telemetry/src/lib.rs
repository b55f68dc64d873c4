//! runtime-host's telemetry: guest output lines in, numbers out.
//!
//! The lowest layer of the host. It depends on the core crate (`edge-observability`, which
//! defines every event schema and limit) and on third-party crates, and knows nothing of
//! wasmtime, the command line, serving or the admin server:
//!
//! - [`lines`]: one rule to split output into lines, one to tell what a line is;
//! - [`metric_event`], [`app_metrics`]: the events, validated and normalised;
//! - [`metrics`]: the Prometheus registry and its encoding;
//! - [`otlp`]: OTLP export of spans, metrics and log records;
//! - [`window`], [`recent`]: the windows, SLO figures and recent requests the admin page shows;
//! - [`slo`]: the Prometheus SLO rules;
//! - [`pipeline`]: the one value serve mode and collect mode start, feed and shut down;
//! - [`text`]: strings read from lines without copying them; [`error_text`]: errors as log text.
// A native program: in a `--workspace` build for wasm32-wasip2 (the components) this crate
// is empty, so that such a build works.
#![cfg(not(target_family = "wasm"))]

pub mod app_metrics;
pub mod error_text;
pub mod lines;
pub mod metric_event;
pub mod metrics;
pub mod otlp;
pub mod pipeline;
pub mod plain_json;
pub mod recent;
pub mod slo;
pub mod text;
pub mod window;

#[cfg(test)]
mod proptests;
