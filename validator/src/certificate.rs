//! The validator's own certificate: the issuer's signature over this validator's id and public
//! key. A phone answers a tap only for a reader that presents one, so a validator without it
//! refuses every NFC tap ([`crate::Refusal::NoValidatorCertificate`]).
//!
//! Installing one checks that it decodes, that it names this validator's id and public key, and
//! that an issuer key this validator trusts signed it (the installed bundle's issuer keys, or the
//! provisioned trust anchor). Its validity window is not checked at install (a validator may be
//! provisioned before its certificate starts, or with its clock not yet set); it is checked at
//! every tap, as are the line and the validator deny list.

use mancard_protocol::{
    verify_validator_certificate, DecodeError, IssuerKey, PublicKey, ValidatorCertificate,
    VerifyError,
};
use thiserror::Error;

/// Why a validator certificate was not installed (the previous one, if any, stays).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum CertificateError {
    #[error("the validator certificate cannot be decoded: {0}")]
    Decode(#[from] DecodeError),
    #[error("the certificate is for validator {found}, but this is validator {expected}")]
    WrongValidator { expected: u32, found: u32 },
    #[error("the certificate is for another public key than this validator's key")]
    WrongKey,
    #[error("the validator certificate is refused: {0}")]
    Refused(#[from] VerifyError),
}

/// Checks a decoded certificate for the validator `validator_id` with `public_key`, signed by
/// one of `trusted` (see the module documentation).
pub fn check_certificate(
    cert: ValidatorCertificate,
    validator_id: u32,
    public_key: &PublicKey,
    trusted: &[IssuerKey],
) -> Result<ValidatorCertificate, CertificateError> {
    let body = &cert.body;
    if body.validator_id != validator_id {
        return Err(CertificateError::WrongValidator {
            expected: validator_id,
            found: body.validator_id,
        });
    }
    if body.public_key != *public_key {
        return Err(CertificateError::WrongKey);
    }
    // The one verifier, at the certificate's own start: the issuer key and its signature are
    // what is checked here (validity and the deny list are checked at each tap). Each trusted
    // key with the certificate's key id is tried (a trust anchor and a bundle key may share one).
    let (key_id, at) = (body.issuer_key_id, i64::from(body.valid_from));
    let mut first_error = VerifyError::UnknownIssuerKey(key_id);
    for (i, key) in trusted.iter().filter(|k| k.key_id == key_id).enumerate() {
        match verify_validator_certificate(&cert, std::slice::from_ref(key), |_| false, at) {
            Ok(()) => return Ok(cert),
            Err(e) if i == 0 => first_error = e,
            Err(_) => {}
        }
    }
    Err(first_error.into())
}
