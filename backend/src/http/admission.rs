//! Admission: what a request must pass before it may take one of the server's in-flight
//! slots (`EdgeLimits::max_in_flight`).
//!
//! - A small body (a `Content-Length` of at most `prebuffer_limit`: every JSON request of the
//!   API) is read whole first, under the body-read timeout between pieces and the request
//!   timeout in all. A client that dribbles or stalls its body holds its own connection
//!   (capped per address in `server.rs`), never an in-flight slot, and gets 408.
//! - Requests running at once from one client address (IPv6: one /64) are capped
//!   (`max_in_flight_per_address`): one address streaming large bodies slowly cannot take
//!   every slot. One more is refused at once with 429 and `Retry-After`.

use super::limits::{with_retry_after, AddressKey, EdgeLimiters};
use super::problem::ApiProblem;
use crate::edge::EdgeLimits;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use mancard_api::ProblemCode;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::time::Instant;

/// How many of something (requests running, connections open) each client address has,
/// up to a cap (`None`: counted against no cap).
#[derive(Debug, Clone)]
pub(crate) struct PerAddress {
    cap: Option<usize>,
    counts: Arc<Mutex<HashMap<AddressKey, usize>>>,
}

/// One counted thing of an address; dropping it frees its place.
pub(crate) struct Held(Option<(PerAddress, AddressKey)>);

impl PerAddress {
    pub(crate) fn new(cap: Option<usize>) -> Self {
        Self {
            cap,
            counts: Arc::new(Mutex::new(HashMap::new())),
        }
    }

    /// Counts one more for `address`, or `None` at the cap.
    pub(crate) fn enter(&self, address: AddressKey) -> Option<Held> {
        let Some(cap) = self.cap else {
            return Some(Held(None));
        };
        let mut counts = self.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let n = counts.entry(address).or_insert(0);
        if *n >= cap {
            return None;
        }
        *n += 1;
        Some(Held(Some((self.clone(), address))))
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        if let Some((per, address)) = self.0.take() {
            let mut counts = per.counts.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(n) = counts.get_mut(&address) {
                *n = n.saturating_sub(1);
                if *n == 0 {
                    counts.remove(&address);
                }
            }
        }
    }
}

/// The admission state shared by all requests.
#[derive(Debug)]
pub(crate) struct Admission {
    limiters: Arc<EdgeLimiters>,
    prebuffer_limit: u64,
    body_read_timeout: Duration,
    request_timeout: Duration,
    running: PerAddress,
}

impl Admission {
    pub(crate) fn new(edge: &EdgeLimits, limiters: Arc<EdgeLimiters>) -> Self {
        Self {
            limiters,
            prebuffer_limit: u64::try_from(edge.prebuffer_limit).unwrap_or(u64::MAX),
            body_read_timeout: edge.body_read_timeout,
            request_timeout: edge.request_timeout,
            running: PerAddress::new(edge.max_in_flight_per_address),
        }
    }
}

/// A body declared no larger than `limit` (and not empty).
fn small_body(headers: &HeaderMap, limit: u64) -> bool {
    headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .is_some_and(|n| n > 0 && n <= limit)
}

/// Why a small body could not be read.
enum BodyFailure {
    /// Too slow: a piece did not come within the body-read timeout, or the whole not
    /// within the request timeout.
    Slow,
    /// The connection failed or sent something else than announced.
    Broken,
}

/// Reads a whole small body, bounding each wait and the total.
async fn read_whole(
    mut body: Body,
    piece: Duration,
    total: Duration,
    limit: u64,
) -> Result<Bytes, BodyFailure> {
    let deadline = Instant::now() + total;
    let mut out = Vec::new();
    loop {
        let wait = piece.min(deadline.saturating_duration_since(Instant::now()));
        let frame = match tokio::time::timeout(wait, body.frame()).await {
            Err(_) => return Err(BodyFailure::Slow),
            Ok(None) => return Ok(Bytes::from(out)),
            Ok(Some(Err(_))) => return Err(BodyFailure::Broken),
            Ok(Some(Ok(frame))) => frame,
        };
        if let Ok(data) = frame.into_data() {
            out.extend_from_slice(&data);
            if u64::try_from(out.len()).unwrap_or(u64::MAX) > limit {
                return Err(BodyFailure::Broken);
            }
        }
    }
}

fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// The admission middleware (outside the in-flight limit; see the module docs).
pub(crate) async fn admit(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    let (parts, body) = req.into_parts();
    let body = if small_body(&parts.headers, a.prebuffer_limit) {
        match read_whole(
            body,
            a.body_read_timeout,
            a.request_timeout,
            a.prebuffer_limit,
        )
        .await
        {
            Ok(bytes) => Body::from(bytes),
            Err(BodyFailure::Slow) => {
                return closing(
                    ApiProblem::new(
                        StatusCode::REQUEST_TIMEOUT,
                        ProblemCode::RequestTimeout,
                        "the request body came too slowly",
                    )
                    .into_response(),
                )
            }
            Err(BodyFailure::Broken) => {
                return closing(
                    ApiProblem::new(
                        StatusCode::BAD_REQUEST,
                        ProblemCode::InvalidBody,
                        "the request body could not be read as announced",
                    )
                    .into_response(),
                )
            }
        }
    } else {
        body
    };
    let req = Request::from_parts(parts, body);
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let address = AddressKey::of(a.limiters.client_address(peer, req.headers()));
    let Some(_running) = a.running.enter(address) else {
        tracing::debug!(path = %req.uri().path(), "too many requests at once from one address");
        return with_retry_after(
            ApiProblem::new(
                StatusCode::TOO_MANY_REQUESTS,
                ProblemCode::RateLimited,
                "too many requests at once from this address; retry in 1 s",
            ),
            1,
        );
    };
    next.run(req).await
}
