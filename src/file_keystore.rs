//! [`FileKeystore`]: the platform keystore made of two files, for the CLI, desktop apps and
//! tests. Compiled only with the `file-keystore` cargo feature, which no phone build enables
//! (`cargo build -p mancard --lib` leaves it out, and so do the committed bindings).
//!
//! **Integrity only, not secrecy.** Its sealing key is a plain file kept beside the sealed data
//! (the CLI keeps `DIR/keystore` next to `DIR/wallet`): anyone who can read the key directory (a
//! backup, a forensic copy, another program running as the same user, root) has every key and
//! can unseal every tap key and the session token. What it does give: a sealed tap key or session that was altered, or copied from
//! another keystore, fails to unseal (AES-256-GCM), and the keys are private to their owner
//! (directory 0700, files 0600). A phone uses its hardware-backed keystore instead, whose keys
//! cannot be copied out. docs/keys.md says what each attacker can do with either.

use crate::files::{create_private_dir, make_private, DIR_MODE, FILE_MODE};
use crate::keystore::{KeystoreError, PlatformKeystore};
use mancard_protocol::SigningKey;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::rand::{SecureRandom, SystemRandom};
use std::fmt;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

const BINDING_FILE: &str = "binding-key.pk8";
const SEALING_FILE: &str = "sealing-key.aes256";
const SEAL_VERSION: u8 = 1;
const SEAL_AAD: &[u8] = b"MANCARD-SEAL-v1\0";

/// A file-based keystore: a P-256 binding key (PKCS#8) and an AES-256-GCM sealing key, each in
/// its own file (mode 0600) in a directory of its own (mode 0700). For the CLI, desktop and
/// tests; a phone uses its hardware-backed keystore.
///
/// It protects **integrity, not secrecy**: whoever can read the directory has the keys (see
/// the module documentation and docs/keys.md).
///
/// Memory: the key files' bytes are read into buffers that are zeroized when dropped, and so
/// are the plaintexts it seals and the working buffer of an unseal. The parsed keys live in
/// ring's `EcdsaKeyPair` and `LessSafeKey`, which do not expose their memory and are not wiped
/// when dropped (ring's limit, written down in docs/keys.md).
pub struct FileKeystore {
    dir: PathBuf,
    binding: SigningKey,
    sealing: LessSafeKey,
    rng: SystemRandom,
    /// The key files existed before this open (see [`PlatformKeystore::keys_existed_before_open`]).
    existed: bool,
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

    /// Opens an existing keystore; fails if a key file is missing or malformed. A directory or
    /// key file that others could read (left by an older version) is made private first, with
    /// a log line.
    pub fn open(dir: impl AsRef<Path>) -> Result<Self, KeystoreError> {
        let dir = dir.as_ref();
        tighten(dir, DIR_MODE)?;
        for name in [BINDING_FILE, SEALING_FILE] {
            let path = dir.join(name);
            if path.exists() {
                tighten(&path, FILE_MODE)?;
            }
        }
        Self::load(dir, true)
    }

