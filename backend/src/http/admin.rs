//! `/v1/admin/*`: operators (admin token): validators (and their deny list), issuer keys,
//! fraud cases, the audit, adjustments.

use super::extract::{Admin, ApiJson};
use super::problem::HttpResult;
use super::{blocking, AppState, Problem};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::endpoints::{
    ADMIN_ADJUSTMENTS, ADMIN_AUDIT, ADMIN_DENY_VALIDATOR, ADMIN_FRAUD_CASES, ADMIN_ISSUER_KEYS,
    ADMIN_ROTATE_KEYS, ADMIN_VALIDATORS,
};
use mancard_api::{
    AdjustmentRequest, AdjustmentResponse, AuditReport, DenyValidatorRequest,
    DenyValidatorResponse, FraudCase, KeysResponse, RegisterValidatorRequest,
    RegisterValidatorResponse,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ADMIN_VALIDATORS.path, post(register_validator))
        .route(ADMIN_DENY_VALIDATOR.path, post(deny_validator))
        .route(ADMIN_ISSUER_KEYS.path, get(list_keys))
        .route(ADMIN_ROTATE_KEYS.path, post(rotate_keys))
        .route(ADMIN_FRAUD_CASES.path, get(fraud_cases))
        .route(ADMIN_AUDIT.path, get(audit))
        .route(ADMIN_ADJUSTMENTS.path, post(adjust))
}

/// Register (or re-key) a validator; the answer carries its issuer-signed certificate.
#[utoipa::path(post, path = ADMIN_VALIDATORS.path, security(("admin" = [])),
    request_body = RegisterValidatorRequest,
    responses((status = 200, body = RegisterValidatorResponse), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn register_validator(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<RegisterValidatorRequest>,
) -> HttpResult<Json<RegisterValidatorResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.register_validator(&req)).await?,
    ))
}

/// Put a validator on the validator deny list.
#[utoipa::path(post, path = ADMIN_DENY_VALIDATOR.path, security(("admin" = [])),
    request_body = DenyValidatorRequest,
    responses((status = 200, body = DenyValidatorResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn deny_validator(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<DenyValidatorRequest>,
) -> HttpResult<Json<DenyValidatorResponse>> {
    Ok(Json(blocking(&s, move |e| e.deny_validator(&req)).await?))
}

/// Issuer keys (public halves).
#[utoipa::path(get, path = ADMIN_ISSUER_KEYS.path, security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 403, body = Problem)))]
pub(crate) async fn list_keys(
    State(s): State<AppState>,
    _a: Admin,
) -> HttpResult<Json<KeysResponse>> {
    Ok(Json(blocking(&s, |e| e.keys()).await?))
}

/// Rotate: add a new issuer key, retire the old one for new certificates.
#[utoipa::path(post, path = ADMIN_ROTATE_KEYS.path, security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 403, body = Problem)))]
pub(crate) async fn rotate_keys(
    State(s): State<AppState>,
    _a: Admin,
) -> HttpResult<Json<KeysResponse>> {
    Ok(Json(blocking(&s, |e| e.rotate_key()).await?))
}

/// Open fraud cases.
#[utoipa::path(get, path = ADMIN_FRAUD_CASES.path, security(("admin" = [])),
    responses((status = 200, body = Vec<FraudCase>), (status = 403, body = Problem)))]
pub(crate) async fn fraud_cases(
    State(s): State<AppState>,
    _a: Admin,
) -> HttpResult<Json<Vec<FraudCase>>> {
    Ok(Json(blocking(&s, |e| e.fraud_cases()).await?))
}

/// Ledger invariant checks.
#[utoipa::path(get, path = ADMIN_AUDIT.path, security(("admin" = [])),
    responses((status = 200, body = AuditReport), (status = 403, body = Problem)))]
pub(crate) async fn audit(State(s): State<AppState>, _a: Admin) -> HttpResult<Json<AuditReport>> {
    Ok(Json(blocking(&s, |e| e.audit()).await?))
}

/// Append a manual ledger adjustment (idempotent by key).
#[utoipa::path(post, path = ADMIN_ADJUSTMENTS.path, security(("admin" = [])),
    request_body = AdjustmentRequest,
    responses((status = 200, body = AdjustmentResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn adjust(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<AdjustmentRequest>,
) -> HttpResult<Json<AdjustmentResponse>> {
    Ok(Json(blocking(&s, move |e| e.adjust(&req)).await?))
}
