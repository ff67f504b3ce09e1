//! The binding-key proof a wallet sends when it asks the issuer for a certificate.
//!
//! Provisioning (a new device) and replenishment (a fresh certificate for the same device) carry
//! the same proof: an ECDSA P-256 / SHA-256 signature by the wallet's *binding key* (the
//! hardware-held key that names the installation) over the transcript
//!
//! ```text
//! "MANCARD-PROVISION-v1\0"   domain tag (tags::PROVISION, 21 bytes)
//! version        u8          = 1
//! purpose        u8          1 = provision (new device), 2 = replenish (same device)
//! nonce          [u8; 32]    single-use server nonce (POST /v1/credential/nonce)
//! binding key    [u8; 65]    uncompressed SEC1 P-256 point
//! tap key        [u8; 65]    uncompressed SEC1 P-256 point of the new certificate's tap key
//! ```
//!
//! 185 bytes in all. A platform keystore (Android Keystore `SHA256withECDSA`, iOS Secure Enclave
//! `ecdsaSignatureMessageX962SHA256`) signs [`provision_transcript`] as it is; it returns a DER
//! signature, which the wallet converts to the fixed 64-byte `r ‖ s` form used on the wire.
//! The nonce makes every proof single-use; the purpose byte keeps a provisioning proof from being
//! replayed as a replenishment and vice versa.

use crate::crypto::{sha256, tags, BadSignature, KeyError, PublicKey, Signature, SigningKey};

/// Version byte of the transcript layout.
pub const PROVISION_VERSION: u8 = 1;
/// Length of the server nonce.
pub const NONCE_LEN: usize = 32;
/// Length of [`provision_transcript`]'s output.
pub const TRANSCRIPT_LEN: usize = 21 + 1 + 1 + NONCE_LEN + PublicKey::LEN + PublicKey::LEN;

/// Why the wallet asks for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProvisionPurpose {
    /// A new device for the account (revokes the account's previous device).
    Provision = 1,
    /// A new certificate for the same device (same pseudonym, next counter range).
    Replenish = 2,
}

impl ProvisionPurpose {
    pub fn name(self) -> &'static str {
        match self {
            Self::Provision => "provision",
            Self::Replenish => "replenish",
        }
    }
}

/// The body after the domain tag (what [`SigningKey::sign`] is given with [`tags::PROVISION`]).
fn body(
    purpose: ProvisionPurpose,
    nonce: &[u8; NONCE_LEN],
    binding_key: &PublicKey,
    tap_key: &PublicKey,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(TRANSCRIPT_LEN - tags::PROVISION.len());
    v.push(PROVISION_VERSION);
    v.push(purpose as u8);
    v.extend_from_slice(nonce);
    v.extend_from_slice(binding_key.as_bytes());
    v.extend_from_slice(tap_key.as_bytes());
    v
}

/// The exact bytes the binding key signs (domain tag included), for platform keystores that hash
/// and sign a whole message.
pub fn provision_transcript(
    purpose: ProvisionPurpose,
    nonce: &[u8; NONCE_LEN],
    binding_key: &PublicKey,
    tap_key: &PublicKey,
) -> Vec<u8> {
    let mut v = Vec::with_capacity(TRANSCRIPT_LEN);
    v.extend_from_slice(tags::PROVISION);
    v.extend_from_slice(&body(purpose, nonce, binding_key, tap_key));
    v
}

/// Signs the transcript with a software binding key (tests, CLI and the demo; a phone signs
/// [`provision_transcript`] in its keystore instead).
pub fn sign_provision(
    binding: &SigningKey,
    purpose: ProvisionPurpose,
    nonce: &[u8; NONCE_LEN],
    tap_key: &PublicKey,
) -> Result<Signature, KeyError> {
    binding.sign(
        tags::PROVISION,
        &body(purpose, nonce, &binding.public_key(), tap_key),
    )
}

/// Checks a binding-key proof.
pub fn verify_provision(
    purpose: ProvisionPurpose,
    nonce: &[u8; NONCE_LEN],
    binding_key: &PublicKey,
    tap_key: &PublicKey,
    signature: &Signature,
) -> Result<(), BadSignature> {
    binding_key.verify(
        tags::PROVISION,
        &body(purpose, nonce, binding_key, tap_key),
        signature,
    )
}

/// The request proof of a bound session (the `ManCard-Proof: <nonce hex>.<signature hex>`
/// header): the binding key signs
///
/// ```text
/// "MANCARD-REQUEST-v1\0"    domain tag (tags::REQUEST, 19 bytes)
/// nonce          [u8; 32]    single-use server nonce (POST /v1/credential/nonce)
/// request hash   [u8; 32]    SHA-256(method ‖ ' ' ‖ path ‖ '\0' ‖ body)
/// ```
///
/// `method` is the HTTP method in capitals, `path` the request path without the query string,
/// `body` the request body's exact bytes (empty when there is none). The nonce makes the proof
/// single-use; the request hash ties it to one request (a proof for one top-up cannot be
/// replayed for another amount or another endpoint).
pub fn request_transcript(
    nonce: &[u8; NONCE_LEN],
    method: &str,
    path: &str,
    body: &[u8],
) -> Vec<u8> {
    let mut v = Vec::with_capacity(tags::REQUEST.len() + NONCE_LEN + 32);
    v.extend_from_slice(tags::REQUEST);
    v.extend_from_slice(&request_body(nonce, method, path, body));
    v
}

