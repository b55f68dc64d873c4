//! runtime-host: a native wasmtime host that serves WASI 0.3 HTTP components the way Spin 4.1
//! chains middleware, or puts a middleware chain in front of an upstream origin, with probe
//! endpoints and Prometheus metrics.
//!
//! The binary (`src/main.rs`) is a thin wrapper around [`server::Server`]; tests use the same
//! library.

pub mod admin;
pub mod answers;
pub mod app_metrics;
pub mod app_output;
pub mod chain;
pub mod cli;
pub mod collect;
pub mod components;
pub mod dashboard;
pub mod engine;
pub mod guest_output;
pub mod health;
pub mod metric_event;
pub mod metrics;
pub mod otlp;
pub mod pool;
pub mod rate_limit;
pub mod request;
pub mod server;
pub mod slo;
pub mod store;
pub mod subcommands;
pub mod upstream;
