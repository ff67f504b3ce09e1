//! The sandbox payment gateway: a Shaparak-style internet payment gateway the backend talks to
//! over HTTP exactly as it talks to a bank's (see [`crate::providers::payment`]), with switches
//! for each way a real one fails. Run as its own process (`mancard gateway-sandbox serve`) or
//! started in-process on a loopback port by a sandbox backend.
//!
//! State is in memory (a sandbox: a restart forgets every payment). Every operation is
//! idempotent, as a bank's are: verifying twice answers the same record, settling a settled
//! payment succeeds, reversing a reversed one succeeds.

pub use crate::http::gateway_sandbox::{router, start, SandboxGatewayConfig, SandboxGatewayHandle};

use crate::providers::payment::{
    valid_token, verify_outcome, GatewayAnswer, GatewayError, GatewayState, PaymentGateway,
    PaymentToken, TokenRequest, Verify,
};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The failure switches. Set globally (every payment) or for one payment; a payment fails in
/// every way switched on for it or globally.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Verify never answers (the call hangs until the merchant gives up); nothing changes.
    pub verify_timeout: bool,
    /// Verify does its work (the payment is verified) but the answer is lost.
    pub verify_answer_lost: bool,
    /// Settle is refused.
    pub settle_fails: bool,
    /// The payment is reversed by the bank right after the rider paid.
    pub reversed: bool,
    /// After paying, the rider's browser is not sent back to the merchant.
    pub callback_never_comes: bool,
    /// The rider is charged another amount than the merchant asked for.
    pub amount_mismatch: bool,
    /// Verify reports another merchant's terminal.
    pub merchant_mismatch: bool,
    /// The payment gets the reference number of the previous payment.
    pub duplicate_ref: bool,
}

impl Faults {
    fn or(self, o: Self) -> Self {
        Self {
            verify_timeout: self.verify_timeout || o.verify_timeout,
            verify_answer_lost: self.verify_answer_lost || o.verify_answer_lost,
            settle_fails: self.settle_fails || o.settle_fails,
            reversed: self.reversed || o.reversed,
            callback_never_comes: self.callback_never_comes || o.callback_never_comes,
            amount_mismatch: self.amount_mismatch || o.amount_mismatch,
            merchant_mismatch: self.merchant_mismatch || o.merchant_mismatch,
            duplicate_ref: self.duplicate_ref || o.duplicate_ref,
        }
    }

    /// Parses a comma-separated list of switch names (`verify-timeout,settle-fails`).
    pub fn parse_list(s: &str) -> Result<Self, String> {
        let mut f = Self::default();
        for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            match name.replace('_', "-").as_str() {
                "verify-timeout" => f.verify_timeout = true,
                "verify-answer-lost" => f.verify_answer_lost = true,
                "settle-fails" => f.settle_fails = true,
                "reversed" => f.reversed = true,
                "callback-never-comes" => f.callback_never_comes = true,
                "amount-mismatch" => f.amount_mismatch = true,
                "merchant-mismatch" => f.merchant_mismatch = true,
                "duplicate-ref" => f.duplicate_ref = true,
                other => return Err(format!("unknown gateway failure switch {other:?}")),
            }
        }
        Ok(f)
    }
}

/// The gateway's record of one payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SandboxPayment {
    pub token: String,
    pub terminal_id: String,
    /// What the merchant asked for.
    pub amount: i64,
    /// What the rider was charged (differs only with `amount_mismatch`).
    pub paid_amount: i64,
    pub order_id: String,
    pub callback_url: String,
    pub state: GatewayState,
    pub ref_num: Option<String>,
    pub trace_no: Option<String>,
    pub masked_pan: Option<String>,
    pub created_at: i64,
    pub expires_at: i64,
    /// A paid payment not settled by then is reversed by the gateway.
    pub settle_deadline: Option<i64>,
    pub faults: Faults,
}

/// What a verify call does at the HTTP level.
#[derive(Debug)]
pub enum VerifyCall {
    /// Answer this.
    Answer(GatewayAnswer),
    /// Hang (the answer never comes); the state changed only with `verify_answer_lost`.
    Hang,
}

/// The rider's action on the payment page.
#[derive(Debug)]
pub enum PageOutcome {
    /// Send the browser here (the merchant's callback).
    Redirect(String),
    /// Show this page (the callback never comes, or there is nothing to redirect to).
    Stay(GatewayState),
}

