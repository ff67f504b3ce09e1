//! `/v1/validator/*`: the signed config bundle and signed batch upload.

use super::admission::UploadPass;
use super::extract::RawBody;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, FromRequest, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use mancard_api::endpoints::{VALIDATOR_BATCHES, VALIDATOR_CONFIG};
use mancard_api::{BatchResponse, ProblemCode};

pub(super) fn routes(batch_limit: usize) -> Router<AppState> {
    Router::new()
        .route(VALIDATOR_CONFIG.path, get(validator_config))
        .route(
            VALIDATOR_BATCHES.path,
            post(upload_batch).layer(DefaultBodyLimit::max(batch_limit)),
        )
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
#[utoipa::path(get, path = VALIDATOR_CONFIG.path,
    params(("If-None-Match" = Option<String>, Header,
            description = "ETag of the bundle the validator has installed")),
    responses((status = 200, description = "encoded ValidatorConfig",
               content_type = "application/octet-stream",
               headers(("ETag" = String, description = "the bundle version, quoted"))),
              (status = 304, description = "not modified (If-None-Match)",
               headers(("ETag" = String, description = "the bundle version, quoted")))))]
pub(crate) async fn validator_config(
    State(s): State<AppState>,
    headers: HeaderMap,
) -> HttpResult<Response> {
    let bundle = blocking(&s, |e| e.config_bundle()).await?;
    let etag = format!("\"{}\"", bundle.version);
    let etag_value = HeaderValue::from_str(&etag).map_err(|e| ApiProblem::internal(&e))?;
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
        bundle.encoded,
    )
        .into_response())
}

/// The media type of binary bodies.
const BINARY: &str = "application/octet-stream";

/// A binary body that says so: anything else (a form, JSON, no type) is refused before the
/// bytes are read, as JSON endpoints refuse a body that is not JSON.
pub(super) struct Binary(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for Binary {
    type Rejection = ApiProblem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        require_binary(req.headers())?;
        let RawBody(b) = RawBody::from_request(req, state).await?;
        Ok(Self(b))
    }
}

fn require_binary(headers: &HeaderMap) -> HttpResult<()> {
    let media = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(str::trim);
    match media {
        Some(m) if m.eq_ignore_ascii_case(BINARY) => Ok(()),
        _ => Err(ApiProblem::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ProblemCode::UnsupportedMediaType,
            format!("Expected request with `Content-Type: {BINARY}`"),
        )),
    }
}

/// Upload a validator-signed `TapBatch` (binary body). Idempotent by batch id.
// `Vec<u8>` is rendered as a byte string (`format: binary`) by the completion pass.
#[utoipa::path(post, path = VALIDATOR_BATCHES.path,
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "encoded TapBatch"),
    responses((status = 200, body = BatchResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem), (status = 415, body = Problem)))]
pub(crate) async fn upload_batch(
    State(s): State<AppState>,
    pass: Option<Extension<UploadPass>>,
    Binary(body): Binary,
) -> HttpResult<Json<BatchResponse>> {
    Ok(Json(
        blocking(&s, move |e| {
            // the upload's lane is held until the ingest ends, answered or not
            let _held = pass;
            e.ingest_batch(&body)
        })
        .await?,
    ))
}
