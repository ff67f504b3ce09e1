//! What validators upload: tap records in validator-signed batches.

use crate::cert::Pseudonym;
use crate::codec::{decode_exact, DecodeError, Reader, Writer};
use crate::crypto::{check_len, tags, KeyError, PublicKey, Signature, SigningKey};
use crate::pass::BoardingPass;
use crate::tap::{TapAuthorization, TapChallenge};
use crate::tariff::FareKind;

/// The signed evidence of one tap, as the phone produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapProof {
    /// NFC: the challenge sent, the authorization received and the hash of the certificate used.
    Nfc {
        challenge: TapChallenge,
        authorization: TapAuthorization,
        cert_hash: [u8; 32],
    },
    /// QR: the whole pass (it carries its certificate).
    Qr { pass: BoardingPass },
}

impl TapProof {
    pub fn kind_byte(&self) -> u8 {
        match self {
            Self::Nfc { .. } => 1,
            Self::Qr { .. } => 2,
        }
    }

    pub fn counter(&self) -> u32 {
        match self {
            Self::Nfc { authorization, .. } => authorization.counter,
            Self::Qr { pass } => pass.body.counter,
        }
    }

    pub fn cert_hash(&self) -> [u8; 32] {
        match self {
            Self::Nfc { cert_hash, .. } => *cert_hash,
            Self::Qr { pass } => pass.body.certificate.hash(),
        }
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.u8(self.kind_byte());
        match self {
            Self::Nfc {
                challenge,
                authorization,
                cert_hash,
            } => {
                challenge.encode_into(w);
                authorization.encode_into(w);
                w.bytes(cert_hash);
            }
            Self::Qr { pass } => {
                w.bytes(&pass.encode());
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            1 => Ok(Self::Nfc {
                challenge: TapChallenge::read(r)?,
                authorization: TapAuthorization::read(r)?,
                cert_hash: r.array()?,
            }),
            2 => {
                let bytes = r.take(BoardingPass::LEN)?;
                Ok(Self::Qr {
                    pass: BoardingPass::decode(bytes)?,
                })
            }
            _ => Err(DecodeError::InvalidValue {
                field: "tap kind",
                reason: "must be 1 (NFC) or 2 (QR)",
            }),
        }
    }
}

/// One accepted tap as the validator journaled it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapRecord {
    pub validator_id: u32,
    pub line_id: u32,
    /// Validator clock at the decision, UTC seconds.
    pub time: i64,
    pub pseudonym: Pseudonym,
    pub counter: u32,
    /// Fare the validator charged (the backend recomputes it at settlement).
    pub fare: i64,
    pub fare_kind: FareKind,
    pub proof: TapProof,
}

impl TapRecord {
    pub const TAG: u8 = b'R';
    pub const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(320);
        self.encode_into(&mut w);
        w.into_vec()
    }

    fn encode_into(&self, w: &mut Writer) {
        w.header(Self::TAG, Self::VERSION)
            .u32(self.validator_id)
            .u32(self.line_id)
            .i64(self.time)
            .bytes(&self.pseudonym.0)
            .u32(self.counter)
            .i64(self.fare)
            .u8(self.fare_kind as u8);
        self.proof.encode_into(w);
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        decode_exact(bytes, Self::read)
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        r.header("tap record", Self::TAG, Self::VERSION)?;
        let rec = Self {
            validator_id: r.u32()?,
            line_id: r.u32()?,
            time: r.i64()?,
            pseudonym: Pseudonym(r.array()?),
            counter: r.u32()?,
            fare: r.amount("fare")?,
            fare_kind: FareKind::from_u8(r.u8()?)?,
            proof: TapProof::read(r)?,
        };
        if rec.proof.counter() != rec.counter {
            return Err(DecodeError::InvalidValue {
                field: "tap record",
                reason: "counter differs from the counter in its proof",
            });
        }
        Ok(rec)
    }
}

/// The fields a validator signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchBody {
    pub validator_id: u32,
    /// Random id chosen when the batch is sealed; uploads are idempotent by it.
    pub batch_id: [u8; 16],
    pub created_at: i64,
    pub records: Vec<TapRecord>,
}

/// A validator-signed batch of tap records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapBatch {
    pub body: BatchBody,
    pub signature: Signature,
}

impl BatchBody {
    pub const MAX_RECORDS: usize = 10_000;

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(32 + self.records.len() * 330);
        w.header(TapBatch::TAG, TapBatch::VERSION)
            .u32(self.validator_id)
            .bytes(&self.batch_id)
            .i64(self.created_at)
            .u16(u16::try_from(self.records.len()).unwrap_or(u16::MAX));
        for rec in &self.records {
            let mut inner = Writer::with_capacity(330);
            rec.encode_into(&mut inner);
            w.u16(u16::try_from(inner.len()).unwrap_or(u16::MAX))
                .bytes(inner.as_slice());
        }
        w.into_vec()
    }

    pub fn sign(self, validator_key: &SigningKey) -> Result<TapBatch, KeyError> {
        check_len("batch record list", self.records.len(), Self::MAX_RECORDS)?;
        let signature = validator_key.sign(tags::BATCH, &self.encode())?;
        Ok(TapBatch {
            body: self,
            signature,
        })
    }
}

impl TapBatch {
    pub const TAG: u8 = b'B';
    pub const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.body.encode();
        v.extend_from_slice(self.signature.as_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header("tap batch", Self::TAG, Self::VERSION)?;
        let validator_id = r.u32()?;
        let batch_id = r.array()?;
        let created_at = r.i64()?;
        let n = usize::from(r.u16()?);
        if n > BatchBody::MAX_RECORDS {
            return Err(DecodeError::LengthOutOfRange {
                field: "batch record count",
                len: n,
                max: BatchBody::MAX_RECORDS,
            });
        }
        let mut records = Vec::with_capacity(n.min(r.remaining() / 100 + 1));
        for _ in 0..n {
            let len = usize::from(r.u16()?);
            records.push(TapRecord::decode(r.take(len)?)?);
        }
        let signature = Signature(r.array()?);
        r.finish()?;
        Ok(Self {
            body: BatchBody {
                validator_id,
                batch_id,
                created_at,
                records,
            },
            signature,
        })
    }

    /// The bytes the signature covers (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.body.encode()
    }

    /// Checks the validator's signature.
    pub fn verify_signature(&self, validator_key: &PublicKey) -> bool {
        validator_key
            .verify(tags::BATCH, &self.body.encode(), &self.signature)
            .is_ok()
    }
}