/// Why a page action was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PageError {
    #[error("no such payment")]
    UnknownPayment,
    #[error("this payment has expired")]
    Expired,
}

#[derive(Debug, Default)]
struct Inner {
    payments: HashMap<String, SandboxPayment>,
    global: Faults,
    last_ref: Option<String>,
}

/// The sandbox gateway's state and logic.
#[derive(Debug)]
pub struct SandboxGateway {
    inner: Mutex<Inner>,
    clock_offset: AtomicI64,
    /// Lifetime of a token (seconds).
    pub token_ttl_secs: i64,
    /// Time to settle after paying before the gateway reverses by itself (seconds).
    pub settle_window_secs: i64,
}

const RESULT_OK: i64 = 0;
const RESULT_UNKNOWN: i64 = 10;
const RESULT_INVALID: i64 = 11;
const RESULT_NOT_SETTLEABLE: i64 = 61;
const RESULT_NOT_REVERSIBLE: i64 = 62;

fn refused(code: i64, message: &str) -> GatewayAnswer {
    GatewayAnswer {
        result: code,
        message: message.to_string(),
        ..GatewayAnswer::default()
    }
}

fn random_digits(n: usize) -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    b.iter()
        .cycle()
        .take(n)
        .map(|x| char::from(b'0' + x % 10))
        .collect()
}

fn random_hex() -> String {
    let mut b = [0u8; 16];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut b);
    hex::encode(b)
}

impl Default for SandboxGateway {
    fn default() -> Self {
        Self::new(Faults::default())
    }
}

impl SandboxGateway {
    /// A gateway failing globally in the ways `faults` switches on.
    pub fn new(faults: Faults) -> Self {
        Self {
            inner: Mutex::new(Inner {
                global: faults,
                ..Inner::default()
            }),
            clock_offset: AtomicI64::new(0),
            token_ttl_secs: 900,
            settle_window_secs: 1_800,
        }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The gateway's clock, UTC seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now()
            .timestamp()
            .saturating_add(self.clock_offset.load(Ordering::Relaxed))
    }

    /// Moves the gateway's clock forward (expiry in tests).
    pub fn advance_clock(&self, secs: i64) {
        self.clock_offset.fetch_add(secs.max(0), Ordering::Relaxed);
    }

    /// Sets the global switches (`None`) or one payment's; false for an unknown payment.
    pub fn set_faults(&self, token: Option<&str>, faults: Faults) -> bool {
        let mut g = self.lock();
        match token {
            None => {
                g.global = faults;
                true
            }
            Some(t) => match g.payments.get_mut(t) {
                Some(p) => {
                    p.faults = faults;
                    true
                }
                None => false,
            },
        }
    }

    /// A payment's record (with lapsed deadlines applied).
    pub fn payment(&self, token: &str) -> Option<SandboxPayment> {
        let now = self.now();
        let mut g = self.lock();
        let p = g.payments.get_mut(token)?;
        lapse(p, now);
        Some(p.clone())
    }

    /// A token request.
    pub fn token(&self, req: &TokenRequest) -> GatewayAnswer {
        let ok_url =
            req.callback_url.starts_with("http://") || req.callback_url.starts_with("https://");
        if req.amount <= 0
            || req.terminal_id.is_empty()
            || req.order_id.is_empty()
            || req.order_id.len() > 64
            || !ok_url
        {
            return refused(RESULT_INVALID, "invalid token request");
        }
        let now = self.now();
        let token = random_hex();
        let p = SandboxPayment {
            token: token.clone(),
            terminal_id: req.terminal_id.clone(),
            amount: req.amount,
            paid_amount: req.amount,
            order_id: req.order_id.clone(),
            callback_url: req.callback_url.clone(),
            state: GatewayState::Pending,
            ref_num: None,
            trace_no: None,
            masked_pan: None,
            created_at: now,
            expires_at: now.saturating_add(self.token_ttl_secs),
            settle_deadline: None,
            faults: Faults::default(),
        };
        self.lock().payments.insert(token.clone(), p);
        GatewayAnswer {
            token: Some(token),
            ..refused(RESULT_OK, "ok")
        }
    }

