//! The HTTP layer: axum routes, extractors that turn every malformed input into a problem
//! response, and the OpenAPI document. Handlers only parse, call the [`Engine`] on a blocking
//! thread and render.

use crate::engine::Engine;
use crate::error::{ApiError, ApiResult, Problem};
use crate::keys::KeyInfo;
use crate::model::*;
use crate::repo::{AuditReport, FraudCase, LedgerEntry};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, FromRequestParts, Path, Query, Request, State};
use axum::http::{header, request::Parts, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_protocol::provision::ProvisionPurpose;
use serde::de::DeserializeOwned;
use serde::Deserialize;
use std::sync::Arc;
use utoipa::OpenApi;

/// Shared state of the handlers.
pub type AppState = Arc<Engine>;

/// Runs engine work on a blocking thread (SQLite never runs on the async runtime).
pub async fn blocking<T: Send + 'static>(
    engine: &AppState,
    f: impl FnOnce(&Engine) -> ApiResult<T> + Send + 'static,
) -> ApiResult<T> {
    let e = Arc::clone(engine);
    tokio::task::spawn_blocking(move || f(&e))
        .await
        .map_err(|e| ApiError::internal(&e))?
}

// ---- extractors ----------------------------------------------------------------------------

/// JSON body whose rejections are problem documents.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) => {
                let status = rej.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => "payload_too_large",
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
                    _ => "invalid_json",
                };
                Err(ApiError::new(status, code, rej.body_text()))
            }
        }
    }
}

/// Query string whose rejections are problem documents.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(rej) => Err(ApiError::bad_request("invalid_query", rej.body_text())),
        }
    }
}

/// Raw body whose rejections (size limit) are problem documents.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiError;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(rej) => Err(ApiError::new(
                rej.status(),
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    "payload_too_large"
                } else {
                    "invalid_body"
                },
                rej.body_text(),
            )),
        }
    }
}

fn bearer(parts: &Parts) -> ApiResult<String> {
    let h = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthorized("missing Authorization: Bearer header"))?;
    let t = h
        .strip_prefix("Bearer ")
        .ok_or_else(|| ApiError::unauthorized("Authorization must be a Bearer token"))?;
    Ok(t.trim().to_string())
}

/// A rider's session: the account id.
pub struct Auth(pub i64);

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let id = blocking(state, move |e| e.authenticate(&token)).await?;
        Ok(Self(id))
    }
}

/// The operator (admin token from the configuration).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiError;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config().admin_token.as_deref() else {
            return Err(ApiError::forbidden(
                "admin_disabled",
                "no admin token is configured",
            ));
        };
        let token = bearer(parts)?;
        // compare digests: equal-length inputs, no early exit on the secret itself
        let a = mancard_protocol::sha256(&[token.as_bytes()]);
        let b = mancard_protocol::sha256(&[expected.as_bytes()]);
        if a != b {
            return Err(ApiError::forbidden("bad_admin_token", "wrong admin token"));
        }
        Ok(Self)
    }
}

// ---- handlers --------------------------------------------------------------------------------

/// Liveness.
#[utoipa::path(get, path = "/healthz", responses((status = 200, body = Health)))]
async fn healthz(State(s): State<AppState>) -> Json<Health> {
    Json(Health {
        status: "ok".into(),
        server_time: s.now(),
    })
}

async fn openapi_json() -> Response {
    match ApiDoc::openapi().to_json() {
        Ok(s) => ([(header::CONTENT_TYPE, "application/json")], s).into_response(),
        Err(e) => ApiError::internal(&e).into_response(),
    }
}

/// Send a one-time code to a phone number (sandbox: logged, and readable at /sandbox/otp).
#[utoipa::path(post, path = "/v1/auth/otp", request_body = OtpRequest,
    responses((status = 202, body = OtpResponse), (status = 400, body = Problem),
              (status = 429, body = Problem), (status = 503, body = Problem)))]
async fn request_otp(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<OtpRequest>,
) -> ApiResult<(StatusCode, Json<OtpResponse>)> {
    let r = blocking(&s, move |e| e.request_otp(&req)).await?;
    Ok((StatusCode::ACCEPTED, Json(r)))
}

