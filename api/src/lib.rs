//! # mancard-api: the `/v1` HTTP contract
//!
//! Every JSON request and response body of the issuer's HTTP API, defined once and used by
//! the backend (server side), `mancard::online` (the wallet), the CLI's demo and every test.
//! Binary protocol messages travel as lowercase hex strings; their layouts are in
//! `mancard-protocol`. Statuses and problem codes are enums, serialized as the snake_case
//! strings documented in `docs/api.md`; each endpoint's method, path and authentication is a
//! constant in [`endpoints`], next to nothing else, so client and server cannot disagree.
//!
//! This crate does no I/O and knows nothing of HTTP libraries. With the `openapi` feature
//! every body type also derives `utoipa::ToSchema` and every query string `utoipa::IntoParams`.

/// Display as the wire text, and comparison with it (`status == "settled"`), for an enum with
/// `as_str`.
macro_rules! wire_text {
    ($($ty:ty),+) => {$(
        impl std::fmt::Display for $ty {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl PartialEq<str> for $ty {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $ty {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }
    )+};
}

pub mod account;
pub mod admin;
pub mod endpoints;
pub mod problem;
pub mod topup;
pub mod validator;
pub mod wallet;

pub use account::{
    AccountResponse, OtpRequest, OtpResponse, PhoneQuery, SandboxOtp, SessionRequest,
    SessionResponse,
};
pub use account::{SessionList, SessionView};
pub use admin::{
    Adjustment, AdjustmentStatus, DecideAdjustmentRequest, DecideAdjustmentResponse,
    OperatorLogQuery, OperatorLogResponse, OperatorLogRow, Scope,
};
pub use admin::{
    AdjustmentRequest, AdjustmentResponse, AuditReport, DenyValidatorRequest,
    DenyValidatorResponse, FraudCase, FraudCaseDetail, FraudCaseStatus, FraudCasesQuery, FraudKind,
    FraudResolution, FraudStatusFilter, KeyInfo, KeysResponse, RegisterValidatorRequest,
    RegisterValidatorResponse, ResolveFraudRequest, ResolveFraudResponse,
};
pub use endpoints::{Auth, Endpoint, Method};
pub use problem::{Problem, ProblemCode, PROBLEM_CONTENT_TYPE};
pub use topup::{CallbackQuery, TopupIntentResponse, TopupRequest, TopupStatus};
pub use validator::{BatchResponse, TapResult, TapStatus};
pub use wallet::{
    ChainState, CredentialRequest, CredentialResponse, CredentialState, CredentialStatus, Health,
    IssuerKeyView, LedgerEntry, LedgerKind, LogItem, LogQuery, LogResponse, NonceResponse,
    RevocationReason, SyncRequest, SyncResponse, TapVerdict, VerdictStatus,
};

wire_text!(
    TopupStatus,
    TapStatus,
    CredentialState,
    LedgerKind,
    FraudKind,
    VerdictStatus,
    RevocationReason,
    Scope,
    AdjustmentStatus
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_serialize_as_their_wire_text() {
        for (json, text) in [
            (serde_json::to_string(&TapStatus::Duplicate), "duplicate"),
            (serde_json::to_string(&TopupStatus::Cancelled), "cancelled"),
            (
                serde_json::to_string(&CredentialState::ReplenishDue),
                "replenish_due",
            ),
            (
                serde_json::to_string(&LedgerKind::FareAdjustment),
                "fare_adjustment",
            ),
            (
                serde_json::to_string(&FraudKind::CounterOutOfRange),
                "counter_out_of_range",
            ),
        ] {
            assert_eq!(json.unwrap_or_default(), format!("\"{text}\""));
        }
        assert_eq!(TapStatus::Settled, "settled");
        for r in [
            RevocationReason::ReplacedByNewDevice,
            RevocationReason::SharedPass,
            RevocationReason::Fraud(FraudKind::DuplicateCounter),
            RevocationReason::Fraud(FraudKind::BrokenChain),
        ] {
            assert_eq!(RevocationReason::parse(r.as_str()), Some(r));
        }
        assert_eq!(
            RevocationReason::ReplacedByNewDevice,
            "replaced_by_new_device"
        );
        assert_eq!(RevocationReason::parse("a_newer_reason"), None);
        assert_eq!(LedgerKind::Topup.to_string(), "topup");
    }

    #[test]
    fn query_strings_default_what_may_be_left_out() {
        let q: Result<LogQuery, _> = serde_json::from_str(r#"{"pseudonym":"0f51"}"#);
        assert_eq!(
            q.ok(),
            Some(LogQuery {
                pseudonym: "0f51".into(),
                from_seq: 0
            })
        );
        let q: Result<CallbackQuery, _> = serde_json::from_str(r#"{"token":"ab"}"#);
        assert_eq!(q.ok().map(|q| q.status), Some(None));
        let absent = CallbackQuery {
            token: "ab".into(),
            status: None,
            state: None,
            order_id: None,
            ref_num: None,
            trace_no: None,
            masked_pan: None,
        };
        assert_eq!(
            serde_json::to_string(&absent).unwrap_or_default(),
            r#"{"token":"ab"}"#
        );
    }
}
