//! RFC 9457 problem documents and the stable codes clients switch on.

use serde::{Deserialize, Serialize};

/// The media type of every error answer.
pub const PROBLEM_CONTENT_TYPE: &str = "application/problem+json";

/// The RFC 9457 problem document every error answer carries.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Problem {
    /// URI naming the problem type.
    #[serde(rename = "type")]
    pub type_: String,
    pub title: String,
    pub status: u16,
    pub detail: String,
    /// Stable machine-readable code.
    pub code: ProblemCode,
}

macro_rules! problem_codes {
    ($($(#[$doc:meta])* $variant:ident = $text:literal,)+) => {
        /// A stable problem code: the contract between the backend and its clients (the words
        /// in `detail` may change; these never do). Serialized as its snake_case text.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum ProblemCode {
            $($(#[$doc])* #[serde(rename = $text)] $variant,)+
            /// A code this build does not know (a newer server); clients treat it by status.
            #[serde(other, rename = "unknown")]
            Unknown,
        }

        impl ProblemCode {
            /// Every known code.
            pub const ALL: &'static [ProblemCode] = &[$(ProblemCode::$variant,)+];

            /// The code's wire text.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(ProblemCode::$variant => $text,)+
                    ProblemCode::Unknown => "unknown",
                }
            }
        }
    };
}

problem_codes! {
    // request shape
    InvalidJson = "invalid_json",
    InvalidQuery = "invalid_query",
    InvalidBody = "invalid_body",
    InvalidHex = "invalid_hex",
    InvalidLength = "invalid_length",
    InvalidKey = "invalid_key",
    PayloadTooLarge = "payload_too_large",
    UnsupportedMediaType = "unsupported_media_type",
    NotFound = "not_found",
    MethodNotAllowed = "method_not_allowed",
    // authentication
    Unauthorized = "unauthorized",
    BadAdminToken = "bad_admin_token",
    AdminDisabled = "admin_disabled",
    RateLimited = "rate_limited",
    // accounts
    InvalidPhone = "invalid_phone",
    InvalidCode = "invalid_code",
    InvalidRequestId = "invalid_request_id",
    CodeOfAnotherRequest = "code_of_another_request",
    NoCode = "no_code",
    SmsUnavailable = "sms_unavailable",
    UnknownAccount = "unknown_account",
    // issuance
    InvalidNonce = "invalid_nonce",
    BadProof = "bad_proof",
    BindingKeyInUse = "binding_key_in_use",
    UnknownDevice = "unknown_device",
    CredentialRevoked = "credential_revoked",
    CountersExhausted = "counters_exhausted",
    AccountFrozen = "account_frozen",
    UnknownFraudCase = "unknown_fraud_case",
    FraudCaseResolved = "fraud_case_resolved",
    InvalidResolution = "invalid_resolution",
    // top-up
    InvalidAmount = "invalid_amount",
    InvalidIdempotencyKey = "invalid_idempotency_key",
    IdempotencyConflict = "idempotency_conflict",
    UnknownIntent = "unknown_intent",
    UnknownPayment = "unknown_payment",
    PaymentExpired = "payment_expired",
    GatewayUnavailable = "gateway_unavailable",
    VerificationFailed = "verification_failed",
    SandboxOnly = "sandbox_only",
    // sync and settlement
    InvalidCursor = "invalid_cursor",
    InvalidEntry = "invalid_entry",
    TooManyEntries = "too_many_entries",
    ChainGap = "chain_gap",
    /// The uploaded log entries do not continue the stored chain, and no two signed taps prove
    /// a fork: refused, no fraud case.
    ChainConflict = "chain_conflict",
    InvalidBatch = "invalid_batch",
    BadBatchSignature = "bad_batch_signature",
    /// A high-S (malleated) signature: a modified copy, never what an honest signer sends.
    NonCanonicalSignature = "non_canonical_signature",
    BatchIdConflict = "batch_id_conflict",
    UnknownValidator = "unknown_validator",
    // operators
    InvalidLines = "invalid_lines",
    InvalidAdjustment = "invalid_adjustment",
    // server
    Busy = "busy",
    Internal = "internal",
    // operators (issue #15)
    /// A valid operator credential whose scopes do not allow this endpoint.
    MissingScope = "missing_scope",
    UnknownAdjustment = "unknown_adjustment",
    /// The operator who requested an adjustment cannot approve it.
    SelfApproval = "self_approval",
    /// The adjustment was decided the other way already.
    AdjustmentDecided = "adjustment_decided",
    /// The request was refused at once because the server is handling as many as it can
    /// (503 with `Retry-After`).
    Overloaded = "overloaded",
    /// The request's body came too slowly or its answer took too long (408).
    RequestTimeout = "request_timeout",
    // sessions (issue #15)
    /// A bound session called an endpoint that needs a `ManCard-Proof` header without one.
    ProofRequired = "proof_required",
    /// The `ManCard-Proof` header is malformed or its signature does not verify.
    BadRequestProof = "bad_request_proof",
    /// A session bound to one device asked for a credential for another binding key.
    WrongDevice = "wrong_device",
    UnknownSession = "unknown_session",
    /// Rotating the issuer key would list more keys than a config bundle may carry (409).
    TooManyIssuerKeys = "too_many_issuer_keys",
    /// A session asked to end a session made after it (403).
    NewerSession = "newer_session",
}

/// The schema lists the wire texts (a derived schema would list the variant names: the
/// derive does not see the `serde(rename)` written by the macro above). `unknown` is not
/// listed: a server never sends it.
#[cfg(feature = "openapi")]
impl utoipa::PartialSchema for ProblemCode {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        use utoipa::openapi::schema::{ObjectBuilder, Schema, Type};
        let object = ObjectBuilder::new()
            .schema_type(Type::String)
            .description(Some(
                "A stable problem code: the contract between the backend and its clients (the \
                 words in `detail` may change; these never do).",
            ))
            .enum_values(Some(ProblemCode::ALL.iter().map(|c| c.as_str())))
            .build();
        utoipa::openapi::RefOr::T(Schema::Object(object))
    }
}

#[cfg(feature = "openapi")]
impl utoipa::ToSchema for ProblemCode {}

impl std::fmt::Display for ProblemCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_round_trips_as_its_text() {
        for code in ProblemCode::ALL {
            let json = serde_json::to_string(code).unwrap_or_default();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ProblemCode = serde_json::from_str(&json).unwrap_or(ProblemCode::Unknown);
            assert_eq!(back, *code);
        }
    }

    #[test]
    fn a_code_from_a_newer_server_is_unknown_not_an_error() {
        let c: Result<ProblemCode, _> = serde_json::from_str("\"brand_new_code\"");
        assert_eq!(c.ok(), Some(ProblemCode::Unknown));
    }
}
