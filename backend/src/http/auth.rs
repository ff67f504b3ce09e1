//! `/v1/auth/*`: one-time codes and sessions.

use super::extract::ApiJson;
use super::problem::HttpResult;
use super::Problem;
use super::{blocking, AppState};
use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::post;
use axum::{Json, Router};
use mancard_api::endpoints::{CREATE_SESSION, REQUEST_OTP};
use mancard_api::{OtpRequest, OtpResponse, SessionRequest, SessionResponse};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(REQUEST_OTP.path, post(request_otp))
        .route(CREATE_SESSION.path, post(create_session))
}

/// Send a one-time code to a phone number (sandbox: logged, and readable at /sandbox/otp).
#[utoipa::path(post, path = REQUEST_OTP.path, request_body = OtpRequest,
    responses((status = 202, body = OtpResponse), (status = 400, body = Problem),
              (status = 429, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn request_otp(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<OtpRequest>,
) -> HttpResult<(StatusCode, Json<OtpResponse>)> {
    let r = blocking(&s, move |e| e.request_otp(&req)).await?;
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