/// Exchange a one-time code for a bearer session (creates the account on first login).
#[utoipa::path(post, path = "/v1/auth/session", request_body = SessionRequest,
    responses((status = 200, body = SessionResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 429, body = Problem)))]
async fn create_session(
    State(s): State<AppState>,
    ApiJson(req): ApiJson<SessionRequest>,
) -> ApiResult<Json<SessionResponse>> {
    Ok(Json(blocking(&s, move |e| e.create_session(&req)).await?))
}

/// The rider's account and confirmed balance.
#[utoipa::path(get, path = "/v1/account", security(("bearer" = [])),
    responses((status = 200, body = AccountResponse), (status = 401, body = Problem)))]
async fn account(State(s): State<AppState>, Auth(a): Auth) -> ApiResult<Json<AccountResponse>> {
    Ok(Json(blocking(&s, move |e| e.account(a)).await?))
}

/// A single-use nonce for the provisioning transcript.
#[utoipa::path(post, path = "/v1/credential/nonce", security(("bearer" = [])),
    responses((status = 200, body = NonceResponse), (status = 401, body = Problem)))]
async fn nonce(State(s): State<AppState>, Auth(a): Auth) -> ApiResult<Json<NonceResponse>> {
    Ok(Json(blocking(&s, move |e| e.new_nonce(a)).await?))
}

/// Provision this device: revokes the account's other device, issues a certificate.
#[utoipa::path(post, path = "/v1/credential/provision", security(("bearer" = [])),
    request_body = CredentialRequest,
    responses((status = 200, body = CredentialResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 409, body = Problem)))]
async fn provision(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> ApiResult<Json<CredentialResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.issue(a, &req, ProvisionPurpose::Provision)).await?,
    ))
}

/// A fresh certificate for the same device (same pseudonym, next counter range).
#[utoipa::path(post, path = "/v1/credential/replenish", security(("bearer" = [])),
    request_body = CredentialRequest,
    responses((status = 200, body = CredentialResponse), (status = 400, body = Problem),
              (status = 401, body = Problem), (status = 404, body = Problem),
              (status = 409, body = Problem)))]
async fn replenish(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(req): ApiJson<CredentialRequest>,
) -> ApiResult<Json<CredentialResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.issue(a, &req, ProvisionPurpose::Replenish)).await?,
    ))
}

/// Create a top-up intent (idempotent by key): open `payment_url` to pay.
#[utoipa::path(post, path = "/v1/topups", security(("bearer" = [])), request_body = TopupRequest,
    responses((status = 200, body = TopupIntentResponse), (status = 400, body = Problem),
              (status = 409, body = Problem), (status = 503, body = Problem)))]
async fn create_topup(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(req): ApiJson<TopupRequest>,
) -> ApiResult<Json<TopupIntentResponse>> {
    Ok(Json(blocking(&s, move |e| e.create_topup(a, &req)).await?))
}

/// Status of a top-up intent; verifies with the gateway and credits if it was paid.
#[utoipa::path(get, path = "/v1/topups/{intent_id}", security(("bearer" = [])),
    params(("intent_id" = String, Path, description = "intent id")),
    responses((status = 200, body = TopupIntentResponse), (status = 404, body = Problem)))]
