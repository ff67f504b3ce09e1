//! The platform keystore: where the wallet's long-lived secrets live.
//!
//! On a phone this is implemented by the app (Android Keystore / StrongBox, iOS Secure
//! Enclave) as a uniffi foreign trait; [`FileKeystore`] is the file-based implementation
//! for the CLI, desktop and tests. The keystore holds two things:
//! - the *binding key* (P-256): proves "this installation" at provisioning and replenishment;
//! - a *sealing key*: encrypts the per-certificate tap keys at rest.
//!
//! The tap path never calls the keystore: the tap key is unsealed once when the wallet opens.

use mancard_protocol::SigningKey;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

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
}

const BINDING_FILE: &str = "binding-key.pk8";
const SEALING_FILE: &str = "sealing-key.aes256";
const SEAL_VERSION: u8 = 1;
const SEAL_AAD: &[u8] = b"MANCARD-SEAL-v1\0";

/// A file-based keystore: a P-256 binding key (PKCS#8) and an AES-256-GCM sealing key, each in
/// its own file with mode 0600 inside `dir`. For the CLI, desktop and tests; a phone uses its
/// hardware-backed keystore instead.
pub struct FileKeystore {
    dir: PathBuf,
    binding: SigningKey,
    sealing: LessSafeKey,
    rng: SystemRandom,
}

impl fmt::Debug for FileKeystore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("FileKeystore")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

fn unavailable(message: impl Into<String>) -> KeystoreError {
    KeystoreError::Unavailable {
        message: message.into(),
    }
}

impl FileKeystore {
    /// Opens the keystore in `dir`, creating both keys if neither exists. If only one of the two
    /// files exists the keystore refuses to guess: creating a new sealing key would make every
    /// sealed tap key unreadable.
    pub fn open_or_create(dir: impl AsRef<Path>) -> Result<Self, KeystoreError> {
        let dir = dir.as_ref();
        let b = dir.join(BINDING_FILE);
        let s = dir.join(SEALING_FILE);
        match (b.exists(), s.exists()) {
            (false, false) => Self::create(dir),
            _ => Self::open(dir),
        }
    }

    /// Opens an existing keystore; fails if a key file is missing or malformed.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, KeystoreError> {
        let dir = dir.as_ref().to_path_buf();
        let read = |name: &str| -> Result<Zeroizing<Vec<u8>>, KeystoreError> {
            let p = dir.join(name);
            fs::read(&p)
                .map(Zeroizing::new)
                .map_err(|e| unavailable(format!("cannot read {}: {e}", p.display())))
        };
        let binding_doc = read(BINDING_FILE)?;
        let binding = SigningKey::from_pkcs8(&binding_doc)
            .map_err(|_| unavailable(format!("{BINDING_FILE} is not a P-256 PKCS#8 key")))?;
        let sealing_bytes = read(SEALING_FILE)?;
        if sealing_bytes.len() != 32 {
            return Err(unavailable(format!(
                "{SEALING_FILE} must hold exactly 32 bytes"
            )));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, &sealing_bytes)
            .map_err(|_| unavailable("invalid sealing key"))?;
        Ok(Self {
            dir,
            binding,
            sealing: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
        })
    }

    fn create(dir: &Path) -> Result<Self, KeystoreError> {
        fs::create_dir_all(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let (_, binding_doc) =
            SigningKey::generate().map_err(|e| unavailable(format!("binding key: {e}")))?;
        let mut sealing = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(sealing.as_mut())
            .map_err(|_| unavailable("the system random number generator failed"))?;
        write_secret_file(&dir.join(SEALING_FILE), sealing.as_ref())?;
        write_secret_file(&dir.join(BINDING_FILE), &binding_doc)?;
        Self::open(dir)
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// Writes a secret file with mode 0600 (created exclusively, then synced).
fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts
        .open(path)
        .map_err(|e| unavailable(format!("cannot create {}: {e}", path.display())))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| unavailable(format!("cannot write {}: {e}", path.display())))
}

