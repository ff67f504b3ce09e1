//! Registered validators: their keys (which sign batches and challenges), their
//! issuer-signed certificates and the validator deny list.

use super::db::{named_params, Row};
use super::{Reader, Writer};
use crate::error::StoreError;

/// A registered validator as stored.
#[derive(Debug, Clone)]
pub struct ValidatorRow {
    pub id: u32,
    /// SEC1 bytes of the registered public key.
    pub public_key: Vec<u8>,
    pub operator_id: u32,
    /// The encoded `ValidatorCertificate` (none for a validator registered before protocol v2).
    pub certificate: Option<Vec<u8>>,
    pub registered_at: i64,
    /// When it was put on the validator deny list, if it was.
    pub denied_at: Option<i64>,
}

/// A validator to register (or re-key).
#[derive(Debug, Clone)]
pub struct NewValidator<'a> {
    pub id: u32,
    pub public_key: &'a [u8],
    pub operator_id: u32,
    pub certificate: &'a [u8],
    pub registered_at: i64,
}

fn validator_row(r: &Row<'_>) -> Result<ValidatorRow, StoreError> {
    Ok(ValidatorRow {
        id: r.get("id")?,
        public_key: r.get("public_key")?,
        operator_id: r.get("operator_id")?,
        certificate: r.get("certificate")?,
        registered_at: r.get("registered_at")?,
        denied_at: r.get("denied_at")?,
    })
}

impl Reader<'_> {
    /// A registered validator.
    pub fn validator(&self, id: u32) -> Result<Option<ValidatorRow>, StoreError> {
        self.conn.query_opt(
            "SELECT id, public_key, operator_id, certificate, registered_at, denied_at
             FROM validators WHERE id = :id",
            named_params! {":id": id},
            validator_row,
        )
    }

    /// The registered public key of a validator (SEC1 bytes).
    pub fn validator_key(&self, id: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.validator(id)?.map(|v| v.public_key))
    }

    /// The ids of the validators on the validator deny list, sorted.
    pub fn denied_validators(&self) -> Result<Vec<u32>, StoreError> {
        self.conn.query_vec(
            "SELECT id FROM validators WHERE denied_at IS NOT NULL ORDER BY id",
            named_params! {},
            |r| r.get("id"),
        )
    }
}

impl Writer<'_> {
    /// Registers a validator, or replaces its key and certificate (a denial stays).
    pub fn upsert_validator(&self, v: &NewValidator<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO validators (id, public_key, registered_at, operator_id, certificate)
             VALUES (:id, :key, :now, :operator, :cert)
             ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key,
                                            registered_at = excluded.registered_at,
                                            operator_id = excluded.operator_id,
                                            certificate = excluded.certificate",
            named_params! {
                ":id": v.id,
                ":key": v.public_key,
                ":now": v.registered_at,
                ":operator": v.operator_id,
                ":cert": v.certificate,
            },
        )?;
        Ok(())
    }

    /// Puts a registered validator on the deny list (idempotent: the first time is kept);
    /// returns when it was denied, or `None` if no such validator is registered.
    pub fn deny_validator(&self, id: u32, now: i64) -> Result<Option<i64>, StoreError> {
        // a validator denied renews the bundle: the schema's trigger bumps `bundle_inputs`
        // (a repeat sets the same time, which bumps nothing)
        self.tx.query_opt(
            "UPDATE validators SET denied_at = COALESCE(denied_at, :now) WHERE id = :id
             RETURNING denied_at",
            named_params! {":id": id, ":now": now},
            |r| r.get("denied_at"),
        )
    }
}
