//! `/v1/wallet/*`: sync (upload the tap log, settle, learn balance and status) and the stored
//! log read-back.

use super::extract::{ApiJson, ApiQuery, Session};
use super::problem::HttpResult;
use super::{blocking, AppState, Problem};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::endpoints::{WALLET_LOG, WALLET_SYNC};
use mancard_api::{LogQuery, LogResponse, SyncRequest, SyncResponse};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(WALLET_SYNC.path, post(sync))
        .route(WALLET_LOG.path, get(wallet_log))
}

/// Upload tap-log entries, settle them; get balance, ledger, credential status. Entries
/// settled before come back as duplicates without any signature work. Rate limited per
/// account (429 with `Retry-After`).
#[utoipa::path(post, path = WALLET_SYNC.path, security(("bearer" = [])), request_body = SyncRequest,
    responses((status = 200, body = SyncResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem), (status = 429, body = Problem)))]
pub(crate) async fn sync(
    State(s): State<AppState>,
    Session(a): Session,
    ApiJson(req): ApiJson<SyncRequest>,
) -> HttpResult<Json<SyncResponse>> {
    Ok(Json(blocking(&s, move |e| e.sync(a, &req)).await?))
}

/// Stored tap-log entries of a device (recovery after a power loss).
#[utoipa::path(get, path = WALLET_LOG.path, security(("bearer" = [])), params(LogQuery),
    responses((status = 200, body = LogResponse), (status = 401, body = Problem),
              (status = 404, body = Problem)))]
pub(crate) async fn wallet_log(
    State(s): State<AppState>,
    Session(a): Session,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> HttpResult<Json<LogResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.wallet_log(a, &q.pseudonym, q.from_seq)).await?,
    ))
}
