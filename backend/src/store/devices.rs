//! Devices (wallet installations) and their revocations.

use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, DeviceId, PseudonymBytes};
use mancard_api::FraudKind;
use rusqlite::{named_params, OptionalExtension, Row};

/// Why a pseudonym was revoked (stored as its text; the wallet reads it as the credential's
/// `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation {
    /// The account provisioned another device (a lost phone).
    ReplacedByNewDevice,
    /// A fraud case was opened against the device.
    Fraud(FraudKind),
}

impl Revocation {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::ReplacedByNewDevice => "replaced_by_new_device",
            Self::Fraud(kind) => kind.as_str(),
        }
    }
}

/// A wallet installation.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: DeviceId,
    pub account_id: AccountId,
    pub binding_key: Vec<u8>,
    pub pseudonym: PseudonymBytes,
    pub created_at: i64,
}

fn device_row(r: &Row<'_>) -> rusqlite::Result<Device> {
    Ok(Device {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        binding_key: r.get("binding_key")?,
        pseudonym: r.get("pseudonym")?,
        created_at: r.get("created_at")?,
    })
}

impl Reader<'_> {
    pub fn device_by_binding_key(&self, key: &[u8]) -> Result<Option<Device>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, account_id, binding_key, pseudonym, created_at FROM devices
                 WHERE binding_key = :key",
            )?
            .query_row(named_params! {":key": key}, device_row)
            .optional()?)
    }

    pub fn device_by_pseudonym(&self, p: &PseudonymBytes) -> Result<Option<Device>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT id, account_id, binding_key, pseudonym, created_at FROM devices
                 WHERE pseudonym = :p",
            )?
            .query_row(named_params! {":p": p}, device_row)
            .optional()?)
    }

    /// The account's devices that are not revoked.
    pub fn active_devices(&self, account_id: AccountId) -> Result<Vec<Device>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT d.id, d.account_id, d.binding_key, d.pseudonym, d.created_at FROM devices d
             WHERE d.account_id = :account
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.pseudonym = d.pseudonym)
             ORDER BY d.id",
        )?;
        let rows = st.query_map(named_params! {":account": account_id}, device_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Why a pseudonym was revoked, if it was.
    pub fn revocation(&self, p: &PseudonymBytes) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT reason FROM revocations WHERE pseudonym = :p")?
            .query_row(named_params! {":p": p}, |r| r.get("reason"))
            .optional()?)
    }

    /// Revoked pseudonyms that may still hold an unexpired certificate at `now`, sorted.
    pub fn deny_list(&self, now: i64) -> Result<Vec<PseudonymBytes>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT r.pseudonym FROM revocations r
             WHERE EXISTS (SELECT 1 FROM certificates c
                           WHERE c.device_id = r.device_id AND c.valid_until >= :now)
             ORDER BY r.pseudonym",
        )?;
        let rows = st.query_map(named_params! {":now": now}, |r| r.get("pseudonym"))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Writer<'_> {
    pub fn insert_device(
        &self,
        account_id: AccountId,
        binding_key: &[u8],
        pseudonym: &PseudonymBytes,
        now: i64,
    ) -> Result<DeviceId, StoreError> {
        self.tx.execute(
            "INSERT INTO devices (account_id, binding_key, pseudonym, created_at)
             VALUES (:account, :key, :p, :now)",
            named_params! {
                ":account": account_id,
                ":key": binding_key,
                ":p": pseudonym,
                ":now": now,
            },
        )?;
        Ok(DeviceId(self.tx.last_insert_rowid()))
    }

    /// Revokes a pseudonym (idempotent: the first reason is kept).
    pub fn revoke(
        &self,
        p: &PseudonymBytes,
        device_id: DeviceId,
        reason: Revocation,
        now: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO revocations (pseudonym, device_id, reason, revoked_at)
             VALUES (:p, :device, :reason, :now)",
            named_params! {
                ":p": p,
                ":device": device_id,
                ":reason": reason.as_str(),
                ":now": now,
            },
        )?;
        Ok(())
    }
}