    /// The rider pays (`pay`) or cancels on the page. Submitting again changes nothing.
    pub fn submit(&self, token: &str, pay: bool, pan: &str) -> Result<PageOutcome, PageError> {
        let now = self.now();
        let mut g = self.lock();
        let global = g.global;
        let last_ref = g.last_ref.clone();
        let p = g.payments.get_mut(token).ok_or(PageError::UnknownPayment)?;
        lapse(p, now);
        let faults = global.or(p.faults);
        if p.state == GatewayState::Expired {
            return Err(PageError::Expired);
        }
        let mut new_ref = None;
        if p.state == GatewayState::Pending {
            if pay {
                let r = match (faults.duplicate_ref, last_ref) {
                    (true, Some(r)) => r,
                    _ => random_digits(12),
                };
                new_ref = Some(r.clone());
                p.ref_num = Some(r);
                p.trace_no = Some(random_digits(6));
                p.masked_pan = Some(mask_pan(pan));
                p.settle_deadline = Some(now.saturating_add(self.settle_window_secs));
                if faults.amount_mismatch {
                    p.paid_amount = p.amount - p.amount / 10;
                }
                p.state = if faults.reversed {
                    GatewayState::Reversed
                } else {
                    GatewayState::Paid
                };
            } else {
                p.state = GatewayState::Cancelled;
            }
        }
        let outcome = if faults.callback_never_comes {
            PageOutcome::Stay(p.state)
        } else {
            PageOutcome::Redirect(callback_url(p))
        };
        if new_ref.is_some() {
            g.last_ref = new_ref;
        }
        Ok(outcome)
    }

    /// Server-to-server verification.
    pub fn verify_call(&self, terminal_id: &str, token: &str) -> VerifyCall {
        let now = self.now();
        let mut g = self.lock();
        let global = g.global;
        let Some(p) = g
            .payments
            .get_mut(token)
            .filter(|p| p.terminal_id == terminal_id)
        else {
            return VerifyCall::Answer(refused(RESULT_UNKNOWN, "no such transaction"));
        };
        lapse(p, now);
        let faults = global.or(p.faults);
        if faults.verify_timeout {
            return VerifyCall::Hang;
        }
        if p.state == GatewayState::Paid {
            p.state = GatewayState::Verified;
        }
        if faults.verify_answer_lost {
            return VerifyCall::Hang;
        }
        let mut a = answer_of(p);
        if faults.merchant_mismatch {
            a.terminal_id = Some(format!("{terminal_id}-other"));
        }
        VerifyCall::Answer(a)
    }

    /// Settles a verified payment.
    pub fn settle_call(&self, terminal_id: &str, token: &str) -> GatewayAnswer {
        let now = self.now();
        let mut g = self.lock();
        let global = g.global;
        let Some(p) = g
            .payments
            .get_mut(token)
            .filter(|p| p.terminal_id == terminal_id)
        else {
            return refused(RESULT_UNKNOWN, "no such transaction");
        };
        lapse(p, now);
        if global.or(p.faults).settle_fails {
            return refused(RESULT_NOT_SETTLEABLE, "settlement failed at the bank");
        }
        match p.state {
            GatewayState::Verified | GatewayState::Settled => {
                p.state = GatewayState::Settled;
                answer_of(p)
            }
            s => refused(
                RESULT_NOT_SETTLEABLE,
                &format!("a {} payment cannot be settled", s.as_str()),
            ),
        }
    }

    /// Reverses a paid or verified payment.
    pub fn reverse_call(&self, terminal_id: &str, token: &str) -> GatewayAnswer {
        let now = self.now();
        let mut g = self.lock();
        let Some(p) = g
            .payments
            .get_mut(token)
            .filter(|p| p.terminal_id == terminal_id)
        else {
            return refused(RESULT_UNKNOWN, "no such transaction");
        };
        lapse(p, now);
        match p.state {
            GatewayState::Paid | GatewayState::Verified | GatewayState::Reversed => {
                p.state = GatewayState::Reversed;
                answer_of(p)
            }
            s => refused(
                RESULT_NOT_REVERSIBLE,
                &format!("a {} payment cannot be reversed", s.as_str()),
            ),
        }
    }
}

