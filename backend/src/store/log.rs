//! Each device's uploaded tap log (the signed tap chain the wallet keeps) and where its chain
//! stands (the protocol's `ChainHead`, one row per device).

use super::db::{col, named_params, ColType, ToValue, Value};
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::DeviceId;
use mancard_protocol::ChainHead;

/// A stored log entry.
#[derive(Debug, Clone)]
pub struct LogRow {
    pub seq: u64,
    pub encoded: Vec<u8>,
}

/// An entry to append to a device's stored log.
#[derive(Debug, Clone, Copy)]
pub struct NewLogEntry<'a> {
    pub seq: u64,
    /// The entry's hash (the next entry's link).
    pub hash: [u8; 32],
    pub counter: u32,
    /// The entry as the wallet uploaded it.
    pub encoded: &'a [u8],
}

/// Sequence numbers beyond `i64` are stored nowhere: look-ups of them find nothing.
fn seq_key(seq: u64) -> i64 {
    i64::try_from(seq).unwrap_or(i64::MAX)
}

impl Reader<'_> {
    /// Where a device's chain stands (the start of a chain if nothing is stored).
    pub fn chain_head(&self, device_id: DeviceId) -> Result<ChainHead, StoreError> {
        Ok(self
            .conn
            .query_opt(
                "SELECT next_seq, last_cert, last_link, last_counter FROM chain_heads
                 WHERE device_id = :device",
                named_params! {":device": device_id},
                |r| {
                    let cert: Option<[u8; 32]> = r.get("last_cert")?;
                    let link: Option<[u8; 32]> = r.get("last_link")?;
                    Ok(ChainHead {
                        next_seq: r.get("next_seq")?,
                        last: cert.zip(link),
                        last_counter: r.get("last_counter")?,
                    })
                },
            )?
            .unwrap_or_default())
    }

    pub fn log_hash_at(
        &self,
        device_id: DeviceId,
        seq: u64,
    ) -> Result<Option<[u8; 32]>, StoreError> {
        self.conn.query_opt(
            "SELECT hash FROM wallet_log WHERE device_id = :device AND seq = :seq",
            named_params! {":device": device_id, ":seq": seq_key(seq)},
            |r| r.get("hash"),
        )
    }

    /// Stored log entries from `from_seq` on, at most `limit`.
    pub fn log_from(
        &self,
        device_id: DeviceId,
        from_seq: u64,
        limit: i64,
    ) -> Result<Vec<LogRow>, StoreError> {
        self.conn.query_vec(
            "SELECT seq, encoded FROM wallet_log WHERE device_id = :device AND seq >= :from
             ORDER BY seq LIMIT :limit",
            named_params! {":device": device_id, ":from": seq_key(from_seq), ":limit": limit},
            |r| {
                Ok(LogRow {
                    seq: r.get("seq")?,
                    encoded: r.get("encoded")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    /// Stores where a device's chain now stands.
    pub fn set_chain_head(&self, device_id: DeviceId, head: &ChainHead) -> Result<(), StoreError> {
        let next_seq =
            i64::try_from(head.next_seq).map_err(|_| StoreError::Corrupt("chain sequence"))?;
        let (cert, link) = match head.last {
            Some((c, l)) => (Some(c), Some(l)),
            None => (None, None),
        };
        self.tx.execute(
            "INSERT INTO chain_heads (device_id, next_seq, last_cert, last_link, last_counter)
             VALUES (:device, :next_seq, :cert, :link, :counter)
             ON CONFLICT (device_id) DO UPDATE SET next_seq = excluded.next_seq,
                 last_cert = excluded.last_cert, last_link = excluded.last_link,
                 last_counter = excluded.last_counter",
            named_params! {
                ":device": device_id,
                ":next_seq": next_seq,
                ":cert": cert,
                ":link": link,
                ":counter": head.last_counter,
            },
        )?;
        Ok(())
    }

    /// Appends entries to a device's stored log, in one statement (a few on SQLite,
    /// [`super::db::Conn::insert_rows`]) rather than one an entry: a sync uploads a rider's
    /// taps since the last one.
    pub fn insert_log(
        &self,
        device_id: DeviceId,
        entries: &[NewLogEntry<'_>],
    ) -> Result<(), StoreError> {
        let rows = entries
            .iter()
            .map(|e| {
                let seq = i64::try_from(e.seq).map_err(|_| StoreError::Corrupt("seq"))?;
                Ok((seq, e))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        use ColType::{Blob, Int};
        let rows: Vec<[Value<'_>; 5]> = rows
            .iter()
            .map(|(seq, e)| {
                [
                    device_id.to_value(),
                    seq.to_value(),
                    e.hash.to_value(),
                    e.counter.to_value(),
                    e.encoded.to_value(),
                ]
            })
            .collect();
        self.tx.insert_rows(
            (
                "INSERT INTO wallet_log (device_id, seq, hash, counter, encoded)",
                "",
            ),
            &[Int, Int, Blob, Int, Blob].map(col),
            &rows,
        )?;
        Ok(())
    }
}
