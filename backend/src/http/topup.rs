//! `/v1/topups*`: top-up intents, their status, and the gateway's redirect back.

use super::extract::{ApiJson, ApiQuery, Proven, Session};
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use crate::features::topup::CallbackClaims;
use axum::extract::rejection::FormRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Html;
use axum::routing::{get, post};
use axum::Form;
use axum::{Json, Router};
use mancard_api::endpoints::{CREATE_TOPUP, TOPUP_CALLBACK, TOPUP_STATUS};
use mancard_api::{CallbackQuery, ProblemCode, TopupIntentResponse, TopupRequest, TopupStatus};

pub(super) fn routes() -> Router<AppState> {
    Router::new()
        .route(CREATE_TOPUP.path, post(create_topup))
        .route(
            TOPUP_CALLBACK.path,
            get(topup_callback).post(topup_callback_form),
        )
        .route(TOPUP_STATUS.path, get(topup_status))
}

/// Create a top-up intent (idempotent by key): open `payment_url` to pay.
#[utoipa::path(post, path = CREATE_TOPUP.path, security(("bearer" = [])), request_body = TopupRequest,
    params(("ManCard-Proof" = Option<String>, Header,
            description = "<nonce hex>.<signature hex>: required from a bound session")),
    responses((status = 200, body = TopupIntentResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 403, body = Problem),
              (status = 409, body = Problem), (status = 503, body = Problem)))]
pub(crate) async fn create_topup(
    State(s): State<AppState>,
    Proven(session, ApiJson(req)): Proven<ApiJson<TopupRequest>>,
) -> HttpResult<Json<TopupIntentResponse>> {
    let a = session.account_id;
    Ok(Json(blocking(&s, move |e| e.create_topup(a, &req)).await?))
}

/// Status of a top-up intent; verifies with the gateway and credits if it was paid.
#[utoipa::path(get, path = TOPUP_STATUS.path, security(("bearer" = [])),
    params(("intent_id" = String, Path, description = "intent id")),
    responses((status = 200, body = TopupIntentResponse), (status = 404, body = Problem)))]
pub(crate) async fn topup_status(
    State(s): State<AppState>,
    Session(a): Session,
    Path(id): Path<String>,
) -> HttpResult<Json<TopupIntentResponse>> {
    Ok(Json(blocking(&s, move |e| e.topup_status(a, &id)).await?))
}

fn claims(q: CallbackQuery) -> CallbackClaims {
    CallbackClaims {
        token: q.token,
        ref_num: q.ref_num,
    }
}

/// The app's return page: what the callback found at the gateway.
fn return_page(r: &TopupIntentResponse) -> Html<String> {
    let msg = match r.status {
        TopupStatus::Credited => "Payment received: your ManCard balance has been topped up.",
        TopupStatus::Cancelled if r.reason.is_some() => {
            "Payment reversed: the bank returns your money; nothing was credited."
        }
        TopupStatus::Cancelled => "Payment cancelled: nothing was charged.",
        TopupStatus::Expired => "This payment has expired.",
        TopupStatus::Pending => {
            "Payment not confirmed yet: the app will show it once the bank confirms."
        }
    };
    Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ManCard top-up</title></head>\
         <body><h1>{msg}</h1><p>Amount: {} rials ({} toman). Status: <b id=\"status\">{}</b>.</p>\
         <p><a id=\"back\" href=\"mancard://topup/{}\">Return to the app</a></p></body></html>",
        r.amount,
        r.amount / 10,
        r.status.as_str(),
        r.intent_id
    ))
}

/// The gateway's redirect back (browser). Verifies the payment server-side; shows the result.
#[utoipa::path(get, path = TOPUP_CALLBACK.path, params(CallbackQuery),
    responses((status = 200, description = "HTML result page", content_type = "text/html"),
              (status = 404, body = Problem)))]
pub(crate) async fn topup_callback(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> HttpResult<Html<String>> {
    let c = claims(q);
    let r = blocking(&s, move |e| e.topup_callback(&c)).await?;
    Ok(return_page(&r))
}

/// The gateway's POST back (a Shaparak gateway posts a form): as the GET. The fields are not
/// trusted: only the token is used, and the payment is verified with the gateway.
#[utoipa::path(post, path = TOPUP_CALLBACK.path,
    request_body(content = CallbackQuery, content_type = "application/x-www-form-urlencoded"),
    responses((status = 200, description = "HTML result page", content_type = "text/html"),
              (status = 400, body = Problem), (status = 404, body = Problem)))]
pub(crate) async fn topup_callback_form(
    State(s): State<AppState>,
    form: Result<Form<CallbackQuery>, FormRejection>,
) -> HttpResult<Html<String>> {
    let Form(q) = form.map_err(|rej| {
        ApiProblem::new(
            StatusCode::BAD_REQUEST,
            ProblemCode::InvalidQuery,
            rej.body_text(),
        )
    })?;
    let c = claims(q);
    let r = blocking(&s, move |e| e.topup_callback(&c)).await?;
    Ok(return_page(&r))
}
