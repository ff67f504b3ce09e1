//! The platform keystore: where the wallet's long-lived secrets live.
//!
//! On a phone this is implemented by the app (Android Keystore / StrongBox, iOS Secure
//! Enclave) as a uniffi foreign trait. The keystore holds two things:
//! - the *binding key* (P-256): proves "this installation" at provisioning and replenishment;
//! - a *sealing key*: encrypts the per-certificate tap keys (and the session token) at rest.
//!
//! The desktop and test implementation, `FileKeystore`, lives in `file_keystore.rs` behind the
//! `file-keystore` cargo feature, which no phone build enables: it keeps its keys in plain files
//! and gives integrity only (see docs/keys.md).
//!
//! The tap path never calls the keystore: the tap key is unsealed once when the wallet opens.

use thiserror::Error;

/// Why the platform keystore could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum KeystoreError {
    /// The keystore is not reachable or its keys are missing.
    #[error("keystore unavailable: {message}")]
    Unavailable { message: String },
    /// Sealed data does not authenticate under this keystore's sealing key (tampered, or sealed
    /// by another keystore).
    #[error("sealed data was not sealed by this keystore or has been altered")]
    SealedDataInvalid,
    /// The user must authenticate first (e.g. biometric prompt), or authentication failed.
    #[error("keystore requires user authentication: {message}")]
    AuthenticationRequired { message: String },
    /// Anything else the platform reports.
    #[error("keystore failure: {message}")]
    Failed { message: String },
}

/// The phone's key storage. Object-safe and `Send + Sync` so that one instance can be shared by
/// every wallet thread (and, later, implemented in Kotlin/Swift through uniffi).
///
/// Conventions: public keys are uncompressed SEC1 (65 bytes, `04 ‖ X ‖ Y`); signatures are
/// ECDSA P-256/SHA-256 in fixed form (64 bytes, `r ‖ s`), with either S (the core sends the
/// canonical low-S twin: every ManCard verifier refuses high S); `message` is signed as given
/// (the core adds its domain-separation tag before calling).
pub trait PlatformKeystore: Send + Sync {
    /// The binding key's public half.
    fn binding_public_key(&self) -> Result<Vec<u8>, KeystoreError>;
    /// Signs `message` with the binding key.
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
    /// Encrypts and authenticates `plaintext` under the sealing key.
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
    /// Reverses [`PlatformKeystore::seal`]; fails with [`KeystoreError::SealedDataInvalid`] if the
    /// data was altered or sealed by another keystore.
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
    /// True when this keystore's keys existed before it was opened in this process (a
    /// `FileKeystore` that read its key files rather than creating them). `Wallet::open` then
    /// refuses to start a new, empty wallet in a directory without a database: the wallet that
    /// went with these keys lost its files, it was not never made.
    ///
    /// The default, false ("cannot tell"), is right for hardware keystores: their keys can
    /// outlive the app's files (an iOS Keychain item survives uninstalling the app), so their
    /// presence proves nothing about a lost wallet, and refusing would strand a reinstalled app.
    fn keys_existed_before_open(&self) -> bool {
        false
    }
}
