//! Each endpoint's method, path and authentication, once. The backend's routers and every
//! client build their URLs from these constants.

/// The HTTP method of an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    Get,
    Post,
}

impl Method {
    /// The method's name as HTTP spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Get => "GET",
            Self::Post => "POST",
        }
    }
}

/// How a caller proves who it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Auth {
    /// Anyone may call it.
    Public,
    /// `Authorization: Bearer <session token>` from `POST /v1/auth/session`.
    Session,
    /// `Authorization: Bearer <operator token>`: a named operator whose scopes allow the call.
    Admin,
    /// No header: the body is signed by a registered validator key.
    ValidatorSigned,
    /// Served only when the backend runs with `--sandbox`.
    Sandbox,
}

/// One endpoint of the `/v1` API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Endpoint {
    pub method: Method,
    /// The path as axum routes it: `{name}` marks a path parameter.
    pub path: &'static str,
    pub auth: Auth,
}

impl Endpoint {
    const fn new(method: Method, path: &'static str, auth: Auth) -> Self {
        Self { method, path, auth }
    }

    /// The path with its one `{…}` parameter replaced by `value` (for clients).
    pub fn path_with(&self, value: &str) -> String {
        match (self.path.find('{'), self.path.find('}')) {
            (Some(open), Some(close)) if open < close => {
                let (head, _) = self.path.split_at(open);
                let (_, tail) = self.path.split_at(close.saturating_add(1));
                format!("{head}{value}{tail}")
            }
            _ => self.path.to_string(),
        }
    }
}

use Auth::{Admin, Public, Sandbox, Session, ValidatorSigned};
use Method::{Get, Post};

pub const HEALTHZ: Endpoint = Endpoint::new(Get, "/healthz", Public);
pub const OPENAPI: Endpoint = Endpoint::new(Get, "/openapi.json", Public);

pub const REQUEST_OTP: Endpoint = Endpoint::new(Post, "/v1/auth/otp", Public);
pub const CREATE_SESSION: Endpoint = Endpoint::new(Post, "/v1/auth/session", Public);
pub const ACCOUNT: Endpoint = Endpoint::new(Get, "/v1/account", Session);

pub const CREDENTIAL_NONCE: Endpoint = Endpoint::new(Post, "/v1/credential/nonce", Session);
pub const PROVISION: Endpoint = Endpoint::new(Post, "/v1/credential/provision", Session);
pub const REPLENISH: Endpoint = Endpoint::new(Post, "/v1/credential/replenish", Session);

pub const CREATE_TOPUP: Endpoint = Endpoint::new(Post, "/v1/topups", Session);
/// The gateway's redirect back (query [`CallbackQuery`](crate::CallbackQuery)); answers an
/// HTML page.
pub const TOPUP_CALLBACK: Endpoint = Endpoint::new(Get, "/v1/topups/callback", Public);
pub const TOPUP_STATUS: Endpoint = Endpoint::new(Get, "/v1/topups/{intent_id}", Session);

pub const WALLET_SYNC: Endpoint = Endpoint::new(Post, "/v1/wallet/sync", Session);
/// Query [`LogQuery`](crate::LogQuery).
pub const WALLET_LOG: Endpoint = Endpoint::new(Get, "/v1/wallet/log", Session);

/// The signed config bundle (binary); `If-None-Match` with the bundle version.
pub const VALIDATOR_CONFIG: Endpoint = Endpoint::new(Get, "/v1/validator/config", Public);
/// A signed tap batch (binary body).
pub const VALIDATOR_BATCHES: Endpoint =
    Endpoint::new(Post, "/v1/validator/batches", ValidatorSigned);

pub const ADMIN_VALIDATORS: Endpoint = Endpoint::new(Post, "/v1/admin/validators", Admin);
pub const ADMIN_DENY_VALIDATOR: Endpoint = Endpoint::new(Post, "/v1/admin/validators/deny", Admin);
pub const ADMIN_ISSUER_KEYS: Endpoint = Endpoint::new(Get, "/v1/admin/issuer-keys", Admin);
pub const ADMIN_ROTATE_KEYS: Endpoint = Endpoint::new(Post, "/v1/admin/issuer-keys/rotate", Admin);
/// Query [`FraudCasesQuery`](crate::admin::FraudCasesQuery): fraud cases (open by default).
pub const ADMIN_FRAUD_CASES: Endpoint = Endpoint::new(Get, "/v1/admin/fraud", Admin);
/// One fraud case with its evidence.
pub const ADMIN_FRAUD_CASE: Endpoint = Endpoint::new(Get, "/v1/admin/fraud/{id}", Admin);
/// Resolve a fraud case (body [`ResolveFraudRequest`](crate::admin::ResolveFraudRequest)).
pub const ADMIN_RESOLVE_FRAUD: Endpoint =
    Endpoint::new(Post, "/v1/admin/fraud/{id}/resolve", Admin);
