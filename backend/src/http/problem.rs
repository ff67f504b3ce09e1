//! The HTTP edge of errors: the one place that picks a status code and a stable
//! [`ProblemCode`] for each domain [`Error`], and renders the RFC 9457 problem document
//! (`application/problem+json`).

use crate::error::Error;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use mancard_api::{Problem, ProblemCode, PROBLEM_CONTENT_TYPE};

/// An error answer: status, stable code and a detail for the caller.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{status} {code}: {detail}")]
pub struct ApiProblem {
    pub status: StatusCode,
    pub code: ProblemCode,
    pub detail: String,
    /// Seconds for a `Retry-After` header (429 and 503 answers that know when to come back).
    pub retry_after: Option<u64>,
}

impl ApiProblem {
    pub fn new(status: StatusCode, code: ProblemCode, detail: impl Into<String>) -> Self {
        Self {
            status,
            code,
            detail: detail.into(),
            retry_after: None,
        }
    }

    /// The same answer with a `Retry-After: <secs>` header.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// A server-side failure: the cause is logged, the client sees a generic message.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            ProblemCode::Internal,
            "internal error; the request may be retried",
        )
    }
}

/// Status and code of each domain error.
fn classify(e: &Error) -> (StatusCode, ProblemCode) {
    use Error as E;
    use ProblemCode as C;
    match e {
        E::InvalidHex { .. } => (StatusCode::BAD_REQUEST, C::InvalidHex),
        E::InvalidLength { .. } => (StatusCode::BAD_REQUEST, C::InvalidLength),
        E::InvalidKey(_) => (StatusCode::BAD_REQUEST, C::InvalidKey),
        E::InvalidPhone(_) => (StatusCode::BAD_REQUEST, C::InvalidPhone),
        E::InvalidCode => (StatusCode::BAD_REQUEST, C::InvalidCode),
        E::InvalidRequestId => (StatusCode::BAD_REQUEST, C::InvalidRequestId),
        E::Unauthorized(_) => (StatusCode::UNAUTHORIZED, C::Unauthorized),
        E::CodeOfAnotherRequest => (StatusCode::UNAUTHORIZED, C::CodeOfAnotherRequest),
        E::RateLimited(_) => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
        E::SandboxOnly => (StatusCode::FORBIDDEN, C::SandboxOnly),
        E::NoSuchEndpoint => (StatusCode::NOT_FOUND, C::NotFound),
        E::SmsUnavailable => (StatusCode::SERVICE_UNAVAILABLE, C::SmsUnavailable),
        E::NoCode => (StatusCode::NOT_FOUND, C::NoCode),
        E::UnknownAccount => (StatusCode::NOT_FOUND, C::UnknownAccount),
        E::InvalidNonce => (StatusCode::BAD_REQUEST, C::InvalidNonce),
        E::BadProof => (StatusCode::BAD_REQUEST, C::BadProof),
        E::BindingKeyInUse => (StatusCode::CONFLICT, C::BindingKeyInUse),
        E::CredentialRevoked { .. } => (StatusCode::CONFLICT, C::CredentialRevoked),
        E::UnknownBindingKey | E::UnknownDevice => (StatusCode::NOT_FOUND, C::UnknownDevice),
        E::CountersExhausted => (StatusCode::CONFLICT, C::CountersExhausted),
        E::AccountFrozen => (StatusCode::FORBIDDEN, C::AccountFrozen),
        E::UnknownFraudCase(_) => (StatusCode::NOT_FOUND, C::UnknownFraudCase),
        E::FraudCaseResolved { .. } => (StatusCode::CONFLICT, C::FraudCaseResolved),
        E::InvalidResolution(_) => (StatusCode::BAD_REQUEST, C::InvalidResolution),
        E::IssuanceRateLimited { .. } => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
        E::GatewayUnavailable => (StatusCode::SERVICE_UNAVAILABLE, C::GatewayUnavailable),
        E::InvalidAmount { .. } => (StatusCode::BAD_REQUEST, C::InvalidAmount),
        E::InvalidIdempotencyKey(_) => (StatusCode::BAD_REQUEST, C::InvalidIdempotencyKey),
        E::IdempotencyConflict => (StatusCode::CONFLICT, C::IdempotencyConflict),
        E::UnknownIntent => (StatusCode::NOT_FOUND, C::UnknownIntent),
        E::UnknownPayment => (StatusCode::NOT_FOUND, C::UnknownPayment),
        E::PaymentExpired => (StatusCode::CONFLICT, C::PaymentExpired),
        E::VerificationFailed => (StatusCode::CONFLICT, C::VerificationFailed),
        E::TooManyEntries { .. } => (StatusCode::BAD_REQUEST, C::TooManyEntries),
        E::InvalidCursor => (StatusCode::BAD_REQUEST, C::InvalidCursor),
        E::InvalidEntry(_) => (StatusCode::BAD_REQUEST, C::InvalidEntry),
        E::ChainGap { .. } => (StatusCode::CONFLICT, C::ChainGap),
        E::ChainConflict(_) => (StatusCode::CONFLICT, C::ChainConflict),
        E::InvalidBatch(_) => (StatusCode::BAD_REQUEST, C::InvalidBatch),
        E::UnknownValidator(_) => (StatusCode::FORBIDDEN, C::UnknownValidator),
        E::BadBatchSignature => (StatusCode::FORBIDDEN, C::BadBatchSignature),
        E::NonCanonicalBatchSignature => (StatusCode::FORBIDDEN, C::NonCanonicalSignature),
        E::BatchIdConflict => (StatusCode::CONFLICT, C::BatchIdConflict),
        E::InvalidAdjustment => (StatusCode::BAD_REQUEST, C::InvalidAdjustment),
        E::InvalidLines { .. } => (StatusCode::BAD_REQUEST, C::InvalidLines),
        E::NoSuchValidator(_) => (StatusCode::NOT_FOUND, C::UnknownValidator),
        E::UnknownAdjustment(_) => (StatusCode::NOT_FOUND, C::UnknownAdjustment),
        E::SelfApproval => (StatusCode::FORBIDDEN, C::SelfApproval),
        E::AdjustmentDecided { .. } => (StatusCode::CONFLICT, C::AdjustmentDecided),
        E::InvalidDecision(_) => (StatusCode::BAD_REQUEST, C::InvalidAdjustment),
        E::Store(s) if s.is_busy() => (StatusCode::SERVICE_UNAVAILABLE, C::Busy),
        E::Store(_) | E::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, C::Internal),
        E::GatewayDown => (StatusCode::SERVICE_UNAVAILABLE, C::GatewayUnavailable),
        E::SmsFailed => (StatusCode::SERVICE_UNAVAILABLE, C::SmsUnavailable),
        E::RetryLater { .. } => (StatusCode::TOO_MANY_REQUESTS, C::RateLimited),
        E::InvalidPhoneNumber(_) => (StatusCode::BAD_REQUEST, C::InvalidPhone),
        E::ProofRequired => (StatusCode::FORBIDDEN, C::ProofRequired),
        E::BadRequestProof(_) => (StatusCode::FORBIDDEN, C::BadRequestProof),
        E::WrongDevice => (StatusCode::FORBIDDEN, C::WrongDevice),
        E::UnknownSession => (StatusCode::NOT_FOUND, C::UnknownSession),
        E::InvalidQueryValue(_) => (StatusCode::BAD_REQUEST, C::InvalidQuery),
        E::TooManyIssuerKeys { .. } => (StatusCode::CONFLICT, C::TooManyIssuerKeys),
        E::NewerSession => (StatusCode::FORBIDDEN, C::NewerSession),
    }
}

