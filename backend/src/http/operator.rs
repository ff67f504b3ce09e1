//! How an operator proves who they are on `/v1/admin/*`, what their scopes allow, and the
//! operator log every admin request lands in (refused ones too).
//!
//! 401: no credential, or one that names no operator (`unauthorized`, `bad_admin_token`);
//! 403: a named operator whose scopes do not allow the endpoint (`missing_scope`), or no
//! operator configured at all (`admin_disabled`). The token never reaches a log or an answer.

use super::extract::bearer;
use super::problem::{ApiProblem, HttpResult};
use super::{blocking, AppState};
use crate::operators::Operator;
use crate::store::NewLogRow;
use axum::extract::FromRequestParts;
use axum::http::{request::Parts, StatusCode};
use axum::response::{IntoResponse, Response};
use mancard_api::{ProblemCode, Scope};
use std::marker::PhantomData;

/// The scopes an endpoint accepts (any one of them).
pub trait Scopes {
    const ANY_OF: &'static [Scope];
}

macro_rules! scopes {
    ($($(#[$doc:meta])* $name:ident = [$($scope:ident),+];)+) => {$(
        $(#[$doc])*
        pub struct $name;
        impl Scopes for $name {
            const ANY_OF: &'static [Scope] = &[$(Scope::$scope),+];
        }
    )+};
}

scopes! {
    /// Reading the books.
    ForRead = [Read];
    /// Reading the issuer keys.
    ForKeysRead = [Read, Keys];
    /// Changing keys and validators.
    ForKeys = [Keys];
    /// Reading fraud cases.
    ForFraudRead = [Read, Fraud];
    /// Resolving fraud cases.
    ForFraud = [Fraud];
    /// Reading pending adjustments.
    ForAdjustRead = [Read, Adjust];
    /// Requesting and deciding adjustments.
    ForAdjust = [Adjust];
}

/// A named operator whose scopes allow the endpoint (`S`), and the request it made (for the
/// operator log).
pub struct Admin<S> {
    pub operator: Operator,
    /// `METHOD /path` as requested (no query string).
    pub target: String,
    _scopes: PhantomData<S>,
}

impl<S> Admin<S> {
    pub fn name(&self) -> &str {
        self.operator.name()
    }
}

/// Logs a refused admin request and answers the refusal. Only an identified operator's
/// refusal is a row of the chained operator log: anyone can send requests with no token or a
/// made-up one, and each would be a write to the one SQLite writer and a row burying the
/// operators' real actions (attack review of #15); those go to the process log as a warning.
async fn refuse(
    state: &AppState,
    operator: Option<&str>,
    target: String,
    problem: ApiProblem,
) -> ApiProblem {
    let Some(operator) = operator.map(str::to_string) else {
        tracing::warn!(%target, code = %problem.code, "admin request refused: no operator");
        return problem;
    };
    let operator = Some(operator);
    let outcome = problem.status.as_u16().to_string();
    let detail = format!("refused: {}: {}", problem.code, problem.detail);
    let logged = blocking(state, move |e| {
        e.record_operator_log(&NewLogRow {
            at: e.now(),
            operator: operator.as_deref(),
            action: "request",
            target: &target,
            outcome: &outcome,
            detail: &detail,
        })
    })
    .await;
    if let Err(e) = logged {
        tracing::error!(error = %e, "the operator log refused a row");
    }
    problem
}

impl<S: Scopes + Send + Sync> FromRequestParts<AppState> for Admin<S> {
    type Rejection = ApiProblem;
    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let target = format!("{} {}", parts.method, parts.uri.path());
        let operators = &state.config().operators;
        if operators.is_empty() {
            let p = ApiProblem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::AdminDisabled,
                "no operator is configured; the admin endpoints are off",
            );
            return Err(refuse(state, None, target, p).await);
        }
        let token = match bearer(parts) {
            Ok(t) => t,
            Err(p) => return Err(refuse(state, None, target, p).await),
        };
        let Some(op) = operators.authenticate(&token) else {
            let p = ApiProblem::new(
                StatusCode::UNAUTHORIZED,
                ProblemCode::BadAdminToken,
                "this token names no operator",
            );
            return Err(refuse(state, None, target, p).await);
        };
        if !op.allows(S::ANY_OF) {
            let need: Vec<&str> = S::ANY_OF.iter().map(|s| s.as_str()).collect();
            let p = ApiProblem::new(
                StatusCode::FORBIDDEN,
                ProblemCode::MissingScope,
                format!(
                    "operator {} lacks the scope for this endpoint (needs one of: {})",
                    op.name(),
                    need.join(", ")
                ),
            );
            return Err(refuse(state, Some(op.name()), target, p).await);
        }
        Ok(Self {
            operator: op.clone(),
            target,
            _scopes: PhantomData,
        })
    }
}

/// A success and the facts the operator log keeps of it.
pub fn noted<T: IntoResponse>(v: T, note: String) -> (String, Response) {
    (note, v.into_response())
}

/// Answers an admin request and records it in the operator log: who, what, the status, and
/// the facts of a success or the problem.
pub async fn audited<S>(
    state: &AppState,
    admin: &Admin<S>,
    result: HttpResult<(String, Response)>,
) -> Response {
    let (detail, response) = match result {
        Ok(v) => v,
        Err(p) => (
            format!("refused: {}: {}", p.code, p.detail),
            p.into_response(),
        ),
    };
    let operator = admin.name().to_string();
    let target = admin.target.clone();
    let outcome = response.status().as_u16().to_string();
    let logged = blocking(state, move |e| {
        e.record_operator_log(&NewLogRow {
            at: e.now(),
            operator: Some(&operator),
            action: "request",
            target: &target,
            outcome: &outcome,
            detail: &detail,
        })
    })
    .await;
    if let Err(e) = logged {
        tracing::error!(error = %e, "the operator log refused a row");
    }
    response
}
