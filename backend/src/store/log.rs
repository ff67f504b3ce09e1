//! Each device's uploaded tap log (the hash chain the wallet keeps).

use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::DeviceId;
use rusqlite::{named_params, OptionalExtension};

/// The last stored log entry of a device.
#[derive(Debug, Clone, Copy)]
pub struct ChainHead {
    pub seq: u64,
    pub hash: [u8; 32],
    pub counter: u32,
}

/// A stored log entry.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub seq: u64,
    pub encoded: Vec<u8>,
}

/// Sequence numbers beyond `i64` are stored nowhere: look-ups of them find nothing.
fn seq_key(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Reader<'_> {
    pub fn chain_head(&self, device_id: DeviceId) -> Result<Option<ChainHead>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT seq, hash, counter FROM wallet_log WHERE device_id = :device
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(named_params! {":device": device_id}, |r| {
                Ok(ChainHead {
                    seq: r.get("seq")?,
                    hash: r.get("hash")?,
                    counter: r.get("counter")?,
                })
            })
            .optional()?)
    }

    pub fn log_hash_at(
        &self,
        device_id: DeviceId,
        seq: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT hash FROM wallet_log WHERE device_id = :device AND seq = :seq")?
            .query_row(
                named_params! {":device": device_id, ":seq": seq_key(seq)},
                |r| r.get("hash"),
            )
            .optional()?)
    }

    /// Stored log entries from `from_seq` on, at most `limit`.
    pub fn log_from(
        &self,
        device_id: DeviceId,
        from_seq: u64,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT seq, encoded FROM wallet_log WHERE device_id = :device AND seq >= :from
             ORDER BY seq LIMIT :limit",
        )?;
        let rows = st.query_map(
            named_params! {":device": device_id, ":from": seq_key(from_seq), ":limit": limit},
            |r| {
                Ok(LogRow {
                    seq: r.get("seq")?,
                    encoded: r.get("encoded")?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Writer<'_> {
    pub fn insert_log(
        &self,
        device_id: DeviceId,
        seq: u64,
        hash: &[u8; 32],
        counter: u32,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("seq"))?;
        self.tx
            .prepare_cached(
                "INSERT INTO wallet_log (device_id, seq, hash, counter, encoded)
                 VALUES (:device, :seq, :hash, :counter, :encoded)",
            )?
            .execute(named_params! {
                ":device": device_id,
                ":seq": seq,
                ":hash": &hash[..],
                ":counter": counter,
                ":encoded": encoded,
            })?;
        Ok(())
    }
}
