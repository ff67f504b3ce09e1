//! `/sandbox/*` (sandbox mode only): the live one-time code, and redirects from the old
//! in-backend payment page to the sandbox gateway's (a process of its own since issue #15).

use super::extract::ApiQuery;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Redirect;
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::endpoints::{SANDBOX_OTP, SANDBOX_PAY, SANDBOX_PAY_CANCEL, SANDBOX_PAY_SUBMIT};
use mancard_api::{PhoneQuery, ProblemCode, SandboxOtp};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(SANDBOX_OTP.path, get(sandbox_otp))
        .route(SANDBOX_PAY.path, get(gateway_page).post(gateway_pay))
        .route(SANDBOX_PAY_CANCEL.path, post(gateway_cancel))
}

/// Sandbox only: the live one-time code of a phone number.
#[utoipa::path(get, path = SANDBOX_OTP.path, params(PhoneQuery),
    responses((status = 200, body = SandboxOtp), (status = 400, body = Problem),
              (status = 404, body = Problem)))]
pub(crate) async fn sandbox_otp(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PhoneQuery>,
) -> HttpResult<Json<SandboxOtp>> {
    Ok(Json(
        blocking(&s, move |e| {
            e.sandbox_otp(&q.phone, q.request_id.as_deref())
        })
        .await?,
    ))
}

fn valid_token(t: &str) -> HttpResult<()> {
    if t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiProblem::new(
            StatusCode::NOT_FOUND,
            ProblemCode::UnknownPayment,
            "no such payment",
        ))
    }
}

/// The gateway page of a payment this backend knows.
async fn page_url(s: &AppState, token: String) -> HttpResult<String> {
    valid_token(&token)?;
    blocking(s, move |e| e.sandbox_payment_url(&token)).await
}

/// The payment page, now served by the sandbox gateway (its own process): a link of the old
/// in-backend page (stored by a wallet before the upgrade) redirects (303) to it.
#[utoipa::path(get, path = SANDBOX_PAY.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 303, description = "redirect to the sandbox gateway's payment page"),
              (status = 404, body = Problem)))]
pub(crate) async fn gateway_page(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Redirect> {
    Ok(Redirect::to(&page_url(&s, token).await?))
}

/// The old page's "pay" button: redirects (307, the method kept) to the sandbox gateway's.
#[utoipa::path(post, path = SANDBOX_PAY_SUBMIT.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 307, description = "redirect to the sandbox gateway's pay button"),
              (status = 404, body = Problem)))]
pub(crate) async fn gateway_pay(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Redirect> {
    Ok(Redirect::temporary(&page_url(&s, token).await?))
}

/// The old page's "cancel" button: redirects (307) to the sandbox gateway's.
#[utoipa::path(post, path = SANDBOX_PAY_CANCEL.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 307, description = "redirect to the sandbox gateway's cancel button"),
              (status = 404, body = Problem)))]
pub(crate) async fn gateway_cancel(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Redirect> {
    let url = page_url(&s, token).await?;
    Ok(Redirect::temporary(&format!("{url}/cancel")))
}
