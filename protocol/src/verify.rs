//! Verification shared by every party: one code path checks NFC and QR taps.

use crate::cert::{CredentialCertificate, Pseudonym};
use crate::config::{IssuerKey, ValidatorConfig};
use crate::crypto::PublicKey;
use crate::pass::BoardingPass;
use crate::tap::{TapAuthorization, TapChallenge};
use thiserror::Error;

/// Why a certificate, tap, pass or bundle is refused. Each has its own variant so a
/// validator can tell the rider why.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyError {
    #[error("signature does not verify")]
    BadSignature,
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
}

/// Checks a certificate's issuer signature against `issuer_keys` (no time check).
pub fn verify_certificate_signature(
    cert: &CredentialCertificate,
    issuer_keys: &[IssuerKey],
) -> Result<(), VerifyError> {
    let id = cert.body.issuer_key_id;
    let key = issuer_keys
        .iter()
        .find(|k| k.key_id == id)
        .ok_or(VerifyError::UnknownIssuerKey(id))?;
    if !(key.valid_from..=key.valid_until).contains(&cert.body.valid_from) {
        return Err(VerifyError::IssuerKeyNotValid(id));
    }
    if !cert.signature_valid(&key.public_key) {
        return Err(VerifyError::BadSignature);
    }
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
    pub hash: [u8; 32],
}

impl VerifiedCertificate {
    /// Verifies the issuer signature (time is checked per tap).
    pub fn new(
        cert: CredentialCertificate,
        issuer_keys: &[IssuerKey],
    ) -> Result<Self, VerifyError> {
        verify_certificate_signature(&cert, issuer_keys)?;
        let hash = cert.hash();
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

    /// Verifies an NFC authorization against the challenge this validator sent.
    /// Validity is checked at the validator's time from the challenge.
    pub fn verify_tap(
        &self,
        challenge: &TapChallenge,
        auth: &TapAuthorization,
    ) -> Result<(), VerifyError> {
        check_validity(&self.cert, challenge.validator_time)?;
        if auth.digest != challenge.digest(&self.hash) || auth.amount != challenge.fare {
            return Err(VerifyError::ChallengeMismatch);
        }
        self.check_counter_amount(auth.counter, auth.amount)?;
        auth.verify(self.tap_key())
            .map_err(|_| VerifyError::BadSignature)
    }

    /// Verifies a boarding pass carrying this certificate at `now`, with `skew_secs` tolerance.
    pub fn verify_pass(
        &self,
        pass: &BoardingPass,
        now: i64,
        skew_secs: i64,
    ) -> Result<(), VerifyError> {
        if pass.body.certificate != self.cert {
            return Err(VerifyError::ChallengeMismatch);
        }
        check_validity(&self.cert, now)?;
        if !pass.in_window(now, skew_secs) {
            return Err(VerifyError::PassOutsideWindow {
                issued_at: pass.body.issued_at,
                lifetime: pass.body.lifetime_secs,
                now,
                skew: skew_secs,
            });
        }
        self.check_counter_amount(pass.body.counter, pass.body.max_amount)?;
        pass.verify(self.tap_key())
            .map_err(|_| VerifyError::BadSignature)
    }
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
    config
        .verify(&key.public_key)
        .map_err(|_| VerifyError::BadSignature)?;
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
    Ok(vc)
}

/// Everything a validator checks for a QR pass, from scratch (no cache).
pub fn verify_boarding_pass(
    config: &ValidatorConfig,
    pass: &BoardingPass,
    now: i64,
    skew_secs: i64,
) -> Result<VerifiedCertificate, VerifyError> {
    let vc = VerifiedCertificate::new(pass.body.certificate.clone(), &config.body.issuer_keys)?;
    if config.is_denied(&vc.cert.body.pseudonym) {
        return Err(VerifyError::DenyListed(vc.cert.body.pseudonym));
    }
    vc.verify_pass(pass, now, skew_secs)?;
    Ok(vc)
}
