//! Verification shared by every party: one code path checks NFC and QR taps.

use crate::cert::{CredentialCertificate, Pseudonym};
use crate::config::{IssuerKey, TimeRules, ValidatorConfig};
use crate::crypto::{PublicKey, SignatureError};
use crate::pass::BoardingPass;
use crate::tap::{TapAuthorization, TapChallenge};
use crate::tariff::FareClass;
use crate::validator_cert::ValidatorCertificate;
use thiserror::Error;

/// Why a certificate, tap, pass or bundle is refused. Each has its own variant so a
/// validator can tell the rider why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("signature does not verify")]
    BadSignature,
    /// A high-S signature: the malleated copy of a valid one (every ManCard signer emits low-S).
    #[error("signature is not canonical (high S): a modified copy of a signature")]
    NonCanonicalSignature,
    #[error("unknown issuer key {0}")]
    UnknownIssuerKey(u32),
    #[error("issuer key {0} was not valid when this certificate was issued")]
    IssuerKeyNotValid(u32),
    #[error("credential expired at {valid_until} (now {now})")]
    Expired { valid_until: i64, now: i64 },
    #[error("credential not valid before {valid_from} (now {now})")]
    NotYetValid { valid_from: i64, now: i64 },
    #[error("counter {counter} is outside the certificate's range {first}..={last}")]
    CounterOutOfRange { counter: u32, first: u32, last: u32 },
    #[error("amount {amount} rials exceeds the offline allowance of {max} rials")]
    AmountOverAllowance { amount: i64, max: i64 },
    #[error("the authorization does not answer this challenge")]
    ChallengeMismatch,
    #[error("card {0} is on the deny list")]
    DenyListed(Pseudonym),
    #[error(
        "pass issued at {issued_at} for {lifetime}s is outside its window at {now} (±{skew}s)"
    )]
    PassOutsideWindow {
        issued_at: i64,
        lifetime: u16,
        now: i64,
        skew: i64,
    },
    #[error("config bundle version {offered} is not newer than installed version {installed}")]
    StaleBundle { offered: u64, installed: u64 },
    #[error("pass lifetime {lifetime}s is longer than the {max}s the config bundle allows")]
    PassTooLong { lifetime: u16, max: u16 },
    #[error("validator {0} is on the validator deny list")]
    ValidatorDenied(u32),
    #[error("validator certificate not valid at {now} ({valid_from}..={valid_until})")]
    ValidatorCertNotValid {
        valid_from: u32,
        valid_until: u32,
        now: i64,
    },
    #[error("the challenge names validator {challenge} but the certificate is for {certificate}")]
    WrongValidator { challenge: u32, certificate: u32 },
    #[error("validator {validator_id} is not allowed to charge on line {line_id}")]
    LineNotAllowed { validator_id: u32, line_id: u32 },
    #[error("the fare is quoted for class {quoted:?} but the certificate is {actual:?}")]
    FareClassMismatch {
        quoted: FareClass,
        actual: FareClass,
    },
}

impl From<SignatureError> for VerifyError {
    fn from(e: SignatureError) -> Self {
        match e {
            SignatureError::NonCanonical => Self::NonCanonicalSignature,
            SignatureError::Invalid => Self::BadSignature,
        }
    }
}

fn issuer_key(
    issuer_keys: &[IssuerKey],
    id: u32,
    signed_from: i64,
) -> Result<&IssuerKey, VerifyError> {
    let key = issuer_keys
        .iter()
        .find(|k| k.key_id == id)
        .ok_or(VerifyError::UnknownIssuerKey(id))?;
    if !(key.valid_from..=key.valid_until).contains(&signed_from) {
        return Err(VerifyError::IssuerKeyNotValid(id));
    }
    Ok(key)
}

/// Checks a validator certificate: issuer signature, validity at `now` and the validator deny
/// list. What a phone does before it reads a challenge, and the backend before it trusts one.
pub fn verify_validator_certificate(
    cert: &ValidatorCertificate,
    issuer_keys: &[IssuerKey],
    denied: impl Fn(u32) -> bool,
    now: i64,
) -> Result<(), VerifyError> {
    let b = &cert.body;
    let key = issuer_key(issuer_keys, b.issuer_key_id, i64::from(b.valid_from))?;
    cert.verify(&key.public_key)?;
    check_validator_standing(cert, denied, now)
}

