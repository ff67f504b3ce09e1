//! Issuer keys: P-256 signing keys with ids, kept in a key file next to the database.
//!
//! The file `<db>.issuer-keys.json` is created with mode 0600 (rewritten atomically: a 0600
//! temporary file, fsync, rename) and holds each key's PKCS#8 document in hex, its id, creation
//! time and retirement time. It is the only place private keys exist; they are never logged,
//! printed or served. A key signs new certificates and bundles from its creation until it is
//! retired by a rotation; a retired key stays listed in the validator bundle (for verification
//! of the certificates it signed) until those certificates have expired.

use crate::error::StoreError;
use mancard_api::KeyInfo;
use mancard_protocol::crypto::Zeroizing;
use mancard_protocol::{IssuerKey, PublicKey, SigningKey};
use serde::{Deserialize, Serialize};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Certificates signed by a key may start this long before the key's creation (backdating).
const KEY_BACKDATE_SECS: i64 = 3600;
/// An active key is listed as valid for this long (it is cut short when retired).
const KEY_HORIZON_SECS: i64 = 10 * 365 * 86_400;

/// Where the key file of a database lives.
pub fn key_file_path(db_path: &Path) -> PathBuf {
    let mut s = db_path.as_os_str().to_owned();
    s.push(".issuer-keys.json");
    PathBuf::from(s)
}

#[derive(Serialize, Deserialize)]
struct StoredKey {
    key_id: u32,
    pkcs8_hex: String,
    created_at: i64,
    retired_at: Option<i64>,
}

#[derive(Serialize, Deserialize)]
struct KeyFile {
    keys: Vec<StoredKey>,
}

/// One issuer key. Its `Debug` output never shows the private key.
pub struct IssuerKeyEntry {
    pub key_id: u32,
    pub key: SigningKey,
    pub created_at: i64,
    pub retired_at: Option<i64>,
    pkcs8: Zeroizing<Vec<u8>>,
}

impl std::fmt::Debug for IssuerKeyEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuerKeyEntry")
            .field("key_id", &self.key_id)
            .field("public_key", &self.key.public_key())
            .field("created_at", &self.created_at)
            .field("retired_at", &self.retired_at)
            .finish_non_exhaustive()
    }
}

impl IssuerKeyEntry {
    /// The public form, as listed in a validator bundle.
    pub fn issuer_key(&self) -> IssuerKey {
        IssuerKey {
            key_id: self.key_id,
            public_key: self.key.public_key(),
            valid_from: self.created_at.saturating_sub(KEY_BACKDATE_SECS),
            valid_until: self
                .retired_at
                .unwrap_or(self.created_at.saturating_add(KEY_HORIZON_SECS)),
        }
    }
}

/// The issuer's keys.
#[derive(Debug)]
pub struct Keyring {
    path: PathBuf,
    entries: Vec<IssuerKeyEntry>,
}

