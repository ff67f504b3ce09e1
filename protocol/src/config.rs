//! The validator config bundle: issuer keys, deny list and tariff, signed by an issuer key.

use crate::cert::Pseudonym;
use crate::codec::{DecodeError, Message, Reader, Writer};
use crate::crypto::{tags, KeyError, PublicKey, SigningKey};
use crate::list::{check_count, read_list, write_list, CountWidth, ListElement};
use crate::signed::{Signed, SignedBody};
use crate::tariff::{LineFare, Tariff};

/// An issuer public key with its id and the window in which certificates it signs may start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuerKey {
    pub key_id: u32,
    pub public_key: PublicKey,
    pub valid_from: i64,
    pub valid_until: i64,
}

/// The config's issuer keys: sorted by strictly increasing key id.
impl ListElement for IssuerKey {
    const COUNT_WIDTH: CountWidth = CountWidth::U8;
    const MAX: usize = 16;
    const COUNT_FIELD: &'static str = "issuer key count";
    const LIST_FIELD: &'static str = "issuer key list";
    const MIN_LEN: usize = 4 + PublicKey::LEN + 8 + 8;

    fn write_element(&self, w: &mut Writer) {
        w.u32(self.key_id)
            .bytes(self.public_key.as_bytes())
            .i64(self.valid_from)
            .i64(self.valid_until);
    }

    fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError> {
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
        if prev.is_some_and(|p| p.key_id >= key_id) {
            return Err(DecodeError::InvalidValue {
                field: "issuer keys",
                reason: "key ids must be strictly increasing",
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

/// The deny list: pseudonyms sorted strictly increasing (canonical, and binary-searchable).
impl ListElement for Pseudonym {
    const COUNT_WIDTH: CountWidth = CountWidth::U32;
    const MAX: usize = 10_000_000;
    const COUNT_FIELD: &'static str = "deny list";
    const LIST_FIELD: &'static str = "deny list";
    const MIN_LEN: usize = Pseudonym::LEN;
    const COUNT_BOUND_BY_INPUT: bool = true;

    fn write_element(&self, w: &mut Writer) {
        w.bytes(&self.0);
    }

    fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError> {
        let p = Pseudonym(r.array()?);
        if prev.is_some_and(|q| *q >= p) {
            return Err(DecodeError::InvalidValue {
                field: "deny list",
                reason: "pseudonyms must be strictly increasing",
            });
        }
        Ok(p)
    }
}

/// A validator id on the validator deny list (a stolen or decommissioned reader).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeniedValidator(pub u32);

/// The validator deny list: ids sorted strictly increasing.
impl ListElement for DeniedValidator {
    const COUNT_WIDTH: CountWidth = CountWidth::U16;
    const MAX: usize = 65_535;
    const COUNT_FIELD: &'static str = "validator deny list";
    const LIST_FIELD: &'static str = "validator deny list";
    const MIN_LEN: usize = 4;
    const COUNT_BOUND_BY_INPUT: bool = true;

    fn write_element(&self, w: &mut Writer) {
        w.u32(self.0);
    }

    fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError> {
        let v = Self(r.u32()?);
        if prev.is_some_and(|p| *p >= v) {
            return Err(DecodeError::InvalidValue {
                field: "validator deny list",
                reason: "validator ids must be strictly increasing",
            });
        }
        Ok(v)
    }
}

/// The time rules every party applies, signed in the bundle so no signer picks its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TimeRules {
    /// The longest lifetime a QR pass may have (validators and the backend refuse longer).
    pub max_pass_lifetime_secs: u16,
    /// Clock skew tolerated on either side of a pass window.
    pub clock_skew_secs: u16,
    /// How far a validator's clock may be from the phone's (server-corrected) clock on a tap.
    pub tap_window_secs: u16,
}

impl Default for TimeRules {
    fn default() -> Self {
        Self {
            max_pass_lifetime_secs: crate::DEFAULT_PASS_LIFETIME_SECS,
            clock_skew_secs: 30,
            tap_window_secs: 300,
        }
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
    /// Validators phones must not answer, sorted strictly increasing.
    pub validator_deny_list: Vec<DeniedValidator>,
    pub time_rules: TimeRules,
    pub tariff: Tariff,
}

/// A signed config bundle.
pub type ValidatorConfig = Signed<ConfigBody>;

impl ConfigBody {
    /// Sorts keys and deny list into canonical order and removes duplicates.
    pub fn canonicalize(mut self) -> Self {
        self.issuer_keys.sort_by_key(|k| k.key_id);
        self.issuer_keys.dedup_by_key(|k| k.key_id);
        self.deny_list.sort();
        self.deny_list.dedup();
        self.validator_deny_list.sort();
        self.validator_deny_list.dedup();
        self
    }

    /// Canonicalizes and signs with the issuer key `signer` (whose id must be `signer_key_id`).
    pub fn sign(self, signer: &SigningKey) -> Result<ValidatorConfig, KeyError> {
        Signed::sign(self, signer)
    }
}

impl Message for ConfigBody {
    const NAME: &'static str = "validator config";
    const TAG: u8 = b'V';
    const VERSION: u8 = 2;

    fn size_hint(&self) -> usize {
        self.deny_list.len().saturating_mul(16).saturating_add(128)
    }

    fn write_body(&self, w: &mut Writer) {
        w.u64(self.bundle_version)
            .i64(self.issued_at)
            .u32(self.signer_key_id);
        write_list(w, &self.issuer_keys);
        write_list(w, &self.deny_list);
        write_list(w, &self.validator_deny_list);
        w.u16(self.time_rules.max_pass_lifetime_secs)
            .u16(self.time_rules.clock_skew_secs)
            .u16(self.time_rules.tap_window_secs);
        self.tariff.write(w);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(Self {
            bundle_version: r.u64()?,
            issued_at: r.i64()?,
            signer_key_id: r.u32()?,
            issuer_keys: read_list(r)?,
            deny_list: read_list(r)?,
            validator_deny_list: read_list(r)?,
            time_rules: read_time_rules(r)?,
            tariff: Tariff::read(r)?,
        })
    }
}

impl SignedBody for ConfigBody {
    const DOMAIN: &'static [u8] = tags::CONFIG;

    /// Canonical order, and no list longer than a decoder accepts.
    fn prepare(self) -> Result<Self, KeyError> {
        let body = self.canonicalize();
        check_count(&body.issuer_keys)?;
        check_count(&body.deny_list)?;
        check_count(&body.validator_deny_list)?;
        check_count::<LineFare>(&body.tariff.lines)?;
        Ok(body)
    }
}

impl Signed<ConfigBody> {
    pub fn issuer_key(&self, key_id: u32) -> Option<&IssuerKey> {
        self.body.issuer_keys.iter().find(|k| k.key_id == key_id)
    }

    pub fn is_denied(&self, p: &Pseudonym) -> bool {
        self.body.deny_list.binary_search(p).is_ok()
    }

    pub fn is_validator_denied(&self, validator_id: u32) -> bool {
        self.body
            .validator_deny_list
            .binary_search(&DeniedValidator(validator_id))
            .is_ok()
    }
}

fn read_time_rules(r: &mut Reader<'_>) -> Result<TimeRules, DecodeError> {
    let t = TimeRules {
        max_pass_lifetime_secs: r.u16()?,
        clock_skew_secs: r.u16()?,
        tap_window_secs: r.u16()?,
    };
    if t.max_pass_lifetime_secs == 0 {
        return Err(DecodeError::InvalidValue {
            field: "maximum pass lifetime",
            reason: "must be at least one second",
        });
    }
    Ok(t)
}
