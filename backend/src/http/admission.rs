//! Admission: what a request must pass before it may take one of the server's in-flight
//! slots (`EdgeLimits::max_in_flight`).
//!
//! - Every body except a validator's batch upload is read whole first (announced with a
//!   `Content-Length` or chunked, up to the JSON body limit: 413 above it), under the
//!   body-read timeout between pieces and the request timeout in all (408 when too slow), and
//!   within a server-wide budget of bytes being read ahead (`prebuffer_budget`; 503 when it is
//!   spent). A client that dribbles or stalls its body holds its own connection (capped per
//!   address in `server.rs`), never an in-flight slot.
//! - Batch uploads (up to 8 MiB) stream into their handler, so they run in their own lane:
//!   at most `max_uploads_in_flight` at once, whatever their speed, so slow uploads cannot
//!   take every slot. One more waits for a lane in turn (first come, first served) for at
//!   most `upload_queue_wait`, holding only its connection, then is 503 + `Retry-After`; at
//!   most as many wait as there are lanes (503 at once beyond), and one address may have
//!   `max_uploads_per_address` running or waiting (429 beyond). An upload keeps its lane
//!   until its ingest ends, answered or not ([`UploadPass`]).
//! - Requests running at once from one client address (IPv6: one /64) are capped
//!   (`max_in_flight_per_address`): one more is refused at once with 429 and `Retry-After`.

use super::limits::{with_retry_after, AddressKey, EdgeLimiters};
use super::problem::ApiProblem;
use crate::edge::EdgeLimits;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use mancard_api::endpoints::VALIDATOR_BATCHES;
use mancard_api::ProblemCode;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
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
    /// The largest body read ahead (the JSON body limit).
    body_limit: usize,
    body_read_timeout: Duration,
    request_timeout: Duration,
    /// Bytes being read ahead server-wide, in KiB permits.
    budget: Arc<Semaphore>,
    /// Batch uploads at once (tokio's semaphore hands permits out in the order asked).
    uploads: Arc<Semaphore>,
    /// How long an upload waits for a lane.
    upload_queue_wait: Duration,
    /// Uploads running or waiting: at most as many wait as there are lanes.
    upload_line: Arc<Semaphore>,
    /// Uploads running or waiting per client address.
    uploads_per_address: PerAddress,
    shed_retry_after_secs: u64,
    running: PerAddress,
}

impl Admission {
    pub(crate) fn new(edge: &EdgeLimits, body_limit: usize, limiters: Arc<EdgeLimiters>) -> Self {
        Self {
            limiters,
            body_limit,
            body_read_timeout: edge.body_read_timeout,
            request_timeout: edge.request_timeout,
            budget: Arc::new(Semaphore::new(
                (edge.prebuffer_budget / 1024).clamp(1, Semaphore::MAX_PERMITS),
            )),
            uploads: Arc::new(Semaphore::new(edge.max_uploads_in_flight.max(1))),
            upload_queue_wait: edge.upload_queue_wait.min(edge.request_timeout),
            upload_line: Arc::new(Semaphore::new(
                edge.max_uploads_in_flight
                    .max(1)
                    .saturating_mul(2)
                    .min(Semaphore::MAX_PERMITS),
            )),
            uploads_per_address: PerAddress::new(edge.max_uploads_per_address),
            shed_retry_after_secs: edge.shed_retry_after_secs,
            running: PerAddress::new(edge.max_in_flight_per_address),
        }
    }
}

/// Why a body could not be read ahead.
enum BodyFailure {
    /// Too slow: a piece did not come within the body-read timeout, or the whole not
    /// within the request timeout.
    Slow,
    /// Larger than any JSON body may be.
    TooLarge,
    /// The server-wide read-ahead budget is spent.
    Busy,
    /// The connection failed or sent something else than announced.
    Broken,
}

/// A body read ahead, and its share of the read-ahead budget (held until the answer).
struct ReadAhead {
    bytes: Bytes,
    _budget: Vec<OwnedSemaphorePermit>,
}

impl Admission {
    /// Reads a whole body, bounding each wait, the total time, the size and the memory.
    async fn read_whole(
        &self,
        mut body: Body,
        headers: &HeaderMap,
    ) -> Result<ReadAhead, BodyFailure> {
        let announced = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok());
        if announced.is_some_and(|n| n > u64::try_from(self.body_limit).unwrap_or(u64::MAX)) {
            return Err(BodyFailure::TooLarge);
        }
        let deadline = Instant::now().checked_add(self.request_timeout);
        let mut out = Vec::new();
        let mut held = Vec::new();
        loop {
            let left = deadline.map_or(self.body_read_timeout, |d| {
                d.saturating_duration_since(Instant::now())
            });
            let wait = self.body_read_timeout.min(left);
            let frame = match tokio::time::timeout(wait, body.frame()).await {
                Err(_) => return Err(BodyFailure::Slow),
                Ok(None) => {
                    return Ok(ReadAhead {
                        bytes: Bytes::from(out),
                        _budget: held,
                    })
                }
                Ok(Some(Err(_))) => return Err(BodyFailure::Broken),
                Ok(Some(Ok(frame))) => frame,
            };
            if let Ok(data) = frame.into_data() {
                if out.len().saturating_add(data.len()) > self.body_limit {
                    return Err(BodyFailure::TooLarge);
                }
                let kib = u32::try_from(data.len().div_ceil(1024)).unwrap_or(u32::MAX);
                if kib > 0 {
                    let permit = Arc::clone(&self.budget)
                        .try_acquire_many_owned(kib)
                        .map_err(|_| BodyFailure::Busy)?;
                    held.push(permit);
                }
                out.extend_from_slice(&data);
            }
        }
    }

    fn refusal(&self, failure: BodyFailure) -> Response {
        let (status, code, detail) = match failure {
            BodyFailure::Slow => (
                StatusCode::REQUEST_TIMEOUT,
                ProblemCode::RequestTimeout,
                "the request body came too slowly",
            ),
            BodyFailure::TooLarge => (
                StatusCode::PAYLOAD_TOO_LARGE,
                ProblemCode::PayloadTooLarge,
                "the request body is larger than this endpoint takes",
            ),
            BodyFailure::Busy => {
                return with_retry_after(
                    ApiProblem::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        ProblemCode::Overloaded,
                        "the server is reading too many request bodies; retry shortly",
                    ),
                    self.shed_retry_after_secs,
                )
            }
            BodyFailure::Broken => (
                StatusCode::BAD_REQUEST,
                ProblemCode::InvalidBody,
                "the request body could not be read as announced",
            ),
        };
        closing(ApiProblem::new(status, code, detail).into_response())
    }
}

