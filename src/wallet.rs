//! The wallet: opening, credential lifecycle, state queries, ledger and history.

use crate::counters::{Counters, ReservationFile};
use crate::db::{self, WalletSchema};
use crate::error::WalletError;
use crate::keystore::PlatformKeystore;
use crate::money;
use crate::types::*;
use crate::util::{lock, now_utc};
use mancard_protocol::{
    check_validity, verify_certificate_signature, CredentialCertificate, IssuerKey, PublicKey,
    SigningKey, Tariff, VerifyError,
};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use zeroize::Zeroizing;

/// File name of the wallet database inside the data directory.
pub const DB_FILE: &str = "wallet.sqlite3";
/// File name of the counter reservation file inside the data directory.
pub const COUNTER_FILE: &str = "counters.bin";

/// Commits between two background WAL checkpoints.
const CHECKPOINT_EVERY: u32 = 256;

pub(crate) mod settings {
    pub const CONFIRMED_BALANCE: &str = "confirmed_balance";
    pub const CONFIRMED_THROUGH_SEQ: &str = "confirmed_through_seq";
    pub const CONFIRMED_AT: &str = "confirmed_at";
    pub const SERVER_TIME_OFFSET: &str = "server_time_offset";
    pub const LOCKED: &str = "locked";
    pub const TARIFF: &str = "tariff";
}

/// The installed credential, as the tap path needs it.
pub(crate) struct Active {
    pub(crate) id: i64,
    pub(crate) cert: CredentialCertificate,
    pub(crate) cert_bytes: Vec<u8>,
    pub(crate) hash: [u8; 32],
    /// None when the key could not be unsealed or the credential is revoked.
    pub(crate) key: Option<SigningKey>,
    pub(crate) key_problem: Option<String>,
    pub(crate) spent: i64,
    pub(crate) revoked: bool,
}

impl Active {
    pub(crate) fn remaining(&self) -> i64 {
        self.cert
            .body
            .allowance
            .max_amount
            .saturating_sub(self.spent)
    }
}

/// The head of the hash-chained tap log.
pub(crate) struct LogHead {
    pub(crate) next_seq: u64,
    pub(crate) prev_hash: [u8; 32],
}

/// The last QR pass, reused until its refresh time.
pub(crate) struct LastPass {
    pub(crate) credential_id: i64,
    pub(crate) qr: BoardingPassQr,
    /// Server-corrected refresh time.
    pub(crate) refresh_at_corrected: i64,
}

/// Everything the writer connection guards. Held only for short, fsync-free sections.
pub(crate) struct WriterState {
    pub(crate) conn: Connection,
    /// An NFC session selected the ManCard application.
    pub(crate) selected: bool,
    pub(crate) log: LogHead,
    /// Next counter to hand out (may be below the certificate's first counter).
    pub(crate) next_counter: u64,
    pub(crate) active: Option<Active>,
    pub(crate) last_pass: Option<LastPass>,
    pub(crate) commits_since_checkpoint: u32,
}

pub(crate) enum Job {
    Reserve,
    Checkpoint,
}

/// The rider's wallet. `Send + Sync`: the HCE thread taps while the UI reads and a sync runs.
pub struct Wallet {
    pub(crate) data_dir: PathBuf,
    pub(crate) keystore: Arc<dyn PlatformKeystore>,
    pub(crate) config: WalletConfig,
    pub(crate) writer: Mutex<WriterState>,
    pub(crate) reader: Mutex<Connection>,
    pub(crate) counters: Arc<Counters>,
    pub(crate) locked: AtomicBool,
    pub(crate) time_offset: AtomicI64,
    pub(crate) log_entries: AtomicU64,
    /// Readers' copy of the tap key problem (the tap path never touches this lock).
    pub(crate) key_problem: Mutex<Option<String>>,
    pub(crate) tariff: Mutex<Arc<Tariff>>,
    /// Serialises credential lifecycle operations (request, install, revoke); never taken by
    /// the tap path.
    lifecycle: Mutex<()>,
    kick: Option<SyncSender<Job>>,
    maintenance: Option<JoinHandle<()>>,
    /// Used instead of the thread when background maintenance is off.
    inline_maintenance: Option<Mutex<Connection>>,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Wallet {
    fn drop(&mut self) {
        self.kick.take();
        if let Some(h) = self.maintenance.take() {
            let _ = h.join();
        }
    }
}

pub(crate) fn get_setting<T: rusqlite::types::FromSql>(
    conn: &Connection,
    key: &str,
) -> Result<Option<T>, WalletError> {
    Ok(conn
        .query_row(
            "SELECT value FROM settings WHERE key = ?1",
            params![key],
            |r| r.get(0),
        )
        .optional()?)
}

pub(crate) fn set_setting(
    conn: &Connection,
    key: &str,
    value: impl rusqlite::ToSql,
) -> Result<(), WalletError> {
    conn.execute(
        "INSERT INTO settings (key, value) VALUES (?1, ?2)
         ON CONFLICT(key) DO UPDATE SET value = excluded.value",
        params![key, value],
    )?;
    Ok(())
}

/// id, certificate, status, spent, sealed key.
type CurrentRow = (i64, Vec<u8>, String, i64, Option<Vec<u8>>);

fn to_u32(v: Option<i64>) -> Option<u32> {
    v.and_then(|x| u32::try_from(x).ok())
}

/// Loads and unseals a tap key, checking it matches `expected`.
fn unseal_tap_key(
    keystore: &dyn PlatformKeystore,
    sealed: Option<Vec<u8>>,
    expected: &PublicKey,
) -> Result<SigningKey, String> {
    let sealed = sealed.ok_or_else(|| "the sealed tap key has been deleted".to_string())?;
    let pkcs8 = Zeroizing::new(keystore.unseal(sealed).map_err(|e| e.to_string())?);
    let key = SigningKey::from_pkcs8(&pkcs8)
        .map_err(|_| "the unsealed tap key is not a valid P-256 key".to_string())?;
    if key.public_key() != *expected {
        return Err("the unsealed tap key does not match the certificate".into());
    }
    Ok(key)
}

fn maintenance_loop(rx: Receiver<Job>, counters: Arc<Counters>, conn: Connection) {
    while let Ok(job) = rx.recv() {
        match job {
            Job::Reserve => {
                if let Err(e) = counters.reserve_ahead() {
                    tracing::warn!("background counter reservation failed: {e}");
                }
            }
            Job::Checkpoint => {
                if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(())) {
                    tracing::warn!("background WAL checkpoint failed: {e}");
                }
            }
        }
    }
}

