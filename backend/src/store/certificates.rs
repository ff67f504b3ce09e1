//! Issued certificates (each with its own pseudonym: a pseudonym names a certificate, the
//! certificate a device) and the running total of the amounts signed under each.

use super::db::{named_params, Params, Row};
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes};

/// An issued certificate as stored.
#[derive(Debug, Clone)]
pub struct CertRow {
    pub hash: CertHash,
    pub pseudonym: PseudonymBytes,
    pub device_id: DeviceId,
    pub account_id: AccountId,
    pub encoded: Vec<u8>,
    pub counter_first: u32,
    pub counter_last: u32,
    pub valid_until: i64,
    /// When a newer certificate of its device superseded it (its pseudonym is deny-listed
    /// until it expires).
    pub superseded_at: Option<i64>,
}

/// A certificate to store.
#[derive(Debug, Clone)]
pub struct NewCertificate<'a> {
    pub hash: CertHash,
    pub pseudonym: PseudonymBytes,
    pub device_id: DeviceId,
    pub encoded: &'a [u8],
    pub counter_first: u32,
    pub counter_last: u32,
    pub valid_until: i64,
    pub issued_at: i64,
    /// The certificate's tap public key (a provisioning retry with it gets this certificate).
    pub tap_key: &'a [u8],
}

fn cert_row(r: &Row<'_>) -> Result<CertRow, StoreError> {
    Ok(CertRow {
        hash: r.get("hash")?,
        pseudonym: r.get("pseudonym")?,
        device_id: r.get("device_id")?,
        account_id: r.get("account_id")?,
        encoded: r.get("encoded")?,
        counter_first: r.get("counter_first")?,
        counter_last: r.get("counter_last")?,
        valid_until: r.get("valid_until")?,
        superseded_at: r.get("superseded_at")?,
    })
}

/// A certificate row with its device's account, before the `WHERE`.
const CERT_SELECT: &str = "SELECT c.hash, c.pseudonym, c.device_id, d.account_id, c.encoded,
                                  c.counter_first, c.counter_last, c.valid_until,
                                  c.superseded_at
                           FROM certificates c JOIN devices d ON d.id = c.device_id";

impl Reader<'_> {
    /// The one certificate `filter` (a `WHERE` clause, with its order and limit) selects.
    fn one_certificate(
        &self,
        filter: &str,
        params: Params<'_, '_>,
    ) -> Result<Option<CertRow>, StoreError> {
        self.conn
            .query_opt(&format!("{CERT_SELECT} WHERE {filter}"), params, cert_row)
    }

    /// The newest certificate of a device.
    pub fn latest_certificate(&self, device_id: DeviceId) -> Result<Option<CertRow>, StoreError> {
        self.one_certificate(
            "c.device_id = :device ORDER BY c.counter_last DESC LIMIT 1",
            named_params! {":device": device_id},
        )
    }

    pub fn certificate(&self, hash: &CertHash) -> Result<Option<CertRow>, StoreError> {
        self.one_certificate("c.hash = :hash", named_params! {":hash": hash})
    }

    /// The certificate that carries a pseudonym (the newest, for the pseudonym a device kept
    /// for all its certificates before protocol v2).
    pub fn certificate_by_pseudonym(
        &self,
        p: &PseudonymBytes,
    ) -> Result<Option<CertRow>, StoreError> {
        self.one_certificate(
            "c.pseudonym = :p ORDER BY c.counter_last DESC LIMIT 1",
            named_params! {":p": p},
        )
    }

    /// The certificate issued for a tap key, if any.
    pub fn certificate_by_tap_key(&self, tap_key: &[u8]) -> Result<Option<CertRow>, StoreError> {
        self.one_certificate(
            "c.tap_key = :k ORDER BY c.counter_last DESC LIMIT 1",
            named_params! {":k": tap_key},
        )
    }

    /// How many certificates the devices of an account were issued since `since`.
    pub fn certificates_issued_since(
        &self,
        account_id: AccountId,
        since: i64,
    ) -> Result<u32, StoreError> {
        self.conn.query_one(
            "SELECT COUNT(*) AS n FROM certificates c JOIN devices d ON d.id = c.device_id
             WHERE d.account_id = :account AND c.issued_at >= :since",
            named_params! {":account": account_id, ":since": since},
            |r| r.get("n"),
        )
    }

    /// The distinct pseudonyms of a device's certificates still valid at `now`, sorted.
    pub fn live_pseudonyms(
        &self,
        device_id: DeviceId,
        now: i64,
    ) -> Result<Vec<PseudonymBytes>, StoreError> {
        self.conn.query_vec(
            "SELECT DISTINCT pseudonym FROM certificates
             WHERE device_id = :device AND valid_until >= :now ORDER BY pseudonym",
            named_params! {":device": device_id, ":now": now},
            |r| r.get("pseudonym"),
        )
    }

    /// The running total of the signed amounts settled under a certificate.
    pub fn cert_usage(&self, cert_hash: &CertHash) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT authorized FROM cert_usage WHERE cert_hash = :hash",
                named_params! {":hash": cert_hash},
                |r| r.get("authorized"),
            )?
            .unwrap_or(0))
    }
}

impl Writer<'_> {
    pub fn insert_certificate(&self, c: &NewCertificate<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO certificates (hash, pseudonym, device_id, encoded, counter_first,
                                       counter_last, valid_until, issued_at, tap_key)
             VALUES (:hash, :p, :device, :encoded, :first, :last, :valid_until, :issued_at,
                     :tap_key)",
            named_params! {
                ":hash": c.hash,
                ":p": c.pseudonym,
                ":device": c.device_id,
                ":encoded": c.encoded,
                ":first": c.counter_first,
                ":last": c.counter_last,
                ":valid_until": c.valid_until,
                ":issued_at": c.issued_at,
                ":tap_key": c.tap_key,
            },
        )?;
        Ok(())
    }

    /// Marks every other live certificate of the device superseded by `newest`; returns how
    /// many.
    pub fn supersede_others(
        &self,
        device_id: DeviceId,
        newest: &CertHash,
        now: i64,
    ) -> Result<usize, StoreError> {
        // the next bundle lists the old pseudonym (a copy of the old certificate is denied at
        // once), so a replenishment renews the bundle: the schema's trigger bumps
        // `bundle_inputs` (version 12)
        self.tx.execute(
            "UPDATE certificates SET superseded_at = :now
             WHERE device_id = :device AND hash <> :hash AND superseded_at IS NULL
               AND valid_until >= :now",
            named_params! {":device": device_id, ":hash": newest, ":now": now},
        )
    }

    /// Adds a newly settled tap's signed amount to its certificate's running total and returns
    /// the new total (one primary-key upsert; saturates at `i64::MAX`). Call it once per
    /// inserted tap, in the transaction that inserts it.
    pub(super) fn write_cert_usage(
        &self,
        cert_hash: &CertHash,
        amount: i64,
    ) -> Result<i64, StoreError> {
        self.tx.query_one(
            "INSERT INTO cert_usage (cert_hash, authorized) VALUES (:hash, :amount)
             ON CONFLICT (cert_hash) DO UPDATE SET authorized =
                 CASE WHEN cert_usage.authorized > 9223372036854775807 - excluded.authorized
                      THEN 9223372036854775807
                      ELSE cert_usage.authorized + excluded.authorized END
             RETURNING authorized",
            named_params! {":hash": cert_hash, ":amount": amount.max(0)},
            |r| r.get("authorized"),
        )
    }
}
