//! The wallet's hash-chained tap log, uploaded at sync so the backend can detect
//! clones (two devices, one credential) and rollbacks (a restored backup).

use crate::batch::TapProof;
use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags};

/// The `prev_hash` of the first entry of a wallet's log.
pub const GENESIS_HASH: [u8; 32] = [0u8; 32];

/// One entry of the wallet's tap log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletLogEntry {
    /// Position in the log, from 0, without gaps.
    pub seq: u64,
    /// [`WalletLogEntry::hash`] of the previous entry, or [`GENESIS_HASH`].
    pub prev_hash: [u8; 32],
    /// Wallet clock (server-corrected) when the entry was written, UTC seconds.
    pub time: i64,
    /// Amount authorized (NFC) or the maximum authorized (QR), in rials.
    pub amount: i64,
    pub proof: TapProof,
}

impl Message for WalletLogEntry {
    const NAME: &'static str = "wallet log entry";
    const TAG: u8 = b'L';
    const VERSION: u8 = 1;

    fn size_hint(&self) -> usize {
        360
    }

    fn write_body(&self, w: &mut Writer) {
        w.u64(self.seq)
            .bytes(&self.prev_hash)
            .i64(self.time)
            .i64(self.amount);
        self.proof.encode_into(w);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            seq: r.u64()?,
            prev_hash: r.array()?,
            time: r.i64()?,
            amount: r.amount("amount")?,
            proof: TapProof::read(r)?,
        })
    }
}

inherent_codec!(WalletLogEntry);

impl WalletLogEntry {
    pub fn counter(&self) -> u32 {
        self.proof.counter()
    }

    /// The chain hash of this entry: what the next entry's `prev_hash` must be.
    pub fn hash(&self) -> [u8; 32] {
        sha256(&[tags::LOG, &self.encode()])
    }
}

/// Why a sequence of log entries is not one unbroken chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {seq}: expected sequence number {expected}")]
    SequenceGap { seq: u64, expected: u64 },
    #[error("entry {seq}: previous-hash does not match the entry before it")]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: counter {counter} does not increase")]
    CounterNotIncreasing { seq: u64, counter: u32 },
}

/// Checks that `entries` continue a chain whose last known entry had hash `prev` and sequence
/// `next_seq - 1` and counter `last_counter` (None at the start), with strictly increasing counters.
pub fn verify_chain(
    entries: &[WalletLogEntry],
    mut prev: [u8; 32],
    mut next_seq: u64,
    mut last_counter: Option<u32>,
) -> Result<[u8; 32], ChainError> {
    for e in entries {
        if e.seq != next_seq {
            return Err(ChainError::SequenceGap {
                seq: e.seq,
                expected: next_seq,
            });
        }
        if e.prev_hash != prev {
            return Err(ChainError::BrokenLink { seq: e.seq });
        }
        let c = e.counter();
        if last_counter.is_some_and(|l| c <= l) {
            return Err(ChainError::CounterNotIncreasing {
                seq: e.seq,
                counter: c,
            });
        }
        last_counter = Some(c);
        prev = e.hash();
        next_seq = next_seq.saturating_add(1);
    }
    Ok(prev)
}
