//! Rate limiting in the host (off by default): a GCRA limit per key with `governor`, checked
//! before a request reaches the components. Over the limit the client gets 429 with
//! `Retry-After` and the IETF `RateLimit` / `RateLimit-Policy` fields
//! (draft-ietf-httpapi-ratelimit-headers: `RateLimit-Policy: "default";q=100;w=1`,
//! `RateLimit: "default";r=0;t=3`).
//!
//! The middleware component cannot do this itself: its instances hold no state shared with
//! each other (an edge platform runs many, anywhere), so any count it kept would be per
//! instance. The host sees every request of the process.
//!
//! Memory for keys is bounded: idle keys are evicted every [`EVICTION_INTERVAL`] (governor's
//! `retain_recent`, then `shrink_to_fit`), and at most `max_keys` are tracked. Once the cap is
//! reached (a flood of distinct keys), requests of keys not yet tracked share one overflow
//! bucket with the same quota until eviction frees room, and
//! `runtime_host_rate_limit_key_overflow_total` counts them: a key flood cannot grow memory,
//! nor escape the limit, nor take the buckets of the keys already tracked.
//!
//! Client addresses are keyed by IPv4 address and IPv6 /64, the block one subscriber or host
//! is given: keying by the whole IPv6 address would give one client 2^64 keys.

use edge_observability::client_addr::{self, ClientAddrConfig};
use governor::Quota;
use governor::clock::{Clock, DefaultClock};
use governor::middleware::NoOpMiddleware;
use governor::nanos::Nanos;
use governor::state::StateStore;
use governor::state::keyed::{DashMapStateStore, ShrinkableKeyedStateStore};
use http::{HeaderMap, HeaderName, HeaderValue};
use std::net::{IpAddr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use telemetry::metrics::HostMetrics;

/// How often idle keys are evicted.
pub const EVICTION_INTERVAL: Duration = Duration::from_secs(10);
/// Default `--rate-limit-max-keys`.
pub const DEFAULT_MAX_KEYS: usize = 100_000;
/// A `header:NAME` key value is cut to this many bytes (a key is not a place for megabytes).
const MAX_HEADER_KEY_BYTES: usize = 256;
/// The policy name in `RateLimit` / `RateLimit-Policy`.
const POLICY: &str = "default";

/// `RateLimit-Policy` field name.
pub const RATELIMIT_POLICY: HeaderName = HeaderName::from_static("ratelimit-policy");
/// `RateLimit` field name.
pub const RATELIMIT: HeaderName = HeaderName::from_static("ratelimit");

/// `--rate-limit`: `count/unit` with unit `s`, `min` or `h`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rate {
    /// Requests per window.
    pub count: NonZeroU32,
    /// The window.
    pub per: Duration,
}

/// Parses `100/s`, `6000/min`, `10/h` (also `sec`, `second`, `m`, `minute`, `hour`).
pub fn parse_rate(s: &str) -> Result<Rate, String> {
    let err = || format!("`{s}` is not a rate like 100/s, 6000/min or 10/h");
    let (count, unit) = s.trim().split_once('/').ok_or_else(err)?;
    let count: u32 = count.trim().parse().map_err(|_| err())?;
    let count =
        NonZeroU32::new(count).ok_or_else(|| format!("`{s}`: the count must be at least 1"))?;
    let per = match unit.trim() {
        "s" | "sec" | "second" => Duration::from_secs(1),
        "m" | "min" | "minute" => Duration::from_secs(60),
        "h" | "hour" => Duration::from_secs(3600),
        _ => return Err(err()),
    };
    Ok(Rate { count, per })
}

/// `--rate-limit-key`: what a limit is counted per.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeySource {
    /// The client's address: the TCP peer, or with `EDGE_OBS_TRUSTED_PROXY_HOPS` the address
    /// the trusted proxies give (the middleware's own rules, `client_addr`).
    ClientAddress,
    /// The value of a request header (e.g. an API key header); requests without it are
    /// counted per client address.
    Header(HeaderName),
    /// One limit for the whole host.
    Global,
}

