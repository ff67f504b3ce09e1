//! Top-up intents and the sandbox gateway's record of each payment.

use super::db::{named_params, Row};
use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;

/// A top-up intent.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub account_id: AccountId,
    pub amount: i64,
    pub idempotency_key: String,
    pub gateway_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Where the merchant's record of a gateway payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayStatus {
    /// Not known to be paid: waiting for the rider, or for the gateway to answer.
    Pending,
    /// Verified at the gateway; not settled yet.
    Verified,
    /// Settled and credited.
    Settled,
    /// A mismatch or a refused settlement: the payment must be reversed (being retried).
    Reversing,
    /// Reversed: the rider got the money back; nothing credited.
    Reversed,
    /// The rider cancelled on the gateway's page.
    Cancelled,
    /// Not paid before its deadline.
    Expired,
    /// The gateway refused to reverse a payment that must be reversed: an operator's case.
    ReverseFailed,
}

impl GatewayStatus {
    const ALL: [Self; 8] = [
        Self::Pending,
        Self::Verified,
        Self::Settled,
        Self::Reversing,
        Self::Reversed,
        Self::Cancelled,
        Self::Expired,
        Self::ReverseFailed,
    ];

    /// The stored (and shown) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Verified => "verified",
            Self::Settled => "settled",
            Self::Reversing => "reversing",
            Self::Reversed => "reversed",
            Self::Cancelled => "cancelled",
            Self::Expired => "expired",
            Self::ReverseFailed => "reverse_failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == text)
    }

    /// True while the gateway still has to be asked (verify, settle or reverse).
    pub const fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Verified | Self::Reversing)
    }
}

/// The merchant's record of a gateway payment.
#[derive(Debug, Clone)]
pub struct GatewayPayment {
    pub token: String,
    pub amount: i64,
    pub status: GatewayStatus,
    pub ref_id: Option<String>,
    pub trace_no: Option<String>,
    pub masked_pan: Option<String>,
    pub payment_url: Option<String>,
    pub reason: Option<String>,
    pub expires_at: i64,
    pub verified_at: Option<i64>,
}

/// What verification found, as recorded.
#[derive(Debug, Clone, Copy)]
pub struct VerifiedRecord<'a> {
    pub ref_id: &'a str,
    pub trace_no: &'a str,
    pub masked_pan: &'a str,
}

fn intent_row(r: &Row<'_>) -> Result<Intent, StoreError> {
    Ok(Intent {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        amount: r.get("amount")?,
        idempotency_key: r.get("idempotency_key")?,
        gateway_token: r.get("gateway_token")?,
        created_at: r.get("created_at")?,
        expires_at: r.get("expires_at")?,
    })
}

const INTENT_COLS: &str =
    "id, account_id, amount, idempotency_key, gateway_token, created_at, expires_at";

impl Reader<'_> {
    pub fn intent_by_key(
        &self,
        account_id: AccountId,
        key: &str,
    ) -> Result<Option<Intent>, StoreError> {
        self.conn.query_opt(
            &format!(
                "SELECT {INTENT_COLS} FROM topup_intents
                 WHERE account_id = :account AND idempotency_key = :key"
            ),
            named_params! {":account": account_id, ":key": key},
            intent_row,
        )
    }

    pub fn intent(&self, id: &str) -> Result<Option<Intent>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {INTENT_COLS} FROM topup_intents WHERE id = :id"),
            named_params! {":id": id},
            intent_row,
        )
    }

    pub fn intent_by_token(&self, token: &str) -> Result<Option<Intent>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {INTENT_COLS} FROM topup_intents WHERE gateway_token = :token"),
            named_params! {":token": token},
            intent_row,
        )
    }

    pub fn gateway_payment(&self, token: &str) -> Result<Option<GatewayPayment>, StoreError> {
        self.conn.query_opt(
            "SELECT token, amount, status, ref_id, trace_no, masked_pan, payment_url, reason,
                        expires_at, verified_at
                 FROM gateway_payments WHERE token = :token",
            named_params! {":token": token},
            |r| {
                Ok(GatewayPayment {
                    token: r.get("token")?,
                    amount: r.get("amount")?,
                    status: parsed(r, "status", GatewayStatus::parse)?,
                    ref_id: r.get("ref_id")?,
                    trace_no: r.get("trace_no")?,
                    masked_pan: r.get("masked_pan")?,
                    payment_url: r.get("payment_url")?,
                    reason: r.get("reason")?,
                    expires_at: r.get("expires_at")?,
                    verified_at: r.get("verified_at")?,
                })
            },
        )
    }

    /// The token of the payment recorded with this reference number, if any.
    pub fn payment_by_ref(&self, ref_id: &str) -> Result<Option<String>, StoreError> {
        self.conn.query_opt(
            "SELECT token FROM gateway_payments WHERE ref_id = :ref",
            named_params! {":ref": ref_id},
            |r| r.get("token"),
        )
    }

    /// Payments whose outcome the gateway still has to give (oldest first, at most `limit`).
    pub fn open_payments(&self, limit: i64) -> Result<Vec<String>, StoreError> {
        self.conn.query_vec(
            "SELECT token FROM gateway_payments
             WHERE status IN ('pending', 'verified', 'reversing')
             ORDER BY created_at LIMIT :limit",
            named_params! {":limit": limit},
            |r| r.get("token"),
        )
    }
}

