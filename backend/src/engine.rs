//! The issuer's state: the store, the issuer keys, a cache of issued certificates, the
//! configuration and the (sandbox-adjustable) clock. Its operations live in one module per
//! feature under `features/`, each an `impl Engine` block: accounts, issuance, top-up, the
//! sandbox gateway, settlement, wallet sync, validators, keys and audit.
//!
//! Every operation is synchronous and may block on the database: the HTTP layer calls them on
//! blocking threads (`spawn_blocking`), benchmarks and tools call them directly. Errors are
//! [`crate::Error`]s, which know nothing of HTTP.

use crate::config::BackendConfig;
use crate::error::{Error, Result, StoreError};
use crate::ids::CertHash;
use crate::keys::Keyring;
use crate::providers::Providers;
use crate::settle::CertInfo;
use crate::store::Store;
use mancard_protocol::PublicKey;
use ring::rand::SecureRandom;
use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

/// The backend's state and logic.
pub struct Engine {
    pub(crate) store: Store,
    keys: RwLock<Keyring>,
    pub(crate) certs: RwLock<HashMap<CertHash, Arc<CertInfo>>>,
    config: BackendConfig,
    base_url: String,
    clock_offset: AtomicI64,
    providers: Providers,
    pub(crate) sync_stats: crate::features::sync::SyncStats,
    /// The config bundle last built here ([`Engine::bundle_in`]).
    pub(crate) bundle_memo: Arc<crate::features::validators::BundleMemo>,
    /// This instance's name as a lease holder (random per open).
    instance_id: String,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("db", &self.config.db_path)
            .field("base_url", &self.base_url)
            .finish_non_exhaustive()
    }
}

/// `N` bytes from the system's random number generator.
pub(crate) fn random<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    ring::rand::SystemRandom::new()
        .fill(&mut b)
        .map_err(|_| Error::internal("system random number generator failed"))?;
    Ok(b)
}

/// A fixed-length hex field of a request.
pub(crate) fn hex_array<const N: usize>(s: &str, field: &'static str) -> Result<[u8; N]> {
    let v = hex::decode(s.trim()).map_err(|_| Error::InvalidHex { field })?;
    v.try_into()
        .map_err(|_| Error::InvalidLength { field, len: N })
}

/// A public-key hex field of a request.
pub(crate) fn public_key(s: &str, field: &'static str) -> Result<PublicKey> {
    let v = hex::decode(s.trim()).map_err(|_| Error::InvalidHex { field })?;
    PublicKey::from_bytes(&v, field).map_err(|e| Error::InvalidKey(e.to_string()))
}

impl Engine {
    /// Opens the database and key file. `base_url` prefixes payment and callback links.
    pub fn open(config: BackendConfig, base_url: String) -> Result<Self, StoreError> {
        let store = match &config.database_url {
            Some(url) => Store::open_url_with(&url.0, config.db_pool_max, config.db_money_writes)?,
            None => Store::open(&config.db_path)?,
        };
        let now = chrono::Utc::now().timestamp();
        let key_file = match &config.keys_path {
            Some(p) => p.clone(),
            None => crate::keys::key_file_path(&config.db_path),
        };
        let keys = Keyring::load_or_create(&key_file, now)?;
        let providers = Providers::build(&config.providers).map_err(StoreError::Providers)?;
        Ok(Self {
            store,
            keys: RwLock::new(keys),
            certs: RwLock::new(HashMap::new()),
            config,
            base_url,
            clock_offset: AtomicI64::new(0),
            providers,
            sync_stats: crate::features::sync::SyncStats::default(),
            bundle_memo: Arc::default(),
            instance_id: crate::features::jobs::instance_id(),
        })
    }

    /// The SMS sender and the payment gateway.
    pub fn providers(&self) -> &Providers {
        &self.providers
    }

    pub fn config(&self) -> &BackendConfig {
        &self.config
    }

    pub fn base_url(&self) -> &str {
        &self.base_url
    }

    /// Server time, UTC seconds.
    pub fn now(&self) -> i64 {
        chrono::Utc::now()
            .timestamp()
            .saturating_add(self.clock_offset.load(Ordering::Relaxed))
    }

    /// Sandbox only: moves the server clock forward (expiry in tests and demos).
    pub fn advance_clock(&self, secs: i64) -> Result<()> {
        if !self.config.sandbox {
            return Err(Error::SandboxOnly);
        }
        self.clock_offset.fetch_add(secs, Ordering::Relaxed);
        Ok(())
    }

    /// Sandbox only: moves the server clock forward so that it reads at least `t`, never back
    /// (reports reach the backend after the rides they report, in tests and demos).
    pub fn advance_clock_to(&self, t: i64) -> Result<()> {
        let now = self.now();
        if t > now {
            self.advance_clock(t - now)?;
        }
        Ok(())
    }

    /// This instance's name as a lease holder.
    pub fn instance_id(&self) -> &str {
        &self.instance_id
    }

    /// Checkpoints the database (at shutdown).
    pub fn close(&self) -> Result<(), StoreError> {
        self.store.checkpoint()
    }

    /// Direct access to the store (tools and tests).
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The issuer keys, for reading (a poisoned lock is recovered: the keyring is only
    /// changed by whole-file rewrites).
    pub(crate) fn keyring(&self) -> RwLockReadGuard<'_, Keyring> {
        self.keys.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn keyring_mut(&self) -> RwLockWriteGuard<'_, Keyring> {
        self.keys.write().unwrap_or_else(|p| p.into_inner())
    }

    /// The time rules of the config bundle.
    pub fn time_rules(&self) -> mancard_protocol::TimeRules {
        self.config.policy.time_rules
    }

    /// The tariff's encoding in hex, as responses carry it.
    pub(crate) fn tariff_hex(&self) -> String {
        hex::encode(self.config.tariff.encode())
    }
}