impl From<Error> for ApiProblem {
    fn from(e: Error) -> Self {
        if let Error::RetryLater { retry_after, .. } = e {
            let (status, code) = classify(&e);
            return Self::new(status, code, e.to_string()).with_retry_after(retry_after.max(1));
        }
        match classify(&e) {
            (_, ProblemCode::Internal) => Self::internal(&e),
            (status, ProblemCode::Busy) => {
                Self::new(status, ProblemCode::Busy, "the database is busy; retry")
                    .with_retry_after(1)
            }
            (status, code) => Self::new(status, code, e.to_string()),
        }
    }
}

impl IntoResponse for ApiProblem {
    fn into_response(self) -> Response {
        let body = Problem {
            type_: format!("https://mancard.invalid/problems/{}", self.code),
            title: self
                .status
                .canonical_reason()
                .unwrap_or("Error")
                .to_string(),
            status: self.status.as_u16(),
            detail: self.detail,
            code: self.code,
        };
        let bytes = serde_json::to_vec(&body).unwrap_or_default();
        let mut resp = (
            self.status,
            [(header::CONTENT_TYPE, PROBLEM_CONTENT_TYPE)],
            bytes,
        )
            .into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}

/// The result of a handler.
pub type HttpResult<T> = Result<T, ApiProblem>;
