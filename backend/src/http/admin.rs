//! `/v1/admin/*`: operators (admin token): validators (and their deny list), issuer keys,
//! fraud cases, the audit, adjustments.

use super::extract::{ApiJson, ApiQuery};
use super::operator::Admin;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::admin::{
    FraudCaseDetail, FraudCasesQuery, ResolveFraudRequest, ResolveFraudResponse,
};
use mancard_api::endpoints::{
    ADMIN_ADJUSTMENTS, ADMIN_AUDIT, ADMIN_DENY_VALIDATOR, ADMIN_FRAUD_CASE, ADMIN_FRAUD_CASES,
    ADMIN_ISSUER_KEYS, ADMIN_RESOLVE_FRAUD, ADMIN_ROTATE_KEYS, ADMIN_VALIDATORS,
};
use mancard_api::{
    AdjustmentRequest, AdjustmentResponse, AuditReport, DenyValidatorRequest,
    DenyValidatorResponse, FraudCase, KeysResponse, ProblemCode, RegisterValidatorRequest,
    RegisterValidatorResponse,
};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(ADMIN_VALIDATORS.path, post(register_validator))
        .route(ADMIN_DENY_VALIDATOR.path, post(deny_validator))
        .route(ADMIN_ISSUER_KEYS.path, get(list_keys))
        .route(ADMIN_ROTATE_KEYS.path, post(rotate_keys))
        .route(ADMIN_FRAUD_CASES.path, get(fraud_cases))
        .route(ADMIN_FRAUD_CASE.path, get(fraud_case))
        .route(ADMIN_RESOLVE_FRAUD.path, post(resolve_fraud))
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

/// Fraud cases (`status`: open by default, resolved or all), oldest first.
#[utoipa::path(get, path = ADMIN_FRAUD_CASES.path, security(("admin" = [])), params(FraudCasesQuery),
    responses((status = 200, body = Vec<FraudCase>), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn fraud_cases(
    State(s): State<AppState>,
    _a: Admin,
    ApiQuery(q): ApiQuery<FraudCasesQuery>,
) -> HttpResult<Json<Vec<FraudCase>>> {
    Ok(Json(
        blocking(&s, move |e| e.list_fraud_cases(q.status)).await?,
    ))
}

/// A case id from the path; anything else names no case.
fn case_id(text: &str) -> HttpResult<i64> {
    text.parse().map_err(|_| {
        ApiProblem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownFraudCase,
            format!("no fraud case {text:?}"),
        )
    })
}

/// One fraud case with its evidence (hex, and decoded).
#[utoipa::path(get, path = ADMIN_FRAUD_CASE.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = FraudCaseDetail), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub(crate) async fn fraud_case(
    State(s): State<AppState>,
    _a: Admin,
    Path(id): Path<String>,
) -> HttpResult<Json<FraudCaseDetail>> {
    let id = case_id(&id)?;
    Ok(Json(blocking(&s, move |e| e.fraud_case(id)).await?))
}

/// Resolve a fraud case: `confirmed` keeps the device revoked, `dismissed` lifts the
/// revocation; the account is unfrozen once none of its cases is open. Idempotent.
#[utoipa::path(post, path = ADMIN_RESOLVE_FRAUD.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "case id")),
    request_body = ResolveFraudRequest,
    responses((status = 200, body = ResolveFraudResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 422, body = Problem)))]
pub(crate) async fn resolve_fraud(
    State(s): State<AppState>,
    _a: Admin,
    Path(id): Path<String>,
    ApiJson(req): ApiJson<ResolveFraudRequest>,
) -> HttpResult<Json<ResolveFraudResponse>> {
    let id = case_id(&id)?;
    Ok(Json(
        blocking(&s, move |e| e.resolve_fraud(id, &req)).await?,
    ))
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
