//! What validators upload: tap records in validator-signed batches.

use crate::cert::Pseudonym;
use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, KeyError, PublicKey, SignatureError, SigningKey};
use crate::list::{check_count, read_list, write_list, CountWidth, ListElement};
use crate::pass::BoardingPass;
use crate::signed::{Signed, SignedBody};
use crate::tap::{TapAuthorization, TapChallenge};
use crate::tariff::FareKind;

/// The signed evidence of one tap, as the phone produced it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TapProof {
    /// NFC: the validator-signed challenge and the phone's authorization of it (which names the
    /// certificate by id).
    Nfc {
        challenge: TapChallenge,
        authorization: TapAuthorization,
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

    /// The amount the phone signed (NFC) or the most it allowed (QR).
    pub fn amount(&self) -> i64 {
        match self {
            Self::Nfc { authorization, .. } => authorization.amount,
            Self::Qr { pass } => pass.body.max_amount,
        }
    }

    /// The id of the certificate whose tap key signed.
    pub fn cert_id(&self) -> [u8; 32] {
        match self {
            Self::Nfc { authorization, .. } => authorization.cert_id,
            Self::Qr { pass } => pass.body.certificate.id(),
        }
    }

    /// The same as [`Self::cert_id`] (the name v1 callers used).
    pub fn cert_hash(&self) -> [u8; 32] {
        self.cert_id()
    }

    /// The previous link of the wallet's tap chain that the phone signed.
    pub fn prev(&self) -> [u8; 32] {
        match self {
            Self::Nfc { authorization, .. } => authorization.prev,
            Self::Qr { pass } => pass.body.prev,
        }
    }

    /// The bytes the phone's tap key signed (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        match self {
            Self::Nfc {
                challenge,
                authorization,
            } => authorization.signed_bytes(&challenge.body),
            Self::Qr { pass } => pass.signed_bytes(),
        }
    }

    /// The tap's identity: a hash of what the phone signed (never of a signature). Exactly-once
    /// and duplicate checks key on it, and the next link of the tap chain repeats it.
    pub fn id(&self) -> [u8; 32] {
        sha256(&[tags::TAP_ID, &[self.kind_byte()], &self.signed_bytes()])
    }

    /// Checks the phone's signature under `tap_key` (and, for NFC, nothing about the
    /// validator: see [`crate::verify`]).
    pub fn verify_phone_signature(&self, tap_key: &PublicKey) -> Result<(), SignatureError> {
        match self {
            Self::Nfc {
                challenge,
                authorization,
            } => authorization.verify(tap_key, &challenge.body),
            Self::Qr { pass } => pass.verify(tap_key),
        }
    }

    pub(crate) fn encode_into(&self, w: &mut Writer) {
        w.u8(self.kind_byte());
        match self {
            Self::Nfc {
                challenge,
                authorization,
            } => {
                challenge.write(w);
                authorization.write(w);
            }
            Self::Qr { pass } => pass.write(w),
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            1 => Ok(Self::Nfc {
                challenge: TapChallenge::read(r)?,
                authorization: TapAuthorization::read(r)?,
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

impl Message for TapRecord {
    const NAME: &'static str = "tap record";
    const TAG: u8 = b'R';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        320
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.validator_id)
            .u32(self.line_id)
            .i64(self.time)
            .bytes(&self.pseudonym.0)
            .u32(self.counter)
            .i64(self.fare)
            .u8(self.fare_kind as u8);
        self.proof.encode_into(w);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
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

inherent_codec!(TapRecord);

/// In a batch, each record is framed by its u16 length.
impl ListElement for TapRecord {
    const COUNT_WIDTH: CountWidth = CountWidth::U16;
    const MAX: usize = BatchBody::MAX_RECORDS;
    const COUNT_FIELD: &'static str = "batch record count";
    const LIST_FIELD: &'static str = "batch record list";
    /// Length, header, the fixed fields and the proof kind.
    const MIN_LEN: usize = 2 + 2 + 4 + 4 + 8 + 16 + 4 + 8 + 1 + 1;

    fn write_element(&self, w: &mut Writer) {
        let mut inner = Writer::with_capacity(400);
        self.write(&mut inner);
        w.u16(u16::try_from(inner.len()).unwrap_or(u16::MAX))
            .bytes(inner.as_slice());
    }

    fn read_element(r: &mut Reader<'_>, _prev: Option<&Self>) -> Result<Self, DecodeError> {
        let len = usize::from(r.u16()?);
        Self::decode(r.take(len)?)
    }
}

/// A torn tap: the validator sent this challenge in an AUTHORIZE TAP, got no valid answer
/// (none, a transport error, garbage, a signature that does not verify) and the card did not
/// come back within the validator's torn window to recover it. In a batch, signed by the
/// validator: evidence that the gate did NOT open for this challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TornRecord {
    /// The validator's clock when it gave up on the answer, UTC seconds.
    pub time: i64,
    /// The challenge the validator sent (validator-signed).
    pub challenge: TapChallenge,
}

impl TornRecord {
    /// Encoded size: header, time, challenge.
    pub const LEN: usize = 2 + 8 + TapChallenge::LEN;

    /// The id of the challenge the gate did not open for ([`TapChallenge::id`]).
    pub fn challenge_id(&self) -> [u8; 32] {
        self.challenge.id()
    }
}

impl Message for TornRecord {
    const NAME: &'static str = "torn record";
    /// `N`: the tariff has `T`.
    const TAG: u8 = b'N';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        Self::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.i64(self.time);
        self.challenge.write(w);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            time: r.i64()?,
            challenge: TapChallenge::read(r)?,
        })
    }
}

