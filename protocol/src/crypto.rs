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
    pub const CERTIFICATE: &[u8] = b"MANCARD-CERT-v1\0";
    pub const TAP_DIGEST: &[u8] = b"MANCARD-TAP-DIGEST-v1\0";
    pub const TAP: &[u8] = b"MANCARD-TAP-v1\0";
    pub const PASS: &[u8] = b"MANCARD-PASS-v1\0";
    pub const CONFIG: &[u8] = b"MANCARD-CONFIG-v1\0";
    pub const BATCH: &[u8] = b"MANCARD-BATCH-v1\0";
    pub const LOG: &[u8] = b"MANCARD-LOG-v1\0";
    pub const CERT_HASH: &[u8] = b"MANCARD-CERT-HASH-v1\0";
    pub const PROVISION: &[u8] = b"MANCARD-PROVISION-v1\0";
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

    /// Verifies a fixed-size signature over `tag ‖ msg`.
    pub fn verify(&self, tag: &[u8], msg: &[u8], sig: &Signature) -> Result<(), BadSignature> {
        let key = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, &self.0[..]);
        let mut m = Vec::with_capacity(tag.len() + msg.len());
        m.extend_from_slice(tag);
        m.extend_from_slice(msg);
        key.verify(&m, &sig.0).map_err(|_| BadSignature)
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

impl Signature {
    pub const LEN: usize = 64;
    pub fn as_bytes(&self) -> &[u8; 64] {
        &self.0
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({})", hex::encode(self.0))
    }
}

/// The signature did not verify under the given key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("signature does not verify")]
pub struct BadSignature;

/// Signing failed or a private key could not be loaded.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeyError {
    #[error("the private key is not a valid P-256 PKCS#8 document")]
    InvalidPrivateKey,
    #[error("the system random number generator failed")]
    Rng,
    #[error("signing failed")]
    Signing,
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
        Ok(Signature(arr))
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
            Err(BadSignature)
        );
        assert_eq!(
            k.public_key().verify(tags::TAP, b"hellO", &sig),
            Err(BadSignature)
        );
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
