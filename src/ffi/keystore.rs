//! The platform keystore as a foreign trait: the app implements [`PlatformKeystore`] with the
//! Android Keystore (StrongBox when present) or the iOS Secure Enclave / Keychain;
//! [`KeystoreAdapter`] makes it the core's `crate::PlatformKeystore`.
//! With the `file-keystore` feature only (desktop builds and the binding tests, never a phone's
//! library nor the committed bindings), `open_file_keystore` hands out the core's file-based
//! keystore.

use std::sync::Arc;

/// Why the app's keystore could not do what was asked. Thrown from Kotlin/Swift
/// (`KeystoreException.Failed("...")` / `KeystoreError.Failed(detail:)`); any other exception
/// the app throws arrives as `Failed` with its description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, uniffi::Error)]
#[uniffi::export(Display)]
pub enum KeystoreError {
    /// The keystore is not reachable or its keys are missing.
    #[error("keystore unavailable: {detail}")]
    Unavailable { detail: String },
    /// Sealed data does not authenticate under this keystore's sealing key.
    #[error("sealed data was not sealed by this keystore or has been altered")]
    SealedDataInvalid,
    /// The rider must authenticate first (biometric prompt), or authentication failed.
    #[error("keystore requires user authentication: {detail}")]
    AuthenticationRequired { detail: String },
    /// Anything else the platform reports.
    #[error("keystore failure: {detail}")]
    Failed { detail: String },
}

impl From<uniffi::UnexpectedUniFFICallbackError> for KeystoreError {
    fn from(e: uniffi::UnexpectedUniFFICallbackError) -> Self {
        Self::Failed {
            detail: format!(
                "the app's keystore threw an unexpected exception: {}",
                e.reason
            ),
        }
    }
}

impl From<KeystoreError> for crate::KeystoreError {
    fn from(e: KeystoreError) -> Self {
        match e {
            KeystoreError::Unavailable { detail } => Self::Unavailable { message: detail },
            KeystoreError::SealedDataInvalid => Self::SealedDataInvalid,
            KeystoreError::AuthenticationRequired { detail } => {
                Self::AuthenticationRequired { message: detail }
            }
            KeystoreError::Failed { detail } => Self::Failed { message: detail },
        }
    }
}

impl From<crate::KeystoreError> for KeystoreError {
    fn from(e: crate::KeystoreError) -> Self {
        match e {
            crate::KeystoreError::Unavailable { message } => Self::Unavailable { detail: message },
            crate::KeystoreError::SealedDataInvalid => Self::SealedDataInvalid,
            crate::KeystoreError::AuthenticationRequired { message } => {
                Self::AuthenticationRequired { detail: message }
            }
            crate::KeystoreError::Failed { message } => Self::Failed { detail: message },
        }
    }
}

/// The phone's key storage, implemented by the app. It holds a P-256 *binding key* (proves
/// "this installation" to the backend) and a *sealing key* (encrypts the wallet's tap keys at
/// rest). Called rarely (wallet open, provisioning), never on the tap path; may block (e.g. a
/// StrongBox operation) but must not show UI from the calling thread.
///
/// Formats: public keys are uncompressed SEC1 (65 bytes, `04 ‖ X ‖ Y`); signatures are
/// ECDSA P-256 / SHA-256 over `message` as given, in fixed form (64 bytes, `r ‖ s`: convert
/// the platform's DER signature; either S: the core sends the canonical low-S twin). `seal`
/// must authenticate (AES-GCM) and `unseal` must throw
/// `SealedDataInvalid` for data it did not seal or that was altered.
#[uniffi::export(with_foreign)]
pub trait PlatformKeystore: Send + Sync {
    /// The binding key's public half (65 bytes), creating the key on first use.
    fn binding_public_key(&self) -> Result<Vec<u8>, KeystoreError>;
    /// Signs `message` with the binding key: 64-byte `r ‖ s`.
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
    /// Encrypts and authenticates `plaintext` under the sealing key.
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
    /// Reverses `seal`.
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, KeystoreError>;
}

/// The app's keystore seen as the core's.
pub(crate) struct KeystoreAdapter(pub(crate) Arc<dyn PlatformKeystore>);

impl crate::PlatformKeystore for KeystoreAdapter {
    fn binding_public_key(&self) -> Result<Vec<u8>, crate::KeystoreError> {
        Ok(self.0.binding_public_key()?)
    }
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, crate::KeystoreError> {
        Ok(self.0.sign_with_binding_key(message)?)
    }
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, crate::KeystoreError> {
        Ok(self.0.seal(plaintext)?)
    }
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, crate::KeystoreError> {
        Ok(self.0.unseal(sealed)?)
    }
}

/// The core's file-based keystore behind the foreign trait.
#[cfg(feature = "file-keystore")]
struct FileKeystoreHandle(crate::FileKeystore);

#[cfg(feature = "file-keystore")]
impl PlatformKeystore for FileKeystoreHandle {
    fn binding_public_key(&self) -> Result<Vec<u8>, KeystoreError> {
        Ok(crate::PlatformKeystore::binding_public_key(&self.0)?)
    }
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        Ok(crate::PlatformKeystore::sign_with_binding_key(
            &self.0, message,
        )?)
    }
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        Ok(crate::PlatformKeystore::seal(&self.0, plaintext)?)
    }
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        Ok(crate::PlatformKeystore::unseal(&self.0, sealed)?)
    }
}

/// The core's file keystore in `dir` (a 0700 directory with two 0600 key files), created if
/// neither key file exists. Integrity only: anyone who can read `dir` has the keys. For desktop
/// builds and tests; it does not exist in a phone's library (the `file-keystore` cargo
/// feature), where the app passes its hardware-backed keystore.
#[cfg(feature = "file-keystore")]
#[uniffi::export]
pub fn open_file_keystore(dir: String) -> Result<Arc<dyn PlatformKeystore>, KeystoreError> {
    let ks = crate::FileKeystore::open_or_create(dir)?;
    Ok(Arc::new(FileKeystoreHandle(ks)))
}
