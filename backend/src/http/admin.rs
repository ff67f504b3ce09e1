//! `/v1/admin/*`: named operators with scopes (`operator.rs`): validators (and their deny
//! list), issuer keys, fraud cases, the audit, adjustments under the two-person rule, and the
//! operator log. Every request, answered or refused, lands in the operator log.

use super::extract::{ApiJson, ApiQuery};
use super::operator::{
    audited, noted, Admin, ForAdjust, ForAdjustRead, ForFraud, ForFraudRead, ForKeys, ForKeysRead,
    ForRead,
};
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use crate::features::operators::AdjustOutcome;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::admin::{
    FraudCaseDetail, FraudCasesQuery, ResolveFraudRequest, ResolveFraudResponse,
};
use mancard_api::endpoints::{
    ADMIN_ADJUSTMENTS, ADMIN_APPROVE_ADJUSTMENT, ADMIN_AUDIT, ADMIN_AUDIT_LOG,
    ADMIN_DENY_VALIDATOR, ADMIN_FRAUD_CASE, ADMIN_FRAUD_CASES, ADMIN_ISSUER_KEYS,
    ADMIN_PENDING_ADJUSTMENTS, ADMIN_REJECT_ADJUSTMENT, ADMIN_RESOLVE_FRAUD, ADMIN_ROTATE_KEYS,
    ADMIN_VALIDATORS,
};
use mancard_api::{
    Adjustment, AdjustmentRequest, AdjustmentResponse, AuditReport, DecideAdjustmentRequest,
    DecideAdjustmentResponse, DenyValidatorRequest, DenyValidatorResponse, FraudCase, KeysResponse,
    OperatorLogQuery, OperatorLogResponse, ProblemCode, RegisterValidatorRequest,
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
        .route(ADMIN_PENDING_ADJUSTMENTS.path, get(pending_adjustments))
        .route(ADMIN_APPROVE_ADJUSTMENT.path, post(approve_adjustment))
        .route(ADMIN_REJECT_ADJUSTMENT.path, post(reject_adjustment))
        .route(ADMIN_AUDIT_LOG.path, get(audit_log))
}

/// A JSON body whose rejection is answered (and logged) by the handler.
type Body<T> = Result<ApiJson<T>, ApiProblem>;

/// Register (or re-key) a validator; the answer carries its issuer-signed certificate.
/// Scope `keys`.
#[utoipa::path(post, path = ADMIN_VALIDATORS.path, security(("admin" = [])),
    request_body = RegisterValidatorRequest,
    responses((status = 200, body = RegisterValidatorResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn register_validator(
    State(s): State<AppState>,
    a: Admin<ForKeys>,
    body: Body<RegisterValidatorRequest>,
) -> Response {
    let r = async {
        let ApiJson(req) = body?;
        let v = blocking(&s, move |e| e.register_validator(&req)).await?;
        let note = format!(
            "validator {} registered (operator {}, lines {:?}), valid until {}",
            v.validator_id, v.operator_id, v.lines, v.valid_until
        );
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}

/// Put a validator on the validator deny list. Scope `keys`.
#[utoipa::path(post, path = ADMIN_DENY_VALIDATOR.path, security(("admin" = [])),
    request_body = DenyValidatorRequest,
    responses((status = 200, body = DenyValidatorResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem)))]
pub(crate) async fn deny_validator(
    State(s): State<AppState>,
    a: Admin<ForKeys>,
    body: Body<DenyValidatorRequest>,
) -> Response {
    let r = async {
        let ApiJson(req) = body?;
        let v = blocking(&s, move |e| e.deny_validator(&req)).await?;
        let note = format!("validator {} denied", v.validator_id);
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}

/// Issuer keys (public halves). Scope `read` or `keys`.
#[utoipa::path(get, path = ADMIN_ISSUER_KEYS.path, security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn list_keys(State(s): State<AppState>, a: Admin<ForKeysRead>) -> Response {
    let r = blocking(&s, |e| e.keys()).await;
    audited(&s, &a, r.map(|v| noted(Json(v), "issuer keys read".into()))).await
}

/// Rotate: add a new issuer key, retire the old one for new certificates. Scope `keys`.
#[utoipa::path(post, path = ADMIN_ROTATE_KEYS.path, security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn rotate_keys(State(s): State<AppState>, a: Admin<ForKeys>) -> Response {
    let r = blocking(&s, |e| e.rotate_key()).await.map(|v| {
        let note = format!("issuer key {} is now current", v.current_key_id);
        noted(Json(v), note)
    });
    audited(&s, &a, r).await
}

