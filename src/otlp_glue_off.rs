//! The component built without the `otlp` feature: no export, and none of its code.

use crate::{Completion, Exchange};

/// Never: export is not built in.
pub(crate) fn enabled() -> bool {
    false
}

/// Nothing to count.
pub(crate) fn started(_method: &http::Method, _scheme: Option<&str>) {}

/// [`Exchange::finish`].
pub(crate) fn finish(exchange: Exchange, end: Completion) -> String {
    exchange.finish(end)
}

/// Nothing to send.
pub(crate) async fn drive() {}