impl Wallet {
    /// Opens (creating if needed) the wallet in `data_dir`: `wallet.sqlite3` and `counters.bin`.
    /// Unseals the tap key once. A damaged or too-new database is an error and is left as is.
    pub fn open(
        data_dir: impl AsRef<Path>,
        keystore: Arc<dyn PlatformKeystore>,
        config: WalletConfig,
    ) -> Result<Self, WalletError> {
        let data_dir = data_dir.as_ref().to_path_buf();
        std::fs::create_dir_all(&data_dir)?;
        let db_path = data_dir.join(DB_FILE);
        let conn = db::open_database(&db_path, &WalletSchema)?;
        // The writer keeps the right edge of the tap log's B-trees hot even with a long
        // history (8 MiB, allocated only as pages are used).
        conn.execute_batch("PRAGMA cache_size = -8192;")?;

        let offset: i64 = get_setting(&conn, settings::SERVER_TIME_OFFSET)?.unwrap_or(0);
        let locked: bool = get_setting::<i64>(&conn, settings::LOCKED)?.unwrap_or(0) != 0;
        let tariff = match get_setting::<Vec<u8>>(&conn, settings::TARIFF)? {
            Some(b) => Tariff::decode(&b).map_err(|e| WalletError::DatabaseCorrupt {
                message: format!("stored tariff: {e}"),
            })?,
            None => Tariff::urmia_default(),
        };

        // Head of the tap log.
        let head: Option<(i64, Vec<u8>, i64)> = conn
            .query_row(
                "SELECT seq, hash, counter FROM tap_log ORDER BY seq DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let (log, last_counter) = match head {
            Some((seq, hash, counter)) => {
                let prev_hash: [u8; 32] =
                    hash.try_into().map_err(|_| WalletError::DatabaseCorrupt {
                        message: "tap log hash is not 32 bytes".into(),
                    })?;
                let next_seq = u64::try_from(seq)
                    .map_err(|_| WalletError::DatabaseCorrupt {
                        message: "negative tap log sequence".into(),
                    })?
                    .saturating_add(1);
                (
                    LogHead {
                        next_seq,
                        prev_hash,
                    },
                    Some(u64::try_from(counter).unwrap_or(0)),
                )
            }
            None => (
                LogHead {
                    next_seq: 0,
                    prev_hash: mancard_protocol::GENESIS_HASH,
                },
                None,
            ),
        };

        // The current credential (the newest installed one).
        let current: Option<CurrentRow> = conn
            .query_row(
                "SELECT c.id, c.certificate, c.status,
                        (SELECT COALESCE(SUM(amount), 0) FROM tap_log WHERE seq >= c.first_seq
                            AND credential_id = c.id),
                        k.sealed_key
                 FROM credentials c JOIN tap_keys k ON k.id = c.tap_key_id
                 WHERE c.status IN ('active', 'revoked') ORDER BY c.id DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let active = match current {
            None => None,
            Some((id, cert_bytes, status, spent, sealed)) => {
                let cert = CredentialCertificate::decode(&cert_bytes).map_err(|e| {
                    WalletError::DatabaseCorrupt {
                        message: format!("stored certificate: {e}"),
                    }
                })?;
                let revoked = status == "revoked";
                let (key, key_problem) = if revoked {
                    (None, None)
                } else {
                    match unseal_tap_key(keystore.as_ref(), sealed, &cert.body.tap_public_key) {
                        Ok(k) => (Some(k), None),
                        Err(p) => {
                            tracing::warn!("tap key unavailable: {p}");
                            (None, Some(p))
                        }
                    }
                };
                let hash = CredentialCertificate::hash_bytes(&cert_bytes);
                Some(Active {
                    id,
                    cert,
                    cert_bytes,
                    hash,
                    key,
                    key_problem,
                    spent,
                    revoked,
                })
            }
        };

        // Counters: never below the durable mark, the log, or the certificate's range.
        let used_before: i64 = conn.query_row(
            "SELECT (SELECT count(*) FROM tap_log) + (SELECT count(*) FROM credentials)",
            [],
            |r| r.get(0),
        )?;
        let file = ReservationFile::open(&data_dir.join(COUNTER_FILE), used_before == 0)?;
        let mut next = file
            .reserved_end()
            .max(last_counter.map_or(0, |c| c.saturating_add(1)));
        if let Some(a) = &active {
            next = next.max(u64::from(a.cert.body.allowance.counter_first));
        }
        let counters = Arc::new(Counters::new(file, next, config.counter_block));
        // Reserve the first block now (one fsync, before any tap can arrive) only if there is a
        // credential to tap with: every open skips what is left of the previous block.
        if active.as_ref().is_some_and(|a| a.key.is_some()) {
            counters.reserve_ahead()?;
        }

        let reader = db::open_secondary(&db_path, &WalletSchema)?;
        reader.execute_batch("PRAGMA query_only = ON;")?;
        let maint_conn = db::open_secondary(&db_path, &WalletSchema)?;
        let log_entries = log.next_seq;
        let key_problem = active.as_ref().and_then(|a| a.key_problem.clone());

        let (kick, maintenance, inline_maintenance) = if config.background_maintenance {
            let (tx, rx) = sync_channel::<Job>(8);
            let c = Arc::clone(&counters);
            let h = std::thread::Builder::new()
                .name("mancard-maintenance".into())
                .spawn(move || maintenance_loop(rx, c, maint_conn))?;
            (Some(tx), Some(h), None)
        } else {
            (None, None, Some(Mutex::new(maint_conn)))
        };

        Ok(Self {
            data_dir,
            keystore,
            config,
            writer: Mutex::new(WriterState {
                conn,
                selected: false,
                log,
                next_counter: next,
                active,
                last_pass: None,
                commits_since_checkpoint: 0,
            }),
            reader: Mutex::new(reader),
            counters,
            locked: AtomicBool::new(locked),
            time_offset: AtomicI64::new(offset),
            log_entries: AtomicU64::new(log_entries),
            key_problem: Mutex::new(key_problem),
            tariff: Mutex::new(Arc::new(tariff)),
            lifecycle: Mutex::new(()),
            kick,
            maintenance,
            inline_maintenance,
        })
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// Asks for background work without ever blocking (a full queue means work is pending).
    pub(crate) fn request(&self, job: Job) {
        match &self.kick {
            Some(tx) => match tx.try_send(job) {
                Ok(()) | Err(TrySendError::Full(_)) => {}
                Err(TrySendError::Disconnected(_)) => {
                    tracing::warn!("maintenance thread is gone");
                }
            },
            None => {
                if let Some(conn) = &self.inline_maintenance {
                    match job {
                        Job::Reserve => {
                            if let Err(e) = self.counters.reserve_ahead() {
                                tracing::warn!("counter reservation failed: {e}");
                            }
                        }
                        Job::Checkpoint => {
                            let c = lock(conn);
                            let _ = c.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                        }
                    }
                }
            }
        }
    }

    /// After a commit on the tap path: publish the counter, ask for a reservation when half
    /// the block is used, and for a checkpoint now and then.
    pub(crate) fn after_commit(&self, ws: &mut WriterState) {
        self.counters.next.store(ws.next_counter, Ordering::Release);
        self.log_entries.store(ws.log.next_seq, Ordering::Relaxed);
        if self.counters.wants_reservation(ws.next_counter) {
            self.request(Job::Reserve);
        }
        ws.commits_since_checkpoint = ws.commits_since_checkpoint.saturating_add(1);
        if ws.commits_since_checkpoint >= CHECKPOINT_EVERY {
            ws.commits_since_checkpoint = 0;
            self.request(Job::Checkpoint);
        }
    }

    /// Wallet clock corrected by the server offset.
    pub(crate) fn corrected(&self, now: i64) -> i64 {
        now.saturating_add(self.time_offset.load(Ordering::Relaxed))
    }

    fn tariff(&self) -> Arc<Tariff> {
        Arc::clone(&lock(&self.tariff))
    }

    // ----- credential lifecycle -------------------------------------------------------------

    /// Returns the request for a new certificate: creates a new tap key (sealed by the platform
    /// keystore) unless one is already waiting, in which case the same request is returned.
    pub fn prepare_credential_request(&self) -> Result<CredentialRequest, WalletError> {
        let _lifecycle = lock(&self.lifecycle);
        let binding_public_key = self.keystore.binding_public_key()?;
        let tap_public_key = match self.pending_tap_public_key()? {
            Some(pk) => pk,
            None => {
                // Generate and seal outside the writer lock: the platform keystore may take
                // tens of milliseconds and a tap must not wait for it.
                let (key, pkcs8) = SigningKey::generate()
                    .map_err(|e| WalletError::internal(format!("tap key generation: {e}")))?;
                let sealed = self.keystore.seal(pkcs8.to_vec())?;
                drop(pkcs8);
                let pk = key.public_key().as_bytes().to_vec();
                lock(&self.writer).conn.execute(
                    "INSERT INTO tap_keys (public_key, sealed_key, state, created_at)
                     VALUES (?1, ?2, 'pending', ?3)",
                    params![pk, sealed, now_utc()],
                )?;
                pk
            }
        };
        let next_counter =
            u32::try_from(self.counters.next.load(Ordering::Acquire)).unwrap_or(u32::MAX);
        Ok(CredentialRequest {
            tap_public_key,
            binding_public_key,
            next_counter,
        })
    }

    /// The pending tap key's public half, if a request is waiting for its certificate.
    pub fn pending_tap_public_key(&self) -> Result<Option<Vec<u8>>, WalletError> {
        let r = lock(&self.reader);
        Ok(r.query_row(
            "SELECT public_key FROM tap_keys WHERE state = 'pending' ORDER BY id DESC LIMIT 1",
            [],
            |row| row.get(0),
        )
        .optional()?)
    }

    /// Installs a certificate issued for the pending tap key: checks the issuer signature
    /// against `issuer_keys`, that it is for this wallet's pending key, not already expired (at
    /// `now`, server-corrected), and that its counter range is still reachable. The previous
    /// credential is superseded and its key deleted only once the new one is stored.
    /// Installing the already installed certificate again is a no-op.
    pub fn install_certificate(
        &self,
        certificate: Vec<u8>,
        issuer_keys: Vec<IssuerKeyInfo>,
        now: i64,
    ) -> Result<(), WalletError> {
        let bad = |m: String| WalletError::InvalidCertificate { message: m };
        let cert = CredentialCertificate::decode(&certificate).map_err(|e| bad(e.to_string()))?;
        let keys = issuer_keys
            .into_iter()
            .map(|k| {
                Ok(IssuerKey {
                    key_id: k.key_id,
                    public_key: PublicKey::from_bytes(&k.public_key, "issuer public key")
                        .map_err(|e| WalletError::invalid(e.to_string()))?,
                    valid_from: k.valid_from,
                    valid_until: k.valid_until,
                })
            })
            .collect::<Result<Vec<_>, WalletError>>()?;
        verify_certificate_signature(&cert, &keys).map_err(|e| bad(e.to_string()))?;
        let hash = CredentialCertificate::hash_bytes(&certificate);
        let t = self.corrected(now);
        let _lifecycle = lock(&self.lifecycle);
        if let Err(VerifyError::Expired { .. }) = check_validity(&cert, t) {
            return Err(bad(format!(
                "it expired at {} (wallet time {})",
                cert.body.valid_until, t
            )));
        }
        let pk = cert.body.tap_public_key.as_bytes().to_vec();
        let row: Option<(i64, Option<Vec<u8>>)> = lock(&self.reader)
            .query_row(
                "SELECT id, sealed_key FROM tap_keys WHERE public_key = ?1 AND state = 'pending'",
                params![pk],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((key_id, sealed)) = row else {
            let installed: bool = lock(&self.reader).query_row(
                "SELECT EXISTS (SELECT 1 FROM credentials WHERE cert_hash = ?1
                                AND status = 'active')",
                params![hash.to_vec()],
                |r| r.get(0),
            )?;
            if installed {
                return Ok(());
            }
            return Err(bad(
                "its tap key is not this wallet's pending tap key (prepare a request first)".into(),
            ));
        };
        // Unseal outside the writer lock (the platform keystore can be slow).
        let key = unseal_tap_key(self.keystore.as_ref(), sealed, &cert.body.tap_public_key)
            .map_err(|m| WalletError::KeyUnavailable { message: m })?;

        let mut ws = lock(&self.writer);
        let last = u64::from(cert.body.allowance.counter_last);
        if last < ws.next_counter {
            return Err(bad(format!(
                "its counter range ends at {last}, below this wallet's next counter {}",
                ws.next_counter
            )));
        }
        let first_seq = i64::try_from(ws.log.next_seq)
            .map_err(|_| WalletError::internal("tap log sequence out of range"))?;
        let tx = ws
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE credentials SET status = 'superseded' WHERE status = 'active'",
            [],
        )?;
        tx.execute(
            "UPDATE tap_keys SET state = 'retired', sealed_key = NULL WHERE state = 'installed'",
            [],
        )?;
        tx.execute(
            "UPDATE tap_keys SET state = 'installed' WHERE id = ?1",
            params![key_id],
        )?;
        tx.execute(
            "INSERT INTO credentials (tap_key_id, certificate, cert_hash, status, installed_at,
                                      first_seq)
             VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
            params![key_id, certificate, hash.to_vec(), t, first_seq],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;

        ws.active = Some(Active {
            id,
            cert_bytes: certificate,
            hash,
            key: Some(key),
            key_problem: None,
            spent: 0,
            revoked: false,
            cert,
        });
        if let Some(a) = &ws.active {
            ws.next_counter = ws
                .next_counter
                .max(u64::from(a.cert.body.allowance.counter_first));
        }
        ws.last_pass = None;
        self.counters.next.store(ws.next_counter, Ordering::Release);
        *lock(&self.key_problem) = None;
        drop(ws);
        self.counters.reserve_ahead()?;
        Ok(())
    }

    /// Marks the installed credential revoked (called by the sync layer when the backend says
    /// so): taps and passes are refused from now on and its tap key is deleted.
    pub fn mark_revoked(&self, reason: String, now: i64) -> Result<(), WalletError> {
        let _lifecycle = lock(&self.lifecycle);
        let mut ws = lock(&self.writer);
        let id = match &ws.active {
            Some(a) if !a.revoked => a.id,
            _ => return Err(WalletError::NoCredential),
        };
        let t = self.corrected(now);
        let tx = ws
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        tx.execute(
            "UPDATE credentials SET status = 'revoked', revoked_at = ?2, revoked_reason = ?3
             WHERE id = ?1",
            params![id, t, reason],
        )?;
        tx.execute(
            "UPDATE tap_keys SET state = 'retired', sealed_key = NULL
             WHERE id = (SELECT tap_key_id FROM credentials WHERE id = ?1)",
            params![id],
        )?;
        tx.commit()?;
        if let Some(a) = ws.active.as_mut() {
            a.revoked = true;
            a.key = None;
        }
        ws.last_pass = None;
        Ok(())
    }

    // ----- settings -------------------------------------------------------------------------

    /// Stores the offset (server − device clock, seconds) learned at sync; QR passes and the
    /// status use the corrected clock. NFC taps use the validator's time instead.
    pub fn set_server_time_offset(&self, offset_secs: i64) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        set_setting(&ws.conn, settings::SERVER_TIME_OFFSET, offset_secs)?;
        self.time_offset.store(offset_secs, Ordering::Relaxed);
        Ok(())
    }

