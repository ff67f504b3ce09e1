//! Extractors that turn every malformed input into a problem response, and the two ways a
//! caller proves who it is (a rider's session; operators in `operator.rs`).

use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState};
use crate::ids::AccountId;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::Json;
use mancard_api::ProblemCode;
use serde::de::DeserializeOwned;

/// JSON body whose rejections are problem documents.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiProblem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Json::<T>::from_request(req, state).await {
            Ok(Json(v)) => Ok(Self(v)),
            Err(rej) => {
                let status = rej.status();
                let code = match status {
                    StatusCode::PAYLOAD_TOO_LARGE => ProblemCode::PayloadTooLarge,
                    StatusCode::UNSUPPORTED_MEDIA_TYPE => ProblemCode::UnsupportedMediaType,
                    _ => ProblemCode::InvalidJson,
                };
                Err(ApiProblem::new(status, code, rej.body_text()))
            }
        }
    }
}

/// Query string whose rejections are problem documents.
pub struct ApiQuery<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiProblem;
    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Query::<T>::from_request_parts(parts, state).await {
            Ok(Query(v)) => Ok(Self(v)),
            Err(rej) => Err(ApiProblem::new(
                StatusCode::BAD_REQUEST,
                ProblemCode::InvalidQuery,
                rej.body_text(),
            )),
        }
    }
}

/// Raw body whose rejections (size limit) are problem documents.
pub struct RawBody(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for RawBody {
    type Rejection = ApiProblem;
    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        match Bytes::from_request(req, state).await {
            Ok(b) => Ok(Self(b)),
            Err(rej) => Err(ApiProblem::new(
                rej.status(),
                if rej.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ProblemCode::PayloadTooLarge
                } else {
                    ProblemCode::InvalidBody
                },
                rej.body_text(),
            )),
        }
    }
}

fn unauthorized(detail: &str) -> ApiProblem {
    ApiProblem::new(StatusCode::UNAUTHORIZED, ProblemCode::Unauthorized, detail)
}

pub(super) fn bearer(parts: &Parts) -> HttpResult<String> {
    let h = parts
        .headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| unauthorized("missing Authorization: Bearer header"))?;
    let t = h
        .strip_prefix("Bearer ")
        .ok_or_else(|| unauthorized("Authorization must be a Bearer token"))?;
    Ok(t.trim().to_string())
}

/// A rider's session: the account.
pub struct Session(pub AccountId);

impl FromRequestParts<AppState> for Session {
    type Rejection = ApiProblem;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        let id = blocking(state, move |e| e.authenticate(&token)).await?;
        Ok(Self(id))
    }
}
