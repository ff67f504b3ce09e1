//! `/v1/credential/*`: provisioning nonces, provisioning and replenishment.

use super::extract::{ApiJson, RiderSession, Session};
use super::problem::HttpResult;
use super::{blocking, AppState, Problem};
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use mancard_api::endpoints::{CREDENTIAL_NONCE, PROVISION, REPLENISH};
use mancard_api::{CredentialRequest, CredentialResponse, NonceResponse};
use mancard_protocol::provision::ProvisionPurpose;

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(CREDENTIAL_NONCE.path, post(nonce))
        .route(PROVISION.path, post(provision))
        .route(REPLENISH.path, post(replenish))
}

/// A single-use nonce for the provisioning transcript.
#[utoipa::path(post, path = CREDENTIAL_NONCE.path, security(("bearer" = [])),
    responses((status = 200, body = NonceResponse), (status = 401, body = Problem)))]
pub(crate) async fn nonce(
    State(s): State<AppState>,
    Session(a): Session,
) -> HttpResult<Json<NonceResponse>> {
    Ok(Json(blocking(&s, move |e| e.new_nonce(a)).await?))
}

/// Provision this device: revokes the account's other device, issues a certificate, binds this
/// session to the device and ends the account's other sessions. A session bound to another
/// device is refused (403 `wrong_device`): a new phone logs in first.
#[utoipa::path(post, path = PROVISION.path, security(("bearer" = [])),
    request_body = CredentialRequest,
    responses((status = 200, body = CredentialResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem)))]
pub(crate) async fn provision(
    State(s): State<AppState>,
    RiderSession(session): RiderSession,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> HttpResult<Json<CredentialResponse>> {
    Ok(Json(
        blocking(&s, move |e| {
            e.issue_for_session(&session, &req, ProvisionPurpose::Provision)
        })
        .await?,
    ))
}

/// A fresh certificate for the same device (next counter range); a bound session only for its
/// own device's binding key.
#[utoipa::path(post, path = REPLENISH.path, security(("bearer" = [])),
    request_body = CredentialRequest,
    responses((status = 200, body = CredentialResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn replenish(
    State(s): State<AppState>,
    RiderSession(session): RiderSession,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> HttpResult<Json<CredentialResponse>> {
    Ok(Json(
        blocking(&s, move |e| {
            e.issue_for_session(&session, &req, ProvisionPurpose::Replenish)
        })
        .await?,
    ))
}
