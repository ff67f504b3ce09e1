//! The validator certificate: the issuer's signature over a validator's key, id, operator,
//! validity and (optionally) lines. A phone answers a tap only for a reader that presents one.
//!
//! It travels inside a short APDU next to the signed challenge (255 bytes at most), so it is
//! compact: a compressed public key, validity in unsigned 32-bit seconds (to 2106) and at most
//! [`ValidatorCertBody::MAX_LINES`] lines.

use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::crypto::{sha256, tags, KeyError, PublicKey, SigningKey};
use crate::signed::{Signed, SignedBody};

/// The fields an issuer signs for a validator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorCertBody {
    pub issuer_key_id: u32,
    pub validator_id: u32,
    /// The transit operator that runs the validator (the bus company).
    pub operator_id: u32,
    pub public_key: PublicKey,
    /// UTC seconds.
    pub valid_from: u32,
    /// UTC seconds.
    pub valid_until: u32,
    /// The lines the validator may charge for, strictly increasing; empty means any line.
    pub lines: Vec<u32>,
}

/// An issuer-signed validator certificate (120 to 132 bytes on the wire).
pub type ValidatorCertificate = Signed<ValidatorCertBody>;

impl ValidatorCertBody {
    /// Most lines a validator certificate names (so that it fits an AUTHORIZE TAP next to the
    /// challenge).
    pub const MAX_LINES: usize = 3;

    /// Signs the body with an issuer key.
    pub fn sign(self, issuer: &SigningKey) -> Result<ValidatorCertificate, KeyError> {
        Signed::sign(self, issuer)
    }

    /// True if the certificate allows charging on `line_id`.
    pub fn allows_line(&self, line_id: u32) -> bool {
        self.lines.is_empty() || self.lines.binary_search(&line_id).is_ok()
    }

    /// True if `now` is inside the validity window.
    pub fn valid_at(&self, now: i64) -> bool {
        (i64::from(self.valid_from)..=i64::from(self.valid_until)).contains(&now)
    }
}

impl Message for ValidatorCertBody {
    const NAME: &'static str = "validator certificate";
    const TAG: u8 = b'G';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        ValidatorCertificate::MAX_LEN
    }

    fn write_body(&self, w: &mut Writer) {
        w.u32(self.issuer_key_id)
            .u32(self.validator_id)
            .u32(self.operator_id)
            .bytes(&self.public_key.to_compressed())
            .u32(self.valid_from)
            .u32(self.valid_until)
            .u8(u8::try_from(self.lines.len()).unwrap_or(u8::MAX));
        for l in &self.lines {
            w.u32(*l);
        }
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let issuer_key_id = r.u32()?;
        let validator_id = r.u32()?;
        let operator_id = r.u32()?;
        let public_key = PublicKey::read_compressed(r, "validator public key")?;
        let valid_from = r.u32()?;
        let valid_until = r.u32()?;
        if valid_from >= valid_until {
            return Err(DecodeError::InvalidValue {
                field: "validator certificate validity",
                reason: "valid_from must be before valid_until",
            });
        }
        let n = usize::from(r.u8()?);
        if n > ValidatorCertBody::MAX_LINES {
            return Err(DecodeError::InvalidValue {
                field: "validator certificate lines",
                reason: "at most 3 lines",
            });
        }
        let mut lines: Vec<u32> = Vec::with_capacity(n);
        for _ in 0..n {
            let l = r.u32()?;
            if lines.last().is_some_and(|p| *p >= l) {
                return Err(DecodeError::InvalidValue {
                    field: "validator certificate lines",
                    reason: "line ids must be strictly increasing",
                });
            }
            lines.push(l);
        }
        Ok(Self {
            issuer_key_id,
            validator_id,
            operator_id,
            public_key,
            valid_from,
            valid_until,
            lines,
        })
    }
}

impl SignedBody for ValidatorCertBody {
    const DOMAIN: &'static [u8] = tags::VALIDATOR_CERTIFICATE;

    /// Canonical line order; no more lines than a decoder accepts; a real window.
    fn prepare(mut self) -> Result<Self, KeyError> {
        self.lines.sort_unstable();
        self.lines.dedup();
        if self.lines.len() > Self::MAX_LINES {
            return Err(KeyError::MessageTooLarge {
                field: "validator certificate lines",
                len: self.lines.len(),
                max: Self::MAX_LINES,
            });
        }
        if self.valid_from >= self.valid_until {
            return Err(KeyError::InvalidBody(
                "valid_from must be before valid_until",
            ));
        }
        Ok(self)
    }
}

impl Signed<ValidatorCertBody> {
    /// Size with no lines.
    pub const MIN_LEN: usize = 2 + 4 + 4 + 4 + 33 + 4 + 4 + 1 + 64;
    /// Size with [`ValidatorCertBody::MAX_LINES`] lines.
    pub const MAX_LEN: usize = Self::MIN_LEN + 4 * ValidatorCertBody::MAX_LINES;

    /// The certificate id: a hash of the body, never of the signature.
    pub fn id(&self) -> [u8; 32] {
        sha256(&[tags::CERT_ID, &self.body.encode()])
    }
}

inherent_codec!(ValidatorCertBody);
