//! ECDSA P-256 / SHA-256 with fixed 64-byte signatures (ring), domain-separated.

use crate::codec::{DecodeError, Reader};
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, KeyPair as _, UnparsedPublicKey, ECDSA_P256_SHA256_FIXED,
    ECDSA_P256_SHA256_FIXED_SIGNING,
};
use std::fmt;
use thiserror::Error;
pub use zeroize::Zeroizing;

/// Domain-separation tags: one per signed or hashed structure, so that a signature
/// over one kind of message can never be replayed as another.
pub mod tags {
    pub const CERTIFICATE: &[u8] = b"MANCARD-CERT-v2\0";
    pub const VALIDATOR_CERTIFICATE: &[u8] = b"MANCARD-VALIDATOR-CERT-v2\0";
    pub const CHALLENGE: &[u8] = b"MANCARD-CHALLENGE-v2\0";
    pub const CHALLENGE_DIGEST: &[u8] = b"MANCARD-CHALLENGE-DIGEST-v2\0";
    pub const TAP: &[u8] = b"MANCARD-TAP-v2\0";
    pub const PASS: &[u8] = b"MANCARD-PASS-v2\0";
    pub const CONFIG: &[u8] = b"MANCARD-CONFIG-v2\0";
    pub const BATCH: &[u8] = b"MANCARD-BATCH-v2\0";
    /// The identity of a signed tap or pass: a hash of its signed bytes, never its signature.
    pub const TAP_ID: &[u8] = b"MANCARD-TAP-ID-v2\0";
    /// The first link of a certificate's tap chain.
    pub const CHAIN_START: &[u8] = b"MANCARD-CHAIN-START-v2\0";
    /// A certificate's id: a hash of its body, never its signature.
    pub const CERT_ID: &[u8] = b"MANCARD-CERT-ID-v2\0";
    /// A tap challenge's id: a hash of its signed body, never the validator's signature (the
    /// torn record names the challenge a gate did not open for by it).
    pub const CHALLENGE_ID: &[u8] = b"MANCARD-CHALLENGE-ID-v2\0";
    pub const PROVISION: &[u8] = b"MANCARD-PROVISION-v1\0";
    /// A bound session's request proof (`provision::request_transcript`).
    pub const REQUEST: &[u8] = b"MANCARD-REQUEST-v1\0";
}

/// SHA-256 over the concatenation of `parts`.
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut ctx = ring::digest::Context::new(&ring::digest::SHA256);
    for p in parts {
        ctx.update(p);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.finish().as_ref());
    out
}

/// An uncompressed SEC1 P-256 public key (0x04 ‖ X ‖ Y), checked to be on the curve.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 65]);

impl PublicKey {
    pub const LEN: usize = 65;

    /// Accepts only the canonical uncompressed form of a point on P-256.
    pub fn from_bytes(bytes: &[u8], field: &'static str) -> Result<Self, DecodeError> {
        let arr: [u8; 65] = bytes
            .try_into()
            .map_err(|_| DecodeError::InvalidPoint { field })?;
        if arr[0] != 0x04 {
            return Err(DecodeError::InvalidPoint { field });
        }
        p256::PublicKey::from_sec1_bytes(&arr).map_err(|_| DecodeError::InvalidPoint { field })?;
        Ok(Self(arr))
    }

    pub(crate) fn read(r: &mut Reader<'_>, field: &'static str) -> Result<Self, DecodeError> {
        let bytes = r.take(Self::LEN)?;
        Self::from_bytes(bytes, field)
    }

    pub fn as_bytes(&self) -> &[u8; 65] {
        &self.0
    }

    /// The 33-byte compressed SEC1 form (used where every byte of a short APDU counts).
    pub fn to_compressed(&self) -> [u8; 33] {
        let mut out = [0u8; 33];
        let (x, y) = self.0.split_at(33);
        out.copy_from_slice(x);
        // 0x02 for an even y, 0x03 for an odd one; x follows the 0x04 prefix unchanged.
        out[0] = if y.last().is_some_and(|b| b & 1 == 1) {
            0x03
        } else {
            0x02
        };
        out
    }