/// Applies the deadlines: an unpaid token expires; a payment not settled in time is reversed.
fn lapse(p: &mut SandboxPayment, now: i64) {
    if p.state == GatewayState::Pending && now > p.expires_at {
        p.state = GatewayState::Expired;
    }
    let late = p.settle_deadline.is_some_and(|d| now > d);
    if late && matches!(p.state, GatewayState::Paid | GatewayState::Verified) {
        p.state = GatewayState::Reversed;
    }
}

fn answer_of(p: &SandboxPayment) -> GatewayAnswer {
    GatewayAnswer {
        result: RESULT_OK,
        message: "ok".into(),
        token: Some(p.token.clone()),
        state: Some(p.state),
        amount: p.state.is_paid().then_some(p.paid_amount),
        ref_num: p.ref_num.clone(),
        trace_no: p.trace_no.clone(),
        masked_pan: p.masked_pan.clone(),
        order_id: Some(p.order_id.clone()),
        terminal_id: Some(p.terminal_id.clone()),
    }
}

/// `603799******1234` from whatever the rider typed (digits only are kept).
fn mask_pan(pan: &str) -> String {
    let d: Vec<char> = pan.chars().filter(char::is_ascii_digit).collect();
    if d.len() < 10 {
        return "603799******0000".into();
    }
    let head: String = d.iter().take(6).collect();
    let tail: String = d.iter().skip(d.len() - 4).collect();
    format!("{head}******{tail}")
}

fn callback_url(p: &SandboxPayment) -> String {
    let state = if p.state.is_paid() { "OK" } else { "NOK" };
    let mut q = vec![
        ("token", p.token.as_str()),
        ("order_id", p.order_id.as_str()),
        ("state", state),
    ];
    for (k, v) in [
        ("ref_num", &p.ref_num),
        ("trace_no", &p.trace_no),
        ("masked_pan", &p.masked_pan),
    ] {
        if let Some(v) = v {
            q.push((k, v.as_str()));
        }
    }
    let sep = if p.callback_url.contains('?') {
        '&'
    } else {
        '?'
    };
    let query = serde_urlencoded::to_string(&q).unwrap_or_default();
    format!("{}{sep}{query}", p.callback_url)
}

/// The sandbox gateway called in-process, without HTTP (engine-only tools and benches: a
/// backend that serves HTTP talks to the sandbox over HTTP). Verify calls that would hang
/// fail as a timeout would.
#[derive(Debug)]
pub struct InProcessGateway {
    pub sandbox: std::sync::Arc<SandboxGateway>,
    pub terminal_id: String,
}

fn simple(a: GatewayAnswer) -> Result<(), GatewayError> {
    if a.result == RESULT_OK {
        Ok(())
    } else {
        Err(GatewayError::Refused {
            code: a.result,
            message: a.message,
        })
    }
}

impl PaymentGateway for InProcessGateway {
    fn terminal_id(&self) -> &str {
        &self.terminal_id
    }

    fn request_token(
        &self,
        amount: i64,
        order_id: &str,
        callback_url: &str,
    ) -> Result<PaymentToken, GatewayError> {
        let a = self.sandbox.token(&TokenRequest {
            terminal_id: self.terminal_id.clone(),
            amount,
            order_id: order_id.to_string(),
            callback_url: callback_url.to_string(),
        });
        match a.token {
            Some(token) if a.result == RESULT_OK && valid_token(&token) => Ok(PaymentToken {
                payment_url: format!("sandbox-gateway:/pay/{token}"),
                token,
            }),
            _ => Err(GatewayError::Refused {
                code: a.result,
                message: a.message,
            }),
        }
    }

    fn verify(&self, token: &str) -> Result<Verify, GatewayError> {
        match self.sandbox.verify_call(&self.terminal_id, token) {
            VerifyCall::Answer(a) => verify_outcome(a),
            VerifyCall::Hang => Err(GatewayError::Unavailable("verify timed out".into())),
        }
    }

    fn settle(&self, token: &str) -> Result<(), GatewayError> {
        simple(self.sandbox.settle_call(&self.terminal_id, token))
    }

    fn reverse(&self, token: &str) -> Result<(), GatewayError> {
        simple(self.sandbox.reverse_call(&self.terminal_id, token))
    }
}

#[cfg(test)]
#[allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]
mod tests {
    use super::*;

