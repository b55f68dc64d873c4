//! The host's own answers. A request runtime-host answers itself (a limit, overload,
//! draining, a guest that timed out or trapped) gets what the middleware gives every request:
//! a request id (a valid client id kept), the security baseline, a problem+json body, one
//! access-log line with `error.type`, one metric event and, when its trace is sampled, one
//! span event (exported over OTLP like the middleware's). All of it comes from the core crate
//! with the same `EDGE_OBS_*` settings, so there is one wording and one schema.

use crate::serving::guest_output::OutputSink;
use bytes::Bytes;
use edge_observability::exchange::Forwarded;
use edge_observability::{ErrorType, Middleware, RequestHead};
use http::{HeaderMap, HeaderName, HeaderValue, Method};
use http_body_util::{BodyExt, Full};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// The body type of every response runtime-host sends.
pub type HostBody = http_body_util::combinators::UnsyncBoxBody<Bytes, wasmtime_wasi_http::Error>;

/// The scheme of every request: runtime-host serves plain HTTP (no TLS termination).
pub const SCHEME: &str = "http";

/// The request header in which runtime-host passes the client's TCP peer address to the
/// guests, as Spin does (`ip:port`).
pub const CLIENT_ADDR: HeaderName =
    HeaderName::from_static(edge_observability::client_addr::SPIN_CLIENT_ADDR);

/// Who a host answer was for, for the host's own error lines.
#[derive(Debug)]
pub struct Answered {
    /// The request id the answer carries.
    pub request_id: String,
    /// The trace id, when trace context is on.
    pub trace_id: Option<String>,
}

/// Makes the host's answers and writes their lines.
pub struct HostAnswers {
    middleware: Middleware,
    sink: Arc<OutputSink>,
}

impl HostAnswers {
    /// Answers with `middleware`'s settings; lines go to `sink` (printed and counted there
    /// like a middleware's).
    pub fn new(middleware: Middleware, sink: Arc<OutputSink>) -> Self {
        HostAnswers { middleware, sink }
    }

    /// Answers the request (`method`, `uri`, `headers`, arrived at `started`) for `error`,
    /// and writes its access-log line and metric event.
    pub fn answer(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        error: ErrorType,
        started: Instant,
    ) -> (hyper::Response<HostBody>, Answered) {
        self.answer_after(method, uri, headers, None, error, started)
    }

    /// [`HostAnswers::answer`] for a request the middleware had already sent on
    /// (`forwarded`, see [`Forwarded`]): the answer carries the ids the next hop saw.
    pub fn answer_after(
        &self,
        method: &Method,
        uri: &http::Uri,
        headers: &HeaderMap,
        forwarded: Option<&Forwarded>,
        error: ErrorType,
        started: Instant,
    ) -> (hyper::Response<HostBody>, Answered) {
        let authority = uri
            .authority()
            .map(|a| a.as_str())
            .or_else(|| headers.get(http::header::HOST)?.to_str().ok());
        let path_with_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let head = RequestHead {
            method,
            scheme: Some(SCHEME),
            authority,
            path_with_query,
        };
        self.respond(&head, headers, forwarded, error, started)
    }

    /// A request hyper rejected before it had a head (malformed, or a header section or
    /// target over the limits): logged and counted as far as is known. hyper has already
    /// sent its own answer.
    pub fn rejected_before_head(&self, peer: SocketAddr, error: ErrorType) {
        let mut headers = HeaderMap::new();
        set_client_addr(&mut headers, peer);
        let method = Method::from_bytes(edge_observability::metrics::OTHER.as_bytes())
            .expect("_OTHER is a valid method token");
        let head = RequestHead {
            method: &method,
            scheme: Some(SCHEME),
            authority: None,
            path_with_query: "",
        };
        self.respond(&head, &headers, None, error, Instant::now());
    }

    fn respond(
        &self,
        head: &RequestHead<'_>,
        headers: &HeaderMap,
        forwarded: Option<&Forwarded>,
        error: ErrorType,
        started: Instant,
    ) -> (hyper::Response<HostBody>, Answered) {
        let answer = self
            .middleware
            .answer(head, headers, forwarded, error, started);
        self.sink.host_lines(&answer.lines);
        let failure = answer.response;
        let mut response = hyper::Response::new(
            Full::new(Bytes::from(failure.body))
                .map_err(|never| match never {})
                .boxed_unsync(),
        );
        *response.status_mut() = failure.status;
        *response.headers_mut() = failure.headers;
        (
            response,
            Answered {
                request_id: answer.request_id,
                trace_id: answer.trace_id,
            },
        )
    }
}

/// Sets the client's TCP peer address for the guests, replacing any value a client sent:
/// the header is the host's word, never the client's.
pub fn set_client_addr(headers: &mut HeaderMap, peer: SocketAddr) {
    match HeaderValue::try_from(peer.to_string()) {
        Ok(value) => {
            headers.insert(CLIENT_ADDR, value);
        }
        Err(_) => {
            headers.remove(CLIENT_ADDR);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use telemetry::pipeline::{Pipeline, PipelineSettings};

    fn answers(env: &[(&str, &str)]) -> HostAnswers {
        let (middleware, _) =
            Middleware::from_env(env.iter().map(|(k, v)| (k.to_string(), v.to_string())));
        let pipeline = Pipeline::start(PipelineSettings::default()).unwrap();
        HostAnswers::new(middleware, OutputSink::new(pipeline))
    }

    fn answer(
        answers: &HostAnswers,
        request: http::Request<()>,
        error: ErrorType,
    ) -> (hyper::Response<HostBody>, Answered) {
        let (parts, ()) = request.into_parts();
        answers.answer(
            &parts.method,
            &parts.uri,
            &parts.headers,
            error,
            Instant::now(),
        )
    }

    #[test]
    fn an_answer_keeps_a_valid_client_id_and_carries_the_baseline() {
        let request = http::Request::get("/users/1?token=x")
            .header("x-request-id", "client-id-1")
            .header("host", "example.test")
            .body(())
            .unwrap();
        let (response, answered) = answer(&answers(&[]), request, ErrorType::Overload);
        assert_eq!(response.status(), 503);
        assert_eq!(answered.request_id, "client-id-1");
        let h = response.headers();
        assert_eq!(h["x-request-id"], "client-id-1");
        assert_eq!(h["content-type"], "application/problem+json");
        assert_eq!(h["retry-after"], "1");
        assert_eq!(h["x-content-type-options"], "nosniff");
        assert!(h.contains_key("strict-transport-security"));
        assert!(answered.trace_id.is_some_and(|t| t.len() == 32));
    }

    #[test]
    fn a_hostile_client_id_is_replaced() {
        let request = http::Request::get("/")
            .header("x-request-id", "a\"b")
            .body(())
            .unwrap();
        let (response, answered) = answer(&answers(&[]), request, ErrorType::GuestTrap);
        assert_eq!(response.status(), 500);
        assert_ne!(answered.request_id, "a\"b");
        assert_eq!(
            response.headers()["x-request-id"],
            answered.request_id.as_str()
        );
    }

    #[test]
    fn the_peer_header_is_the_hosts_word() {
        let mut headers = HeaderMap::new();
        headers.append(CLIENT_ADDR, HeaderValue::from_static("6.6.6.6:1"));
        headers.append(CLIENT_ADDR, HeaderValue::from_static("7.7.7.7:1"));
        set_client_addr(&mut headers, "127.0.0.1:4242".parse().unwrap());
        let values: Vec<_> = headers.get_all(CLIENT_ADDR).iter().collect();
        assert_eq!(values, ["127.0.0.1:4242"]);
    }
}