    /// Accepts only a compressed SEC1 point on P-256 and keeps it uncompressed.
    pub fn from_compressed(bytes: &[u8], field: &'static str) -> Result<Self, DecodeError> {
        use p256::elliptic_curve::sec1::ToEncodedPoint as _;
        if bytes.len() != 33 || !matches!(bytes.first(), Some(0x02 | 0x03)) {
            return Err(DecodeError::InvalidPoint { field });
        }
        let key = p256::PublicKey::from_sec1_bytes(bytes)
            .map_err(|_| DecodeError::InvalidPoint { field })?;
        Self::from_bytes(key.to_encoded_point(false).as_bytes(), field)
    }

    pub(crate) fn read_compressed(
        r: &mut Reader<'_>,
        field: &'static str,
    ) -> Result<Self, DecodeError> {
        let bytes = r.take(33)?;
        Self::from_compressed(bytes, field)
    }

    /// Verifies a fixed-size signature over `tag ‖ msg`. The one signature check of the
    /// protocol: a high-S signature (s > n/2, the malleated twin of a valid one) is refused as
    /// [`SignatureError::NonCanonical`] before the curve arithmetic runs.
    pub fn verify(&self, tag: &[u8], msg: &[u8], sig: &Signature) -> Result<(), SignatureError> {
        if !sig.is_low_s() {
            return Err(SignatureError::NonCanonical);
        }
        self.verify_any_s(tag, msg, sig)
    }

    /// The curve check alone, which accepts both (r, s) and (r, n − s). Only for tests that
    /// count how many malleated signatures the canonical rule refuses.
    #[doc(hidden)]
    pub fn verify_any_s(
        &self,
        tag: &[u8],
        msg: &[u8],
        sig: &Signature,
    ) -> Result<(), SignatureError> {
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0[..]);
        let mut m = Vec::with_capacity(tag.len() + msg.len());
        m.extend_from_slice(tag);
        m.extend_from_slice(msg);
        key.verify(&m, &sig.0).map_err(|_| SignatureError::Invalid)
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// A fixed 64-byte ECDSA signature (r ‖ s, big-endian).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub [u8; 64]);

/// n/2 for P-256 (rounded down), big-endian: a canonical signature has s ≤ this.
const HALF_ORDER: [u8; 32] = [
    0x7f, 0xff, 0xff, 0xff, 0x80, 0x00, 0x00, 0x00, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
    0xde, 0x73, 0x7d, 0x56, 0xd3, 0x8b, 0xcf, 0x42, 0x79, 0xdc, 0xe5, 0x61, 0x7e, 0x31, 0x92, 0xa8,
];

impl Signature {
    pub const LEN: usize = 64;
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }

    fn s(&self) -> &[u8] {
        self.0.split_at(32).1
    }

    /// True if s ≤ n/2: the one canonical form of the two that verify.
    pub fn is_low_s(&self) -> bool {
        self.s() <= &HALF_ORDER[..]
    }

    /// The canonical (low-S) twin of this signature: (r, n − s) when s > n/2.
    pub fn to_low_s(&self) -> Self {
        if self.is_low_s() {
            return *self;
        }
        Self(self.malleated())
    }

    /// (r, n − s): the other signature that verifies for the same key and message.
    pub fn malleated(&self) -> [u8; 64] {
        use p256::elliptic_curve::PrimeField as _;
        let mut out = self.0;
        let mut repr = p256::FieldBytes::default();
        repr.copy_from_slice(self.s());
        let s: Option<p256::Scalar> = p256::Scalar::from_repr(repr).into();
        if let Some(s) = s {
            let neg = -s;
            let (_, tail) = out.split_at_mut(32);
            tail.copy_from_slice(&neg.to_repr());
        }
        out
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// Why a signature was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
pub enum SignatureError {
    /// s > n/2: the malleated twin of a signature. Every ManCard signer emits low-S, so this
    /// is a modified copy, never an honest one.
    #[error("signature is not canonical (high S)")]
    NonCanonical,
    #[error("signature does not verify")]
    Invalid,
}

/// The name callers used before the non-canonical case had its own variant.
pub type BadSignature = SignatureError;

/// Signing failed or a private key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("the private key is not a valid P-256 PKCS#8 document")]
    InvalidPrivateKey,
    #[error("the system random number generator failed")]
    Rng,
    #[error("signing failed")]
    Signing,
    #[error("cannot sign: {0}")]
    InvalidBody(&'static str),
    #[error("{field} has {len} entries, more than the {max} a decoder accepts")]
    MessageTooLarge {
        field: &'static str,
        len: usize,
        max: usize,
    },
}

/// A P-256 signing key (issuer, validator or tap key). Its Debug output never shows the secret.
pub struct SigningKey {
    pair: EcdsaKeyPair,
    public: PublicKey,
    rng: SystemRandom,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// Generates a fresh key; returns it with its PKCS#8 document (to be sealed by the caller).
    pub fn generate() -> Result<(Self, Zeroizing<Vec<u8>>), KeyError> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| KeyError::Rng)?;
        let secret = Zeroizing::new(doc.as_ref().to_vec());
        let key = Self::from_pkcs8(&secret)?;
        Ok((key, secret))
    }

