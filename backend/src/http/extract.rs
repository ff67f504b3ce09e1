//! Extractors that turn every malformed input into a problem response, and the two ways a
//! caller proves who it is (a rider's session; operators in `operator.rs`).

use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState};
use crate::error::Error;
use crate::features::sessions::{ProvenRequest, SessionCtx};
use crate::ids::AccountId;
use axum::body::{Body, Bytes};
use axum::extract::{FromRequest, FromRequestParts, Query, Request};
use axum::http::{header, request::Parts, StatusCode};
use axum::Json;
use mancard_api::endpoints::PROOF_HEADER;
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

/// A rider's session with its id and device binding (for the calls that bind or end sessions).
pub struct RiderSession(pub SessionCtx);

impl FromRequestParts<AppState> for RiderSession {
    type Rejection = ApiProblem;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let token = bearer(parts)?;
        Ok(Self(blocking(state, move |e| e.session(&token)).await?))
    }
}

/// A request of a session whose `ManCard-Proof` (if the session is bound) verified over this
/// very request (method, path, body), with its JSON body. Order: the session (401), the body
/// (400/413/415), then the proof (403; its nonce is consumed).
pub struct Proven<T>(pub SessionCtx, pub T);

/// An empty body (the proven calls that send none).
pub struct NoBody;

/// How a proven request's body is read.
pub trait ProvenBody: Sized {
    fn parse(
        parts: &Parts,
        bytes: &Bytes,
    ) -> impl std::future::Future<Output = HttpResult<Self>> + Send;
}

impl<T: DeserializeOwned + Send> ProvenBody for ApiJson<T> {
    async fn parse(parts: &Parts, bytes: &Bytes) -> HttpResult<Self> {
        let mut req = Request::new(Body::from(bytes.clone()));
        *req.headers_mut() = parts.headers.clone();
        ApiJson::<T>::from_request(req, &()).await
    }
}

impl ProvenBody for NoBody {
    async fn parse(_: &Parts, _: &Bytes) -> HttpResult<Self> {
        Ok(Self)
    }
}

impl<T: ProvenBody + Send> FromRequest<AppState> for Proven<T> {
    type Rejection = ApiProblem;
    async fn from_request(req: Request, state: &AppState) -> Result<Self, Self::Rejection> {
        let (parts, body) = req.into_parts();
        let token = bearer(&parts)?;
        let session = blocking(state, move |e| e.session(&token)).await?;
        let proof = parts
            .headers
            .get(PROOF_HEADER)
            .map(|v| v.to_str().map(str::to_string))
            .transpose()
            .map_err(|_| {
                ApiProblem::from(Error::BadRequestProof(
                    "the ManCard-Proof header is not text",
                ))
            })?;
        let RawBody(bytes) =
            RawBody::from_request(Request::from_parts(parts.clone(), body), state).await?;
        let parsed = T::parse(&parts, &bytes).await?;
        let method = parts.method.as_str().to_string();
        let path = parts.uri.path().to_string();
        let s = session.clone();
        blocking(state, move |e| {
            let req = ProvenRequest {
                method: &method,
                path: &path,
                body: &bytes,
            };
            e.check_proof(&s, proof.as_deref(), req)
        })
        .await?;
        Ok(Self(session, parsed))
    }
}

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