async fn topup_status(
    State(s): State<AppState>,
    Auth(a): Auth,
    Path(id): Path<String>,
) -> ApiResult<Json<TopupIntentResponse>> {
    Ok(Json(blocking(&s, move |e| e.topup_status(a, &id)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct CallbackQuery {
    /// Gateway payment token.
    token: String,
    /// `OK` or `NOK` as the gateway reports it (not trusted: the payment is verified).
    #[allow(dead_code)]
    status: Option<String>,
}

/// The gateway's redirect back (browser). Verifies the payment server-side; shows the result.
#[utoipa::path(get, path = "/v1/topups/callback", params(CallbackQuery),
    responses((status = 200, description = "HTML result page", content_type = "text/html"),
              (status = 404, body = Problem)))]
async fn topup_callback(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<CallbackQuery>,
) -> ApiResult<Html<String>> {
    let r = blocking(&s, move |e| e.topup_callback(&q.token)).await?;
    let msg = match r.status.as_str() {
        "credited" => "Payment received: your ManCard balance has been topped up.",
        "cancelled" => "Payment cancelled: nothing was charged.",
        "expired" => "This payment has expired.",
        _ => "Payment not completed yet.",
    };
    Ok(Html(format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>ManCard top-up</title></head>\
         <body><h1>{msg}</h1><p>Amount: {} rials ({} toman). Status: <b id=\"status\">{}</b>.</p>\
         <p>You can return to the app.</p></body></html>",
        r.amount,
        r.amount / 10,
        r.status
    )))
}

/// Upload tap-log entries, settle them; get balance, ledger, credential status.
#[utoipa::path(post, path = "/v1/wallet/sync", security(("bearer" = [])), request_body = SyncRequest,
    responses((status = 200, body = SyncResponse), (status = 400, body = Problem),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn sync(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiJson(req): ApiJson<SyncRequest>,
) -> ApiResult<Json<SyncResponse>> {
    Ok(Json(blocking(&s, move |e| e.sync(a, &req)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct LogQuery {
    /// Device pseudonym, hex.
    pseudonym: String,
    /// First sequence number wanted.
    #[serde(default)]
    from_seq: u64,
}

/// Stored tap-log entries of a device (recovery after a power loss).
#[utoipa::path(get, path = "/v1/wallet/log", security(("bearer" = [])), params(LogQuery),
    responses((status = 200, body = LogResponse), (status = 404, body = Problem)))]
async fn wallet_log(
    State(s): State<AppState>,
    Auth(a): Auth,
    ApiQuery(q): ApiQuery<LogQuery>,
) -> ApiResult<Json<LogResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.wallet_log(a, &q.pseudonym, q.from_seq)).await?,
    ))
}

fn etag_matches(headers: &HeaderMap, etag: &str) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|t| t.trim().trim_start_matches("W/"))
        .any(|t| t == etag || t == "*")
}

/// The signed validator config bundle (`ValidatorConfig` encoding). ETag = bundle version.
#[utoipa::path(get, path = "/v1/validator/config",
    responses((status = 200, description = "encoded ValidatorConfig",
               content_type = "application/octet-stream"),
              (status = 304, description = "not modified (If-None-Match)")))]
async fn validator_config(State(s): State<AppState>, headers: HeaderMap) -> ApiResult<Response> {
    let (version, bytes) = blocking(&s, |e| e.config_bundle()).await?;
    let etag = format!("\"{version}\"");
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiError::internal(&e))?;
    if etag_matches(&headers, &etag) {
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, etag_value)]).into_response());
    }
    Ok((
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/octet-stream"),
            ),
            (header::ETAG, etag_value),
            (header::CACHE_CONTROL, HeaderValue::from_static("no-cache")),
        ],
        bytes,
    )
        .into_response())
}

/// Upload a validator-signed `TapBatch` (binary body). Idempotent by batch id.
#[utoipa::path(post, path = "/v1/validator/batches",
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "encoded TapBatch"),
    responses((status = 200, body = BatchResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem)))]
async fn upload_batch(
    State(s): State<AppState>,
    RawBody(body): RawBody,
) -> ApiResult<Json<BatchResponse>> {
    Ok(Json(blocking(&s, move |e| e.ingest_batch(&body)).await?))
}

/// Register (or re-key) a validator.
#[utoipa::path(post, path = "/v1/admin/validators", security(("admin" = [])),
    request_body = RegisterValidatorRequest,
    responses((status = 200, body = RegisterValidatorResponse), (status = 400, body = Problem),
              (status = 403, body = Problem)))]
async fn register_validator(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<RegisterValidatorRequest>,
) -> ApiResult<Json<RegisterValidatorResponse>> {
    Ok(Json(
        blocking(&s, move |e| e.register_validator(&req)).await?,
    ))
}

