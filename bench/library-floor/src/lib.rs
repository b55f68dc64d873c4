//! Library mode's same-output floor: what any app that sends the product's output pays,
//! without the product's code.
//!
//! A spin-sdk 7 app that answers `GET /hello` as `examples/library-app` does (`hello\n`,
//! `content-type`, `content-length`, through spin-sdk's own response path), and also adds the
//! two request headers and eleven response headers the product adds by default and writes its
//! three stdout lines in one write, all constants captured from the product
//! (`bench/floor/src/product_output.rs`, shared with the component floor). Library mode's cost
//! beyond this app is the product's own code; below it, no observability library that sends
//! this output can go.

#[cfg(target_family = "wasm")]
#[path = "../../floor/src/product_output.rs"]
mod product_output;

#[cfg(target_family = "wasm")]
mod component {
    use super::product_output::{LINES, REQUEST_HEADERS, RESPONSE_HEADERS};
    use bytes::Bytes;
    use http::{HeaderName, HeaderValue};
    use spin_sdk::http::{FullBody, IntoResponse, Request, box_body};
    use std::io::Write;

    #[spin_sdk::http_service]
    async fn handle(mut request: Request) -> impl IntoResponse {
        // The headers a library would forward to the app's handler (no host call: the
        // request is already the app's).
        for (name, value) in REQUEST_HEADERS {
            request.headers_mut().insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        // The library app's `/hello`, built the same way (its routes return boxed bodies).
        let body = Bytes::from_static(b"hello\n");
        let len = body.len();
        let mut response = http::Response::new(box_body(FullBody::new(body)));
        let headers = response.headers_mut();
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        headers.insert("content-length", HeaderValue::from(len));
        for (name, value) in RESPONSE_HEADERS {
            headers.insert(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        // One write per line, as the product writes them (a host that makes one log record
        // per write, as Spin does, then gets one JSON document per record).
        let mut out = std::io::stdout().lock();
        for line in LINES.split_inclusive('\n') {
            let _ = out.write_all(line.as_bytes());
        }
        response
    }
}
