//! Serving: load, compose and link the components, pre-instantiate them, and serve each
//! request through the instance pool, answering what the host answers itself. Feeds the
//! telemetry pipeline with every line the guests print; never reads the admin server.

pub mod answers;
pub mod app_output;
pub mod chain;
pub mod components;
pub mod engine;
pub mod guest_output;
pub mod outbound;
pub mod pool;
pub mod rate_limit;
pub mod request;
pub mod stdio;
pub mod store;
pub mod upstream;