/// Parses `client-address`, `header:NAME` or `global`.
pub fn parse_key_source(s: &str) -> Result<KeySource, String> {
    match s.trim() {
        "client-address" => Ok(KeySource::ClientAddress),
        "global" => Ok(KeySource::Global),
        other => match other.strip_prefix("header:") {
            Some(name) => HeaderName::from_bytes(name.trim().as_bytes())
                .map(KeySource::Header)
                .map_err(|_| format!("`{name}` is not a valid header name")),
            None => Err(format!(
                "`{s}`: expected client-address, header:NAME or global"
            )),
        },
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq)]
enum Key {
    Addr(IpAddr),
    Header(Box<[u8]>),
    Unknown,
    Global,
    /// Shared by new keys while the key cap is reached.
    Overflow,
}

/// Over the limit: what to answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limited {
    /// Whole seconds until a request would conform (at least 1).
    pub retry_after: u32,
    quota: u32,
    window: u64,
}

impl Limited {
    /// Adds `RateLimit-Policy` and `RateLimit` (the caller sets `Retry-After`).
    pub fn add_headers(&self, headers: &mut HeaderMap) {
        let policy = format!("\"{POLICY}\";q={};w={}", self.quota, self.window);
        let state = format!("\"{POLICY}\";r=0;t={}", self.retry_after);
        for (name, value) in [(RATELIMIT_POLICY, policy), (RATELIMIT, state)] {
            if let Ok(v) = HeaderValue::from_str(&value) {
                headers.insert(name, v);
            }
        }
    }
}

