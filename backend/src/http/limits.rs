//! The edge's request limits, enforced in one place from [`EdgeLimits`]: which endpoints are
//! rate limited by what key (client address, everyone, account), the buckets themselves
//! (governor's GCRA), and the answers of a refused, shed or timed-out request (problem
//! documents with `Retry-After`). Connection limits (header-read timeout, open connections)
//! are in `server.rs`.

use super::problem::ApiProblem;
use super::{blocking, AppState};
use crate::edge::{EdgeLimits, Rate};
use crate::ids::AccountId;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota};
use mancard_api::endpoints::{CREATE_SESSION, CREATE_TOPUP, REQUEST_OTP, WALLET_SYNC};
use mancard_api::ProblemCode;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// The prefix of every issuance endpoint (nonce, provision, replenish).
const CREDENTIAL_PREFIX: &str = "/v1/credential/";

/// Requests between two sweeps of the keyed buckets (entries back to a full bucket are
/// dropped, so an address or account costs memory only while it is being limited).
const SWEEP_EVERY: u64 = 4_096;

/// Which limit a request falls under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Class {
    /// A one-time code is sent: per address, then globally.
    Otp,
    /// A code is checked: per address.
    Session,
    /// A wallet sync: per account.
    Sync,
    /// Issuance and top-up intents: per account.
    Credential,
    Other,
}

fn classify(method: &Method, path: &str) -> Class {
    if method != Method::POST {
        return Class::Other;
    }
    if path == REQUEST_OTP.path {
        Class::Otp
    } else if path == CREATE_SESSION.path {
        Class::Session
    } else if path == WALLET_SYNC.path {
        Class::Sync
    } else if path.starts_with(CREDENTIAL_PREFIX) || path == CREATE_TOPUP.path {
        // a top-up intent asks the bank's gateway for a token: per account, like issuance
        Class::Credential
    } else {
        Class::Other
    }
}

/// The key of every client behind a trusted proxy whose `X-Forwarded-For` hop cannot be read
/// (the unspecified IPv6 address: no real client has it).
pub(crate) const UNKNOWN_CLIENT: IpAddr = IpAddr::V6(Ipv6Addr::UNSPECIFIED);

/// One `X-Forwarded-For` hop: an address, optionally with a port.
fn parse_hop(hop: &[u8]) -> Option<IpAddr> {
    let text = std::str::from_utf8(hop).ok()?.trim();
    text.parse::<IpAddr>()
        .ok()
        .or_else(|| text.parse::<SocketAddr>().ok().map(|s| s.ip()))
}

/// A client address as limits key it: IPv4 as is, IPv6 by its /64 (one subscriber's
/// prefix: an attacker holds 2^64 addresses of it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AddressKey(IpAddr);

/// The client address of a code request, as the limits key it (IPv4, or an IPv6 /64), for
/// the handler: code sends are paced per number and address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ClientAddress(pub(crate) String);

impl AddressKey {
    fn label(self) -> String {
        match self.0 {
            IpAddr::V6(v6) => format!("{v6}/64"),
            v4 => v4.to_string(),
        }
    }

    pub(crate) fn of(ip: IpAddr) -> Self {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let prefix = u128::from(v6) & (u128::MAX << 64);
                Self(IpAddr::V6(Ipv6Addr::from(prefix)))
            }
            v4 => Self(v4),
        }
    }
}

