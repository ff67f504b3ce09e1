//! Top-up intents and the sandbox gateway's record of each payment.

use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::AccountId;
use rusqlite::{named_params, OptionalExtension, Row};

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

/// Where the gateway says a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GatewayStatus {
    Pending,
    Paid,
    Cancelled,
}

impl GatewayStatus {
    /// The stored (and shown) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Paid => "paid",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Pending, Self::Paid, Self::Cancelled]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The sandbox gateway's record of a payment.
#[derive(Debug, Clone)]
pub struct GatewayPayment {
    pub token: String,
    pub amount: i64,
    pub status: GatewayStatus,
    pub ref_id: Option<String>,
    pub expires_at: i64,
    pub verified_at: Option<i64>,
}

fn intent_row(r: &Row<'_>) -> rusqlite::Result<Intent> {
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
        Ok(self
            .conn
            .query_row(
                &format!(
                    "SELECT {INTENT_COLS} FROM topup_intents
                     WHERE account_id = :account AND idempotency_key = :key"
                ),
                named_params! {":account": account_id, ":key": key},
                intent_row,
            )
            .optional()?)
    }

    pub fn intent(&self, id: &str) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {INTENT_COLS} FROM topup_intents WHERE id = :id"),
                named_params! {":id": id},
                intent_row,
            )
            .optional()?)
    }

    pub fn intent_by_token(&self, token: &str) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {INTENT_COLS} FROM topup_intents WHERE gateway_token = :token"),
                named_params! {":token": token},
                intent_row,
            )
            .optional()?)
    }

    pub fn gateway_payment(&self, token: &str) -> Result<Option<GatewayPayment>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT token, amount, status, ref_id, expires_at, verified_at
                 FROM gateway_payments WHERE token = :token",
                named_params! {":token": token},
                |r| {
                    Ok(GatewayPayment {
                        token: r.get("token")?,
                        amount: r.get("amount")?,
                        status: parsed(r, "status", GatewayStatus::parse)?,
                        ref_id: r.get("ref_id")?,
                        expires_at: r.get("expires_at")?,
                        verified_at: r.get("verified_at")?,
                    })
                },
            )
            .optional()?)
    }

    /// Payments the gateway reports paid that the merchant has not verified yet.
    pub fn paid_unverified(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT token FROM gateway_payments WHERE status = 'paid' AND verified_at IS NULL
             ORDER BY paid_at",
        )?;
        let rows = st.query_map([], |r| r.get("token"))?;
        Ok(rows.collect::<Result<_, _>>()?)
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
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO gateway_payments (token, amount, status, created_at, expires_at)
             VALUES (:token, :amount, 'pending', :now, :expires_at)",
            named_params! {
                ":token": token,
                ":amount": amount,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    /// Moves a pending payment to `paid` (with a reference id) or `cancelled`; false if it was
    /// not pending.
    pub fn gateway_settle(
        &self,
        token: &str,
        status: GatewayStatus,
        ref_id: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE gateway_payments SET status = :status, ref_id = :ref_id, paid_at = :now
             WHERE token = :token AND status = 'pending'",
            named_params! {
                ":token": token,
                ":status": status.as_str(),
                ":ref_id": ref_id,
                ":now": now,
            },
        )?;
        Ok(n == 1)
    }

    pub fn gateway_mark_verified(&self, token: &str, now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE gateway_payments SET verified_at = :now
             WHERE token = :token AND verified_at IS NULL",
            named_params! {":token": token, ":now": now},
        )?;
        Ok(())
    }
}
