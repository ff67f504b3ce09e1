//! `/sandbox/*` (sandbox mode only): the live one-time code, and the simulated payment
//! gateway's page with its pay and cancel buttons.

use super::extract::ApiQuery;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{Html, Redirect};
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
    responses((status = 200, body = SandboxOtp), (status = 404, body = Problem)))]
pub(crate) async fn sandbox_otp(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PhoneQuery>,
) -> HttpResult<Json<SandboxOtp>> {
    Ok(Json(blocking(&s, move |e| e.sandbox_otp(&q.phone)).await?))
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

/// Sandbox gateway: the payment page (HTML with pay and cancel).
#[utoipa::path(get, path = SANDBOX_PAY.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 200, description = "HTML payment page", content_type = "text/html"),
              (status = 404, body = Problem)))]
pub(crate) async fn gateway_page(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Html<String>> {
    valid_token(&token)?;
    let t = token.clone();
    let page = blocking(&s, move |e| e.gateway_payment(&t)).await?;
    let (amount, status, expires_at) = (page.amount, page.status.as_str(), page.expires_at);
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Sandbox payment gateway</title>\
         </head><body><h1>Sandbox payment gateway (Shaparak IPG simulation)</h1>\
         <p>Merchant: ManCard. Amount: <b>{amount}</b> rials ({} toman).</p>\
         <p>Status: <span id=\"status\">{status}</span>; page expires at {expires_at} (UTC seconds).</p>\
         <form method=\"post\" action=\"/sandbox/pay/{token}\"><button type=\"submit\">Pay</button></form>\
         <form method=\"post\" action=\"/sandbox/pay/{token}/cancel\"><button type=\"submit\">Cancel</button></form>\
         </body></html>",
        amount / 10
    )))
}

/// Sandbox gateway: pay; redirects (303) to the backend's callback.
#[utoipa::path(post, path = SANDBOX_PAY_SUBMIT.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 303, description = "redirect to /v1/topups/callback"),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
pub(crate) async fn gateway_pay(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Redirect> {
    valid_token(&token)?;
    let url = blocking(&s, move |e| e.gateway_pay(&token, true)).await?;
    Ok(Redirect::to(&url))
}

/// Sandbox gateway: cancel; redirects (303) to the backend's callback.
#[utoipa::path(post, path = SANDBOX_PAY_CANCEL.path,
    params(("token" = String, Path, description = "payment token")),
    responses((status = 303, description = "redirect to /v1/topups/callback"),
              (status = 404, body = Problem)))]
pub(crate) async fn gateway_cancel(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> HttpResult<Redirect> {
    valid_token(&token)?;
    let url = blocking(&s, move |e| e.gateway_pay(&token, false)).await?;
    Ok(Redirect::to(&url))
}
