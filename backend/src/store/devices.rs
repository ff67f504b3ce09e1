//! Devices (wallet installations) and their revocations.

use super::db::{named_params, Row};
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, DeviceId, PseudonymBytes};

/// Why a device was revoked: the contract's [`mancard_api::RevocationReason`], stored as its
/// text; the wallet reads it as the credential's `reason`.
pub use mancard_api::RevocationReason as Revocation;

/// A wallet installation.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub account_id: AccountId,
    pub binding_key: Vec<u8>,
    /// The pseudonym of its first certificate (each certificate has its own).
    pub pseudonym: PseudonymBytes,
    pub created_at: i64,
}

fn device_row(r: &Row<'_>) -> Result<Device, StoreError> {
    Ok(Device {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        binding_key: r.get("binding_key")?,
        pseudonym: r.get("pseudonym")?,
        created_at: r.get("created_at")?,
    })
}

const DEVICE_COLS: &str = "d.id, d.account_id, d.binding_key, d.pseudonym, d.created_at";

impl Reader<'_> {
    pub fn device_by_binding_key(&self, key: &[u8]) -> Result<Option<Device>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {DEVICE_COLS} FROM devices d WHERE d.binding_key = :key"),
            named_params! {":key": key},
            device_row,
        )
    }

    /// The device of the certificate that carries pseudonym `p` (pseudonym → certificate →
    /// device: every certificate has its own pseudonym).
    pub fn device_by_pseudonym(&self, p: &PseudonymBytes) -> Result<Option<Device>, StoreError> {
        self.conn.query_opt(
            &format!(
                "SELECT {DEVICE_COLS} FROM certificates c JOIN devices d ON d.id = c.device_id
                 WHERE c.pseudonym = :p LIMIT 1"
            ),
            named_params! {":p": p},
            device_row,
        )
    }

    /// The account's devices that are not revoked.
    pub fn active_devices(&self, account_id: AccountId) -> Result<Vec<Device>, StoreError> {
        self.conn.query_vec(
            &format!(
                "SELECT {DEVICE_COLS} FROM devices d
                 WHERE d.account_id = :account
                   AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.device_id = d.id)
                 ORDER BY d.id"
            ),
            named_params! {":account": account_id},
            device_row,
        )
    }

    /// Why a device was revoked, if it was.
    pub fn revocation(&self, device_id: DeviceId) -> Result<Option<String>, StoreError> {
        self.conn.query_opt(
            "SELECT reason FROM revocations WHERE device_id = :device
             ORDER BY revoked_at LIMIT 1",
            named_params! {":device": device_id},
            |r| r.get("reason"),
        )
    }

    /// The deny list at `now`: every pseudonym of a revoked device's certificates, and of
    /// certificates superseded by a newer one of their device, that have not expired, sorted.
    /// Both halves are read through indexes (`certificates_superseded`, the revocations'
    /// devices), in proportion to the list rather than to every certificate.
    pub fn deny_list(&self, now: i64) -> Result<Vec<PseudonymBytes>, StoreError> {
        self.conn.query_vec(
            "SELECT c.pseudonym AS pseudonym FROM certificates c
              WHERE c.superseded_at IS NOT NULL AND c.valid_until >= :now
             UNION
             SELECT c.pseudonym AS pseudonym FROM revocations r
               JOIN certificates c ON c.device_id = r.device_id
              WHERE c.valid_until >= :now
             ORDER BY pseudonym",
            named_params! {":now": now},
            |r| r.get("pseudonym"),
        )
    }
}

impl Writer<'_> {
    /// Stores a new device; `pseudonym` is its first certificate's.
    pub fn insert_device(
        &self,
        account_id: AccountId,
        binding_key: &[u8],
        pseudonym: &PseudonymBytes,
        now: i64,
    ) -> Result<DeviceId, StoreError> {
        self.tx.query_one(
            "INSERT INTO devices (account_id, binding_key, pseudonym, created_at)
             VALUES (:account, :key, :p, :now) RETURNING id",
            named_params! {
                ":account": account_id,
                ":key": binding_key,
                ":p": pseudonym,
                ":now": now,
            },
            |r| r.get("id"),
        )
    }

    /// Revokes a device, and with it every certificate (and so every pseudonym) it holds
    /// (idempotent: the first reason is kept).
    pub fn revoke(
        &self,
        device_id: DeviceId,
        reason: Revocation,
        now: i64,
    ) -> Result<(), StoreError> {
        // a revocation added renews the bundle: the schema's trigger bumps `bundle_inputs`
        self.tx.execute(
            "INSERT INTO revocations (pseudonym, device_id, reason, revoked_at)
             SELECT d.pseudonym, d.id, :reason, :now FROM devices d WHERE d.id = :device
             ON CONFLICT DO NOTHING",
            named_params! {
                ":device": device_id,
                ":reason": reason.as_str(),
                ":now": now,
            },
        )?;
        Ok(())
    }
}
