//! The validator config bundle: issuer keys, deny list and tariff, signed by an issuer key.

use crate::cert::Pseudonym;
use crate::codec::{DecodeError, Reader, Writer};
use crate::crypto::{check_len, tags, KeyError, PublicKey, Signature, SigningKey};
use crate::tariff::Tariff;

/// An issuer public key with its id and the window in which certificates it signs may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKey {
    pub key_id: u32,
    pub public_key: PublicKey,
    pub valid_from: i64,
    pub valid_until: i64,
}

impl IssuerKey {
    fn encode_into(&self, w: &mut Writer) {
        w.u32(self.key_id)
            .bytes(self.public_key.as_bytes())
            .i64(self.valid_from)
            .i64(self.valid_until);
    }
    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let key_id = r.u32()?;
        let public_key = PublicKey::read(r, "issuer public key")?;
        let valid_from = r.i64()?;
        let valid_until = r.i64()?;
        if valid_from >= valid_until {
            return Err(DecodeError::InvalidValue {
                field: "issuer key validity",
                reason: "valid_from must be before valid_until",
            });
        }
        Ok(Self {
            key_id,
            public_key,
            valid_from,
            valid_until,
        })
    }
}

/// The fields the issuer signs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigBody {
    /// Monotonic: a validator never installs a bundle older than the one it has.
    pub bundle_version: u64,
    pub issued_at: i64,
    /// The issuer key that signs this bundle.
    pub signer_key_id: u32,
    /// Sorted by strictly increasing key id.
    pub issuer_keys: Vec<IssuerKey>,
    /// Sorted strictly increasing (canonical, and binary-searchable).
    pub deny_list: Vec<Pseudonym>,
    pub tariff: Tariff,
}

/// A signed config bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorConfig {
    pub body: ConfigBody,
    pub signature: Signature,
}

impl ConfigBody {
    const MAX_KEYS: usize = 16;
    const MAX_DENY: usize = 10_000_000;

    /// Sorts keys and deny list into canonical order and removes duplicates.
    pub fn canonicalize(mut self) -> Self {
        self.issuer_keys.sort_by_key(|k| k.key_id);
        self.issuer_keys.dedup_by_key(|k| k.key_id);
        self.deny_list.sort();
        self.deny_list.dedup();
        self
    }

    fn encode(&self) -> Vec<u8> {
        let mut w = Writer::with_capacity(128 + self.deny_list.len() * 16);
        w.header(ValidatorConfig::TAG, ValidatorConfig::VERSION)
            .u64(self.bundle_version)
            .i64(self.issued_at)
            .u32(self.signer_key_id)
            .u8(u8::try_from(self.issuer_keys.len()).unwrap_or(u8::MAX));
        for k in &self.issuer_keys {
            k.encode_into(&mut w);
        }
        w.u32(u32::try_from(self.deny_list.len()).unwrap_or(u32::MAX));
        for p in &self.deny_list {
            w.bytes(&p.0);
        }
        self.tariff.encode_into(&mut w);
        w.into_vec()
    }

    /// Canonicalizes and signs with the issuer key `signer` (whose id must be `signer_key_id`).
    pub fn sign(self, signer: &SigningKey) -> Result<ValidatorConfig, KeyError> {
        let body = self.canonicalize();
        check_len("issuer key list", body.issuer_keys.len(), Self::MAX_KEYS)?;
        check_len("deny list", body.deny_list.len(), Self::MAX_DENY)?;
        check_len(
            "tariff line list",
            body.tariff.lines.len(),
            Tariff::MAX_LINES,
        )?;
        let signature = signer.sign(tags::CONFIG, &body.encode())?;
        Ok(ValidatorConfig { body, signature })
    }
}

impl ValidatorConfig {
    pub const TAG: u8 = b'V';
    pub const VERSION: u8 = 1;

    pub fn encode(&self) -> Vec<u8> {
        let mut v = self.body.encode();
        v.extend_from_slice(self.signature.as_bytes());
        v
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(bytes);
        r.header("validator config", Self::TAG, Self::VERSION)?;
        let bundle_version = r.u64()?;
        let issued_at = r.i64()?;
        let signer_key_id = r.u32()?;
        let nkeys = usize::from(r.u8()?);
        if nkeys > ConfigBody::MAX_KEYS {
            return Err(DecodeError::LengthOutOfRange {
                field: "issuer key count",
                len: nkeys,
                max: ConfigBody::MAX_KEYS,
            });
        }
        let mut issuer_keys: Vec<IssuerKey> = Vec::with_capacity(nkeys);
        for _ in 0..nkeys {
            let k = IssuerKey::read(&mut r)?;
            if issuer_keys.last().is_some_and(|p| p.key_id >= k.key_id) {
                return Err(DecodeError::InvalidValue {
                    field: "issuer keys",
                    reason: "key ids must be strictly increasing",
                });
            }
            issuer_keys.push(k);
        }
        let ndeny = usize::try_from(r.u32()?).unwrap_or(usize::MAX);
        if ndeny > ConfigBody::MAX_DENY || ndeny.saturating_mul(16) > r.remaining() {
            return Err(DecodeError::LengthOutOfRange {
                field: "deny list",
                len: ndeny,
                max: (r.remaining() / 16).min(ConfigBody::MAX_DENY),
            });
        }
        let mut deny_list: Vec<Pseudonym> = Vec::with_capacity(ndeny);
        for _ in 0..ndeny {
            let p = Pseudonym(r.array()?);
            if deny_list.last().is_some_and(|q| *q >= p) {
                return Err(DecodeError::InvalidValue {
                    field: "deny list",
                    reason: "pseudonyms must be strictly increasing",
                });
            }
            deny_list.push(p);
        }
        let tariff = Tariff::read(&mut r)?;
        let signature = Signature(r.array()?);
        r.finish()?;
        Ok(Self {
            body: ConfigBody {
                bundle_version,
                issued_at,
                signer_key_id,
                issuer_keys,
                deny_list,
                tariff,
            },
            signature,
        })
    }

    /// The bytes the signature covers (after the domain tag).
    pub fn signed_bytes(&self) -> Vec<u8> {
        self.body.encode()
    }

    pub fn issuer_key(&self, key_id: u32) -> Option<&IssuerKey> {
        self.body.issuer_keys.iter().find(|k| k.key_id == key_id)
    }

    pub fn is_denied(&self, p: &Pseudonym) -> bool {
        self.body.deny_list.binary_search(p).is_ok()
    }
}
