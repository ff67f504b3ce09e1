//! `/v1/validator/*`: the signed config bundle and signed batch upload.

use super::extract::RawBody;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState, Problem};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use mancard_api::endpoints::{VALIDATOR_BATCHES, VALIDATOR_CONFIG};
use mancard_api::BatchResponse;

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
    responses((status = 200, description = "encoded ValidatorConfig",
               content_type = "application/octet-stream"),
              (status = 304, description = "not modified (If-None-Match)")))]
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

/// Upload a validator-signed `TapBatch` (binary body). Idempotent by batch id.
#[utoipa::path(post, path = VALIDATOR_BATCHES.path,
    request_body(content = Vec<u8>, content_type = "application/octet-stream",
                 description = "encoded TapBatch"),
    responses((status = 200, body = BatchResponse), (status = 400, body = Problem),
              (status = 403, body = Problem), (status = 409, body = Problem),
              (status = 413, body = Problem)))]
pub(crate) async fn upload_batch(
    State(s): State<AppState>,
    RawBody(body): RawBody,
) -> HttpResult<Json<BatchResponse>> {
    Ok(Json(blocking(&s, move |e| e.ingest_batch(&body)).await?))
}