pub const ADMIN_AUDIT: Endpoint = Endpoint::new(Get, "/v1/admin/audit", Admin);
pub const ADMIN_ADJUSTMENTS: Endpoint = Endpoint::new(Post, "/v1/admin/adjustments", Admin);
/// Adjustments waiting for a second operator, oldest first.
pub const ADMIN_PENDING_ADJUSTMENTS: Endpoint =
    Endpoint::new(Get, "/v1/admin/adjustments/pending", Admin);
/// A second operator approves (body [`DecideAdjustmentRequest`](crate::admin::DecideAdjustmentRequest)).
pub const ADMIN_APPROVE_ADJUSTMENT: Endpoint =
    Endpoint::new(Post, "/v1/admin/adjustments/{id}/approve", Admin);
/// Reject (or, by its requester, withdraw) a pending adjustment.
pub const ADMIN_REJECT_ADJUSTMENT: Endpoint =
    Endpoint::new(Post, "/v1/admin/adjustments/{id}/reject", Admin);
/// Query [`OperatorLogQuery`](crate::admin::OperatorLogQuery): the operator log.
pub const ADMIN_AUDIT_LOG: Endpoint = Endpoint::new(Get, "/v1/admin/audit-log", Admin);

/// Query [`PhoneQuery`](crate::PhoneQuery): the live one-time code (sandbox only).
pub const SANDBOX_OTP: Endpoint = Endpoint::new(Get, "/sandbox/otp", Sandbox);
/// The sandbox gateway's payment page (GET) and its "pay" button (POST).
pub const SANDBOX_PAY: Endpoint = Endpoint::new(Get, "/sandbox/pay/{token}", Sandbox);
pub const SANDBOX_PAY_SUBMIT: Endpoint = Endpoint::new(Post, "/sandbox/pay/{token}", Sandbox);
pub const SANDBOX_PAY_CANCEL: Endpoint =
    Endpoint::new(Post, "/sandbox/pay/{token}/cancel", Sandbox);

/// Ends the caller's session (204).
pub const LOGOUT: Endpoint = Endpoint::new(Post, "/v1/auth/logout", Session);
/// The account's live sessions ([`SessionList`](crate::SessionList)); never their tokens.
pub const SESSIONS: Endpoint = Endpoint::new(Get, "/v1/auth/sessions", Session);
/// Ends one session of the account (204); from a bound session it needs a `ManCard-Proof`.
pub const END_SESSION: Endpoint = Endpoint::new(Post, "/v1/auth/sessions/{id}/end", Session);
/// The header a bound session's money and credential calls carry:
/// `<nonce hex>.<signature hex>`, see `mancard_protocol::provision::request_transcript`.
pub const PROOF_HEADER: &str = "ManCard-Proof";

/// Every endpoint, for tests that walk the whole API.
pub const ALL: &[Endpoint] = &[
    HEALTHZ,
    OPENAPI,
    REQUEST_OTP,
    CREATE_SESSION,
    ACCOUNT,
    CREDENTIAL_NONCE,
    PROVISION,
    REPLENISH,
    CREATE_TOPUP,
    TOPUP_CALLBACK,
    TOPUP_STATUS,
    WALLET_SYNC,
    WALLET_LOG,
    VALIDATOR_CONFIG,
    VALIDATOR_BATCHES,
    ADMIN_VALIDATORS,
    ADMIN_DENY_VALIDATOR,
    ADMIN_ISSUER_KEYS,
    ADMIN_ROTATE_KEYS,
    ADMIN_FRAUD_CASES,
    ADMIN_FRAUD_CASE,
    ADMIN_RESOLVE_FRAUD,
    ADMIN_AUDIT,
    ADMIN_ADJUSTMENTS,
    SANDBOX_OTP,
    SANDBOX_PAY,
    SANDBOX_PAY_SUBMIT,
    SANDBOX_PAY_CANCEL,
    ADMIN_PENDING_ADJUSTMENTS,
    ADMIN_APPROVE_ADJUSTMENT,
    ADMIN_REJECT_ADJUSTMENT,
    ADMIN_AUDIT_LOG,
    LOGOUT,
    SESSIONS,
    END_SESSION,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_path_parameter_is_filled_in() {
        assert_eq!(TOPUP_STATUS.path_with("abc"), "/v1/topups/abc");
        assert_eq!(SANDBOX_PAY_CANCEL.path_with("t"), "/sandbox/pay/t/cancel");
        assert_eq!(ACCOUNT.path_with("x"), "/v1/account");
    }

    #[test]
    fn no_two_endpoints_share_method_and_path() {
        let mut seen = std::collections::HashSet::new();
        for e in ALL {
            assert!(seen.insert((e.method, e.path)), "{e:?} twice");
        }
    }
}