/// Issuer keys (public halves).
#[utoipa::path(get, path = "/v1/admin/issuer-keys", security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 403, body = Problem)))]
async fn list_keys(State(s): State<AppState>, _a: Admin) -> ApiResult<Json<KeysResponse>> {
    Ok(Json(blocking(&s, |e| e.keys()).await?))
}

/// Rotate: add a new issuer key, retire the old one for new certificates.
#[utoipa::path(post, path = "/v1/admin/issuer-keys/rotate", security(("admin" = [])),
    responses((status = 200, body = KeysResponse), (status = 403, body = Problem)))]
async fn rotate_keys(State(s): State<AppState>, _a: Admin) -> ApiResult<Json<KeysResponse>> {
    Ok(Json(blocking(&s, |e| e.rotate_key()).await?))
}

/// Open fraud cases.
#[utoipa::path(get, path = "/v1/admin/fraud-cases", security(("admin" = [])),
    responses((status = 200, body = Vec<FraudCase>), (status = 403, body = Problem)))]
async fn fraud_cases(State(s): State<AppState>, _a: Admin) -> ApiResult<Json<Vec<FraudCase>>> {
    Ok(Json(blocking(&s, |e| e.fraud_cases()).await?))
}

/// Ledger invariant checks.
#[utoipa::path(get, path = "/v1/admin/audit", security(("admin" = [])),
    responses((status = 200, body = AuditReport), (status = 403, body = Problem)))]
async fn audit(State(s): State<AppState>, _a: Admin) -> ApiResult<Json<AuditReport>> {
    Ok(Json(blocking(&s, |e| e.audit()).await?))
}

/// Append a manual ledger adjustment (idempotent by key).
#[utoipa::path(post, path = "/v1/admin/adjustments", security(("admin" = [])),
    request_body = AdjustmentRequest,
    responses((status = 200, body = AdjustmentResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 404, body = Problem)))]
async fn adjust(
    State(s): State<AppState>,
    _a: Admin,
    ApiJson(req): ApiJson<AdjustmentRequest>,
) -> ApiResult<Json<AdjustmentResponse>> {
    Ok(Json(blocking(&s, move |e| e.adjust(&req)).await?))
}

#[derive(Deserialize, utoipa::IntoParams)]
struct PhoneQuery {
    phone: String,
}

/// Sandbox only: the live one-time code of a phone number.
#[utoipa::path(get, path = "/sandbox/otp", params(PhoneQuery),
    responses((status = 200, body = SandboxOtp), (status = 404, body = Problem)))]
async fn sandbox_otp(
    State(s): State<AppState>,
    ApiQuery(q): ApiQuery<PhoneQuery>,
) -> ApiResult<Json<SandboxOtp>> {
    Ok(Json(blocking(&s, move |e| e.sandbox_otp(&q.phone)).await?))
}

fn valid_token(t: &str) -> ApiResult<()> {
    if t.len() == 32 && t.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(ApiError::not_found("unknown_payment", "no such payment"))
    }
}

/// Sandbox gateway: the payment page (HTML with pay and cancel).
#[utoipa::path(get, path = "/sandbox/pay/{token}",
    params(("token" = String, Path, description = "payment token")),
    responses((status = 200, description = "HTML payment page", content_type = "text/html"),
              (status = 404, body = Problem)))]
async fn gateway_page(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Html<String>> {
    valid_token(&token)?;
    let t = token.clone();
    let (amount, status, expires_at) = blocking(&s, move |e| e.gateway_payment(&t)).await?;
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
#[utoipa::path(post, path = "/sandbox/pay/{token}",
    params(("token" = String, Path, description = "payment token")),
    responses((status = 303, description = "redirect to /v1/topups/callback"),
              (status = 404, body = Problem), (status = 409, body = Problem)))]
async fn gateway_pay(State(s): State<AppState>, Path(token): Path<String>) -> ApiResult<Redirect> {
    valid_token(&token)?;
    let url = blocking(&s, move |e| e.gateway_pay(&token, true)).await?;
    Ok(Redirect::to(&url))
}