    /// The stored server time offset, seconds.
    pub fn server_time_offset(&self) -> i64 {
        self.time_offset.load(Ordering::Relaxed)
    }

    /// Locks or unlocks the wallet: a locked wallet answers AUTHORIZE TAP with 6982 and makes
    /// no passes.
    pub fn set_locked(&self, locked: bool) -> Result<(), WalletError> {
        let ws = lock(&self.writer);
        set_setting(&ws.conn, settings::LOCKED, i64::from(locked))?;
        self.locked.store(locked, Ordering::Release);
        Ok(())
    }

    pub fn is_locked(&self) -> bool {
        self.locked.load(Ordering::Acquire)
    }

    /// Installs the tariff (encoded `mancard_protocol::Tariff`) used for pass amounts and ride
    /// estimates. The default is the Urmia demo tariff.
    pub fn set_tariff(&self, tariff: Vec<u8>) -> Result<(), WalletError> {
        let t = Tariff::decode(&tariff).map_err(|e| WalletError::invalid(e.to_string()))?;
        let ws = lock(&self.writer);
        set_setting(&ws.conn, settings::TARIFF, tariff)?;
        *lock(&self.tariff) = Arc::new(t);
        Ok(())
    }

    /// Records the balance the backend confirmed at `as_of` (backend time): it accounts for
    /// every tap-log entry up to and including `through_log_seq` (None: no entry yet).
    pub fn set_confirmed_balance(
        &self,
        balance: i64,
        through_log_seq: Option<u64>,
        as_of: i64,
    ) -> Result<(), WalletError> {
        let mut ws = lock(&self.writer);
        if let Some(s) = through_log_seq {
            if s >= ws.log.next_seq {
                return Err(WalletError::invalid(format!(
                    "log entry {s} does not exist (the log has {} entries)",
                    ws.log.next_seq
                )));
            }
        }
        let seq = through_log_seq.and_then(|s| i64::try_from(s).ok());
        let tx = ws.conn.transaction()?;
        set_setting(&tx, settings::CONFIRMED_BALANCE, balance)?;
        match seq {
            Some(s) => set_setting(&tx, settings::CONFIRMED_THROUGH_SEQ, s)?,
            None => {
                tx.execute(
                    "DELETE FROM settings WHERE key = ?1",
                    params![settings::CONFIRMED_THROUGH_SEQ],
                )?;
            }
        }
        set_setting(&tx, settings::CONFIRMED_AT, as_of)?;
        tx.commit()?;
        Ok(())
    }

