//! The wallet's signed tap chain, uploaded at sync so the backend can prove clones (two
//! devices, one credential) and rollbacks (a restored backup).
//!
//! Every tap authorization and pass signs `prev`: the id ([`TapProof::id`]) of the wallet's
//! previous signed tap or pass under the same certificate, or [`chain_start`] of the
//! certificate for the first one. The chain restarts with every certificate so that nothing on
//! the wire links two certificates (and so two pseudonyms) of one phone. Two signed taps with
//! the same `prev`, or one counter under two different signed bodies, are signed proof of a
//! fork ([`prove_fork`]); nothing else is.

use crate::batch::TapProof;
use crate::cert::CredentialCertificate;
use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, SignatureError};

/// The `prev` of the first signed tap or pass under the certificate `cert_id`.
pub fn chain_start(cert_id: &[u8; 32]) -> [u8; 32] {
    sha256(&[tags::CHAIN_START, cert_id])
}

/// One entry of the wallet's tap log: the signed proof and the wallet's own bookkeeping (its
/// position and clock, which nobody signed and nothing is decided on).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalletLogEntry {
    /// Position in the wallet's log, from 0, without gaps (the sync cursor).
    pub seq: u64,
    /// Wallet clock (server-corrected) when the entry was written, UTC seconds.
    pub time: i64,
    /// Amount authorized (NFC) or the maximum authorized (QR), in rials.
    pub amount: i64,
    pub proof: TapProof,
}

impl Message for WalletLogEntry {
    const NAME: &'static str = "wallet log entry";
    const TAG: u8 = b'L';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        420
    }

    fn write_body(&self, w: &mut Writer) {
        w.u64(self.seq).i64(self.time).i64(self.amount);
        self.proof.encode_into(w);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let e = Self {
            seq: r.u64()?,
            time: r.i64()?,
            amount: r.amount("amount")?,
            proof: TapProof::read(r)?,
        };
        if e.amount != e.proof.amount() {
            return Err(DecodeError::InvalidValue {
                field: "wallet log entry",
                reason: "amount differs from the amount in its proof",
            });
        }
        Ok(e)
    }
}

inherent_codec!(WalletLogEntry);

impl WalletLogEntry {
    pub fn counter(&self) -> u32 {
        self.proof.counter()
    }

    /// The entry's chain link: the id of its signed proof (what the next proof's `prev` is).
    pub fn hash(&self) -> [u8; 32] {
        self.proof.id()
    }
}

/// Where a chain stands after its last known entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChainHead {
    /// The next expected sequence number.
    pub next_seq: u64,
    /// Certificate id and proof id of the last entry, if any.
    pub last: Option<([u8; 32], [u8; 32])>,
    pub last_counter: Option<u32>,
}

impl ChainHead {
    /// The `prev` the next proof under `cert_id` must carry.
    pub fn expected_prev(&self, cert_id: &[u8; 32]) -> [u8; 32] {
        match self.last {
            Some((c, link)) if c == *cert_id => link,
            _ => chain_start(cert_id),
        }
    }
}

/// Why a sequence of log entries is not one unbroken chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("entry {seq}: expected sequence number {expected}")]
    SequenceGap { seq: u64, expected: u64 },
    #[error("entry {seq}: its signed previous link is not the entry before it")]
    BrokenLink { seq: u64 },
    #[error("entry {seq}: counter {counter} does not increase")]
    CounterNotIncreasing { seq: u64, counter: u32 },
}

/// Checks that `entries` continue the chain at `head`: consecutive sequence numbers, each
/// proof's signed `prev` the link before it (or its certificate's chain start when the
/// certificate changes), strictly increasing counters. Returns the new head. Signatures are not
/// checked here: the caller verifies each proof before it trusts the chain.
pub fn verify_chain(entries: &[WalletLogEntry], head: ChainHead) -> Result<ChainHead, ChainError> {
    let mut head = head;
    for e in entries {
        if e.seq != head.next_seq {
            return Err(ChainError::SequenceGap {
                seq: e.seq,
                expected: head.next_seq,
            });
        }
        let cert = e.proof.cert_id();
        if e.proof.prev() != head.expected_prev(&cert) {
            return Err(ChainError::BrokenLink { seq: e.seq });
        }
        let c = e.counter();
        if head.last_counter.is_some_and(|l| c <= l) {
            return Err(ChainError::CounterNotIncreasing {
                seq: e.seq,
                counter: c,
            });
        }
        head = ChainHead {
            next_seq: head.next_seq.saturating_add(1),
            last: Some((cert, e.proof.id())),
            last_counter: Some(c),
        };
    }
    Ok(head)
}

/// What two signed proofs of one certificate prove.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fork {
    /// Two different signed taps continue the same link: the wallet was cloned or rolled back.
    SamePredecessor,
    /// One counter under two different signed bodies.
    SameCounter,
}

/// Why two proofs prove nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotAFork {
    #[error("a proof is not made under this certificate")]
    OtherCertificate,
    #[error("a proof's signature is refused: {0}")]
    Signature(SignatureError),
    #[error("the two proofs are the same signed tap")]
    SameTap,
    #[error("the two proofs share neither a predecessor nor a counter")]
    Unrelated,
}

/// Decides from signatures alone whether `a` and `b` prove a fork of `cert`'s chain: both must
/// be signed (canonically) by the certificate's tap key, be different signed bodies, and share a
/// predecessor or a counter. The certificate's own issuer signature is the caller's to check.
pub fn prove_fork(
    cert: &CredentialCertificate,
    a: &TapProof,
    b: &TapProof,
) -> Result<Fork, NotAFork> {
    let id = cert.id();
    if a.cert_id() != id || b.cert_id() != id {
        return Err(NotAFork::OtherCertificate);
    }
    let key = &cert.body.tap_public_key;
    a.verify_phone_signature(key).map_err(NotAFork::Signature)?;
    b.verify_phone_signature(key).map_err(NotAFork::Signature)?;
    if a.id() == b.id() {
        return Err(NotAFork::SameTap);
    }
    if a.prev() == b.prev() {
        Ok(Fork::SamePredecessor)
    } else if a.counter() == b.counter() {
        Ok(Fork::SameCounter)
    } else {
        Err(NotAFork::Unrelated)
    }
}