    fn new_payment(g: &SandboxGateway, amount: i64) -> String {
        g.token(&TokenRequest {
            terminal_id: "T1".into(),
            amount,
            order_id: "order-1".into(),
            callback_url: "http://127.0.0.1:1/v1/topups/callback".into(),
        })
        .token
        .unwrap()
    }

    #[test]
    fn switches_parse_by_name_and_refuse_unknown_ones() {
        let f = Faults::parse_list("verify-timeout, settle_fails").unwrap();
        assert!(f.verify_timeout && f.settle_fails && !f.reversed);
        assert_eq!(Faults::parse_list("").unwrap(), Faults::default());
        assert!(Faults::parse_list("verify-never").is_err());
    }

    #[test]
    fn invalid_token_requests_are_refused() {
        let g = SandboxGateway::default();
        for (amount, url) in [(0, "http://x/cb"), (1_000, "javascript:alert(1)")] {
            let a = g.token(&TokenRequest {
                terminal_id: "T1".into(),
                amount,
                order_id: "o".into(),
                callback_url: url.into(),
            });
            assert_ne!(a.result, RESULT_OK);
            assert!(a.token.is_none());
        }
    }

    #[test]
    fn the_callback_carries_the_reference_and_a_masked_card_only() {
        let g = SandboxGateway::default();
        let t = new_payment(&g, 10_000);
        let PageOutcome::Redirect(url) = g.submit(&t, true, "6037-9912-3456-1234").unwrap() else {
            panic!("no redirect");
        };
        let p = g.payment(&t).unwrap();
        assert!(url.contains(&format!("ref_num={}", p.ref_num.unwrap())));
        assert!(url.contains("masked_pan=603799******1234"));
        assert!(!url.contains("3456"));
        assert!(url.contains("state=OK"));
    }

    #[test]
    fn verify_settle_and_reverse_are_idempotent_and_checked_by_terminal() {
        let g = SandboxGateway::default();
        let t = new_payment(&g, 10_000);
        g.submit(&t, true, "").unwrap();
        let VerifyCall::Answer(a) = g.verify_call("T2", &t) else {
            panic!("hung")
        };
        assert_eq!(a.result, RESULT_UNKNOWN, "another terminal sees nothing");
        for _ in 0..2 {
            let VerifyCall::Answer(a) = g.verify_call("T1", &t) else {
                panic!("hung")
            };
            assert_eq!(
                (a.state, a.amount),
                (Some(GatewayState::Verified), Some(10_000))
            );
        }
        assert_eq!(g.settle_call("T1", &t).result, RESULT_OK);
        assert_eq!(g.settle_call("T1", &t).result, RESULT_OK);
        assert_eq!(g.reverse_call("T1", &t).result, RESULT_NOT_REVERSIBLE);
        assert_eq!(g.payment(&t).unwrap().state, GatewayState::Settled);
    }

    #[test]
    fn an_unsettled_payment_is_reversed_at_its_deadline_and_a_token_expires() {
        let g = SandboxGateway::default();
        let paid = new_payment(&g, 10_000);
        let unpaid = new_payment(&g, 10_000);
        g.submit(&paid, true, "").unwrap();
        g.advance_clock(g.settle_window_secs + 1);
        assert_eq!(g.payment(&paid).unwrap().state, GatewayState::Reversed);
        assert_eq!(g.payment(&unpaid).unwrap().state, GatewayState::Expired);
        assert_eq!(g.submit(&unpaid, true, "").unwrap_err(), PageError::Expired);
        assert_ne!(g.settle_call("T1", &paid).result, RESULT_OK);
    }

    #[test]
    fn in_process_verify_that_hangs_is_unavailable() {
        let g = std::sync::Arc::new(SandboxGateway::new(Faults {
            verify_timeout: true,
            ..Faults::default()
        }));
        let ip = InProcessGateway {
            sandbox: std::sync::Arc::clone(&g),
            terminal_id: "T1".into(),
        };
        let t = ip.request_token(10_000, "o", "http://x/cb").unwrap();
        g.submit(&t.token, true, "").unwrap();
        assert!(matches!(
            ip.verify(&t.token),
            Err(GatewayError::Unavailable(_))
        ));
        assert_eq!(g.payment(&t.token).unwrap().state, GatewayState::Paid);
    }
}