/// The address a client is keyed by: IPv4 as it is, IPv6 by its /64 (an IPv4-mapped IPv6
/// address as the IPv4 address it maps).
fn address_block(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// governor's DashMap state store behind an `Arc`, shared by the limiter and by
/// [`RateLimiter::check`], which asks whether a key is tracked.
#[derive(Clone, Default)]
struct SharedStore(Arc<DashMapStateStore<Key>>);

impl StateStore for SharedStore {
    type Key = Key;

    fn measure_and_replace<T, F, E>(&self, key: &Key, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        self.0.measure_and_replace(key, f)
    }
}

impl ShrinkableKeyedStateStore<Key> for SharedStore {
    fn retain_recent(&self, drop_below: Nanos) {
        self.0.retain_recent(drop_below);
    }

    fn shrink_to_fit(&self) {
        ShrinkableKeyedStateStore::shrink_to_fit(&*self.0);
    }

    fn len(&self) -> usize {
        ShrinkableKeyedStateStore::len(&*self.0)
    }

    fn is_empty(&self) -> bool {
        ShrinkableKeyedStateStore::is_empty(&*self.0)
    }
}

/// The host's rate limiter.
pub struct RateLimiter {
    limiter: governor::RateLimiter<
        Key,
        SharedStore,
        DefaultClock,
        NoOpMiddleware<<DefaultClock as Clock>::Instant>,
    >,
    /// The limiter's own state, to tell a tracked key from a new one at the cap.
    store: SharedStore,
    source: KeySource,
    client_addr: ClientAddrConfig,
    max_keys: usize,
    rate: Rate,
    metrics: Arc<HostMetrics>,
}

impl RateLimiter {
    /// Puts the limiter to work: spawns the idle-key eviction on the current tokio runtime; it
    /// stops when the limiter is dropped.
    pub fn start(self) -> Arc<RateLimiter> {
        let limiter = Arc::new(self);
        let weak = Arc::downgrade(&limiter);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(EVICTION_INTERVAL);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(limiter) = weak.upgrade() else {
                    return;
                };
                limiter.evict_idle();
            }
        });
        limiter
    }

    /// A limiter of `rate` with bursts of `burst` (default: the rate's count) per key, finding
    /// the client address with the middleware's settings; [`RateLimiter::start`] runs it.
    pub fn new(
        rate: Rate,
        burst: Option<NonZeroU32>,
        source: KeySource,
        client_addr: ClientAddrConfig,
        max_keys: usize,
        metrics: Arc<HostMetrics>,
    ) -> RateLimiter {
        let period = rate.per / rate.count.get();
        let quota = Quota::with_period(period.max(Duration::from_nanos(1)))
            .expect("a non-zero period")
            .allow_burst(burst.unwrap_or(rate.count));
        let store = SharedStore::default();
        RateLimiter {
            limiter: governor::RateLimiter::new(quota, store.clone(), DefaultClock::default()),
            store,
            source,
            client_addr,
            max_keys: max_keys.max(1),
            rate,
            metrics,
        }
    }

    /// Drops the state of keys that are back to a full bucket (they behave exactly like new
    /// keys), and gives the memory back.
    pub fn evict_idle(&self) {
        self.limiter.retain_recent();
        self.limiter.shrink_to_fit();
    }

    /// Keys tracked now.
    pub fn tracked_keys(&self) -> usize {
        self.limiter.len()
    }

    fn key(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Key {
        let address = || {
            client_addr::client_address(&self.client_addr, headers)
                .and_then(|ip| ip.as_str().parse().ok())
                .or(peer.map(|p| p.ip()))
                .map_or(Key::Unknown, |ip| Key::Addr(address_block(ip)))
        };
        match &self.source {
            KeySource::Global => Key::Global,
            KeySource::ClientAddress => address(),
            KeySource::Header(name) => match headers.get(name) {
                Some(v) => {
                    let bytes = v.as_bytes();
                    Key::Header(bytes[..bytes.len().min(MAX_HEADER_KEY_BYTES)].into())
                }
                None => address(),
            },
        }
    }

    /// Counts a request (its headers, from the TCP peer `peer`) against its key: `Ok` when
    /// it may pass, else what to answer.
    pub fn check(&self, headers: &HeaderMap, peer: Option<SocketAddr>) -> Result<(), Limited> {
        let mut key = self.key(headers, peer);
        if self.limiter.len() >= self.max_keys && !self.store.0.contains_key(&key) {
            self.metrics.rate_limit_key_overflow();
            key = Key::Overflow;
        }
        self.limiter.check_key(&key).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.limiter.clock().now());
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            Limited {
                retry_after: secs.clamp(1, u64::from(u32::MAX)) as u32,
                quota: self.rate.count.get(),
                window: self.rate.per.as_secs(),
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request's peer, as the server passes it.
    #[derive(Clone, Copy)]
    struct Peer(Option<SocketAddr>);

    fn check(limiter: &RateLimiter, request: &http::Request<()>) -> Result<(), Limited> {
        let peer = request.extensions().get::<Peer>().and_then(|p| p.0);
        limiter.check(request.headers(), peer)
    }

    fn metrics() -> Arc<HostMetrics> {
        Arc::new(HostMetrics::new("test", "48"))
    }

    fn request(peer: &str, headers: &[(&str, &str)]) -> http::Request<()> {
        let mut r = http::Request::new(());
        r.extensions_mut().insert(Peer(Some(peer.parse().unwrap())));
        for (n, v) in headers {
            r.headers_mut().insert(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        r
    }

    fn limiter(rate: &str, burst: Option<u32>, key: &str, max_keys: usize) -> RateLimiter {
        RateLimiter::new(
            parse_rate(rate).unwrap(),
            burst.and_then(NonZeroU32::new),
            parse_key_source(key).unwrap(),
            edge_observability::Config::default().client_addr,
            max_keys,
            metrics(),
        )
    }

    #[test]
    fn rates_and_keys_parse() {
        assert_eq!(parse_rate("100/s").unwrap().count.get(), 100);
        assert_eq!(parse_rate("6000/min").unwrap().per, Duration::from_secs(60));
        assert_eq!(
            parse_rate(" 10 / h ").unwrap().per,
            Duration::from_secs(3600)
        );
        for bad in ["", "100", "0/s", "x/s", "10/day", "-1/s", "10/s/s"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_key_source("global"), Ok(KeySource::Global));
        assert_eq!(
            parse_key_source("header:X-Api-Key"),
            Ok(KeySource::Header(HeaderName::from_static("x-api-key")))
        );
        assert!(parse_key_source("header:bad name").is_err());
        assert!(parse_key_source("ip").is_err());
    }

    #[test]
    fn limits_per_client_address() {
        let l = limiter("3/min", None, "client-address", 100);
        let a = request("10.0.0.1:5000", &[]);
        for _ in 0..3 {
            assert!(check(&l, &a).is_ok());
        }
        let limited = check(&l, &a).unwrap_err();
        assert!((1..=20).contains(&limited.retry_after), "{limited:?}");
        // Another client (another port of the same address is the same client).
        assert!(check(&l, &request("10.0.0.2:5000", &[])).is_ok());
        assert!(check(&l, &request("10.0.0.1:6000", &[])).is_err());
        let mut h = HeaderMap::new();
        limited.add_headers(&mut h);
        assert_eq!(h[RATELIMIT_POLICY], "\"default\";q=3;w=60");
        assert_eq!(
            h[RATELIMIT],
            format!("\"default\";r=0;t={}", limited.retry_after)
        );
    }

    #[test]
    fn trusted_proxy_hops_give_the_client_address() {
        let mut l = limiter("1/min", None, "client-address", 100);
        l.client_addr.trusted_hops = 1;
        let via_proxy = |client: &str| request("10.0.0.9:1", &[("x-forwarded-for", client)]);
        assert!(check(&l, &via_proxy("203.0.113.1")).is_ok());
        assert!(check(&l, &via_proxy("203.0.113.2")).is_ok());
        assert!(check(&l, &via_proxy("203.0.113.1")).is_err());
    }

    #[test]
    fn header_and_global_keys() {
        let l = limiter("1/min", Some(2), "header:x-api-key", 100);
        let k1 = request("10.0.0.1:1", &[("x-api-key", "k1")]);
        assert!(check(&l, &k1).is_ok() && check(&l, &k1).is_ok());
        assert!(check(&l, &k1).is_err(), "burst of 2");
        assert!(check(&l, &request("10.0.0.1:1", &[("x-api-key", "k2")])).is_ok());
        let g = limiter("1/min", None, "global", 100);
        assert!(check(&g, &request("10.0.0.1:1", &[])).is_ok());
        assert!(check(&g, &request("10.0.0.2:1", &[])).is_err());
    }

    #[test]
    fn keys_are_capped_and_evicted() {
        let m = metrics();
        let l = RateLimiter::new(
            parse_rate("1000/s").unwrap(),
            Some(NonZeroU32::new(1).unwrap()),
            KeySource::Header(HeaderName::from_static("x-key")),
            edge_observability::Config::default().client_addr,
            10,
            m.clone(),
        );
        for i in 0..50 {
            let _ = check(&l, &request("10.0.0.1:1", &[("x-key", &format!("k{i}"))]));
        }
        assert!(l.tracked_keys() <= 11, "{}", l.tracked_keys());
        let (text, _) = m.encode();
        assert!(
            text.contains("runtime_host_rate_limit_key_overflow_total 40"),
            "{text}"
        );
        // Keys whose bucket refilled are forgotten.
        std::thread::sleep(Duration::from_millis(20));
        l.evict_idle();
        assert_eq!(l.tracked_keys(), 0);
    }

    #[test]
    fn at_the_cap_tracked_keys_keep_their_own_bucket() {
        // 10 per hour: no token comes back while the test runs.
        let l = limiter("10/h", None, "header:x-api-key", 50);
        let mine = request("10.0.0.1:1", &[("x-api-key", "mine")]);
        assert!(check(&l, &mine).is_ok());
        for i in 0..60 {
            let flood = request("10.0.0.9:1", &[("x-api-key", &format!("made-up-{i}"))]);
            let _ = check(&l, &flood);
        }
        // The flood filled the map and used up the overflow bucket, not this key's.
        for _ in 0..9 {
            assert!(check(&l, &mine).is_ok());
        }
        assert!(check(&l, &mine).is_err(), "its own quota of 10 still holds");
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        let l = limiter("1/h", None, "client-address", 100);
        assert!(check(&l, &request("[2001:db8:1:2::1]:1", &[])).is_ok());
        // Another address of the same /64 is the same client.
        assert!(check(&l, &request("[2001:db8:1:2:ffff::7]:1", &[])).is_err());
        assert!(check(&l, &request("[2001:db8:1:3::1]:1", &[])).is_ok());
        // An IPv4-mapped address is its IPv4 address.
        assert!(check(&l, &request("10.0.0.1:1", &[])).is_ok());
        assert!(check(&l, &request("[::ffff:10.0.0.1]:1", &[])).is_err());
    }
}
