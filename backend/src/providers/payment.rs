//! The payment gateway as the merchant sees it: a [`PaymentGateway`] trait and its
//! Shaparak-style HTTP implementation ([`ShaparakGateway`]).
//!
//! The protocol is modelled on the Shaparak internet payment gateways (PEC/SEP style): the
//! merchant asks for a token (terminal id, amount, order id, callback URL), redirects the
//! rider's browser to the gateway's page, receives the browser back on the callback with a
//! reference number, trace number and masked card (none of which it trusts), then asks the
//! gateway server to server to VERIFY the payment (which answers the paid amount, the terminal
//! and the order), and SETTLEs it, or REVERSEs it (the rider is refunded) on any mismatch.
//!
//! Wire format (JSON over HTTPS, the terminal's API key as a bearer token):
//! `POST {base}/ipg/v1/token` `{terminal_id, amount, order_id, callback_url}` →
//! `{result: 0, token}`; `POST {base}/ipg/v1/verify|settle|reverse` `{terminal_id, token}` →
//! `{result, message, state, amount, ref_num, trace_no, masked_pan, order_id, terminal_id}`.
//! `result` 0 is success; any other value is the gateway's refusal. The rider's page is
//! `{base}/pay/{token}`.

use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Why a gateway call did not give an answer the merchant can act on.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GatewayError {
    /// No answer (timeout, connection refused or reset, a 5xx, an unreadable body): the
    /// outcome is unknown and the call must be retried.
    #[error("the payment gateway did not answer: {0}")]
    Unavailable(String),
    /// The gateway answered and refused (its result code and message).
    #[error("the payment gateway refused ({code}): {message}")]
    Refused { code: i64, message: String },
}

/// A payment's state as the gateway reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GatewayState {
    /// Waiting for the rider.
    Pending,
    /// The rider paid; not verified yet.
    Paid,
    /// Verified by the merchant; not settled yet.
    Verified,
    /// Settled: the money goes to the merchant.
    Settled,
    /// Reversed: the rider's money is returned.
    Reversed,
    /// The rider cancelled on the page.
    Cancelled,
    /// The token expired unpaid.
    Expired,
}

impl GatewayState {
    /// The state's wire text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Verified => "verified",
            Self::Settled => "settled",
            Self::Reversed => "reversed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
        }
    }

    /// True when the rider's money was taken and is not (yet) returned.
    pub const fn is_paid(self) -> bool {
        matches!(self, Self::Paid | Self::Verified | Self::Settled)
    }
}

/// A token request: what the merchant asks the gateway to collect.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenRequest {
    pub terminal_id: String,
    /// Rials.
    pub amount: i64,
    /// The merchant's order id (the top-up intent's id).
    pub order_id: String,
    /// Where the gateway sends the rider's browser back.
    pub callback_url: String,
}

/// A verify, settle or reverse request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRequest {
    pub terminal_id: String,
    pub token: String,
}

/// The gateway's answer to every call. `result` 0 is success.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct GatewayAnswer {
    pub result: i64,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub token: Option<String>,
    #[serde(default)]
    pub state: Option<GatewayState>,
    #[serde(default)]
    pub amount: Option<i64>,
    #[serde(default)]
    pub ref_num: Option<String>,
    #[serde(default)]
    pub trace_no: Option<String>,
    #[serde(default)]
    pub masked_pan: Option<String>,
    #[serde(default)]
    pub order_id: Option<String>,
    #[serde(default)]
    pub terminal_id: Option<String>,
}

/// A new payment: its token and the page to send the rider to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentToken {
    pub token: String,
    pub payment_url: String,
}

/// What verification found: the gateway's own record of the payment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verification {
    pub state: GatewayState,
    pub amount: i64,
    pub ref_num: String,
    pub trace_no: String,
    pub masked_pan: String,
    pub order_id: String,
    pub terminal_id: String,
}

/// The outcome of a verify call the gateway answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verify {
    /// Paid (and now verified, or already settled): the gateway's record, to be checked
    /// against the order before settling.
    Paid(Verification),
    /// Not paid (pending, cancelled, expired, reversed).
    NotPaid(GatewayState),
}

/// A payment gateway, as the merchant calls it. Calls block (the engine runs them on blocking
/// threads); every call is idempotent at the gateway, so an unknown outcome is retried.
pub trait PaymentGateway: Send + Sync + std::fmt::Debug {
    /// The merchant's terminal id at this gateway.
    fn terminal_id(&self) -> &str;
    /// Asks for a payment token.
    fn request_token(
        &self,
        amount: i64,
        order_id: &str,
        callback_url: &str,
    ) -> Result<PaymentToken, GatewayError>;
    /// Server-to-server verification of the payment of `token`.
    fn verify(&self, token: &str) -> Result<Verify, GatewayError>;
    /// Settles a verified payment.
    fn settle(&self, token: &str) -> Result<(), GatewayError>;
    /// Reverses a paid or verified payment: the rider's money is returned.
    fn reverse(&self, token: &str) -> Result<(), GatewayError>;
}