/// Sandbox gateway: cancel; redirects (303) to the backend's callback.
#[utoipa::path(post, path = "/sandbox/pay/{token}/cancel",
    params(("token" = String, Path, description = "payment token")),
    responses((status = 303, description = "redirect to /v1/topups/callback"),
              (status = 404, body = Problem)))]
async fn gateway_cancel(
    State(s): State<AppState>,
    Path(token): Path<String>,
) -> ApiResult<Redirect> {
    valid_token(&token)?;
    let url = blocking(&s, move |e| e.gateway_pay(&token, false)).await?;
    Ok(Redirect::to(&url))
}

async fn not_found() -> ApiError {
    ApiError::not_found("not_found", "no such endpoint")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this endpoint does not take that method",
    )
}

/// Structured access log: method, path (no query, no headers), status, duration.
async fn access_log(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let start = std::time::Instant::now();
    let resp = next.run(req).await;
    let status = resp.status().as_u16();
    let ms = start.elapsed().as_secs_f64() * 1e3;
    if status >= 500 {
        tracing::error!(%method, %path, status, ms, "request");
    } else {
        tracing::info!(%method, %path, status, ms, "request");
    }
    resp
}

struct SecurityAddon;

impl utoipa::Modify for SecurityAddon {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
        components.add_security_scheme(
            "admin",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// The OpenAPI 3 document of this API.
#[derive(OpenApi)]
#[openapi(
    info(title = "ManCard backend", description = "Issuance, top-up, settlement and reconciliation. Errors are RFC 9457 problem documents (application/problem+json) with a stable `code`."),
    paths(healthz, request_otp, create_session, account, nonce, provision, replenish,
          create_topup, topup_status, topup_callback, sync, wallet_log, validator_config,
          upload_batch, register_validator, list_keys, rotate_keys, fraud_cases, audit, adjust,
          sandbox_otp, gateway_page, gateway_pay, gateway_cancel),
    components(schemas(Problem, LedgerEntry, KeyInfo, TapResult)),
    modifiers(&SecurityAddon)
)]
pub struct ApiDoc;

/// The router of the whole API.
pub fn router(state: AppState) -> Router {
    let policy = &state.config().policy;
    let (json_limit, batch_limit) = (policy.json_body_limit, policy.batch_body_limit);
    let mut r = Router::new()
        .route("/healthz", get(healthz))
        .route("/openapi.json", get(openapi_json))
        .route("/v1/auth/otp", post(request_otp))
        .route("/v1/auth/session", post(create_session))
        .route("/v1/account", get(account))
        .route("/v1/credential/nonce", post(nonce))
        .route("/v1/credential/provision", post(provision))
        .route("/v1/credential/replenish", post(replenish))
        .route("/v1/topups", post(create_topup))
        .route("/v1/topups/callback", get(topup_callback))
        .route("/v1/topups/{intent_id}", get(topup_status))
        .route("/v1/wallet/sync", post(sync))
        .route("/v1/wallet/log", get(wallet_log))
        .route("/v1/validator/config", get(validator_config))
        .route(
            "/v1/validator/batches",
            post(upload_batch).layer(DefaultBodyLimit::max(batch_limit)),
        )
        .route("/v1/admin/validators", post(register_validator))
        .route("/v1/admin/issuer-keys", get(list_keys))
        .route("/v1/admin/issuer-keys/rotate", post(rotate_keys))
        .route("/v1/admin/fraud-cases", get(fraud_cases))
        .route("/v1/admin/audit", get(audit))
        .route("/v1/admin/adjustments", post(adjust));
    if state.config().sandbox {
        r = r
            .route("/sandbox/otp", get(sandbox_otp))
            .route("/sandbox/pay/{token}", get(gateway_page).post(gateway_pay))
            .route("/sandbox/pay/{token}/cancel", post(gateway_cancel));
    }
    r.fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(json_limit))
        .layer(middleware::from_fn(access_log))
        .with_state(state)
}