fn closing(mut resp: Response) -> Response {
    resp.headers_mut()
        .insert(header::CONNECTION, HeaderValue::from_static("close"));
    resp
}

/// A request that carries a body: chunked, or a `Content-Length` other than 0 (an HTTP/1.1
/// request with neither has none).
fn has_body(headers: &HeaderMap) -> bool {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        return true;
    }
    headers
        .get(header::CONTENT_LENGTH)
        .is_some_and(|v| v.to_str().ok().map(str::trim) != Some("0"))
}

/// The admission middleware (outside the in-flight limit; see the module docs).
pub(crate) async fn admit(State(a): State<Arc<Admission>>, req: Request, next: Next) -> Response {
    match admitted(&a, req, next).await {
        Ok(answer) | Err(answer) => answer,
    }
}

/// [`admit`]: the handler's answer, or the refusal.
async fn admitted(a: &Admission, req: Request, next: Next) -> Result<Response, Response> {
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let address = AddressKey::of(a.limiters.client_address(peer, req.headers()));
    let upload = req.method() == Method::POST && req.uri().path() == VALIDATOR_BATCHES.path;
    let (mut parts, body) = req.into_parts();
    let mut _upload = None;
    let mut _read_ahead = None;
    let body = if upload {
        let pass = UploadPass {
            _admitted: Arc::new(a.admit_upload(address).await?),
        };
        parts.extensions.insert(pass.clone());
        _upload = Some(pass);
        body
    } else if has_body(&parts.headers) {
        match a.read_whole(body, &parts.headers).await {
            Ok(r) => {
                let bytes = r.bytes.clone();
                _read_ahead = Some(r);
                Body::from(bytes)
            }
            Err(failure) => return Err(a.refusal(failure)),
        }
    } else {
        body
    };
    let req = Request::from_parts(parts, body);
    // an upload took its place among its address's requests before it waited
    let _running = if upload {
        None
    } else {
        Some(a.running.enter(address).ok_or_else(too_many_at_once)?)
    };
    Ok(next.run(req).await)
}

/// 429 for one request more than an address may run at once.
fn too_many_at_once() -> Response {
    tracing::debug!("too many requests at once from one address");
    with_retry_after(
        ApiProblem::new(
            StatusCode::TOO_MANY_REQUESTS,
            ProblemCode::RateLimited,
            "too many requests at once from this address; retry in 1 s",
        ),
        1,
    )
}

/// An admitted upload's places ([`UploadAdmitted`]), handed to its handler in the request's
/// extensions: the handler moves it into the blocking ingest, so the places are held for as
/// long as the work runs, even after the client went away (axum then drops the handler, but
/// not the blocking work, which keeps the batch in memory). Without it, a validator that
/// disconnects right after sending could run any number of ingests past the lanes.
#[derive(Clone)]
pub(crate) struct UploadPass {
    _admitted: Arc<UploadAdmitted>,
}

/// What an admitted upload holds until its answer: its lane and its place in line, its
/// place among its address's uploads and among its address's requests.
struct UploadAdmitted {
    _permits: [OwnedSemaphorePermit; 2],
    _places: [Held; 2],
}

impl Admission {
    /// Admits a batch upload, before its body is read: within its address's uploads (queued
    /// ones count) and requests at once (429 beyond), within the line (503 at once when as
    /// many wait as there are lanes), then the first lane to free up, waited for at most
    /// `upload_queue_wait` (503). An address cannot fill the line and keep every lane that
    /// frees up from everyone after it.
    async fn admit_upload(&self, address: AddressKey) -> Result<UploadAdmitted, Response> {
        let Some(mine) = self.uploads_per_address.enter(address) else {
            tracing::debug!("too many batch uploads at once from one address");
            return Err(with_retry_after(
                ApiProblem::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    ProblemCode::RateLimited,
                    "too many batch uploads at once from this address; retry shortly",
                ),
                self.shed_retry_after_secs,
            ));
        };
        let running = self.running.enter(address).ok_or_else(too_many_at_once)?;
        let overloaded = |detail| {
            with_retry_after(
                ApiProblem::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    ProblemCode::Overloaded,
                    detail,
                ),
                self.shed_retry_after_secs,
            )
        };
        let Ok(in_line) = Arc::clone(&self.upload_line).try_acquire_owned() else {
            return Err(overloaded(
                "too many batch uploads at once (the line for them is full); retry shortly",
            ));
        };
        let lane = Arc::clone(&self.uploads).acquire_owned();
        match tokio::time::timeout(self.upload_queue_wait, lane).await {
            Ok(Ok(lane)) => Ok(UploadAdmitted {
                _permits: [lane, in_line],
                _places: [mine, running],
            }),
            Ok(Err(_)) | Err(_) => Err(overloaded(
                "too many batch uploads at once (none freed up in time); retry shortly",
            )),
        }
    }
}
