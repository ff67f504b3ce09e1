//! Accounts and sessions: `/v1/auth/*`, `/v1/account`, and the sandbox's code read-back.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtpRequest {
    /// Phone number: `+<country><number>` (8–15 digits) or an Iranian `09…` mobile number.
    pub phone: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OtpResponse {
    /// Normalized phone number.
    pub phone: String,
    /// When the code stops working, UTC seconds.
    pub expires_at: i64,
    /// Names this request's code (32 hex characters). `POST /v1/auth/session` must carry it:
    /// a guess counts only against the code of the request it names, so a stranger guessing
    /// at a number burns only the stranger's own codes, never the one the rider is typing.
    pub request_id: String,
}

/// The query string of the sandbox's `GET /sandbox/otp`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::IntoParams), into_params(parameter_in = Query))]
pub struct PhoneQuery {
    pub phone: String,
    /// The code of this request (from `POST /v1/auth/otp`); without it, the newest live code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SandboxOtp {
    pub phone: String,
    pub code: String,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionRequest {
    pub phone: String,
    /// The 8-digit one-time code.
    pub code: String,
    /// The `request_id` the code request was answered with.
    pub request_id: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionResponse {
    /// Bearer token (64 hex characters) for `Authorization: Bearer <token>`.
    pub token: String,
    pub account_id: i64,
    pub expires_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccountResponse {
    pub account_id: i64,
    pub phone: String,
    /// `adult`, `student`, `senior` or `free`.
    pub fare_class: String,
    /// Confirmed balance, rials.
    pub balance: i64,
    pub server_time: i64,
}

/// One session of the rider's account, as `GET /v1/auth/sessions` lists it (never its token).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionView {
    /// Public id (32 hex characters): what `POST /v1/auth/sessions/{id}/end` names.
    pub id: String,
    pub created_at: i64,
    pub last_used_at: i64,
    /// When it ends at the latest, UTC seconds (earlier if left unused: `idle_expires_at`).
    pub expires_at: i64,
    /// When it ends if it is not used again, UTC seconds.
    pub idle_expires_at: i64,
    /// Bound to the device it provisioned: its money and credential calls carry a
    /// `ManCard-Proof` signed by that device's binding key.
    pub bound: bool,
    /// The device it is bound to.
    pub device_id: Option<i64>,
    /// The session making this request.
    pub current: bool,
}

/// The answer of `GET /v1/auth/sessions`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SessionList {
    /// Live sessions, oldest first.
    pub sessions: Vec<SessionView>,
}