/// What a validator certificate whose signature was verified before still needs at every tap:
/// not on the validator deny list, and valid at `now`.
pub fn check_validator_standing(
    cert: &ValidatorCertificate,
    denied: impl Fn(u32) -> bool,
    now: i64,
) -> Result<(), VerifyError> {
    let b = &cert.body;
    if denied(b.validator_id) {
        return Err(VerifyError::ValidatorDenied(b.validator_id));
    }
    if !b.valid_at(now) {
        return Err(VerifyError::ValidatorCertNotValid {
            valid_from: b.valid_from,
            valid_until: b.valid_until,
            now,
        });
    }
    Ok(())
}

/// Checks that `challenge` was signed by the validator `cert` names, for a line it may charge.
pub fn verify_challenge(
    challenge: &TapChallenge,
    cert: &ValidatorCertificate,
) -> Result<(), VerifyError> {
    let (c, v) = (&challenge.body, &cert.body);
    if c.validator_id != v.validator_id {
        return Err(VerifyError::WrongValidator {
            challenge: c.validator_id,
            certificate: v.validator_id,
        });
    }
    if !v.allows_line(c.line_id) {
        return Err(VerifyError::LineNotAllowed {
            validator_id: v.validator_id,
            line_id: c.line_id,
        });
    }
    challenge.verify(&v.public_key)?;
    Ok(())
}

/// Checks a pass's lifetime against the bundle's maximum and its window (widened by the
/// bundle's skew) at `now`.
pub fn check_pass_time(
    pass: &BoardingPass,
    now: i64,
    rules: &TimeRules,
) -> Result<(), VerifyError> {
    if pass.body.lifetime_secs > rules.max_pass_lifetime_secs {
        return Err(VerifyError::PassTooLong {
            lifetime: pass.body.lifetime_secs,
            max: rules.max_pass_lifetime_secs,
        });
    }
    let skew = i64::from(rules.clock_skew_secs);
    if !pass.in_window(now, skew) {
        return Err(VerifyError::PassOutsideWindow {
            issued_at: pass.body.issued_at,
            lifetime: pass.body.lifetime_secs,
            now,
            skew,
        });
    }
    Ok(())
}

/// Checks a certificate's issuer signature against `issuer_keys` (no time check).
pub fn verify_certificate_signature(
    cert: &CredentialCertificate,
    issuer_keys: &[IssuerKey],
) -> Result<(), VerifyError> {
    let key = issuer_key(issuer_keys, cert.body.issuer_key_id, cert.body.valid_from)?;
    cert.verify(&key.public_key)?;
    Ok(())
}

/// Checks that `now` is inside the certificate's validity window.
pub fn check_validity(cert: &CredentialCertificate, now: i64) -> Result<(), VerifyError> {
    if now < cert.body.valid_from {
        return Err(VerifyError::NotYetValid {
            valid_from: cert.body.valid_from,
            now,
        });
    }
    if now > cert.body.valid_until {
        return Err(VerifyError::Expired {
            valid_until: cert.body.valid_until,
            now,
        });
    }
    Ok(())
}

/// A certificate whose issuer signature has been checked, ready to verify taps fast.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedCertificate {
    pub cert: CredentialCertificate,
    /// The certificate id ([`CredentialCertificate::id`]).
    pub hash: [u8; 32],
}

impl VerifiedCertificate {
    /// Verifies the issuer signature (time is checked per tap).
    pub fn new(
        cert: CredentialCertificate,
        issuer_keys: &[IssuerKey],
    ) -> Result<Self, VerifyError> {
        verify_certificate_signature(&cert, issuer_keys)?;
        let hash = cert.id();
        Ok(Self { cert, hash })
    }

    fn tap_key(&self) -> &PublicKey {
        &self.cert.body.tap_public_key
    }

    fn check_counter_amount(&self, counter: u32, amount: i64) -> Result<(), VerifyError> {
        let a = &self.cert.body.allowance;
        if !a.contains(counter) {
            return Err(VerifyError::CounterOutOfRange {
                counter,
                first: a.counter_first,
                last: a.counter_last,
            });
        }
        if amount > a.max_amount {
            return Err(VerifyError::AmountOverAllowance {
                amount,
                max: a.max_amount,
            });
        }
        Ok(())
    }