    pub fn from_pkcs8(pkcs8: &[u8]) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8, &rng)
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        let public = PublicKey::from_bytes(pair.public_key().as_ref(), "public key")
            .map_err(|_| KeyError::InvalidPrivateKey)?;
        Ok(Self { pair, public, rng })
    }

    pub fn public_key(&self) -> PublicKey {
        self.public
    }

    /// Signs `tag ‖ msg`.
    pub fn sign(&self, tag: &[u8], msg: &[u8]) -> Result<Signature, KeyError> {
        let mut m = Vec::with_capacity(tag.len() + msg.len());
        m.extend_from_slice(tag);
        m.extend_from_slice(msg);
        let sig = self
            .pair
            .sign(&self.rng, &m)
            .map_err(|_| KeyError::Signing)?;
        let arr: [u8; 64] = sig.as_ref().try_into().map_err(|_| KeyError::Signing)?;
        Ok(Signature(arr).to_low_s())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sign_verify_and_domain_separation() {
        let (k, _) = SigningKey::generate().unwrap();
        let sig = k.sign(tags::TAP, b"hello").unwrap();
        k.public_key().verify(tags::TAP, b"hello", &sig).unwrap();
        assert_eq!(
            k.public_key().verify(tags::PASS, b"hello", &sig),
            Err(SignatureError::Invalid)
        );
        assert_eq!(
            k.public_key().verify(tags::TAP, b"hellO", &sig),
            Err(SignatureError::Invalid)
        );
    }

    #[test]
    fn signers_emit_low_s_and_verifiers_refuse_the_twin() {
        let (k, _) = SigningKey::generate().unwrap();
        for i in 0..64u8 {
            let sig = k.sign(tags::TAP, &[i]).unwrap();
            assert!(sig.is_low_s());
            let twin = Signature(sig.malleated());
            assert!(!twin.is_low_s());
            assert_eq!(twin.to_low_s(), sig);
            k.public_key().verify_any_s(tags::TAP, &[i], &twin).unwrap();
            assert_eq!(
                k.public_key().verify(tags::TAP, &[i], &twin),
                Err(SignatureError::NonCanonical)
            );
        }
    }

    #[test]
    fn compressed_keys_round_trip() {
        for _ in 0..16 {
            let (k, _) = SigningKey::generate().unwrap();
            let c = k.public_key().to_compressed();
            assert_eq!(PublicKey::from_compressed(&c, "k").unwrap(), k.public_key());
        }
        assert!(PublicKey::from_compressed(&[4u8; 33], "k").is_err());
    }

    #[test]
    fn rejects_off_curve_and_compressed_points() {
        let (k, _) = SigningKey::generate().unwrap();
        let mut b = *k.public_key().as_bytes();
        assert!(PublicKey::from_bytes(&b, "k").is_ok());
        b[64] ^= 1;
        assert!(PublicKey::from_bytes(&b, "k").is_err());
        let mut c = *k.public_key().as_bytes();
        c[0] = 0x02;
        assert!(PublicKey::from_bytes(&c, "k").is_err());
        assert!(PublicKey::from_bytes(&[4u8; 33], "k").is_err());
    }
}
