//! The outbox of state-changing requests: `idempotency_keys` (one open request per scope,
//! stored before it is sent) and `topups` (top-ups started on this phone, by idempotency key).

use super::{Read, Write};
use crate::error::WalletError;
use rusqlite::{params, OptionalExtension};

/// A top-up row.
#[derive(Debug, Clone)]
pub(crate) struct TopUpRow {
    pub(crate) key: String,
    pub(crate) amount: i64,
    pub(crate) intent_id: Option<String>,
    pub(crate) status: String,
    pub(crate) payment_url: Option<String>,
    pub(crate) expires_at: Option<i64>,
    pub(crate) ledger_entry_id: Option<i64>,
    pub(crate) gateway_ref: Option<String>,
}

impl TopUpRow {
    fn from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            key: row.get("idempotency_key")?,
            amount: row.get("amount")?,
            intent_id: row.get("intent_id")?,
            status: row.get("status")?,
            payment_url: row.get("payment_url")?,
            expires_at: row.get("expires_at")?,
            ledger_entry_id: row.get("ledger_entry_id")?,
            gateway_ref: row.get("gateway_ref")?,
        })
    }
}

const TOPUP_COLUMNS: &str = "idempotency_key, amount, intent_id, status, payment_url, \
                             expires_at, ledger_entry_id, gateway_ref";

impl Read<'_> {
    /// The open request of `scope`: (key, request fingerprint).
    pub(crate) fn idempotency(
        &self,
        scope: &str,
    ) -> Result<Option<(String, Vec<u8>)>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT key, request FROM idempotency_keys WHERE scope = ?1",
                params![scope],
                |row| Ok((row.get("key")?, row.get("request")?)),
            )
            .optional()?)
    }

    /// The top-up of the backend's intent `intent_id`.
    pub(crate) fn topup_by_intent(&self, intent_id: &str) -> Result<Option<TopUpRow>, WalletError> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE intent_id = ?1
             ORDER BY created_at, idempotency_key LIMIT 1"
        );
        Ok(self
            .conn
            .query_row(&sql, params![intent_id], TopUpRow::from_row)
            .optional()?)
    }

    /// Top-ups the backend acknowledged and that are not final yet, oldest first.
    pub(crate) fn open_topups(&self) -> Result<Vec<TopUpRow>, WalletError> {
        let sql = format!(
            "SELECT {TOPUP_COLUMNS} FROM topups WHERE status = 'pending'
             ORDER BY created_at, idempotency_key"
        );
        let mut st = self.conn.prepare(&sql)?;
        let rows = st.query_map([], TopUpRow::from_row)?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
}

impl Write<'_> {
    /// Stores (replacing) the open request of `scope`.
    pub(crate) fn put_idempotency(
        &self,
        scope: &str,
        key: &str,
        request: &[u8],
        now: i64,
    ) -> Result<(), WalletError> {
        self.tx.execute(
            "INSERT INTO idempotency_keys (scope, key, request, created_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(scope) DO UPDATE SET key = excluded.key, request = excluded.request,
                                              created_at = excluded.created_at",
            params![scope, key, request, now],
        )?;
        Ok(())
    }

    /// Closes the open request of `scope`.
    pub(crate) fn clear_idempotency(&self, scope: &str) -> Result<(), WalletError> {
        self.tx.execute(
            "DELETE FROM idempotency_keys WHERE scope = ?1",
            params![scope],
        )?;
        Ok(())
    }

    /// The key of the newest top-up of `amount` never confirmed by the backend.
    pub(crate) fn starting_topup(&self, amount: i64) -> Result<Option<String>, WalletError> {
        Ok(self
            .tx
            .query_row(
                "SELECT idempotency_key FROM topups WHERE status = 'starting' AND amount = ?1
                 ORDER BY created_at DESC LIMIT 1",
                params![amount],
                |r| r.get("idempotency_key"),
            )
            .optional()?)
    }

    /// A new top-up of `amount` under `key`, not yet confirmed.
    pub(crate) fn insert_topup(&self, key: &str, amount: i64, now: i64) -> Result<(), WalletError> {
        self.tx.execute(
            "INSERT INTO topups (idempotency_key, amount, status, created_at, updated_at)
             VALUES (?1, ?2, 'starting', ?3, ?3)",
            params![key, amount, now],
        )?;
        Ok(())
    }

    /// Abandons every unconfirmed top-up but `key`'s.
    pub(crate) fn abandon_topups_except(&self, key: &str, now: i64) -> Result<(), WalletError> {
        self.tx.execute(
            "UPDATE topups SET status = 'abandoned', updated_at = ?2
             WHERE status = 'starting' AND idempotency_key <> ?1",
            params![key, now],
        )?;
        Ok(())
    }

    /// Records what the backend said about a top-up.
    pub(crate) fn update_topup(&self, row: &TopUpRow, now: i64) -> Result<(), WalletError> {
        self.tx.execute(
            "UPDATE topups SET intent_id = ?2, status = ?3, payment_url = ?4, expires_at = ?5,
                               ledger_entry_id = ?6, gateway_ref = ?7, updated_at = ?8
             WHERE idempotency_key = ?1",
            params![
                row.key,
                row.intent_id,
                row.status,
                row.payment_url,
                row.expires_at,
                row.ledger_entry_id,
                row.gateway_ref,
                now
            ],
        )?;
        Ok(())
    }
}