impl Writer<'_> {
    pub fn insert_intent(&self, i: &Intent) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO topup_intents
                (id, account_id, amount, idempotency_key, gateway_token, created_at, expires_at)
             VALUES (:id, :account, :amount, :key, :token, :created_at, :expires_at)",
            named_params! {
                ":id": i.id,
                ":account": i.account_id,
                ":amount": i.amount,
                ":key": i.idempotency_key,
                ":token": i.gateway_token,
                ":created_at": i.created_at,
                ":expires_at": i.expires_at,
            },
        )?;
        Ok(())
    }

    pub fn insert_gateway_payment(
        &self,
        token: &str,
        amount: i64,
        payment_url: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO gateway_payments
                (token, amount, status, payment_url, created_at, expires_at)
             VALUES (:token, :amount, 'pending', :url, :now, :expires_at)",
            named_params! {
                ":token": token,
                ":amount": amount,
                ":url": payment_url,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    /// Moves a payment from one of `from` to `to` (with a reason); false if it was in none.
    /// A compare-and-set in one statement: the status is checked by the `UPDATE` itself, so
    /// two writers that both read the old status cannot both move it.
    pub fn set_payment_status(
        &self,
        token: &str,
        from: &[GatewayStatus],
        to: GatewayStatus,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        if from.is_empty() {
            return Ok(false);
        }
        // The statuses are the enum's own fixed words, never client input.
        let from_list = from
            .iter()
            .map(|s| format!("'{}'", s.as_str()))
            .collect::<Vec<_>>()
            .join(", ");
        let n = self.tx.execute(
            &format!(
                "UPDATE gateway_payments
                 SET status = :to, reason = COALESCE(:reason, reason),
                     settled_at = CASE WHEN :to = 'settled' THEN :now ELSE settled_at END,
                     reversed_at = CASE WHEN :to = 'reversed' THEN :now ELSE reversed_at END
                 WHERE token = :token AND status IN ({from_list})"
            ),
            named_params! {
                ":token": token,
                ":to": to.as_str(),
                ":reason": reason,
                ":now": now,
            },
        )?;
        Ok(n == 1)
    }

    /// Records a verified payment's reference, trace number and masked card (a pending one
    /// becomes verified); false if it was not pending or verified.
    pub fn record_verified(
        &self,
        token: &str,
        v: VerifiedRecord<'_>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE gateway_payments
             SET status = 'verified', ref_id = :ref, trace_no = :trace, masked_pan = :pan,
                 paid_at = COALESCE(paid_at, :now), verified_at = COALESCE(verified_at, :now)
             WHERE token = :token AND status IN ('pending', 'verified')",
            named_params! {
                ":token": token,
                ":ref": v.ref_id,
                ":trace": v.trace_no,
                ":pan": v.masked_pan,
                ":now": now,
            },
        )?;
        Ok(n == 1)
    }
}
