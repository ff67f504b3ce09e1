//! The credential certificate: an issuer's signature over a wallet's tap key.

use crate::codec::{DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, KeyError, PublicKey, SigningKey};
use crate::signed::{Signed, SignedBody};
use crate::tariff::FareClass;
use std::fmt;

/// A random card pseudonym (16 bytes), fresh in every certificate: it names one certificate on
/// the wire, never the rider's phone number, and two certificates of the same phone share none.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Pseudonym(pub [u8; 16]);

impl Pseudonym {
    pub const LEN: usize = 16;
    pub fn random() -> Result<Self, KeyError> {
        use ring::rand::SecureRandom;
        let mut b = [0u8; 16];
        ring::rand::SystemRandom::new()
            .fill(&mut b)
            .map_err(|_| KeyError::Rng)?;
        Ok(Self(b))
    }
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
    pub fn from_hex(s: &str) -> Option<Self> {
        let v = hex::decode(s).ok()?;
        Some(Self(v.try_into().ok()?))
    }
}

impl fmt::Debug for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pseudonym({})", self.to_hex())
    }
}

impl fmt::Display for Pseudonym {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// What the wallet may spend offline under one certificate: counters in
/// `counter_first..=counter_last` and at most `max_amount` rials in total.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OfflineAllowance {
    pub counter_first: u32,
    pub counter_last: u32,
    pub max_amount: i64,
}

impl OfflineAllowance {
    pub fn contains(&self, counter: u32) -> bool {
        (self.counter_first..=self.counter_last).contains(&counter)
    }
    /// Number of counters in the range.
    pub fn counters(&self) -> u64 {
        u64::from(self.counter_last) - u64::from(self.counter_first) + 1
    }
}

/// The fields an issuer signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateBody {
    pub issuer_key_id: u32,
    pub pseudonym: Pseudonym,
    pub tap_public_key: PublicKey,
    pub valid_from: i64,
    pub valid_until: i64,
    pub fare_class: FareClass,
    pub allowance: OfflineAllowance,
}

/// An issuer-signed credential certificate (184 bytes on the wire). Its identity is
/// [`Signed::<CertificateBody>::id`], a hash of the body: re-encoding the signature (or
/// flipping its S) never makes a "new" certificate.
pub type CredentialCertificate = Signed<CertificateBody>;

impl CertificateBody {
    /// The bytes the issuer signs (header and fields).
    pub fn encode(&self) -> Vec<u8> {
        Message::encode(self)
    }

    /// The id of the certificate this body belongs to (see [`CredentialCertificate::id`]).
    pub fn id(&self) -> [u8; 32] {
        sha256(&[tags::CERT_ID, &Message::encode(self)])
    }

    /// Signs the body with an issuer key.
    pub fn sign(self, issuer: &SigningKey) -> Result<CredentialCertificate, KeyError> {
        Signed::sign(self, issuer)
    }
}

impl Message for CertificateBody {
    const NAME: &'static str = "certificate";
    const TAG: u8 = b'C';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        CredentialCertificate::LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.issuer_key_id)
            .bytes(&self.pseudonym.0)
            .bytes(self.tap_public_key.as_bytes())
            .i64(self.valid_from)
            .i64(self.valid_until)
            .u8(self.fare_class as u8)
            .u32(self.allowance.counter_first)
            .u32(self.allowance.counter_last)
            .i64(self.allowance.max_amount);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let issuer_key_id = r.u32()?;
        let pseudonym = Pseudonym(r.array()?);
        let tap_public_key = PublicKey::read(r, "tap public key")?;
        let valid_from = r.i64()?;
        let valid_until = r.i64()?;
        if valid_from >= valid_until {
            return Err(DecodeError::InvalidValue {
                field: "validity window",
                reason: "valid_from must be before valid_until",
            });
        }
        let fare_class = FareClass::from_u8(r.u8()?)?;
        let counter_first = r.u32()?;
        let counter_last = r.u32()?;
        if counter_first > counter_last {
            return Err(DecodeError::InvalidValue {
                field: "counter range",
                reason: "first counter is after the last",
            });
        }
        let max_amount = r.amount("allowance amount")?;
        Ok(Self {
            issuer_key_id,
            pseudonym,
            tap_public_key,
            valid_from,
            valid_until,
            fare_class,
            allowance: OfflineAllowance {
                counter_first,
                counter_last,
                max_amount,
            },
        })
    }
}

impl SignedBody for CertificateBody {
    const DOMAIN: &'static [u8] = tags::CERTIFICATE;
}

impl Signed<CertificateBody> {
    pub const LEN: usize = 2 + 4 + 16 + 65 + 8 + 8 + 1 + 4 + 4 + 8 + 64;

    /// The certificate id: SHA-256 of the signed body (header and fields), domain-separated.
    /// What taps bind to, caches key on and the backend stores certificates under. The issuer's
    /// signature is not part of it, so no re-encoding of the signature changes it.
    pub fn id(&self) -> [u8; 32] {
        self.body.id()
    }

    /// The same as [`Self::id`] (the name v1 callers used).
    pub fn hash(&self) -> [u8; 32] {
        self.id()
    }

    /// True if the issuer's signature over the body verifies under `issuer`.
    pub fn signature_valid(&self, issuer: &PublicKey) -> bool {
        self.verify(issuer).is_ok()
    }
}
