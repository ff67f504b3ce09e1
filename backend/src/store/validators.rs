//! Registered validators and their batch-signing keys.

use super::{Reader, Writer};
use crate::error::StoreError;
use rusqlite::{named_params, OptionalExtension};

impl Reader<'_> {
    /// The registered public key of a validator (SEC1 bytes).
    pub fn validator_key(&self, id: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT public_key FROM validators WHERE id = :id",
                named_params! {":id": id},
                |r| r.get("public_key"),
            )
            .optional()?)
    }
}

impl Writer<'_> {
    /// Registers a validator, or replaces its key.
    pub fn upsert_validator(&self, id: u32, key: &[u8], now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO validators (id, public_key, registered_at) VALUES (:id, :key, :now)
             ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key,
                                            registered_at = excluded.registered_at",
            named_params! {":id": id, ":key": key, ":now": now},
        )?;
        Ok(())
    }
}