/// The transcript after the domain tag.
fn request_body(nonce: &[u8; NONCE_LEN], method: &str, path: &str, body: &[u8]) -> Vec<u8> {
    let h = sha256(&[method.as_bytes(), b" ", path.as_bytes(), b"\0", body]);
    let mut v = Vec::with_capacity(NONCE_LEN + 32);
    v.extend_from_slice(nonce);
    v.extend_from_slice(&h);
    v
}

/// Signs a request proof with a software binding key (tests, CLI, demo).
pub fn sign_request(
    binding: &SigningKey,
    nonce: &[u8; NONCE_LEN],
    method: &str,
    path: &str,
    body: &[u8],
) -> Result<Signature, KeyError> {
    binding.sign(tags::REQUEST, &request_body(nonce, method, path, body))
}

/// Checks a request proof.
pub fn verify_request(
    binding_key: &PublicKey,
    nonce: &[u8; NONCE_LEN],
    (method, path, body): (&str, &str, &[u8]),
    signature: &Signature,
) -> Result<(), BadSignature> {
    binding_key.verify(
        tags::REQUEST,
        &request_body(nonce, method, path, body),
        signature,
    )
}

/// The `ManCard-Proof` header's value: `<nonce hex>.<signature hex>`.
pub fn proof_header(nonce: &[u8; NONCE_LEN], signature: &Signature) -> String {
    format!("{}.{}", hex_lower(nonce), hex_lower(signature.as_bytes()))
}

/// The nonce and signature of a `ManCard-Proof` header, if it is well formed.
pub fn parse_proof_header(value: &str) -> Option<([u8; NONCE_LEN], Signature)> {
    let (n, s) = value.trim().split_once('.')?;
    let nonce: [u8; NONCE_LEN] = unhex(n)?.try_into().ok()?;
    let sig: [u8; Signature::LEN] = unhex(s)?.try_into().ok()?;
    Some((nonce, Signature(sig)))
}

fn hex_lower(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    s.as_bytes()
        .chunks(2)
        .map(|c| {
            let hi = char::from(*c.first()?).to_digit(16)?;
            let lo = char::from(*c.get(1)?).to_digit(16)?;
            u8::try_from(hi * 16 + lo).ok()
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transcript_layout_and_verification() {
        let (binding, _) = SigningKey::generate().unwrap();
        let (tap, _) = SigningKey::generate().unwrap();
        let nonce = [7u8; NONCE_LEN];
        let t = provision_transcript(
            ProvisionPurpose::Provision,
            &nonce,
            &binding.public_key(),
            &tap.public_key(),
        );
        assert_eq!(t.len(), TRANSCRIPT_LEN);
        assert!(t.starts_with(tags::PROVISION));
        assert_eq!(t[21], PROVISION_VERSION);
        assert_eq!(t[22], 1);
        assert_eq!(&t[23..55], &nonce);
        assert_eq!(&t[55..120], binding.public_key().as_bytes());
        assert_eq!(&t[120..185], tap.public_key().as_bytes());

        let sig = sign_provision(
            &binding,
            ProvisionPurpose::Provision,
            &nonce,
            &tap.public_key(),
        )
        .unwrap();
        let bk = binding.public_key();
        let tk = tap.public_key();
        verify_provision(ProvisionPurpose::Provision, &nonce, &bk, &tk, &sig).unwrap();
        // other purpose, nonce, tap key or signer: refused
        assert!(verify_provision(ProvisionPurpose::Replenish, &nonce, &bk, &tk, &sig).is_err());
        assert!(verify_provision(ProvisionPurpose::Provision, &[8; 32], &bk, &tk, &sig).is_err());
        assert!(verify_provision(ProvisionPurpose::Provision, &nonce, &bk, &bk, &sig).is_err());
        assert!(verify_provision(ProvisionPurpose::Provision, &nonce, &tk, &tk, &sig).is_err());
    }

    #[test]
    fn a_request_proof_binds_nonce_method_path_and_body() {
        let (binding, _) = SigningKey::generate().unwrap();
        let nonce = [9u8; NONCE_LEN];
        let body = br#"{"amount":50000}"#;
        let sig = sign_request(&binding, &nonce, "POST", "/v1/topups", body).unwrap();
        let bk = binding.public_key();
        verify_request(&bk, &nonce, ("POST", "/v1/topups", body), &sig).unwrap();
        // the transcript a keystore signs is the same message
        let t = request_transcript(&nonce, "POST", "/v1/topups", body);
        assert!(t.starts_with(tags::REQUEST));
        assert_eq!(t.len(), tags::REQUEST.len() + 64);
        assert!(verify_request(&bk, &[8; 32], ("POST", "/v1/topups", body), &sig).is_err());
        assert!(verify_request(&bk, &nonce, ("GET", "/v1/topups", body), &sig).is_err());
        assert!(verify_request(&bk, &nonce, ("POST", "/v1/topupz", body), &sig).is_err());
        assert!(verify_request(&bk, &nonce, ("POST", "/v1/topups", b"{}"), &sig).is_err());
        let h = proof_header(&nonce, &sig);
        let (n, s) = parse_proof_header(&h).unwrap();
        assert_eq!((n, s.as_bytes()), (nonce, sig.as_bytes()));
        assert!(parse_proof_header("zz.zz").is_none());
        assert!(parse_proof_header(&h.replace('.', "")).is_none());
        assert!(parse_proof_header(&format!("{h}00")).is_none());
    }
}
