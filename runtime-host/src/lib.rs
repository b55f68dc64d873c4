//! runtime-host: a native wasmtime host that serves WASI 0.3 HTTP components the way Spin 4.1
//! chains middleware, or puts a middleware chain in front of an upstream origin, with probe
//! endpoints, Prometheus metrics, OTLP export and an admin page.
//!
//! Layers, each using only those below it:
//!
//! 1. [`telemetry`] (its own crate): guest output lines in, numbers out;
//! 2. [`serving`]: engine, components, chain, instance pool, per-request handling, the host's
//!    own answers, rate limiting, upstream mode; it feeds telemetry;
//! 3. [`admin`]: the admin listener (probes, `/metrics`, the page), handed what it shows;
//! 4. [`app`]: the wiring of each mode, top-down by phase, and [`cli`], every clap type: the
//!    only code that sees the command line.
//!
//! [`health`] (readiness state) sits below serving and admin, which both use it. The binary
//! (`src/main.rs`) is a thin wrapper around [`app::run`]; tests use the same library.
// A native program: in a `--workspace` build for wasm32-wasip2 (the components) this crate
// is empty, so that such a build works.
#![cfg(not(target_family = "wasm"))]

pub mod admin;
pub mod app;
pub mod cli;
pub mod health;
pub mod serving;

pub use telemetry;