    fn load(dir: &Path, existed: bool) -> Result<Self, KeystoreError> {
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
            dir: dir.to_path_buf(),
            binding,
            sealing: LessSafeKey::new(unbound),
            rng: SystemRandom::new(),
            existed,
        })
    }

    fn create(dir: &Path) -> Result<Self, KeystoreError> {
        create_private_dir(dir)
            .map_err(|e| unavailable(format!("cannot create {}: {e}", dir.display())))?;
        let (_, binding_doc) =
            SigningKey::generate().map_err(|e| unavailable(format!("binding key: {e}")))?;
        let mut sealing = Zeroizing::new([0u8; 32]);
        SystemRandom::new()
            .fill(sealing.as_mut())
            .map_err(|_| unavailable("the system random number generator failed"))?;
        write_secret_file(&dir.join(SEALING_FILE), sealing.as_ref())?;
        write_secret_file(&dir.join(BINDING_FILE), &binding_doc)?;
        Self::load(dir, false)
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

/// [`make_private`] as a keystore error.
fn tighten(path: &Path, mode: u32) -> Result<(), KeystoreError> {
    make_private(path, mode)
        .map(|_| ())
        .map_err(|e| unavailable(format!("cannot make {} private: {e}", path.display())))
}

/// Writes a secret file with mode 0600 (created exclusively, then synced).
fn write_secret_file(path: &Path, bytes: &[u8]) -> Result<(), KeystoreError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(FILE_MODE);
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
        // Encrypted in place: the buffer holds the plaintext until it is overwritten, and is
        // wiped if sealing fails half way.
        let mut body = Zeroizing::new(plaintext.to_vec());
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
        let mut out = Vec::with_capacity(1 + NONCE_LEN + body.len() + tag.as_ref().len());
        out.push(SEAL_VERSION);
        out.extend_from_slice(&nonce);
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
        // Decrypted in place; this buffer is wiped on drop and the caller gets one copy of the
        // plaintext, which it must wipe itself (the wallet keeps it in `Zeroizing`).
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

    fn keys_existed_before_open(&self) -> bool {
        self.existed
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing)]
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

    #[test]
    fn it_says_whether_its_keys_existed_before_this_open() {
        let d = tempfile::tempdir().unwrap();
        let ks = d.path().join("keystore");
        assert!(!FileKeystore::open_or_create(&ks)
            .unwrap()
            .keys_existed_before_open());
        assert!(FileKeystore::open_or_create(&ks)
            .unwrap()
            .keys_existed_before_open());
        assert!(FileKeystore::open(&ks).unwrap().keys_existed_before_open());
    }

    /// The sealing key is a plain file: reading it is enough to unseal. This is the limit the
    /// documentation states ("integrity only"); the test keeps the statement honest.
    #[test]
    fn whoever_reads_the_directory_can_unseal() {
        let d = tempfile::tempdir().unwrap();
        let ks = FileKeystore::open_or_create(d.path()).unwrap();
        let sealed = ks.seal(b"tap key".to_vec()).unwrap();
        let copy = tempfile::tempdir().unwrap();
        for f in [BINDING_FILE, SEALING_FILE] {
            fs::copy(d.path().join(f), copy.path().join(f)).unwrap();
        }
        let thief = FileKeystore::open(copy.path()).unwrap();
        assert_eq!(thief.unseal(sealed).unwrap(), b"tap key");
    }

    #[cfg(unix)]
    #[test]
    fn key_files_are_private_and_half_keystore_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("a").join("keystore");
        let k = FileKeystore::open_or_create(&dir).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        for f in [BINDING_FILE, SEALING_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let sig = k.sign_with_binding_key(b"m".to_vec()).unwrap();
        let pk =
            mancard_protocol::PublicKey::from_bytes(&k.binding_public_key().unwrap(), "k").unwrap();
        let sig = mancard_protocol::Signature(sig.try_into().unwrap());
        pk.verify(&[], b"m", &sig).unwrap();
        fs::remove_file(dir.join(SEALING_FILE)).unwrap();
        assert!(matches!(
            FileKeystore::open_or_create(&dir),
            Err(KeystoreError::Unavailable { .. })
        ));
    }

    #[cfg(unix)]
    #[test]
    fn an_older_keystore_left_readable_is_made_private() {
        use std::os::unix::fs::PermissionsExt;
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("keystore");
        let pk = FileKeystore::open_or_create(&dir)
            .unwrap()
            .binding_public_key()
            .unwrap();
        let set = |p: &Path, m: u32| fs::set_permissions(p, fs::Permissions::from_mode(m)).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        set(&dir, 0o755);
        for f in [BINDING_FILE, SEALING_FILE] {
            set(&dir.join(f), 0o644);
        }
        let k = FileKeystore::open(&dir).unwrap();
        assert_eq!(k.binding_public_key().unwrap(), pk);
        assert_eq!(mode(&dir), 0o700);
        for f in [BINDING_FILE, SEALING_FILE] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
    }
}
