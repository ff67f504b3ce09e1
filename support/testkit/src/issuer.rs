//! A test issuer: a fresh P-256 issuer key, the certificates it signs, the keys and config
//! bundles a wallet or validator trusts.

use crate::time::{DAY, T0};
use mancard::IssuerKeyInfo;
use mancard_protocol::{
    CertificateBody, ConfigBody, CredentialCertificate, DeniedValidator, FareClass, IssuerKey,
    OfflineAllowance, Pseudonym, PublicKey, SigningKey, Tariff, TimeRules, ValidatorCertBody,
    ValidatorCertificate, ValidatorConfig,
};
use mancard_validator::TrustAnchor;

/// What a test certificate grants.
#[derive(Debug, Clone, Copy)]
pub struct CertSpec {
    pub valid_from: i64,
    pub valid_until: i64,
    pub class: FareClass,
    pub first: u32,
    pub last: u32,
    pub max_amount: i64,
}

impl Default for CertSpec {
    /// Valid from a day before [`T0`] for a week, adult, a large counter range and allowance.
    fn default() -> Self {
        Self {
            valid_from: T0 - DAY,
            valid_until: T0 + 7 * DAY,
            class: FareClass::Adult,
            first: 0,
            last: 100_000,
            max_amount: 10_000_000,
        }
    }
}

/// An issuer key pair with its id and validity.
pub struct Issuer {
    pub key: SigningKey,
    pub key_id: u32,
    pub valid_from: i64,
    pub valid_until: i64,
}

impl Issuer {
    /// A fresh random issuer key, valid a year either side of [`T0`].
    pub fn new(key_id: u32) -> Self {
        Self {
            key: SigningKey::generate().unwrap().0,
            key_id,
            valid_from: T0 - 365 * DAY,
            valid_until: T0 + 365 * DAY,
        }
    }

    /// The key as the protocol's verifiers take it.
    pub fn issuer_key(&self) -> IssuerKey {
        IssuerKey {
            key_id: self.key_id,
            public_key: self.key.public_key(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }

    /// The key as the wallet stores it.
    pub fn info(&self) -> IssuerKeyInfo {
        IssuerKeyInfo {
            key_id: self.key_id,
            public_key: self.key.public_key().as_bytes().to_vec(),
            valid_from: self.valid_from,
            valid_until: self.valid_until,
        }
    }

    /// The validator's trust anchor for config bundles.
    pub fn anchor(&self) -> TrustAnchor {
        TrustAnchor {
            key_id: Some(self.key_id),
            public_key: self.key.public_key(),
        }
    }

    /// A certificate over `tap_public_key` (uncompressed SEC1) with a random pseudonym.
    pub fn issue(&self, tap_public_key: &[u8], spec: CertSpec) -> CredentialCertificate {
        self.issue_to(PublicKey::from_bytes(tap_public_key, "tap").unwrap(), spec)
    }

    /// A certificate over a tap key the test holds.
    pub fn issue_for(&self, tap_key: &SigningKey, spec: CertSpec) -> CredentialCertificate {
        self.issue_to(tap_key.public_key(), spec)
    }

    fn issue_to(&self, tap_public_key: PublicKey, spec: CertSpec) -> CredentialCertificate {
        CertificateBody {
            issuer_key_id: self.key_id,
            pseudonym: Pseudonym::random().unwrap(),
            tap_public_key,
            valid_from: spec.valid_from,
            valid_until: spec.valid_until,
            fare_class: spec.class,
            allowance: OfflineAllowance {
                counter_first: spec.first,
                counter_last: spec.last,
                max_amount: spec.max_amount,
            },
        }
        .sign(&self.key)
        .unwrap()
    }

    /// A signed config bundle with this key, the Urmia tariff, `deny`, no denied validator
    /// and the default time rules.
    pub fn bundle(&self, version: u64, issued_at: i64, deny: Vec<Pseudonym>) -> ValidatorConfig {
        self.bundle_with(version, issued_at, deny, Vec::new(), TimeRules::default())
    }

    /// A signed config bundle with every list and rule chosen by the test.
    pub fn bundle_with(
        &self,
        version: u64,
        issued_at: i64,
        deny: Vec<Pseudonym>,
        denied_validators: Vec<u32>,
        time_rules: TimeRules,
    ) -> ValidatorConfig {
        ConfigBody {
            bundle_version: version,
            issued_at,
            signer_key_id: self.key_id,
            issuer_keys: vec![self.issuer_key()],
            deny_list: deny,
            validator_deny_list: denied_validators.into_iter().map(DeniedValidator).collect(),
            time_rules,
            tariff: Tariff::urmia_default(),
        }
        .sign(&self.key)
        .unwrap()
    }

    /// A validator certificate for `validator_id` over `public_key`, operator 1, any line,
    /// valid from a year before [`T0`] to a year after.
    pub fn validator_cert(
        &self,
        validator_id: u32,
        public_key: &PublicKey,
    ) -> ValidatorCertificate {
        self.validator_cert_with(
            validator_id,
            public_key,
            Vec::new(),
            T0 - 365 * DAY,
            T0 + 365 * DAY,
        )
    }

    /// A validator certificate with the lines and validity chosen by the test.
    pub fn validator_cert_with(
        &self,
        validator_id: u32,
        public_key: &PublicKey,
        lines: Vec<u32>,
        valid_from: i64,
        valid_until: i64,
    ) -> ValidatorCertificate {
        ValidatorCertBody {
            issuer_key_id: self.key_id,
            validator_id,
            operator_id: 1,
            public_key: *public_key,
            valid_from: u32::try_from(valid_from).unwrap(),
            valid_until: u32::try_from(valid_until).unwrap(),
            lines,
        }
        .sign(&self.key)
        .unwrap()
    }
}