    /// Adds a confirmed top-up to the history (the confirmed balance is set separately).
    pub fn record_top_up(
        &self,
        amount: i64,
        time: i64,
        reference: String,
    ) -> Result<(), WalletError> {
        if amount <= 0 {
            return Err(WalletError::invalid("a top-up amount must be positive"));
        }
        let ws = lock(&self.writer);
        let after = i64::try_from(ws.log.next_seq).unwrap_or(i64::MAX);
        ws.conn.execute(
            "INSERT INTO events (after_seq, time, kind, amount, detail)
             VALUES (?1, ?2, 'top_up', ?3, ?4)",
            params![after, time, amount, reference],
        )?;
        Ok(())
    }

    // ----- queries (reader connection; never block a tap) -----------------------------------

    /// The credential's state and the "N rides / X available offline until T" line, at `now`
    /// (device clock; corrected by the server offset).
    pub fn status(&self, now: i64) -> Result<WalletStatus, WalletError> {
        let t = self.corrected(now);
        let tariff = self.tariff();
        let locked = self.is_locked();
        let next = self.counters.next.load(Ordering::Acquire);
        let key_problem = lock(&self.key_problem).clone();
        let r = lock(&self.reader);
        let pending_request: bool = r.query_row(
            "SELECT EXISTS (SELECT 1 FROM tap_keys WHERE state = 'pending')",
            [],
            |row| row.get(0),
        )?;
        let current: Option<(Vec<u8>, String, i64, Option<String>)> = r
            .query_row(
                "SELECT c.certificate, c.status,
                        (SELECT COALESCE(SUM(amount), 0) FROM tap_log WHERE seq >= c.first_seq
                            AND credential_id = c.id),
                        c.revoked_reason
                 FROM credentials c
                 WHERE c.status IN ('active', 'revoked') ORDER BY c.id DESC LIMIT 1",
                [],
                |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?)),
            )
            .optional()?;
        drop(r);
        let Some((cert_bytes, status, spent, revoked_reason)) = current else {
            return Ok(WalletStatus {
                state: CredentialState::NoCredential,
                fare_class: None,
                valid_from: None,
                valid_until: None,
                rides_available: 0,
                amount_available: 0,
                counters_left: 0,
                replenish_due: true,
                pending_request,
                locked,
                cert_hash_hex: None,
                summary: "No ticket on this phone yet".into(),
                problem: None,
            });
        };
        let cert = CredentialCertificate::decode(&cert_bytes).map_err(|e| {
            WalletError::DatabaseCorrupt {
                message: format!("stored certificate: {e}"),
            }
        })?;
        let b = &cert.body;
        let amount_left = b.allowance.max_amount.saturating_sub(spent).max(0);
        let counters_left = u64::from(b.allowance.counter_last)
            .saturating_add(1)
            .saturating_sub(next.max(u64::from(b.allowance.counter_first)));
        let max_fare = self
            .config
            .pass_max_amount
            .unwrap_or_else(|| tariff.max_fare(b.fare_class));
        let rides_by_amount = if max_fare > 0 {
            u64::try_from(amount_left / max_fare).unwrap_or(0)
        } else {
            u64::MAX
        };
        let rides = counters_left.min(rides_by_amount);
        let replenish_due = rides <= self.config.replenish_below_rides
            || b.valid_until.saturating_sub(t) <= self.config.replenish_before_expiry_secs;
        let (state, problem) = if status == "revoked" {
            (
                CredentialState::Revoked,
                Some(format!(
                    "revoked: {}",
                    revoked_reason.unwrap_or_else(|| "no reason given".into())
                )),
            )
        } else if let Some(p) = key_problem {
            (CredentialState::KeyUnavailable, Some(p))
        } else if t < b.valid_from {
            (CredentialState::NotYetValid, Some("not valid yet".into()))
        } else if t > b.valid_until {
            (CredentialState::Expired, Some("expired".into()))
        } else if rides == 0 {
            (
                CredentialState::Exhausted,
                Some("offline rides used up".into()),
            )
        } else if replenish_due {
            (CredentialState::ReplenishDue, None)
        } else {
            (CredentialState::Active, None)
        };
        let usable = matches!(
            state,
            CredentialState::Active | CredentialState::ReplenishDue
        );
        let until = format_local_time(b.valid_until, tariff.utc_offset_secs);
        let summary = if usable {
            format!(
                "{} ride{} / {} available offline until {until}",
                rides,
                if rides == 1 { "" } else { "s" },
                money::format_amount(amount_left)
            )
        } else {
            format!("Ticket not usable: {}", problem.clone().unwrap_or_default())
        };
        Ok(WalletStatus {
            state,
            fare_class: Some(b.fare_class.name().to_string()),
            valid_from: Some(b.valid_from),
            valid_until: Some(b.valid_until),
            rides_available: if usable { rides } else { 0 },
            amount_available: if usable { amount_left } else { 0 },
            counters_left,
            replenish_due,
            pending_request,
            locked,
            cert_hash_hex: Some(hex::encode(CredentialCertificate::hash_bytes(&cert_bytes))),
            summary,
            problem,
        })
    }

    /// Confirmed, pending and available balances.
    pub fn ledger(&self) -> Result<LedgerView, WalletError> {
        let r = lock(&self.reader);
        let confirmed_balance: i64 = get_setting(&r, settings::CONFIRMED_BALANCE)?.unwrap_or(0);
        let confirmed_at: Option<i64> = get_setting(&r, settings::CONFIRMED_AT)?;
        let through: i64 = get_setting(&r, settings::CONFIRMED_THROUGH_SEQ)?.unwrap_or(-1);
        let (pending_taps, pending_amount): (i64, i64) = r.query_row(
            "SELECT count(*), COALESCE(SUM(amount), 0) FROM tap_log WHERE seq > ?1",
            params![through],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )?;
        let remaining: Option<i64> = r
            .query_row(
                "SELECT c.certificate,
                        (SELECT COALESCE(SUM(amount), 0) FROM tap_log WHERE seq >= c.first_seq
                            AND credential_id = c.id)
                 FROM credentials c WHERE c.status = 'active' ORDER BY c.id DESC LIMIT 1",
                [],
                |row| {
                    let b: Vec<u8> = row.get(0)?;
                    let spent: i64 = row.get(1)?;
                    Ok(CredentialCertificate::decode(&b)
                        .map(|c| c.body.allowance.max_amount.saturating_sub(spent).max(0))
                        .unwrap_or(0))
                },
            )
            .optional()?;
        Ok(LedgerView {
            confirmed_balance,
            confirmed_at,
            pending_taps: u64::try_from(pending_taps).unwrap_or(0),
            pending_amount,
            available_balance: confirmed_balance.saturating_sub(pending_amount),
            offline_allowance_remaining: remaining.unwrap_or(0),
        })
    }

    /// History, newest first: taps, passes, refusals and top-ups. `cursor` is the
    /// `next_cursor` of the previous page (or any item's `id`: the page then starts just after
    /// that item); None for the newest page. `limit` is clamped to 1–500.
    ///
    /// Taps and passes are read from the tap log itself (so the tap path writes one row);
    /// refusals and top-ups from the `events` table, placed by the log position they followed.
    pub fn history(&self, cursor: Option<String>, limit: u32) -> Result<HistoryPage, WalletError> {
        let limit = i64::from(limit.clamp(1, 500));
        let pos = match cursor.as_deref() {
            None => Position::TOP,
            Some(c) => Position::parse(c)
                .ok_or_else(|| WalletError::invalid(format!("not a history cursor: {c:?}")))?,
        };
        // Exact bounds for each stream: log entry s sits at (s + 1, 0, s); an event at
        // (after_seq, 1, id).
        let log_below = if pos.minor == 0 {
            pos.major - 1
        } else {
            pos.major
        };
        let ev_id_below = if pos.minor == 1 { pos.id } else { i64::MIN };
        let r = lock(&self.reader);
        let mut st = r.prepare_cached(
            "SELECT major, minor, id, time, kind, amount, counter, line_id, validator_id,
                    status_word, detail
             FROM (
               SELECT * FROM (
                 SELECT t.seq + 1 AS major, 0 AS minor, t.seq AS id, t.time,
                        CASE t.kind WHEN 1 THEN 'tap' ELSE 'pass' END AS kind,
                        CASE WHEN s.status IN ('settled', 'duplicate') AND s.fare IS NOT NULL
                               THEN s.fare
                             WHEN s.status IN ('rejected', 'fraud') THEN 0
                             ELSE t.amount END AS amount,
                        t.counter, t.line_id, t.validator_id,
                        CASE t.kind WHEN 1 THEN 36864 ELSE NULL END AS status_word,
                        CASE WHEN r.seq IS NULL THEN '' ELSE 'recovered from the backend; ' END
                        || CASE
                             WHEN s.status IS NULL THEN ''
                             WHEN s.status IN ('settled', 'duplicate') AND s.fare IS NOT NULL
                                  AND s.fare <> t.amount
                               THEN 'settled at ' || s.fare || ' rials (authorized '
                                    || t.amount || ')'
                                    || CASE WHEN s.detail = 're-rated' THEN ', re-rated'
                                            ELSE '' END
                             WHEN s.status IN ('settled', 'duplicate')
                               THEN 'settled' || CASE WHEN s.detail = 're-rated'
                                                      THEN ', re-rated' ELSE '' END
                             WHEN s.status = 'rejected'
                               THEN 'rejected: ' || COALESCE(s.reason, s.detail, 'no reason')
                             ELSE 'flagged: ' || COALESCE(s.reason, s.detail, 'no reason')
                           END AS detail
                 FROM tap_log t LEFT JOIN tap_settlements s ON s.seq = t.seq
                      LEFT JOIN recovered_taps r ON r.seq = t.seq
                 WHERE t.seq < ?1 ORDER BY t.seq DESC LIMIT ?5)
               UNION ALL
               SELECT * FROM (
                 SELECT after_seq AS major, 1 AS minor, id, time, kind, amount, NULL AS counter,
                        line_id, validator_id, status_word, detail
                 FROM events WHERE (after_seq, id) < (?2, ?3)
                 ORDER BY after_seq DESC, id DESC LIMIT ?5)
             )
             WHERE (major, minor, id) < (?2, ?4, ?3)
             ORDER BY major DESC, minor DESC, id DESC LIMIT ?5",
        )?;
        let rows = st.query_map(
            params![log_below, pos.major, ev_id_below, pos.minor, limit + 1],
            |row| {
                Ok((
                    Position {
                        major: row.get(0)?,
                        minor: row.get(1)?,
                        id: row.get(2)?,
                    },
                    row.get::<_, i64>(3)?,
                    row.get::<_, String>(4)?,
                    row.get::<_, i64>(5)?,
                    row.get::<_, Option<i64>>(6)?,
                    row.get::<_, Option<i64>>(7)?,
                    row.get::<_, Option<i64>>(8)?,
                    row.get::<_, Option<i64>>(9)?,
                    row.get::<_, String>(10)?,
                ))
            },
        )?;
        let mut items = Vec::new();
        let mut more = false;
        for row in rows {
            let (p, time, kind, amount, counter, line, validator, sw, detail) = row?;
            if items.len() as i64 == limit {
                more = true;
                break;
            }
            let kind = HistoryKind::parse(&kind).ok_or_else(|| WalletError::DatabaseCorrupt {
                message: format!("unknown history kind {kind:?}"),
            })?;
            items.push(HistoryItem {
                id: p.to_string(),
                time,
                kind,
                amount,
                log_seq: if p.minor == 0 {
                    u64::try_from(p.id).ok()
                } else {
                    None
                },
                counter: to_u32(counter),
                line_id: to_u32(line),
                validator_id: to_u32(validator),
                status_word: sw.and_then(|s| u16::try_from(s).ok()),
                detail: detail.trim_end_matches("; ").to_string(),
            });
        }
        let next_cursor = if more {
            items.last().map(|i| i.id.clone())
        } else {
            None
        };
        Ok(HistoryPage { items, next_cursor })
    }

    /// Encoded `WalletLogEntry`s from `from_seq` on (at most `limit`), for upload at sync.
    pub fn tap_log(&self, from_seq: u64, limit: u32) -> Result<Vec<Vec<u8>>, WalletError> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let r = lock(&self.reader);
        let mut st =
            r.prepare_cached("SELECT entry FROM tap_log WHERE seq >= ?1 ORDER BY seq LIMIT ?2")?;
        let rows = st.query_map(params![from, i64::from(limit)], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<Vec<u8>>, _>>()?)
    }

    /// Decodes the whole tap log and checks its hash chain and counters; returns its length.
    pub fn verify_tap_log(&self) -> Result<u64, WalletError> {
        let r = lock(&self.reader);
        let mut st = r.prepare("SELECT seq, counter, entry, hash FROM tap_log ORDER BY seq")?;
        let mut rows = st.query([])?;
        let mut prev = mancard_protocol::GENESIS_HASH;
        let mut next_seq = 0u64;
        let mut last = None;
        while let Some(row) = rows.next()? {
            let counter: i64 = row.get(1)?;
            let bytes: Vec<u8> = row.get(2)?;
            let hash: Vec<u8> = row.get(3)?;
            let e = mancard_protocol::WalletLogEntry::decode(&bytes).map_err(|e| {
                WalletError::DatabaseCorrupt {
                    message: format!("tap log entry {next_seq}: {e}"),
                }
            })?;
            if i64::from(e.counter()) != counter || e.hash().as_slice() != hash.as_slice() {
                return Err(WalletError::DatabaseCorrupt {
                    message: format!("tap log entry {next_seq} does not match its index"),
                });
            }
            prev = mancard_protocol::verify_chain(std::slice::from_ref(&e), prev, next_seq, last)
                .map_err(|e| WalletError::DatabaseCorrupt {
                message: format!("tap log: {e}"),
            })?;
            last = Some(e.counter());
            next_seq = next_seq.saturating_add(1);
        }
        Ok(next_seq)
    }

    /// The binding key's public half (from the platform keystore).
    pub fn binding_public_key(&self) -> Result<Vec<u8>, WalletError> {
        Ok(self.keystore.binding_public_key()?)
    }

    /// Diagnostic counters (fsyncs of the reservation file, counters, log size).
    pub fn stats(&self) -> WalletStats {
        WalletStats {
            counter_fsyncs: self.counters.fsyncs.load(Ordering::Relaxed),
            next_counter: self.counters.next.load(Ordering::Acquire),
            reserved_until: self.counters.durable_end.load(Ordering::Acquire),
            log_entries: self.log_entries.load(Ordering::Relaxed),
            reservation_stalls: self.counters.stalls.load(Ordering::Relaxed),
            reservation_block: self.counters.block.load(Ordering::Relaxed),
        }
    }
}

/// Where a history item sits: (major, minor, id), ordered; printed as "major.minor.id".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Position {
    major: i64,
    minor: i64,
    id: i64,
}

impl Position {
    const TOP: Self = Self {
        major: i64::MAX,
        minor: 1,
        id: i64::MAX,
    };

    fn parse(s: &str) -> Option<Self> {
        let mut it = s.split('.');
        let p = Self {
            major: it.next()?.parse().ok()?,
            minor: it.next()?.parse().ok()?,
            id: it.next()?.parse().ok()?,
        };
        (it.next().is_none() && (p.minor == 0 || p.minor == 1) && p.major >= 0).then_some(p)
    }
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.id)
    }
}

/// "2026-11-30 12:00 (+03:30)" in the city's local time.
pub fn format_local_time(utc: i64, offset_secs: i32) -> String {
    let offset = chrono::FixedOffset::east_opt(offset_secs).unwrap_or(chrono::Utc.fix());
    match chrono::DateTime::from_timestamp(utc, 0) {
        Some(t) => t
            .with_timezone(&offset)
            .format("%Y-%m-%d %H:%M (%:z)")
            .to_string(),
        None => format!("{utc} (UTC seconds)"),
    }
}

use chrono::Offset as _;
