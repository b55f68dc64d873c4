//! A whole exchange through the public API the component glue uses: configuration from
//! arbitrary `EDGE_OBS_*` values, `Middleware::start` with an arbitrary request, the response
//! or a failure, then `Exchange::finish`. Every output line is one line without raw control
//! characters, under 4000 bytes, JSON (unless the pretty format is configured), and the
//! `Authorization` secret never appears; forwarded and returned headers stay valid.
#![no_main]

use edge_observability::access_log::LogFormat;
use edge_observability::config::KNOWN_VARIABLES;
use edge_observability::{Completion, ErrorType, Middleware, RequestHead};
use http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode};
use libfuzzer_sys::arbitrary::{self, Arbitrary};
use libfuzzer_sys::fuzz_target;
use std::time::Duration;

const SECRET: &str = "Zq7SecretTokenValue";

#[derive(Arbitrary, Debug)]
struct Input {
    settings: Vec<(u8, String)>,
    method: String,
    scheme: Option<String>,
    authority: Option<String>,
    target: String,
    request_headers: Vec<(String, Vec<u8>)>,
    status: u16,
    failure: Option<u8>,
    response_headers: Vec<(String, Vec<u8>)>,
    body_error: bool,
    app_ms: u16,
}

fn header_map(pairs: &[(String, Vec<u8>)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (name, value) in pairs {
        if let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name.as_bytes()),
            HeaderValue::from_bytes(value),
        ) {
            map.append(name, value);
        }
    }
    map
}

fn assert_valid(headers: &HeaderMap) {
    for (name, value) in headers {
        assert!(HeaderValue::from_bytes(value.as_bytes()).is_ok(), "{name}");
    }
}

fn check_lines(out: &str, format: LogFormat, secret_allowed: bool) {
    assert!(out.is_empty() || out.ends_with('\n'));
    if !secret_allowed {
        assert!(!out.contains(SECRET), "secret leaked: {out}");
    }
    for line in out.lines() {
        assert!(line.len() < 4000, "line of {} bytes", line.len());
        assert!(
            !line.bytes().any(|b| b < 0x20 || b == 0x7f),
            "raw control byte: {line:?}"
        );
        if line.starts_with('{') || format == LogFormat::Json {
            let value: serde_json::Value =
                serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"));
            assert!(value.is_object());
        }
    }
}

fuzz_target!(|input: Input| {
    let settings = input.settings.iter().take(8).map(|(i, v)| {
        let name = KNOWN_VARIABLES[usize::from(*i) % KNOWN_VARIABLES.len()];
        (name.to_owned(), v.clone())
    });
    let (middleware, issues) = Middleware::from_env(settings);
    let format = middleware.config().log.format;
    check_lines(
        &middleware.config_issue_lines(&issues),
        LogFormat::Json,
        true,
    );

    // The secret may only show up where the fuzzer put it itself.
    let secret_elsewhere = format!("{input:?}").contains(SECRET);
    let method = Method::from_bytes(input.method.as_bytes()).unwrap_or(Method::GET);
    let head = RequestHead {
        method: &method,
        scheme: input.scheme.as_deref(),
        authority: input.authority.as_deref(),
        path_with_query: &input.target,
    };
    let mut request = header_map(&input.request_headers);
    request.insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {SECRET}")).unwrap(),
    );
    let mut exchange = middleware.start(&head, &mut request);
    assert_valid(&request);
    if let Some(line) = exchange.start_line() {
        check_lines(&line, format, secret_elsewhere);
    }

    let errors = ErrorType::ALL;
    let completion = match input.failure {
        Some(i) => {
            let failure = exchange.on_failure(errors[usize::from(i) % errors.len()]);
            assert_valid(&failure.headers);
            let body: serde_json::Value = serde_json::from_slice(&failure.body).unwrap();
            assert_eq!(body["request_id"], exchange.request_id());
            Completion::default()
        }
        None => {
            let status =
                StatusCode::from_u16(input.status.clamp(100, 999)).unwrap_or(StatusCode::OK);
            let mut response = header_map(&input.response_headers);
            exchange.on_response(
                status,
                &mut response,
                Duration::from_millis(input.app_ms.into()),
            );
            assert_valid(&response);
            Completion {
                request_body_bytes: Some(input.app_ms.into()),
                response_body_bytes: None,
                error: input.body_error.then_some(ErrorType::ResponseBodyError),
            }
        }
    };
    check_lines(&exchange.finish(completion), format, secret_elsewhere);
});
