//! The floor: the least that any WASI 0.3 middleware that edits headers has to do.
//!
//! On the request it clones the received fields, sets one header, rebuilds the request around
//! the same body (`consume-body`, `request.new`, the four setters) and calls the next handler.
//! On the response it clones the fields again, sets one header and rebuilds the response around
//! the same body. Nothing else: no `http::HeaderMap`, no logging, no `spin_sdk::http`
//! conversions. The benchmarks (`bench/run.sh`, `bench/instructions.sh`) state the product's
//! added cost as a multiple of this one's.
//!
//! With `FLOOR_OUTPUT=product` in its environment it is the "same output" floor: it sets the
//! headers the product sets by default instead of one (two on the request, eleven on the
//! response) and writes the product's three lines in one stdout write, all constants
//! (`product_output`). What the product costs beyond that is its own code.

#[cfg(target_family = "wasm")]
mod product_output;

#[cfg(target_family = "wasm")]
mod component {
    use super::product_output::{LINES, REQUEST_HEADERS, RESPONSE_HEADERS};
    use spin_sdk::wasip3::http::types::{ErrorCode, Fields, Request, Response};
    use spin_sdk::wasip3::wit_future;
    use std::io::Write;
    use std::sync::OnceLock;

    /// Whether this instance sends the product's output (read once per instance).
    fn same_output() -> bool {
        static SAME: OnceLock<bool> = OnceLock::new();
        *SAME.get_or_init(|| std::env::var("FLOOR_OUTPUT").is_ok_and(|v| v == "product"))
    }

    /// The received fields with one header set, or (same output) with the product's headers
    /// appended: a clone and a call per field measured cheaper than `copy-all` and one
    /// `from-list` with every field (341,995 against 345,408 instructions per request).
    fn edit(received: &Fields, added: &[(&str, &str)]) -> Fields {
        if !same_output() {
            let fields = received.clone();
            let _ = fields.set("x-floor", &[b"1".to_vec()]);
            return fields;
        }
        let fields = received.clone();
        for (name, value) in added {
            let _ = fields.append(name, value.as_bytes());
        }
        fields
    }

    struct Floor;

    spin_sdk::wasip3::http::service::export!(Floor);

    /// The imported `wasi:http/handler@0.3.0`: the next middleware or the app.
    mod next {
        spin_sdk::wit_bindgen::generate!({
            runtime_path: "spin_sdk::wit_bindgen::rt",
            // The WASI 0.3.0 definitions the middleware itself is built against.
            path: "../../wit",
            inline: "package floor:next; world next { import wasi:http/handler@0.3.0; }",
            with: { "wasi:http/types@0.3.0": spin_sdk::wasip3::http::types },
            generate_all,
        });
        pub(super) use self::wasi::http::handler::handle;
    }

    impl spin_sdk::wasip3::exports::http::handler::Guest for Floor {
        async fn handle(request: Request) -> Result<Response, ErrorCode> {
            let headers = edit(&request.get_headers(), &REQUEST_HEADERS);
            let method = request.get_method();
            let scheme = request.get_scheme();
            let authority = request.get_authority();
            let path_with_query = request.get_path_with_query();
            let options = request.get_options();
            let (body, trailers) = Request::consume_body(request, wit_future::new(|| Ok(())).1);
            let (forwarded, _) = Request::new(headers, Some(body), trailers, options);
            let _ = forwarded.set_method(&method);
            let _ = forwarded.set_scheme(scheme.as_ref());
            let _ = forwarded.set_authority(authority.as_deref());
            let _ = forwarded.set_path_with_query(path_with_query.as_deref());

            let response = next::handle(forwarded).await?;
            let status = response.get_status_code();
            let headers = edit(&response.get_headers(), &RESPONSE_HEADERS);
            let (body, trailers) = Response::consume_body(response, wit_future::new(|| Ok(())).1);
            let (rebuilt, _) = Response::new(headers, Some(body), trailers);
            let _ = rebuilt.set_status_code(status);
            if same_output() {
                // One write per line, as the product writes them (a host that makes one log record
                // per write, as Spin does, then gets one JSON document per record).
                let mut out = std::io::stdout().lock();
                for line in LINES.split_inclusive('\n') {
                    let _ = out.write_all(line.as_bytes());
                }
            }
            Ok(rebuilt)
        }
    }
}
