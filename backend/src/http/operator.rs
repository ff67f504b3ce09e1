//! How an operator proves who they are on `/v1/admin/*`.

use super::extract::bearer;
use super::problem::ApiProblem;
use super::AppState;
use axum::extract::FromRequestParts;
use axum::http::{request::Parts, StatusCode};
use mancard_api::ProblemCode;

/// The operator (admin token from the configuration).
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiProblem;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let Some(expected) = state.config().admin_token.as_deref() else {
            return Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::AdminDisabled,
                "no admin token is configured",
            ));
        };
        let token = bearer(parts)?;
        // compare digests: equal-length inputs, no early exit on the secret itself
        let a = mancard_protocol::sha256(&[token.as_bytes()]);
        let b = mancard_protocol::sha256(&[expected.as_bytes()]);
        if a != b {
            return Err(ApiProblem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::BadAdminToken,
                "wrong admin token",
            ));
        }
        Ok(Self)
    }
}