/// Fraud cases (`status`: open by default, resolved or all), oldest first. Scope `read` or
/// `fraud`.
#[utoipa::path(get, path = ADMIN_FRAUD_CASES.path, security(("admin" = [])), params(FraudCasesQuery),
    responses((status = 200, body = Vec<FraudCase>), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn fraud_cases(
    State(s): State<AppState>,
    a: Admin<ForFraudRead>,
    q: Result<ApiQuery<FraudCasesQuery>, ApiProblem>,
) -> Response {
    let r = async {
        let ApiQuery(q) = q?;
        let v = blocking(&s, move |e| e.list_fraud_cases(q.status)).await?;
        let note = format!("{} {} fraud cases read", v.len(), q.status.as_str());
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
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

/// One fraud case with its evidence (hex, and decoded). Scope `read` or `fraud`.
#[utoipa::path(get, path = ADMIN_FRAUD_CASE.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "case id")),
    responses((status = 200, body = FraudCaseDetail), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn fraud_case(
    State(s): State<AppState>,
    a: Admin<ForFraudRead>,
    Path(id): Path<String>,
) -> Response {
    let r = async {
        let id = case_id(&id)?;
        let v = blocking(&s, move |e| e.fraud_case(id)).await?;
        Ok(noted(Json(v), format!("fraud case {id} read")))
    };
    audited(&s, &a, r.await).await
}

/// Resolve a fraud case: `confirmed` keeps the device revoked, `dismissed` lifts the
/// revocation; the account is unfrozen once none of its cases is open. Idempotent. The
/// authenticated operator is recorded as the resolver. Scope `fraud`.
#[utoipa::path(post, path = ADMIN_RESOLVE_FRAUD.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "case id")),
    request_body = ResolveFraudRequest,
    responses((status = 200, body = ResolveFraudResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem),
              (status = 422, body = Problem)))]
pub(crate) async fn resolve_fraud(
    State(s): State<AppState>,
    a: Admin<ForFraud>,
    Path(id): Path<String>,
    body: Body<ResolveFraudRequest>,
) -> Response {
    let name = a.name().to_string();
    let r = async {
        let id = case_id(&id)?;
        let ApiJson(mut req) = body?;
        req.operator = name;
        let v = blocking(&s, move |e| e.resolve_fraud(id, &req)).await?;
        let note = format!(
            "fraud case {id} resolved {:?} (changed: {})",
            v.case.resolution.map(|r| r.as_str()),
            v.changed
        );
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}

/// Ledger invariant checks. Scope `read`.
#[utoipa::path(get, path = ADMIN_AUDIT.path, security(("admin" = [])),
    responses((status = 200, body = AuditReport), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn audit(State(s): State<AppState>, a: Admin<ForRead>) -> Response {
    let r = blocking(&s, |e| e.audit()).await.map(|v| {
        let note = format!("ledger audit read (ok: {})", v.ok);
        noted(Json(v), note)
    });
    audited(&s, &a, r).await
}

/// Ask for a manual ledger adjustment (idempotent by key). At or under the single-approval
/// limits it is appended at once (200); above them it waits for a second operator (202 with
/// the pending adjustment; nothing is credited until approved). Scope `adjust`.
#[utoipa::path(post, path = ADMIN_ADJUSTMENTS.path, security(("admin" = [])),
    request_body = AdjustmentRequest,
    responses((status = 200, body = AdjustmentResponse),
              (status = 202, body = Adjustment, description = "waits for a second operator"),
              (status = 400, body = Problem), (status = 401, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
pub(crate) async fn adjust(
    State(s): State<AppState>,
    a: Admin<ForAdjust>,
    body: Body<AdjustmentRequest>,
) -> Response {
    let op = a.operator.clone();
    let r = async {
        let ApiJson(req) = body?;
        match blocking(&s, move |e| e.request_adjustment(&op, &req)).await? {
            AdjustOutcome::Applied(v) => {
                let note = format!(
                    "ledger entry {} (created: {}), balance {}",
                    v.ledger_entry_id, v.created, v.balance
                );
                Ok(noted(Json(v), note))
            }
            AdjustOutcome::Pending(v) => {
                let note = format!("adjustment {} is {}", v.id, v.status.as_str());
                Ok(noted((StatusCode::ACCEPTED, Json(v)), note))
            }
        }
    };
    audited(&s, &a, r.await).await
}

/// Adjustments waiting for a second operator, oldest first. Scope `read` or `adjust`.
#[utoipa::path(get, path = ADMIN_PENDING_ADJUSTMENTS.path, security(("admin" = [])),
    responses((status = 200, body = Vec<Adjustment>), (status = 401, body = Problem),
              (status = 403, body = Problem)))]
pub(crate) async fn pending_adjustments(
    State(s): State<AppState>,
    a: Admin<ForAdjustRead>,
) -> Response {
    let r = blocking(&s, |e| e.pending_adjustments()).await.map(|v| {
        let note = format!("{} pending adjustments read", v.len());
        noted(Json(v), note)
    });
    audited(&s, &a, r).await
}

/// An adjustment id from the path; anything else names no adjustment.
fn adjustment_id(text: &str) -> HttpResult<i64> {
    text.parse().map_err(|_| {
        ApiProblem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownAdjustment,
            format!("no adjustment {text:?}"),
        )
    })
}

/// A second operator approves a pending adjustment: it is appended to the ledger. Its
/// requester cannot (403 `self_approval`); approving again changes nothing. Scope `adjust`.
#[utoipa::path(post, path = ADMIN_APPROVE_ADJUSTMENT.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "adjustment id")),
    request_body = DecideAdjustmentRequest,
    responses((status = 200, body = DecideAdjustmentResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn approve_adjustment(
    State(s): State<AppState>,
    a: Admin<ForAdjust>,
    Path(id): Path<String>,
    body: Body<DecideAdjustmentRequest>,
) -> Response {
    let op = a.operator.clone();
    let r = async {
        let id = adjustment_id(&id)?;
        let ApiJson(req) = body?;
        let v = blocking(&s, move |e| e.approve_adjustment(&op, id, &req)).await?;
        let note = format!(
            "adjustment {id} approved (changed: {}), ledger entry {:?}",
            v.changed, v.adjustment.ledger_entry_id
        );
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}

/// Reject a pending adjustment (its requester may withdraw it); it never reaches the ledger.
/// Rejecting again changes nothing. Scope `adjust`.
#[utoipa::path(post, path = ADMIN_REJECT_ADJUSTMENT.path, security(("admin" = [])),
    params(("id" = i64, Path, description = "adjustment id")),
    request_body = DecideAdjustmentRequest,
    responses((status = 200, body = DecideAdjustmentResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn reject_adjustment(
    State(s): State<AppState>,
    a: Admin<ForAdjust>,
    Path(id): Path<String>,
    body: Body<DecideAdjustmentRequest>,
) -> Response {
    let op = a.operator.clone();
    let r = async {
        let id = adjustment_id(&id)?;
        let ApiJson(req) = body?;
        let v = blocking(&s, move |e| e.reject_adjustment(&op, id, &req)).await?;
        let note = format!("adjustment {id} rejected (changed: {})", v.changed);
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}

/// The operator log (oldest first, a page after `after`) with the whole chain's check.
/// Scope `read`.
#[utoipa::path(get, path = ADMIN_AUDIT_LOG.path, security(("admin" = [])),
    params(OperatorLogQuery),
    responses((status = 200, body = OperatorLogResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem)))]
pub(crate) async fn audit_log(
    State(s): State<AppState>,
    a: Admin<ForRead>,
    q: Result<ApiQuery<OperatorLogQuery>, ApiProblem>,
) -> Response {
    let r = async {
        let ApiQuery(q) = q?;
        let v = blocking(&s, move |e| e.operator_log(&q)).await?;
        let note = format!(
            "operator log read after {} ({} rows, chain ok: {})",
            q.after,
            v.rows.len(),
            v.chain_ok
        );
        Ok(noted(Json(v), note))
    };
    audited(&s, &a, r.await).await
}
