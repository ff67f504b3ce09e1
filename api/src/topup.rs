//! Top-up through the bank gateway: `/v1/topups*`.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopupRequest {
    /// Rials.
    pub amount: i64,
    /// Chosen by the client, stored before the request is sent and reused on every retry
    /// (1–128 printable ASCII characters).
    pub idempotency_key: String,
}

/// Where a top-up intent stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TopupStatus {
    /// Waiting for the rider to pay (or for the gateway's verification).
    Pending,
    /// Paid, verified server to server and credited once.
    Credited,
    /// The rider cancelled on the gateway's page; nothing was charged.
    Cancelled,
    /// Not paid before its deadline.
    Expired,
}

impl TopupStatus {
    /// The status's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Credited => "credited",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// True when the intent can no longer change.
    pub const fn is_final(self) -> bool {
        !matches!(self, Self::Pending)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TopupIntentResponse {
    pub intent_id: String,
    pub amount: i64,
    pub status: TopupStatus,
    /// Gateway page to open in a browser.
    pub payment_url: String,
    pub expires_at: i64,
    /// Ledger entry of the credit, once credited.
    pub ledger_entry_id: Option<i64>,
    /// Gateway reference number, once settled.
    pub gateway_ref: Option<String>,
    /// Why a paid payment was not credited (it was reversed: the bank returns the money).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// The query string of the gateway's redirect back, `GET /v1/topups/callback`, or the form a
/// gateway posts to `POST /v1/topups/callback`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(
    feature = "openapi",
    derive(utoipa::IntoParams, utoipa::ToSchema),
    into_params(parameter_in = Query)
)]
pub struct CallbackQuery {
    /// Gateway payment token.
    pub token: String,
    /// `OK` or `NOK` as the gateway reports it (not trusted: the payment is verified).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<String>,
    /// The gateway's `OK`/`NOK` under its Shaparak name (not trusted either).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state: Option<String>,
    /// The merchant's order id (the intent id) as the gateway sends it back (not trusted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub order_id: Option<String>,
    /// Reference number (RefNum) the gateway claims (compared with the verified one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ref_num: Option<String>,
    /// Trace number (TraceNo) the gateway claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace_no: Option<String>,
    /// The masked card number the gateway claims.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub masked_pan: Option<String>,
}