impl PlatformKeystore for FileKeystore {
    fn binding_public_key(&self) -> Result<Vec<u8>, KeystoreError> {
        Ok(self.binding.public_key().as_bytes().to_vec())
    }

    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        self.binding
            .sign(&[], &message)
            .map(|s| s.as_bytes().to_vec())
            .map_err(|e| KeystoreError::Failed {
                message: e.to_string(),
            })
    }

    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        let plaintext = Zeroizing::new(plaintext);
        let mut nonce = [0u8; NONCE_LEN];
        self.rng
            .fill(&mut nonce)
            .map_err(|_| unavailable("the system random number generator failed"))?;
        let mut out = Vec::with_capacity(1 + NONCE_LEN + plaintext.len() + 16);
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
        let mut body = plaintext.to_vec();
        let tag = self
            .sealing
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEAL_AAD),
                &mut body,
            )
            .map_err(|_| KeystoreError::Failed {
                message: "sealing failed".into(),
            })?;
        out.extend_from_slice(&body);
        out.extend_from_slice(tag.as_ref());
        Ok(out)
    }

    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        let (version, rest) = sealed
            .split_first()
            .ok_or(KeystoreError::SealedDataInvalid)?;
        if *version != SEAL_VERSION {
            return Err(KeystoreError::SealedDataInvalid);
        }
        let (nonce, ct) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or(KeystoreError::SealedDataInvalid)?;
        let nonce: [u8; NONCE_LEN] = nonce
            .try_into()
            .map_err(|_| KeystoreError::SealedDataInvalid)?;
        let mut buf = Zeroizing::new(ct.to_vec());
        let plain = self
            .sealing
            .open_in_place(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(SEAL_AAD),
                &mut buf,
            )
            .map_err(|_| KeystoreError::SealedDataInvalid)?;
        Ok(plain.to_vec())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_roundtrip_tamper_and_other_keystore() {
        let d1 = tempfile::tempdir().unwrap();
        let d2 = tempfile::tempdir().unwrap();
        let k1 = FileKeystore::open_or_create(d1.path()).unwrap();
        let k2 = FileKeystore::open_or_create(d2.path()).unwrap();
        let sealed = k1.seal(b"secret".to_vec()).unwrap();
        assert_eq!(k1.unseal(sealed.clone()).unwrap(), b"secret");
        assert_eq!(
            k2.unseal(sealed.clone()),
            Err(KeystoreError::SealedDataInvalid)
        );
        let mut t = sealed.clone();
        if let Some(last) = t.last_mut() {
            *last ^= 1;
        }
        assert_eq!(k1.unseal(t), Err(KeystoreError::SealedDataInvalid));
        assert_eq!(k1.unseal(vec![]), Err(KeystoreError::SealedDataInvalid));
        // reopening reads the same keys
        let k1b = FileKeystore::open(d1.path()).unwrap();
        assert_eq!(k1b.unseal(sealed).unwrap(), b"secret");
        assert_eq!(
            k1b.binding_public_key().unwrap(),
            k1.binding_public_key().unwrap()
        );
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_half_keystore_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let k = FileKeystore::open_or_create(d.path()).unwrap();
        for f in [BINDING_FILE, SEALING_FILE] {
            let mode = fs::metadata(d.path().join(f)).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{f}");
        }
        let sig = k.sign_with_binding_key(b"m".to_vec()).unwrap();
        let pk =
            mancard_protocol::PublicKey::from_bytes(&k.binding_public_key().unwrap(), "k").unwrap();
        let sig = mancard_protocol::Signature(sig.try_into().unwrap());
        pk.verify(&[], b"m", &sig).unwrap();
        fs::remove_file(d.path().join(SEALING_FILE)).unwrap();
        assert!(matches!(
            FileKeystore::open_or_create(d.path()),
            Err(KeystoreError::Unavailable { .. })
        ));
    }
}
