//! Processed validator batches, with the answer given (a resent batch gets it again).

use super::db::named_params;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::BatchId;

/// A processed batch.
#[derive(Debug, Clone)]
pub struct StoredBatch {
    pub validator_id: u32,
    pub body_hash: [u8; 32],
    /// The `BatchResponse` answered, JSON.
    pub response: String,
}

impl Reader<'_> {
    pub fn batch(&self, id: &BatchId) -> Result<Option<StoredBatch>, StoreError> {
        self.conn.query_opt(
            "SELECT validator_id, body_hash, response FROM batches WHERE batch_id = :id",
            named_params! {":id": id},
            |r| {
                Ok(StoredBatch {
                    validator_id: r.get("validator_id")?,
                    body_hash: r.get("body_hash")?,
                    response: r.get("response")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    pub fn insert_batch(
        &self,
        id: &BatchId,
        batch: &StoredBatch,
        now: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO batches (batch_id, validator_id, body_hash, response, received_at)
             VALUES (:id, :validator, :body_hash, :response, :now)",
            named_params! {
                ":id": id,
                ":validator": batch.validator_id,
                ":body_hash": &batch.body_hash[..],
                ":response": batch.response,
                ":now": now,
            },
        )?;
        Ok(())
    }
}
