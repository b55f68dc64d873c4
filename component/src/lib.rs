//! The edge observability middleware as a WebAssembly component (world
//! `wasi:http/middleware@0.3.0`): it exports `wasi:http/handler@0.3.0` and calls the imported
//! one. Built for `wasm32-wasip2` this package's cdylib is `edge_observability.wasm`.
//!
//! The WASI glue lives here: the handler (`handler`), the OTLP export over
//! `wasi:http/client@0.3.0` (`otlp_glue`) and the component's allocator (`small_alloc`). What
//! the middleware decides is the core crate's (`edge-observability-core`, the repository's
//! root), which is a library only. Keeping the export in a package no other package depends
//! on is what makes the file of that name the middleware whatever is built, in whatever
//! order: an app that links the core (library mode) builds no cdylib of it and gets neither
//! the export nor the allocator, also when a `--workspace` build turns on every feature of
//! the core at once.

#[cfg(target_family = "wasm")]
mod handler;
#[cfg(target_family = "wasm")]
mod otlp_glue;
#[cfg(any(test, target_family = "wasm"))]
mod small_alloc;

/// The component's allocator: small blocks recycled per size class in front of wasi-libc's
/// (see `small_alloc`). Only in the component: an app that links the core in library mode
/// keeps its own allocator.
#[cfg(all(target_family = "wasm", not(target_feature = "atomics")))]
#[global_allocator]
static ALLOCATOR: small_alloc::SmallFront<std::alloc::System> =
    small_alloc::SmallFront::new(std::alloc::System);
