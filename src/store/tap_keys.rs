//! `tap_keys`: the tap keys this wallet generated, sealed by the platform keystore; `pending`
//! until a certificate is installed for it, then `installed`, then `retired` (key deleted).

use super::{Read, Write};
use crate::error::WalletError;
use rusqlite::{params, OptionalExtension};

/// A pending tap key.
pub(crate) struct PendingKey {
    pub(crate) id: i64,
    pub(crate) sealed_key: Option<Vec<u8>>,
}

impl Read<'_> {
    /// The newest pending tap key's public half.
    pub(crate) fn pending_tap_public_key(&self) -> Result<Option<Vec<u8>>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT public_key FROM tap_keys WHERE state = 'pending' ORDER BY id DESC LIMIT 1",
                [],
                |row| row.get("public_key"),
            )
            .optional()?)
    }

    /// Whether a credential request waits for its certificate.
    pub(crate) fn has_pending_tap_key(&self) -> Result<bool, WalletError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM tap_keys WHERE state = 'pending') AS pending",
            [],
            |row| row.get("pending"),
        )?)
    }

    /// The pending tap key with this public half.
    pub(crate) fn pending_tap_key(
        &self,
        public_key: &[u8],
    ) -> Result<Option<PendingKey>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id, sealed_key FROM tap_keys WHERE public_key = ?1 AND state = 'pending'",
                params![public_key],
                |r| {
                    Ok(PendingKey {
                        id: r.get("id")?,
                        sealed_key: r.get("sealed_key")?,
                    })
                },
            )
            .optional()?)
    }
}

impl Write<'_> {
    /// Stores a new pending tap key.
    pub(crate) fn insert_pending_tap_key(
        &self,
        public_key: &[u8],
        sealed_key: &[u8],
        now: i64,
    ) -> Result<(), WalletError> {
        self.tx.execute(
            "INSERT INTO tap_keys (public_key, sealed_key, state, created_at)
             VALUES (?1, ?2, 'pending', ?3)",
            params![public_key, sealed_key, now],
        )?;
        Ok(())
    }
}