impl Keyring {
    /// Loads the key file, or creates it with one fresh key. Several instances starting at
    /// once on one shared key file (several backends on one PostgreSQL) end with the same
    /// key: the new file is written under a name of its own and then hard-linked into
    /// place, which fails if another instance got there first — that one's file is then
    /// loaded, never overwritten.
    pub fn load_or_create(path: &Path, now: i64) -> Result<Self, StoreError> {
        if path.exists() {
            return Self::load(path);
        }
        let mut mine = path.as_os_str().to_owned();
        mine.push(format!(
            ".new-{}-{}",
            std::process::id(),
            hex::encode(crate::engine::random::<4>().map_err(|e| StoreError::Keys(e.to_string()))?)
        ));
        let mine = PathBuf::from(mine);
        let mut ring = Self {
            path: mine.clone(),
            entries: Vec::new(),
        };
        ring.add_key(now)?;
        let linked = std::fs::hard_link(&mine, path);
        let _ = std::fs::remove_file(&mine);
        match linked {
            Ok(()) => {
                ring.path = path.to_path_buf();
                tracing::info!(key_id = 1, file = %path.display(), "created issuer key");
                Ok(ring)
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load(path),
            Err(e) => Err(StoreError::Keys(format!(
                "cannot create {}: {e}",
                path.display()
            ))),
        }
    }

    /// Loads an existing key file.
    pub fn load(path: &Path) -> Result<Self, StoreError> {
        check_permissions(path)?;
        let text = Zeroizing::new(
            std::fs::read_to_string(path)
                .map_err(|e| StoreError::Keys(format!("cannot read {}: {e}", path.display())))?,
        );
        let file: KeyFile = serde_json::from_str(&text)
            .map_err(|e| StoreError::Keys(format!("{} is not a key file: {e}", path.display())))?;
        let mut entries = Vec::with_capacity(file.keys.len());
        for k in file.keys {
            let pkcs8 = Zeroizing::new(
                hex::decode(&k.pkcs8_hex)
                    .map_err(|_| StoreError::Keys(format!("key {} is not hex", k.key_id)))?,
            );
            let key = SigningKey::from_pkcs8(&pkcs8)
                .map_err(|_| StoreError::Keys(format!("key {} is not a P-256 key", k.key_id)))?;
            entries.push(IssuerKeyEntry {
                key_id: k.key_id,
                key,
                created_at: k.created_at,
                retired_at: k.retired_at,
                pkcs8,
            });
        }
        entries.sort_by_key(|e| e.key_id);
        if !entries.iter().any(|e| e.retired_at.is_none()) {
            return Err(StoreError::Keys(format!(
                "{} holds no active key",
                path.display()
            )));
        }
        Ok(Self {
            path: path.to_path_buf(),
            entries,
        })
    }

    fn add_key(&mut self, now: i64) -> Result<u32, StoreError> {
        let (key, pkcs8) =
            SigningKey::generate().map_err(|e| StoreError::Keys(format!("keygen: {e}")))?;
        let key_id = self
            .entries
            .iter()
            .map(|e| e.key_id)
            .max()
            .unwrap_or(0)
            .saturating_add(1);
        self.entries.push(IssuerKeyEntry {
            key_id,
            key,
            created_at: now,
            retired_at: None,
            pkcs8,
        });
        self.save()?;
        Ok(key_id)
    }

    /// Adds a new key and retires every other active key for new certificates (they stay
    /// listed for verification). Returns the new key id.
    pub fn rotate(&mut self, now: i64) -> Result<u32, StoreError> {
        for e in self.entries.iter_mut() {
            if e.retired_at.is_none() {
                e.retired_at = Some(now);
            }
        }
        let id = self.add_key(now)?;
        tracing::info!(key_id = id, "issuer key rotated");
        Ok(id)
    }

    /// The key that signs new certificates and bundles: the newest active one.
    pub fn current(&self) -> Result<&IssuerKeyEntry, StoreError> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.retired_at.is_none())
            .ok_or(StoreError::Keys("no active issuer key".into()))
    }

    /// Keys a validator must know at `now`: active ones, and retired ones while certificates they
    /// signed (lifetime `cert_lifetime_secs`) may still be valid.
    pub fn listed(&self, now: i64, cert_lifetime_secs: i64) -> Vec<IssuerKey> {
        self.entries
            .iter()
            .filter(|e| match e.retired_at {
                None => true,
                Some(r) => r.saturating_add(cert_lifetime_secs).saturating_add(86_400) >= now,
            })
            .map(IssuerKeyEntry::issuer_key)
            .collect()
    }

    /// Every key ever created (for verifying stored certificates).
    pub fn all_public(&self) -> Vec<IssuerKey> {
        self.entries
            .iter()
            .map(IssuerKeyEntry::issuer_key)
            .collect()
    }

    pub fn public_key(&self, key_id: u32) -> Option<PublicKey> {
        self.entries
            .iter()
            .find(|e| e.key_id == key_id)
            .map(|e| e.key.public_key())
    }

    pub fn info(&self) -> Vec<KeyInfo> {
        let current = self.current().map(|c| c.key_id).ok();
        self.entries
            .iter()
            .map(|e| KeyInfo {
                key_id: e.key_id,
                public_key: hex::encode(e.key.public_key().as_bytes()),
                created_at: e.created_at,
                retired_at: e.retired_at,
                current: Some(e.key_id) == current,
            })
            .collect()
    }

    fn save(&self) -> Result<(), StoreError> {
        let file = KeyFile {
            keys: self
                .entries
                .iter()
                .map(|e| StoredKey {
                    key_id: e.key_id,
                    pkcs8_hex: hex::encode(&*e.pkcs8),
                    created_at: e.created_at,
                    retired_at: e.retired_at,
                })
                .collect(),
        };
        let text = Zeroizing::new(
            serde_json::to_vec_pretty(&file)
                .map_err(|e| StoreError::Keys(format!("serialize: {e}")))?,
        );
        let mut tmp = self.path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        let io =
            |e: std::io::Error| StoreError::Keys(format!("write {}: {e}", self.path.display()));
        {
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts.open(&tmp).map_err(io)?;
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                f.set_permissions(std::fs::Permissions::from_mode(0o600))
                    .map_err(io)?;
            }
            f.write_all(&text).map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        if let Some(dir) = self.path.parent() {
            if let Ok(d) = std::fs::File::open(if dir.as_os_str().is_empty() {
                Path::new(".")
            } else {
                dir
            }) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Refuses a key file that others than its owner can read.
fn check_permissions(path: &Path) -> Result<(), StoreError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(path)
            .map_err(|e| StoreError::Keys(format!("cannot stat {}: {e}", path.display())))?;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(StoreError::Keys(format!(
                "{} has mode {mode:o}; issuer keys must be 0600 (chmod 600 it)",
                path.display()
            )));
        }
    }
    let _ = path;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Eight instances starting at once on one new key file all end with the same key.
    #[test]
    fn instances_starting_at_once_share_one_first_key() {
        let dir = tempfile::tempdir().unwrap();
        let p = std::sync::Arc::new(dir.path().join("k.json"));
        let start = std::sync::Arc::new(std::sync::Barrier::new(8));
        let keys: Vec<Vec<u8>> = (0..8)
            .map(|_| {
                let (p, start) = (std::sync::Arc::clone(&p), std::sync::Arc::clone(&start));
                std::thread::spawn(move || {
                    start.wait();
                    let k = Keyring::load_or_create(&p, 1_000).unwrap();
                    k.current().unwrap().key.public_key().as_bytes().to_vec()
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        assert!(
            keys.windows(2).all(|w| w[0] == w[1]),
            "different first keys"
        );
        let on_disk = Keyring::load(&p).unwrap();
        assert_eq!(
            on_disk
                .current()
                .unwrap()
                .key
                .public_key()
                .as_bytes()
                .to_vec(),
            keys[0]
        );
        // no temporary file is left behind
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn create_rotate_reload() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("k.json");
        let mut k = Keyring::load_or_create(&p, 1_000).unwrap();
        assert_eq!(k.current().unwrap().key_id, 1);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let pk1 = k.public_key(1).unwrap();
        assert_eq!(k.rotate(2_000).unwrap(), 2);
        assert_eq!(k.current().unwrap().key_id, 2);
        let listed = k.listed(2_000, 72 * 3600);
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].valid_until, 2_000);
        // long after retirement the old key is no longer listed
        assert_eq!(k.listed(2_000 + 10 * 86_400, 72 * 3600).len(), 1);
        // Debug output carries no private key material (the PKCS#8 document ends with the
        // public key, which may be shown; the scalar sits at bytes 36..68)
        let scalar = &k.current().unwrap().pkcs8[36..68];
        let as_list = format!("{:?}", &scalar[..12]);
        let dbg = format!("{k:?}");
        assert!(dbg.contains("public_key"));
        assert!(!dbg.contains(&hex::encode(scalar)));
        assert!(!dbg.contains(as_list.trim_matches(|c| c == '[' || c == ']')));
        let again = Keyring::load(&p).unwrap();
        assert_eq!(again.public_key(1).unwrap(), pk1);
        assert_eq!(again.current().unwrap().key_id, 2);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(Keyring::load(&p).is_err());
        }
    }
}