inherent_codec!(TornRecord);

/// In a batch, each torn record is framed by its u16 length, as tap records are.
impl ListElement for TornRecord {
    const COUNT_WIDTH: CountWidth = CountWidth::U16;
    const MAX: usize = BatchBody::MAX_TORN;
    const COUNT_FIELD: &'static str = "batch torn record count";
    const LIST_FIELD: &'static str = "batch torn record list";
    /// Length and the whole record (its size is fixed).
    const MIN_LEN: usize = 2 + Self::LEN;

    fn write_element(&self, w: &mut Writer) {
        let mut inner = Writer::with_capacity(Self::LEN);
        self.write(&mut inner);
        w.u16(u16::try_from(inner.len()).unwrap_or(u16::MAX))
            .bytes(inner.as_slice());
    }

    fn read_element(r: &mut Reader<'_>, _prev: Option<&Self>) -> Result<Self, DecodeError> {
        let len = usize::from(r.u16()?);
        Self::decode(r.take(len)?)
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
    /// Challenges this validator gave up on: the gate did not open for them.
    pub torn: Vec<TornRecord>,
}

/// A validator-signed batch of tap records.
pub type TapBatch = Signed<BatchBody>;

impl BatchBody {
    pub const MAX_RECORDS: usize = 10_000;
    pub const MAX_TORN: usize = 1_000;

    /// Signs the batch (refused if it holds more records than a decoder accepts).
    pub fn sign(self, validator_key: &SigningKey) -> Result<TapBatch, KeyError> {
        Signed::sign(self, validator_key)
    }
}

impl Message for BatchBody {
    const NAME: &'static str = "tap batch";
    const TAG: u8 = b'B';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        self.records
            .len()
            .saturating_mul(330)
            .saturating_add(self.torn.len().saturating_mul(TornRecord::MIN_LEN))
            .saturating_add(34)
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.validator_id)
            .bytes(&self.batch_id)
            .i64(self.created_at);
        write_list(w, &self.records);
        write_list(w, &self.torn);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            validator_id: r.u32()?,
            batch_id: r.array()?,
            created_at: r.i64()?,
            records: read_list(r)?,
            torn: read_list(r)?,
        })
    }
}

impl SignedBody for BatchBody {
    const DOMAIN: &'static [u8] = tags::BATCH;

    fn prepare(self) -> Result<Self, KeyError> {
        check_count(&self.records)?;
        check_count(&self.torn)?;
        Ok(self)
    }
}

impl Signed<BatchBody> {
    /// Checks the validator's signature.
    pub fn verify_signature(&self, validator_key: &PublicKey) -> bool {
        self.verify(validator_key).is_ok()
    }
}
