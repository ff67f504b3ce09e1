//! `credentials`: installed certificates; at most one `active`, older ones `superseded`, a
//! revoked one `revoked` with its reason. `spent` is summed from the tap log.

use super::sync::{StoredTapStatus, StoredVerdictStatus};
use super::{Read, Write};
use crate::error::WalletError;
use mancard_api::{TapStatus, VerdictStatus};
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

/// What a credential's tap-log entries hold against its offline allowance, before the
/// reservations of expired passes are released (`crate::pass`).
pub(crate) struct Spending {
    /// Rials the phone authorized on NFC taps: they always count.
    pub(crate) nfc: i64,
    pub(crate) passes: Vec<PassHold>,
}

/// One QR pass under the credential, with what the backend said about it.
pub(crate) struct PassHold {
    /// The amount it reserved (its maximum).
    pub(crate) amount: i64,
    /// The encoded log entry (its pass says when it expires).
    pub(crate) entry: Vec<u8>,
    /// The newest verdict of the feed: (status, rials charged).
    pub(crate) verdict: Option<(VerdictStatus, i64)>,
    /// The answer to its upload (a backend without the verdict feed): (status, fare).
    pub(crate) settled: Option<(TapStatus, Option<i64>)>,
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

    /// The active credential: its id and certificate (what it spent is
    /// `crate::pass::counted_spent`).
    pub(crate) fn active_certificate(&self) -> Result<Option<(i64, Vec<u8>)>, WalletError> {
        Ok(self
            .conn
            .query_row(
                "SELECT c.id, c.certificate FROM credentials c WHERE c.status = 'active'
                 ORDER BY c.id DESC LIMIT 1",
                [],
                |r| Ok((r.get("id")?, r.get("certificate")?)),
            )
            .optional()?)
    }

    /// What credential `id`'s entries hold against its allowance (its entries from its first
    /// one, as `spent` of [`Read::current_credential`]).
    pub(crate) fn spending(&self, id: i64) -> Result<Spending, WalletError> {
        let nfc = self.conn.query_row(
            "SELECT COALESCE(SUM(t.amount), 0) AS nfc FROM tap_log t
             JOIN credentials c ON c.id = t.credential_id
             WHERE c.id = ?1 AND t.seq >= c.first_seq AND t.kind = 1",
            params![id],
            |r| r.get("nfc"),
        )?;
        let mut st = self.conn.prepare_cached(
            "SELECT t.amount, t.entry, v.status AS v_status, v.charged AS v_charged,
                    s.status AS s_status, s.fare AS s_fare
             FROM tap_log t JOIN credentials c ON c.id = t.credential_id
                  LEFT JOIN tap_verdicts v ON v.pseudonym = c.pseudonym AND v.counter = t.counter
                  LEFT JOIN tap_settlements s ON s.seq = t.seq
             WHERE c.id = ?1 AND t.seq >= c.first_seq AND t.kind = 2 ORDER BY t.seq",
        )?;
        let rows = st.query_map(params![id], |r| {
            let verdict = match r.get::<_, Option<StoredVerdictStatus>>("v_status")? {
                Some(s) => Some((s.0, r.get::<_, i64>("v_charged")?)),
                None => None,
            };
            let settled = match r.get::<_, Option<StoredTapStatus>>("s_status")? {
                Some(s) => Some((s.0, r.get::<_, Option<i64>>("s_fare")?)),
                None => None,
            };
            Ok(PassHold {
                amount: r.get("amount")?,
                entry: r.get("entry")?,
                verdict,
                settled,
            })
        })?;
        Ok(Spending {
            nfc,
            passes: rows.collect::<Result<Vec<_>, _>>()?,
        })
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
        // The pseudonym the backend's verdicts name this certificate's taps by.
        let pseudonym = mancard_protocol::CredentialCertificate::decode(c.certificate)
            .map_err(|e| WalletError::invalid(format!("the certificate to install: {e}")))?
            .body
            .pseudonym;
        self.tx.execute(
            "INSERT INTO credentials (tap_key_id, certificate, cert_hash, status, installed_at,
                                      first_seq, pseudonym)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5, ?6)",
            params![
                c.tap_key_id,
                c.certificate,
                c.cert_hash.to_vec(),
                c.installed_at,
                c.first_seq,
                pseudonym.0.to_vec()
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
