//! Sends export request bodies to a collector: OTLP/HTTP with protobuf, retried by the core
//! crate's export policy ([`edge_observability::otlp::policy`]), the rules the component's own
//! export follows: 429, 500, 502, 503, 504 and connection failures retried at most twice,
//! `Retry-After` in seconds honoured up to 30 s, else a backoff of 1 s, then 2 s.
//!
//! The HTTP client is `opentelemetry-http`'s hyper client (the one `opentelemetry-otlp` uses):
//! pooled connections, a timeout per request, response bodies bounded. Plain HTTP only, as
//! before; a collector behind TLS is reached through a local collector or sidecar.

use std::time::Duration;

use bytes::Bytes;
use edge_observability::otlp::ExportHeaders;
use edge_observability::otlp::policy::{retry_delay, retryable};
use http::header::{CONTENT_TYPE, RETRY_AFTER};
use opentelemetry_http::HttpClient as _;
use opentelemetry_http::hyper::HyperClient;

/// Where and how one signal's batches are sent.
#[derive(Debug)]
pub struct Sender {
    client: HyperClient,
    uri: http::Uri,
    headers: ExportHeaders,
}

impl Sender {
    /// A sender to `url` (an absolute `http://` URL), with `headers` on every request, each
    /// request bounded by `timeout`.
    pub fn new(url: &str, headers: ExportHeaders, timeout: Duration) -> anyhow::Result<Sender> {
        let uri: http::Uri = url
            .parse()
            .map_err(|e| anyhow::anyhow!("OTLP endpoint {url:?} is not a valid URL: {e}"))?;
        match uri.scheme_str() {
            Some("http") if uri.authority().is_some() => {}
            Some("https") => anyhow::bail!(
                "OTLP endpoint {url:?}: runtime-host exports over plain HTTP only; \
                 send to a local collector that forwards over TLS"
            ),
            _ => anyhow::bail!("OTLP endpoint {url:?} is not an absolute http:// URL"),
        }
        Ok(Sender {
            client: HyperClient::with_default_connector(timeout, None),
            uri,
            headers,
        })
    }

    /// Sends one body, retrying as the policy says; the last failure when it did not go
    /// through. The text names the status or the connection problem, never header values.
    pub async fn send(&self, body: Vec<u8>) -> Result<(), String> {
        let body = Bytes::from(body);
        let mut attempt = 1;
        loop {
            let (failure, retry_after) = match self.once(body.clone()).await {
                Ok(()) => return Ok(()),
                Err(Failed::Final(failure)) => return Err(failure),
                Err(Failed::Retryable(failure, retry_after)) => (failure, retry_after),
            };
            match retry_delay(attempt, retry_after.as_deref()) {
                Some(wait) => tokio::time::sleep(wait).await,
                None => return Err(failure),
            }
            attempt += 1;
        }
    }

    /// One request.
    async fn once(&self, body: Bytes) -> Result<(), Failed> {
        let mut request = http::Request::post(self.uri.clone())
            .header(CONTENT_TYPE, "application/x-protobuf")
            .body(body)
            .map_err(|e| Failed::Final(e.to_string()))?;
        for (name, value) in &self.headers.0 {
            request.headers_mut().insert(name.clone(), value.clone());
        }
        match self.client.send_bytes(request).await {
            Ok(response) if response.status().is_success() => Ok(()),
            Ok(response) => {
                let status = response.status().as_u16();
                let failure = format!("status {status}");
                if !retryable(status) {
                    return Err(Failed::Final(failure));
                }
                let retry_after = response
                    .headers()
                    .get(RETRY_AFTER)
                    .map(|v| v.as_bytes().to_vec());
                Err(Failed::Retryable(failure, retry_after))
            }
            // Connection problems and timeouts are transient: retried with the backoff.
            Err(error) => Err(Failed::Retryable(
                crate::error_text::chain(error.as_ref()),
                None,
            )),
        }
    }
}

/// Why one request failed.
enum Failed {
    /// Not worth another try (a status the collector will answer again).
    Final(String),
    /// Worth another try, with the collector's `Retry-After` when it sent one.
    Retryable(String, Option<Vec<u8>>),
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A collector on loopback answering each request with the next of `answers` (the last
    /// one repeated); counts the requests and keeps the last one's head.
    async fn collector(
        answers: Vec<&'static str>,
    ) -> (String, Arc<AtomicUsize>, Arc<std::sync::Mutex<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/v1/traces", listener.local_addr().unwrap());
        let count = Arc::new(AtomicUsize::new(0));
        let head = Arc::new(std::sync::Mutex::new(String::new()));
        let (c, h) = (count.clone(), head.clone());
        tokio::spawn(async move {
            loop {
                let (mut s, _) = listener.accept().await.unwrap();
                let mut buf = vec![0; 65536];
                let n = s.read(&mut buf).await.unwrap();
                *h.lock().unwrap() = String::from_utf8_lossy(&buf[..n]).into_owned();
                let i = c.fetch_add(1, Ordering::SeqCst);
                let answer = answers[i.min(answers.len() - 1)];
                s.write_all(answer.as_bytes()).await.unwrap();
                s.shutdown().await.ok();
            }
        });
        (url, count, head)
    }

    const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const BUSY: &str =
        "HTTP/1.1 503 Busy\r\nretry-after: 0\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";
    const BAD: &str = "HTTP/1.1 400 Bad\r\ncontent-length: 0\r\nconnection: close\r\n\r\n";

    fn headers() -> ExportHeaders {
        ExportHeaders(vec![(
            http::HeaderName::from_static("x-api-key"),
            http::HeaderValue::from_static("k1"),
        )])
    }

    #[tokio::test]
    async fn a_busy_collector_is_retried_as_it_asks_and_a_bad_request_is_not() {
        let (url, count, head) = collector(vec![BUSY, OK]).await;
        let sender = Sender::new(&url, headers(), Duration::from_secs(5)).unwrap();
        sender.send(b"body".to_vec()).await.unwrap();
        assert_eq!(count.load(Ordering::SeqCst), 2);
        let head = head.lock().unwrap().to_ascii_lowercase();
        assert!(head.starts_with("post /v1/traces "), "{head}");
        assert!(
            head.contains("content-type: application/x-protobuf"),
            "{head}"
        );
        assert!(head.contains("x-api-key: k1"), "{head}");

        let (url, count, _) = collector(vec![BUSY]).await;
        let sender = Sender::new(&url, headers(), Duration::from_secs(5)).unwrap();
        assert_eq!(sender.send(vec![1]).await.unwrap_err(), "status 503");
        assert_eq!(
            count.load(Ordering::SeqCst),
            3,
            "the first try and two retries"
        );

        let (url, count, _) = collector(vec![BAD]).await;
        let sender = Sender::new(&url, headers(), Duration::from_secs(5)).unwrap();
        assert_eq!(sender.send(vec![1]).await.unwrap_err(), "status 400");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn only_absolute_http_urls() {
        for bad in [
            "https://c:4318/v1/traces",
            "c:4318",
            "/v1/traces",
            "http://",
        ] {
            assert!(
                Sender::new(bad, ExportHeaders::default(), Duration::from_secs(1)).is_err(),
                "{bad}"
            );
        }
    }
}
