//! `/v1/auth/*`: one-time codes, sessions, logout and the rider's session list.

use super::extract::{ApiJson, NoBody, Proven, RiderSession};
use super::limits::ClientAddress;
use super::problem::HttpResult;
use super::Problem;
use super::{blocking, AppState};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mancard_api::endpoints::{CREATE_SESSION, END_SESSION, LOGOUT, REQUEST_OTP, SESSIONS};
use mancard_api::{OtpRequest, OtpResponse, SessionList, SessionRequest, SessionResponse};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(REQUEST_OTP.path, post(request_otp))
        .route(CREATE_SESSION.path, post(create_session))
        .route(LOGOUT.path, post(logout))
        .route(SESSIONS.path, get(sessions))
        .route(END_SESSION.path, post(end_session))
}

/// Send a one-time code to a phone number (sandbox: logged, and readable at /sandbox/otp).
#[utoipa::path(post, path = REQUEST_OTP.path, request_body = OtpRequest,
    responses((status = 202, body = OtpResponse), (status = 400, body = Problem),
              (status = 429, body = Problem,
               headers(("Retry-After" = u64, description = "seconds until a code may be sent"))),
              (status = 503, body = Problem)))]
pub(crate) async fn request_otp(
    State(s): State<AppState>,
    from: Option<Extension<ClientAddress>>,
    ApiJson(req): ApiJson<OtpRequest>,
) -> HttpResult<(StatusCode, Json<OtpResponse>)> {
    // The edge's rate-limit layer names the client address; without it (never in `router`)
    // all requests pace as one address.
    let from = from.map_or_else(|| "unknown".to_string(), |Extension(a)| a.0);
    let r = blocking(&s, move |e| e.request_otp(&req, &from)).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// Exchange a one-time code for a bearer session (creates the account on first login).
#[utoipa::path(post, path = CREATE_SESSION.path, request_body = SessionRequest,
    responses((status = 200, body = SessionResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn create_session(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> HttpResult<Json<SessionResponse>> {
    Ok(Json(blocking(&s, move |e| e.create_session(&req)).await?))
}

/// End this session (logout): its token stops working at once.
#[utoipa::path(post, path = LOGOUT.path, security(("bearer" = [])),
    responses((status = 204, description = "the session is ended"),
              (status = 401, body = Problem)))]
pub(crate) async fn logout(
    State(s): State<AppState>,
    RiderSession(session): RiderSession,
) -> HttpResult<StatusCode> {
    blocking(&s, move |e| e.logout(&session)).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The account's live sessions: ids, times and device binding, never tokens.
#[utoipa::path(get, path = SESSIONS.path, security(("bearer" = [])),
    responses((status = 200, body = SessionList), (status = 401, body = Problem)))]
pub(crate) async fn sessions(
    State(s): State<AppState>,
    RiderSession(session): RiderSession,
) -> HttpResult<Json<SessionList>> {
    Ok(Json(
        blocking(&s, move |e| e.list_sessions(&session)).await?,
    ))
}

/// End one session of the account (e.g. a lost phone's). From a bound session this needs a
/// `ManCard-Proof` header signed by its device's binding key.
#[utoipa::path(post, path = END_SESSION.path, security(("bearer" = [])),
    params(("id" = String, Path, description = "session id from the session list"),
           ("ManCard-Proof" = Option<String>, Header,
            description = "<nonce hex>.<signature hex>: required from a bound session")),
    responses((status = 204, description = "the session is ended"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn end_session(
    State(s): State<AppState>,
    Path(id): Path<String>,
    Proven(session, NoBody): Proven<NoBody>,
) -> HttpResult<StatusCode> {
    blocking(&s, move |e| e.end_session(&session, &id)).await?;
    Ok(StatusCode::NO_CONTENT)
}