/// Interprets a verify answer.
pub fn verify_outcome(a: GatewayAnswer) -> Result<Verify, GatewayError> {
    if a.result != 0 && a.state.is_none() {
        return Err(GatewayError::Refused {
            code: a.result,
            message: a.message,
        });
    }
    let state = a.state.ok_or_else(|| {
        GatewayError::Unavailable("the verify answer carries no payment state".into())
    })?;
    if !state.is_paid() {
        return Ok(Verify::NotPaid(state));
    }
    if a.result != 0 {
        return Err(GatewayError::Refused {
            code: a.result,
            message: a.message,
        });
    }
    let missing = |f: &str| GatewayError::Unavailable(format!("the verify answer lacks {f}"));
    Ok(Verify::Paid(Verification {
        state,
        amount: a.amount.ok_or_else(|| missing("amount"))?,
        ref_num: a.ref_num.ok_or_else(|| missing("ref_num"))?,
        trace_no: a.trace_no.unwrap_or_default(),
        masked_pan: a.masked_pan.unwrap_or_default(),
        order_id: a.order_id.ok_or_else(|| missing("order_id"))?,
        terminal_id: a.terminal_id.ok_or_else(|| missing("terminal_id"))?,
    }))
}

/// The Shaparak-style gateway over HTTP.
pub struct ShaparakGateway {
    base: String,
    terminal_id: String,
    api_key: String,
    http: reqwest::blocking::Client,
}

impl std::fmt::Debug for ShaparakGateway {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ShaparakGateway")
            .field("base", &self.base)
            .field("terminal_id", &self.terminal_id)
            .finish_non_exhaustive()
    }
}

impl ShaparakGateway {
    /// A client of the gateway at `base` (e.g. `https://ipg.example.ir`), giving up on a call
    /// after `timeout` (the outcome is then unknown and retried later).
    pub fn new(
        base: &str,
        terminal_id: &str,
        api_key: &str,
        timeout: Duration,
    ) -> Result<Self, GatewayError> {
        let http = reqwest::blocking::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()
            .map_err(|e| GatewayError::Unavailable(format!("HTTP client: {e}")))?;
        Ok(Self {
            base: base.trim_end_matches('/').to_string(),
            terminal_id: terminal_id.to_string(),
            api_key: api_key.to_string(),
            http,
        })
    }

    fn call<B: Serialize>(&self, path: &str, body: &B) -> Result<GatewayAnswer, GatewayError> {
        let url = format!("{}{path}", self.base);
        let resp = self
            .http
            .post(&url)
            .bearer_auth(&self.api_key)
            .json(body)
            .send()
            .map_err(|e| GatewayError::Unavailable(format!("{path}: {}", e.without_url())))?;
        let status = resp.status();
        if status.is_server_error() {
            return Err(GatewayError::Unavailable(format!("{path}: HTTP {status}")));
        }
        let answer: GatewayAnswer = resp.json().map_err(|e| {
            GatewayError::Unavailable(format!("{path}: unreadable answer: {}", e.without_url()))
        })?;
        Ok(answer)
    }

    fn simple(&self, path: &str, token: &str) -> Result<(), GatewayError> {
        let a = self.call(path, &self.req(token))?;
        if a.result == 0 {
            Ok(())
        } else {
            Err(GatewayError::Refused {
                code: a.result,
                message: a.message,
            })
        }
    }

    fn req(&self, token: &str) -> PaymentRequest {
        PaymentRequest {
            terminal_id: self.terminal_id.clone(),
            token: token.to_string(),
        }
    }
}

impl PaymentGateway for ShaparakGateway {
    fn terminal_id(&self) -> &str {
        &self.terminal_id
    }

    fn request_token(
        &self,
        amount: i64,
        order_id: &str,
        callback_url: &str,
    ) -> Result<PaymentToken, GatewayError> {
        let a = self.call(
            "/ipg/v1/token",
            &TokenRequest {
                terminal_id: self.terminal_id.clone(),
                amount,
                order_id: order_id.to_string(),
                callback_url: callback_url.to_string(),
            },
        )?;
        match (a.result, a.token) {
            (0, Some(token)) if valid_token(&token) => Ok(PaymentToken {
                payment_url: format!("{}/pay/{token}", self.base),
                token,
            }),
            (0, _) => Err(GatewayError::Unavailable(
                "the token answer carries no usable token".into(),
            )),
            (code, _) => Err(GatewayError::Refused {
                code,
                message: a.message,
            }),
        }
    }

    fn verify(&self, token: &str) -> Result<Verify, GatewayError> {
        verify_outcome(self.call("/ipg/v1/verify", &self.req(token))?)
    }

    fn settle(&self, token: &str) -> Result<(), GatewayError> {
        self.simple("/ipg/v1/settle", token)
    }

    fn reverse(&self, token: &str) -> Result<(), GatewayError> {
        self.simple("/ipg/v1/reverse", token)
    }
}

/// A gateway token as the backend accepts one: 16 to 64 ASCII letters, digits, `-` or `_`
/// (it is put in URLs and stored).
pub fn valid_token(t: &str) -> bool {
    (16..=64).contains(&t.len())
        && t.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}