fn quota(rate: Rate) -> Quota {
    let burst = NonZeroU32::new(rate.burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(rate.every)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

fn keyed<K: Clone + Eq + std::hash::Hash>(
    rate: Option<Rate>,
) -> Option<DefaultKeyedRateLimiter<K>> {
    rate.map(|r| DefaultKeyedRateLimiter::keyed(quota(r)))
}

/// The buckets of every rate limit, shared by all requests.
#[derive(Debug)]
pub struct EdgeLimiters {
    otp_per_address: Option<DefaultKeyedRateLimiter<AddressKey>>,
    otp_global: Option<DefaultDirectRateLimiter>,
    /// Until when the global code budget is spent: it is charged only for a code actually
    /// sent (after the handler answered 202), so requests refused for a bad number or by a
    /// number's pacing cannot drain it and lock every rider out (attack review of #15).
    otp_global_closed_until: std::sync::Mutex<Option<std::time::Instant>>,
    session_per_address: Option<DefaultKeyedRateLimiter<AddressKey>>,
    sync_per_account: Option<DefaultKeyedRateLimiter<AccountId>>,
    credential_per_account: Option<DefaultKeyedRateLimiter<AccountId>>,
    trusted_proxies: Vec<IpAddr>,
    clock: DefaultClock,
    requests: AtomicU64,
}

/// Why a request was refused, and when the bucket allows the next one.
struct Refusal {
    what: &'static str,
    wait: Duration,
}

impl EdgeLimiters {
    /// The buckets of `limits` (an invalid rate is made valid: burst at least 1).
    pub fn new(limits: &EdgeLimits) -> Self {
        Self {
            otp_per_address: keyed(limits.otp_per_address),
            otp_global: limits
                .otp_global
                .map(|r| DefaultDirectRateLimiter::direct(quota(r))),
            otp_global_closed_until: std::sync::Mutex::new(None),
            session_per_address: keyed(limits.session_per_address),
            sync_per_account: keyed(limits.sync_per_account),
            credential_per_account: keyed(limits.credential_per_account),
            trusted_proxies: limits.trusted_proxies.clone(),
            clock: DefaultClock::default(),
            requests: AtomicU64::new(0),
        }
    }

    /// The client's address: the TCP peer, or — only when the peer is a trusted proxy — the
    /// nearest address in `X-Forwarded-For` that is not one of the trusted proxies.
    ///
    /// The header is read as bytes from the right (the hops the trusted proxies appended;
    /// proxies append to the client's own header line). A hop may carry a port
    /// (`198.51.100.7:4711`, `[2001:db8::1]:443`). The walk stops at the first hop that is
    /// not an address: what lies left of it came from the client and is not believed, and the
    /// client is then [`UNKNOWN_CLIENT`] — one shared key for every client whose proxy hop
    /// cannot be read, never the proxy's own key, which a client must not be able to share
    /// (and drain) by sending garbage.
    pub(crate) fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = peer.to_canonical();
        if !self.trusted_proxies.contains(&peer) {
            return peer;
        }
        let values: Vec<&[u8]> = headers
            .get_all("x-forwarded-for")
            .iter()
            .map(HeaderValue::as_bytes)
            .collect();
        let mut client = peer;
        for hop in values.iter().rev().flat_map(|v| v.rsplit(|b| *b == b',')) {
            let Some(ip) = parse_hop(hop) else {
                return UNKNOWN_CLIENT;
            };
            client = ip.to_canonical();
            if !self.trusted_proxies.contains(&client) {
                break;
            }
        }
        client
    }

    fn check_keyed<K: Clone + Eq + std::hash::Hash>(
        &self,
        limiter: Option<&DefaultKeyedRateLimiter<K>>,
        key: &K,
        what: &'static str,
    ) -> Result<(), Refusal> {
        match limiter.map(|l| l.check_key(key)) {
            Some(Err(not_until)) => Err(Refusal {
                what,
                wait: not_until.wait_time_from(self.clock.now()),
            }),
            _ => Ok(()),
        }
    }

    fn check_otp(&self, address: AddressKey) -> Result<(), Refusal> {
        self.check_keyed(
            self.otp_per_address.as_ref(),
            &address,
            "too many code requests from this address",
        )?;
        let closed = *self
            .otp_global_closed_until
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        match closed.map(|until| until.saturating_duration_since(std::time::Instant::now())) {
            Some(wait) if !wait.is_zero() => Err(Refusal {
                what: "too many code requests right now",
                wait,
            }),
            _ => Ok(()),
        }
    }

    /// Charges the global code budget for a code that was sent; when it is spent, closes
    /// code requests until it has room again (so one code more than the budget may go out
    /// before the gate closes).
    fn charge_sent_code(&self) {
        if let Some(Err(not_until)) = self.otp_global.as_ref().map(|l| l.check()) {
            let wait = not_until.wait_time_from(self.clock.now());
            *self
                .otp_global_closed_until
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = Some(std::time::Instant::now() + wait);
        }
    }

    /// Drops the entries of keys whose bucket is full again, now and then.
    fn sweep(&self) {
        if !self
            .requests
            .fetch_add(1, Ordering::Relaxed)
            .is_multiple_of(SWEEP_EVERY)
        {
            return;
        }
        for l in [&self.otp_per_address, &self.session_per_address]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
        for l in [&self.sync_per_account, &self.credential_per_account]
            .into_iter()
            .flatten()
        {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

/// A 429 problem with `Retry-After` (whole seconds, at least 1).
fn too_many(r: &Refusal) -> Response {
    let secs = r
        .wait
        .as_secs()
        .saturating_add(u64::from(r.wait.subsec_nanos() > 0));
    let detail = format!("{}; retry in {} s", r.what, secs.max(1));
    with_retry_after(
        ApiProblem::new(
            StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::RateLimited,
            detail,
        ),
        secs,
    )
}

/// A problem answer with `Retry-After: secs` (at least 1).
pub(crate) fn with_retry_after(problem: ApiProblem, secs: u64) -> Response {
    let mut resp = problem.into_response();
    resp.headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from(secs.max(1)));
    resp
}

/// The account of the request's bearer token, if it names one (an invalid token is the
/// handler's to refuse with 401).
async fn account_of(engine: &AppState, headers: &HeaderMap) -> Option<AccountId> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim()
        .to_string();
    blocking(engine, move |e| e.authenticate(&token)).await.ok()
}

/// The rate-limit middleware: refuses with 429 before the handler runs.
pub(crate) async fn enforce(
    State((limiters, engine)): State<(Arc<EdgeLimiters>, AppState)>,
    mut req: Request,
    next: Next,
) -> Response {
    limiters.sweep();
    let class = classify(req.method(), req.uri().path());
    let verdict = match class {
        Class::Other => Ok(()),
        Class::Otp | Class::Session => {
            let peer = req
                .extensions()
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
            let address = AddressKey::of(limiters.client_address(peer, req.headers()));
            if class == Class::Otp {
                req.extensions_mut().insert(ClientAddress(address.label()));
                limiters.check_otp(address)
            } else {
                limiters.check_keyed(
                    limiters.session_per_address.as_ref(),
                    &address,
                    "too many code checks from this address",
                )
            }
        }
        Class::Sync | Class::Credential => {
            let (limiter, what) = if class == Class::Sync {
                (
                    limiters.sync_per_account.as_ref(),
                    "too many syncs for this account",
                )
            } else {
                (
                    limiters.credential_per_account.as_ref(),
                    "too many credential requests for this account",
                )
            };
            match limiter {
                Some(l) => match account_of(&engine, req.headers()).await {
                    Some(account) => limiters.check_keyed(Some(l), &account, what),
                    None => Ok(()),
                },
                None => Ok(()),
            }
        }
    };
    match verdict {
        Ok(()) => {
            let resp = next.run(req).await;
            if class == Class::Otp && resp.status() == StatusCode::ACCEPTED {
                limiters.charge_sent_code();
            }
            resp
        }
        Err(refusal) => {
            tracing::debug!(path = %req.uri().path(), wait_ms = refusal.wait.as_millis(), "rate limited");
            too_many(&refusal)
        }
    }
}

/// The answer of a request the edge's tower layers gave up on: shed under load (503) or over
/// its time (408). Never a 500: neither is the client's fault nor a server bug.
pub(crate) fn overloaded_or_timed_out(err: &tower::BoxError, retry_after_secs: u64) -> Response {
    if err.is::<tower::timeout::error::Elapsed>() {
        let mut resp = ApiProblem::new(
            StatusCode::REQUEST_TIMEOUT,
            ProblemCode::RequestTimeout,
            "the request took too long (its body came too slowly, or the server was too busy)",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
        resp
    } else if err.is::<tower::load_shed::error::Overloaded>() {
        with_retry_after(
            ApiProblem::new(
                StatusCode::SERVICE_UNAVAILABLE,
                ProblemCode::Overloaded,
                "the server is at capacity; retry shortly",
            ),
            retry_after_secs,
        )
    } else {
        ApiProblem::internal(err).into_response()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
    use super::*;

    fn limiters(trusted: &[&str]) -> EdgeLimiters {
        EdgeLimiters::new(&EdgeLimits {
            trusted_proxies: trusted.iter().map(|t| t.parse().unwrap()).collect(),
            ..EdgeLimits::default()
        })
    }

    fn xff(v: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_str(v).unwrap());
        h
    }

    #[test]
    fn forwarded_for_is_believed_only_from_a_trusted_proxy() {
        let l = limiters(&["10.0.0.1"]);
        let peer: IpAddr = "203.0.113.9".parse().unwrap();
        assert_eq!(l.client_address(peer, &xff("198.51.100.7")), peer);
        let proxy: IpAddr = "10.0.0.1".parse().unwrap();
        // the client may prepend anything: the proxy's own append is the rightmost
        assert_eq!(
            l.client_address(proxy, &xff("1.2.3.4, 198.51.100.7")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // garbage from a trusted proxy: the shared unknown key, never the proxy's own
        assert_eq!(
            l.client_address(proxy, &xff("not an address")),
            UNKNOWN_CLIENT
        );
        assert_eq!(l.client_address(proxy, &xff("")), UNKNOWN_CLIENT);
        let mut obs = HeaderMap::new();
        obs.insert(
            "x-forwarded-for",
            HeaderValue::from_bytes(b"\xff, 198.51.100.79").unwrap(),
        );
        assert_eq!(
            l.client_address(proxy, &obs),
            "198.51.100.79".parse::<IpAddr>().unwrap()
        );
        // hops with ports
        assert_eq!(
            l.client_address(proxy, &xff("198.51.100.78:4711")),
            "198.51.100.78".parse::<IpAddr>().unwrap()
        );
        assert_eq!(
            l.client_address(proxy, &xff("[2001:db8::1]:443")),
            "2001:db8::1".parse::<IpAddr>().unwrap()
        );
        // garbage the client prepended does not hide the address the proxy appended
        assert_eq!(
            l.client_address(proxy, &xff("junk, 198.51.100.7")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
        // through two trusted proxies
        let l = limiters(&["10.0.0.1", "10.0.0.2"]);
        assert_eq!(
            l.client_address(proxy, &xff("junk, 198.51.100.7, 10.0.0.2")),
            "198.51.100.7".parse::<IpAddr>().unwrap()
        );
    }

    #[test]
    fn an_ipv6_client_is_one_key_per_64() {
        let a = AddressKey::of("2001:db8:1:2:aaaa::1".parse().unwrap());
        let b = AddressKey::of("2001:db8:1:2:bbbb::2".parse().unwrap());
        let c = AddressKey::of("2001:db8:1:3::1".parse().unwrap());
        assert_eq!(a, b);
        assert_ne!(a, c);
        let mapped = AddressKey::of("::ffff:192.0.2.1".parse().unwrap());
        assert_eq!(mapped, AddressKey::of("192.0.2.1".parse().unwrap()));
    }

    #[test]
    fn only_the_limited_endpoints_are_classified() {
        assert_eq!(classify(&Method::POST, REQUEST_OTP.path), Class::Otp);
        assert_eq!(classify(&Method::GET, REQUEST_OTP.path), Class::Other);
        assert_eq!(
            classify(&Method::POST, "/v1/credential/provision"),
            Class::Credential
        );
        assert_eq!(classify(&Method::POST, WALLET_SYNC.path), Class::Sync);
        assert_eq!(classify(&Method::POST, "/v1/topups"), Class::Credential);
        assert_eq!(classify(&Method::GET, "/v1/topups/abc"), Class::Other);
    }
}
