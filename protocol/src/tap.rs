//! The NFC tap: a validator's challenge and the wallet's signed authorization.

use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, BadSignature, KeyError, PublicKey, Signature, SigningKey};

/// Validator → phone: what the validator asks the phone to authorize.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapChallenge {
    pub validator_id: u32,
    /// Fresh random nonce: freshness on NFC comes from here, not from the phone's clock.
    pub nonce: [u8; 16],
    /// The validator's clock, UTC seconds.
    pub validator_time: i64,
    pub line_id: u32,
    /// The fare the validator will charge, in rials.
    pub fare: i64,
}

impl Message for TapChallenge {
    const NAME: &'static str = "tap challenge";
    const TAG: u8 = b'H';
    const VERSION: u8 = 1;

    fn size_hint(&self) -> usize {
        Self::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.validator_id)
            .bytes(&self.nonce)
            .i64(self.validator_time)
            .u32(self.line_id)
            .i64(self.fare);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            validator_id: r.u32()?,
            nonce: r.array()?,
            validator_time: r.i64()?,
            line_id: r.u32()?,
            fare: r.amount("fare")?,
        })
    }
}

inherent_codec!(TapChallenge, TapAuthorization);

impl TapChallenge {
    pub const LEN: usize = 2 + 4 + 16 + 8 + 4 + 8;

    /// The digest that binds this challenge to one certificate (by its hash).
    pub fn digest(&self, cert_hash: &[u8; 32]) -> [u8; 32] {
        sha256(&[tags::TAP_DIGEST, &self.encode(), cert_hash])
    }
}

/// Phone → validator: the tap-key signature over (challenge ‖ certificate ‖ counter ‖ amount).
///
/// Not a [`crate::Signed`] body: its few fields stay flat for the callers that read them, and
/// its check still goes through the one signature check ([`PublicKey::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapAuthorization {
    pub counter: u32,
    pub amount: i64,
    /// [`TapChallenge::digest`] of the challenge answered and the certificate used.
    pub digest: [u8; 32],
    pub signature: Signature,
}

impl TapAuthorization {
    pub const LEN: usize = 2 + 4 + 8 + 32 + 64;

    fn body(counter: u32, amount: i64, digest: &[u8; 32]) -> Vec<u8> {
        let mut w = Writer::with_capacity(Self::LEN);
        w.header(Self::TAG, Self::VERSION)
            .u32(counter)
            .i64(amount)
            .bytes(digest);
        w.into_vec()
    }

    /// Signs an authorization of `amount` under `counter` for `challenge` and the certificate `cert_hash`.
    pub fn sign(
        tap_key: &SigningKey,
        challenge: &TapChallenge,
        cert_hash: &[u8; 32],
        counter: u32,
        amount: i64,
    ) -> Result<Self, KeyError> {
        let digest = challenge.digest(cert_hash);
        let signature = tap_key.sign(tags::TAP, &Self::body(counter, amount, &digest))?;
        Ok(Self {
            counter,
            amount,
            digest,
            signature,
        })
    }

    /// The bytes the signature covers (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        Self::body(self.counter, self.amount, &self.digest)
    }

    /// Checks the tap-key signature (through the one signature check, [`PublicKey::verify`]).
    pub fn verify(&self, tap_key: &PublicKey) -> Result<(), BadSignature> {
        tap_key.verify(tags::TAP, &self.signed_bytes(), &self.signature)
    }
}

impl Message for TapAuthorization {
    const NAME: &'static str = "tap authorization";
    const TAG: u8 = b'A';
    const VERSION: u8 = 1;

    fn size_hint(&self) -> usize {
        Self::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.counter)
            .i64(self.amount)
            .bytes(&self.digest)
            .bytes(self.signature.as_bytes());
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            counter: r.u32()?,
            amount: r.amount("amount")?,
            digest: r.array()?,
            signature: Signature(r.array()?),
        })
    }
}
