//! `credentials`: installed certificates; at most one `active`, older ones `superseded`, a
//! revoked one `revoked` with its reason. `spent` is summed from the tap log.

use super::{Read, Write};
use crate::error::WalletError;
use rusqlite::{params, OptionalExtension};

/// The newest active or revoked credential.
pub(crate) struct CurrentCredential {
    pub(crate) id: i64,
    pub(crate) certificate: Vec<u8>,
    /// `active` or `revoked`.
    pub(crate) status: String,
    /// Rials authorized under it (its tap-log entries).
    pub(crate) spent: i64,
    pub(crate) sealed_key: Option<Vec<u8>>,
    pub(crate) revoked_reason: Option<String>,
}

impl CurrentCredential {
    pub(crate) fn is_revoked(&self) -> bool {
        self.status == "revoked"
    }
}

/// A certificate to install over the pending tap key `tap_key_id`.
pub(crate) struct NewCredential<'a> {
    pub(crate) tap_key_id: i64,
    pub(crate) certificate: &'a [u8],
    pub(crate) cert_hash: &'a [u8; 32],
    pub(crate) installed_at: i64,
    pub(crate) first_seq: i64,
}

impl Read<'_> {
    /// The newest active or revoked credential, with its tap key.
    pub(crate) fn current_credential(&self) -> Result<Option<CurrentCredential>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT c.id, c.certificate, c.status, c.revoked_reason, k.sealed_key,
                        (SELECT COALESCE(SUM(amount), 0) FROM tap_log WHERE seq >= c.first_seq
                            AND credential_id = c.id) AS spent
                 FROM credentials c JOIN tap_keys k ON k.id = c.tap_key_id
                 WHERE c.status IN ('active', 'revoked') ORDER BY c.id DESC LIMIT 1",
                [],
                |r| {
                    Ok(CurrentCredential {
                        id: r.get("id")?,
                        certificate: r.get("certificate")?,
                        status: r.get("status")?,
                        spent: r.get("spent")?,
                        sealed_key: r.get("sealed_key")?,
                        revoked_reason: r.get("revoked_reason")?,
                    })
                },
            )
            .optional()?)
    }

    /// The active certificate and what was spent under it.
    pub(crate) fn active_certificate(&self) -> Result<Option<(Vec<u8>, i64)>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT c.certificate,
                        (SELECT COALESCE(SUM(amount), 0) FROM tap_log WHERE seq >= c.first_seq
                            AND credential_id = c.id) AS spent
                 FROM credentials c WHERE c.status = 'active' ORDER BY c.id DESC LIMIT 1",
                [],
                |r| Ok((r.get("certificate")?, r.get("spent")?)),
            )
            .optional()?)
    }

    /// Whether the certificate with this hash is the active one.
    pub(crate) fn is_active_certificate(&self, hash: &[u8; 32]) -> Result<bool, WalletError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM credentials WHERE cert_hash = ?1
                            AND status = 'active') AS installed",
            params![hash.to_vec()],
            |r| r.get("installed"),
        )?)
    }

    /// The id of the credential with this certificate hash (any status).
    pub(crate) fn credential_id(&self, hash: &[u8; 32]) -> Result<Option<i64>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM credentials WHERE cert_hash = ?1",
                params![hash.to_vec()],
                |r| r.get("id"),
            )
            .optional()?)
    }
}

impl Write<'_> {
    /// Installs `c`: the active credential is superseded and its key deleted, the pending key
    /// becomes the installed one. Returns the new credential's id.
    pub(crate) fn install_credential(&self, c: &NewCredential<'_>) -> Result<i64, WalletError> {
        self.tx.execute(
            "UPDATE credentials SET status = 'superseded' WHERE status = 'active'",
            [],
        )?;
        self.tx.execute(
            "UPDATE tap_keys SET state = 'retired', sealed_key = NULL WHERE state = 'installed'",
            [],
        )?;
        self.tx.execute(
            "UPDATE tap_keys SET state = 'installed' WHERE id = ?1",
            params![c.tap_key_id],
        )?;
        self.tx.execute(
            "INSERT INTO credentials (tap_key_id, certificate, cert_hash, status, installed_at,
                                      first_seq)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
            params![
                c.tap_key_id,
                c.certificate,
                c.cert_hash.to_vec(),
                c.installed_at,
                c.first_seq
            ],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Marks credential `id` revoked at `at` and deletes its tap key.
    pub(crate) fn revoke_credential(
        &self,
        id: i64,
        at: i64,
        reason: &str,
    ) -> Result<(), WalletError> {
        self.tx.execute(
            "UPDATE credentials SET status = 'revoked', revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1",
            params![id, at, reason],
        )?;
        self.tx.execute(
            "UPDATE tap_keys SET state = 'retired', sealed_key = NULL
             WHERE id = (SELECT tap_key_id FROM credentials WHERE id = ?1)",
            params![id],
        )?;
        Ok(())
    }
}
