//! `/v1/account`: the rider's account and confirmed balance.

use super::extract::Session;
use super::problem::HttpResult;
use super::{blocking, AppState, Problem};
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use mancard_api::endpoints::ACCOUNT;
use mancard_api::AccountResponse;

pub(super) fn routes() -> Router<AppState> {
    Router::new().route(ACCOUNT.path, get(account))
}

/// The rider's account and confirmed balance.
#[utoipa::path(get, path = ACCOUNT.path, security(("bearer" = [])),
    responses((status = 200, body = AccountResponse), (status = 401, body = Problem)))]
pub(crate) async fn account(
    State(s): State<AppState>,
    Session(a): Session,
) -> HttpResult<Json<AccountResponse>> {
    Ok(Json(blocking(&s, move |e| e.account(a)).await?))
}