    /// Verifies an NFC authorization against the challenge this validator sent (the
    /// challenge's own signature is the validator's: see [`verify_challenge`]). Validity is
    /// checked at the validator's time from the challenge.
    pub fn verify_tap(
        &self,
        challenge: &TapChallenge,
        auth: &TapAuthorization,
    ) -> Result<(), VerifyError> {
        let c = &challenge.body;
        check_validity(&self.cert, c.validator_time)?;
        if auth.cert_id != self.hash {
            return Err(VerifyError::ChallengeMismatch);
        }
        // Quoted for the certificate's class: exactly the fare asked. For another class: the
        // phone signs its own class's fare of the line, never more than the fare asked (the
        // exact amount is checked against the tariff with [`authorized_amount`]).
        let class = self.cert.body.fare_class;
        let amount_ok = if c.fare_class == class {
            auth.amount == c.fare
        } else {
            auth.amount <= c.fare
        };
        if !amount_ok {
            return Err(VerifyError::ChallengeMismatch);
        }
        self.check_counter_amount(auth.counter, auth.amount)?;
        auth.verify(self.tap_key(), c)?;
        Ok(())
    }

    /// Verifies a boarding pass carrying this certificate at `now` under the bundle's time rules.
    pub fn verify_pass(
        &self,
        pass: &BoardingPass,
        now: i64,
        rules: &TimeRules,
    ) -> Result<(), VerifyError> {
        if pass.body.certificate != self.cert {
            return Err(VerifyError::ChallengeMismatch);
        }
        check_validity(&self.cert, now)?;
        check_pass_time(pass, now, rules)?;
        self.check_counter_amount(pass.body.counter, pass.body.max_amount)?;
        pass.verify(self.tap_key())?;
        Ok(())
    }
}

/// What a phone of `class` signs for `challenge` under `tariff`: the challenge's fare when it
/// is quoted for that class; otherwise the line's single fare for `class`, when it is not above
/// the fare quoted (so a reader that cannot know the rider's class before the answer quotes the
/// adult fare, and a student's phone signs the student fare: two APDU pairs, not three). None:
/// the phone signs nothing for it (the line has no fare for the class, or that fare is above
/// the one quoted: the reader must quote again for the class).
pub fn authorized_amount(
    challenge: &crate::tap::ChallengeBody,
    class: FareClass,
    tariff: &crate::tariff::Tariff,
) -> Option<i64> {
    if challenge.fare_class == class {
        return Some(challenge.fare);
    }
    let own = tariff.single_fare(class, challenge.line_id)?;
    (own <= challenge.fare).then_some(own)
}

/// Verifies a config bundle's signature with keys the verifier already trusts, and that it is
/// newer than `installed_version` (if any).
pub fn verify_config(
    config: &ValidatorConfig,
    trusted: &[IssuerKey],
    installed_version: Option<u64>,
) -> Result<(), VerifyError> {
    let id = config.body.signer_key_id;
    let key = trusted
        .iter()
        .find(|k| k.key_id == id)
        .ok_or(VerifyError::UnknownIssuerKey(id))?;
    config.verify(&key.public_key)?;
    if let Some(installed) = installed_version {
        if config.body.bundle_version <= installed {
            return Err(VerifyError::StaleBundle {
                offered: config.body.bundle_version,
                installed,
            });
        }
    }
    Ok(())
}

/// Everything a validator checks for an NFC tap, from scratch (no cache): issuer signature,
/// deny list, validity, challenge binding, counter, amount and tap signature.
pub fn verify_nfc_tap(
    config: &ValidatorConfig,
    cert: &CredentialCertificate,
    challenge: &TapChallenge,
    auth: &TapAuthorization,
) -> Result<VerifiedCertificate, VerifyError> {
    let vc = VerifiedCertificate::new(cert.clone(), &config.body.issuer_keys)?;
    if config.is_denied(&cert.body.pseudonym) {
        return Err(VerifyError::DenyListed(cert.body.pseudonym));
    }
    vc.verify_tap(challenge, auth)?;
    if authorized_amount(&challenge.body, cert.body.fare_class, &config.body.tariff)
        != Some(auth.amount)
    {
        return Err(VerifyError::ChallengeMismatch);
    }
    Ok(vc)
}

/// Everything a validator checks for a QR pass, from scratch (no cache), under the bundle's
/// time rules.
pub fn verify_boarding_pass(
    config: &ValidatorConfig,
    pass: &BoardingPass,
    now: i64,
) -> Result<VerifiedCertificate, VerifyError> {
    let vc = VerifiedCertificate::new(pass.body.certificate.clone(), &config.body.issuer_keys)?;
    if config.is_denied(&vc.cert.body.pseudonym) {
        return Err(VerifyError::DenyListed(vc.cert.body.pseudonym));
    }
    vc.verify_pass(pass, now, &config.body.time_rules)?;
    Ok(vc)
}
