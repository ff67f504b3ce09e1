//! The NFC tap: a validator-signed challenge and the wallet's signed authorization.
//!
//! The challenge is signed by the validator key named in the reader's validator certificate, so
//! a phone signs nothing for a reader it cannot authenticate, and nobody (the wallet included)
//! can invent a challenge a validator did not issue. The authorization signs the challenge's
//! digest, the certificate id, the counter, the amount and the previous link of the wallet's
//! tap chain (see [`crate::log`]).

use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, KeyError, PublicKey, Signature, SignatureError, SigningKey};
use crate::signed::{Signed, SignedBody};
use crate::tariff::FareClass;

/// Validator → phone: what the validator asks the phone to authorize, before its signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChallengeBody {
    pub validator_id: u32,
    /// Fresh random nonce from the validator: the validator's freshness.
    pub nonce: [u8; 16],
    /// The phone's session value from SELECT: the phone's freshness (a challenge signed for
    /// another session, or recorded from another tap, is refused).
    pub session: [u8; 16],
    /// The validator's clock, UTC seconds.
    pub validator_time: i64,
    pub line_id: u32,
    /// The fare the validator will charge, in rials.
    pub fare: i64,
    /// The fare class the fare is quoted for; the phone answers only a challenge for its class.
    pub fare_class: FareClass,
}

/// A validator-signed challenge (123 bytes on the wire).
pub type TapChallenge = Signed<ChallengeBody>;

impl Message for ChallengeBody {
    const NAME: &'static str = "tap challenge";
    const TAG: u8 = b'H';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        TapChallenge::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.validator_id)
            .bytes(&self.nonce)
            .bytes(&self.session)
            .i64(self.validator_time)
            .u32(self.line_id)
            .i64(self.fare)
            .u8(self.fare_class as u8);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            validator_id: r.u32()?,
            nonce: r.array()?,
            session: r.array()?,
            validator_time: r.i64()?,
            line_id: r.u32()?,
            fare: r.amount("fare")?,
            fare_class: FareClass::from_u8(r.u8()?)?,
        })
    }
}

impl SignedBody for ChallengeBody {
    const DOMAIN: &'static [u8] = tags::CHALLENGE;
}

inherent_codec!(ChallengeBody, TapAuthorization);

impl ChallengeBody {
    /// Signs the challenge with the validator key.
    pub fn sign(self, validator_key: &SigningKey) -> Result<TapChallenge, KeyError> {
        Signed::sign(self, validator_key)
    }

    /// The digest of the challenge body that an authorization signs.
    pub fn digest(&self) -> [u8; 32] {
        sha256(&[tags::CHALLENGE_DIGEST, &self.encode()])
    }
}

impl Signed<ChallengeBody> {
    pub const LEN: usize = 2 + 4 + 16 + 16 + 8 + 4 + 8 + 1 + 64;

    /// The challenge's identity: `SHA-256(CHALLENGE_ID ‖ body)` over its signed body (header
    /// and fields, not the validator's signature), so a re-encoded signature names the same
    /// challenge. A torn record and the tap that recovers it agree on it.
    pub fn id(&self) -> [u8; 32] {
        sha256(&[tags::CHALLENGE_ID, &self.signed_bytes()])
    }
}

/// Phone → validator: the tap-key signature over (challenge digest ‖ certificate id ‖ counter ‖
/// amount ‖ previous chain link).
///
/// Not a [`crate::Signed`] body: the challenge digest it signs is not repeated on the wire (the
/// verifier has the challenge), and its check still goes through the one signature check
/// ([`PublicKey::verify`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TapAuthorization {
    pub counter: u32,
    pub amount: i64,
    /// The id of the wallet's previous signed tap or pass under this certificate, or
    /// [`crate::log::chain_start`] of the certificate for its first.
    pub prev: [u8; 32],
    /// The id of the certificate whose tap key signed (the validator looks it up in its cache,
    /// or reads the certificate after this answer).
    pub cert_id: [u8; 32],
    pub signature: Signature,
}

impl TapAuthorization {
    pub const LEN: usize = 2 + 4 + 8 + 32 + 32 + 64;

    fn body(
        counter: u32,
        amount: i64,
        prev: &[u8; 32],
        cert_id: &[u8; 32],
        challenge_digest: &[u8; 32],
    ) -> Vec<u8> {
        let mut w = Writer::with_capacity(2 + 4 + 8 + 32 * 3);
        w.header(Self::TAG, Self::VERSION)
            .u32(counter)
            .i64(amount)
            .bytes(prev)
            .bytes(cert_id)
            .bytes(challenge_digest);
        w.into_vec()
    }

    /// Signs an authorization of `amount` under `counter` for `challenge`, the certificate
    /// `cert_id` and the previous chain link `prev`.
    pub fn sign(
        tap_key: &SigningKey,
        challenge: &ChallengeBody,
        cert_id: &[u8; 32],
        counter: u32,
        amount: i64,
        prev: &[u8; 32],
    ) -> Result<Self, KeyError> {
        let bytes = Self::body(counter, amount, prev, cert_id, &challenge.digest());
        let signature = tap_key.sign(tags::TAP, &bytes)?;
        Ok(Self {
            counter,
            amount,
            prev: *prev,
            cert_id: *cert_id,
            signature,
        })
    }

    /// The bytes the signature covers (after the domain tag), given the challenge answered.
    pub fn signed_bytes(&self, challenge: &ChallengeBody) -> Vec<u8> {
        Self::body(
            self.counter,
            self.amount,
            &self.prev,
            &self.cert_id,
            &challenge.digest(),
        )
    }

    /// Checks the tap-key signature over this authorization of `challenge` (through the one
    /// signature check, [`PublicKey::verify`]).
    pub fn verify(
        &self,
        tap_key: &PublicKey,
        challenge: &ChallengeBody,
    ) -> Result<(), SignatureError> {
        tap_key.verify(tags::TAP, &self.signed_bytes(challenge), &self.signature)
    }
}

impl Message for TapAuthorization {
    const NAME: &'static str = "tap authorization";
    const TAG: u8 = b'A';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        Self::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.counter)
            .i64(self.amount)
            .bytes(&self.prev)
            .bytes(&self.cert_id)
            .bytes(self.signature.as_bytes());
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            counter: r.u32()?,
            amount: r.amount("amount")?,
            prev: r.array()?,
            cert_id: r.array()?,
            signature: Signature(r.array()?),
        })
    }
}
