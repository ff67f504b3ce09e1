//! The wallet: opening, its state, settings, the tap log export and diagnostics. The credential
//! lifecycle is in `lifecycle.rs`, the read-only views (status, ledger, history) in `views.rs`,
//! the tap path in `hce.rs`, passes in `pass.rs` and the online layer's storage in
//! `sync_store.rs`; all of them reach the database only through `crate::store`.

use crate::counters::{Counters, ReservationFile};
use crate::error::WalletError;
use crate::keystore::PlatformKeystore;
use crate::maintenance::{park_counter, run_job, start_maintenance, Job};
use crate::readers::{NfcSession, RateWindow, ReaderCache};
use crate::store::{self, settings, Reader, Spare, Writer};
use crate::types::{BoardingPassQr, WalletConfig, WalletStats};
use crate::util::lock;
use mancard_l10n::Lang;
use mancard_protocol::{
    chain_start, ChainHead, CredentialCertificate, IssuerKey, PublicKey, SigningKey, Tariff,
    ValidatorConfig,
};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;

use zeroize::Zeroizing;

/// File name of the wallet database inside the data directory.
pub const DB_FILE: &str = "wallet.sqlite3";
/// File name of the counter reservation file inside the data directory.
pub const COUNTER_FILE: &str = "counters.bin";

/// Commits between two background WAL checkpoints.
const CHECKPOINT_EVERY: u32 = 256;

/// The installed credential, as the tap path needs it.
pub(crate) struct Active {
    pub(crate) id: i64,
    pub(crate) cert: CredentialCertificate,
    pub(crate) cert_bytes: Vec<u8>,
    /// The certificate id (`cert.id()`, a hash of its body).
    pub(crate) hash: [u8; 32],
    /// None when the key could not be unsealed or the credential is revoked.
    pub(crate) key: Option<SigningKey>,
    pub(crate) key_problem: Option<String>,
    pub(crate) spent: i64,
    pub(crate) revoked: bool,
    /// Why it was revoked (the backend's code as stored, e.g. `replaced_by_new_device`).
    pub(crate) revoked_reason: Option<String>,
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

/// The head of the signed tap chain: the next log position and the last entry's certificate
/// id and proof id (its link).
pub(crate) struct LogHead {
    pub(crate) next_seq: u64,
    pub(crate) last: Option<([u8; 32], [u8; 32])>,
}

impl LogHead {
    /// The next sequence number as SQLite stores it.
    pub(crate) fn next_seq_db(&self) -> i64 {
        i64::try_from(self.next_seq).unwrap_or(i64::MAX)
    }

    /// The `prev` the next proof under `cert_id` signs: the id of the last proof if it was
    /// made under the same certificate, else the certificate's chain start.
    pub(crate) fn expected_prev(&self, cert_id: &[u8; 32]) -> [u8; 32] {
        match self.last {
            Some((c, link)) if c == *cert_id => link,
            _ => chain_start(cert_id),
        }
    }
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
    pub(crate) db: Writer,
    /// The NFC session, when a reader selected the ManCard application.
    pub(crate) session: Option<NfcSession>,
    pub(crate) log: LogHead,
    /// Next counter to hand out (may be below the certificate's first counter).
    pub(crate) next_counter: u64,
    pub(crate) active: Option<Active>,
    pub(crate) last_pass: Option<LastPass>,
    pub(crate) commits_since_checkpoint: u32,
    /// The installed config bundle (issuer keys, validator deny list, time rules, tariff).
    pub(crate) bundle: Option<ValidatorConfig>,
    /// The issuer keys given with the last installed certificate.
    pub(crate) issuer_keys: Vec<IssuerKey>,
    /// Validator certificates verified by the tap path.
    pub(crate) readers: ReaderCache,
    /// Recent signed authorizations (the rate limit).
    pub(crate) recent_taps: RateWindow,
}

/// The rider's wallet. `Send + Sync`: the HCE thread taps while the UI reads and a sync runs.
pub struct Wallet {
    data_dir: PathBuf,
    keystore: Arc<dyn PlatformKeystore>,
    config: WalletConfig,
    writer: Arc<Mutex<WriterState>>,
    reader: Mutex<Reader>,
    counters: Arc<Counters>,
    locked: AtomicBool,
    time_offset: AtomicI64,
    log_entries: AtomicU64,
    /// Readers' copy of the tap key problem (the tap path never touches this lock).
    key_problem: Mutex<Option<String>>,
    /// The language of the rider-facing text (status, history); `WalletConfig::language` at
    /// open, then [`Wallet::set_language`].
    language: Mutex<Lang>,
    tariff: Mutex<Arc<Tariff>>,
    /// Serialises credential lifecycle operations (request, install, revoke); never taken by
    /// the tap path.
    lifecycle: Mutex<()>,
    kick: Option<SyncSender<Job>>,
    maintenance: Option<JoinHandle<()>>,
    /// Used instead of the thread when background maintenance is off.
    inline_maintenance: Option<Mutex<Spare>>,
    /// Set by [`Wallet::close`]: the drop has nothing left to do.
    closed: AtomicBool,
    /// The data directory's lock (one instance per directory), released after the close.
    _dir_lock: std::fs::File,
}

impl std::fmt::Debug for Wallet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Wallet")
            .field("data_dir", &self.data_dir)
            .finish_non_exhaustive()
    }
}

impl Drop for Wallet {
    /// A clean close: the maintenance thread finishes its queue, then the next counter is
    /// parked so that the next open resumes inside the reserved block.
    fn drop(&mut self) {
        self.kick.take();
        if let Some(h) = self.maintenance.take() {
            let _ = h.join();
        }
        if !self.closed.load(Ordering::Acquire) {
            if let Err(e) = park_counter(&self.writer, &self.counters, false) {
                tracing::warn!("could not record the next counter at close: {e}");
            }
        }
    }
}

/// Loads and unseals a tap key, checking it matches `expected`.
pub(crate) fn unseal_tap_key(
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

/// The tap log's head as stored: the next position, the last entry's certificate id and
/// proof id, and the last counter used.
fn load_log_head(db: &Writer) -> Result<(LogHead, Option<u64>), WalletError> {
    let Some(head) = db.read().log_head()? else {
        return Ok((
            LogHead {
                next_seq: 0,
                last: None,
            },
            None,
        ));
    };
    let corrupt = |what: &str| WalletError::DatabaseCorrupt {
        message: format!("tap log {what} is not 32 bytes"),
    };
    let link: [u8; 32] = head.hash.try_into().map_err(|_| corrupt("hash"))?;
    let cert_id: [u8; 32] = head
        .cert_hash
        .try_into()
        .map_err(|_| corrupt("certificate id"))?;
    let next_seq = u64::try_from(head.seq)
        .map_err(|_| WalletError::DatabaseCorrupt {
            message: "negative tap log sequence".into(),
        })?
        .saturating_add(1);
    let last_counter = Some(u64::try_from(head.counter).unwrap_or(0));
    Ok((
        LogHead {
            next_seq,
            last: Some((cert_id, link)),
        },
        last_counter,
    ))
}

/// The current credential (the newest installed one), its tap key unsealed once.
fn load_active(
    db: &Writer,
    keystore: &dyn PlatformKeystore,
) -> Result<Option<Active>, WalletError> {
    let Some(c) = db.read().current_credential()? else {
        return Ok(None);
    };
    let cert = CredentialCertificate::decode(&c.certificate).map_err(|e| {
        WalletError::DatabaseCorrupt {
            message: format!("stored certificate: {e}"),
        }
    })?;
    let revoked = c.is_revoked();
    let (key, key_problem) = if revoked {
        (None, None)
    } else {
        match unseal_tap_key(keystore, c.sealed_key, &cert.body.tap_public_key) {
            Ok(k) => (Some(k), None),
            Err(p) => {
                tracing::warn!("tap key unavailable: {p}");
                (None, Some(p))
            }
        }
    };
    let hash = cert.id();
    Ok(Some(Active {
        id: c.id,
        cert,
        cert_bytes: c.certificate,
        hash,
        key,
        key_problem,
        spent: c.spent,
        revoked,
        revoked_reason: if revoked { c.revoked_reason } else { None },
    }))
}

/// The settings the wallet keeps in memory: (server time offset, locked, tariff).
fn load_settings(db: &Writer) -> Result<(i64, bool, Tariff), WalletError> {
    let r = db.read();
    let offset: i64 = r.setting(settings::SERVER_TIME_OFFSET)?.unwrap_or(0);
    let locked = r.setting::<i64>(settings::LOCKED)?.unwrap_or(0) != 0;
    let tariff = match r.setting::<Vec<u8>>(settings::TARIFF)? {
        Some(b) => Tariff::decode(&b).map_err(|e| WalletError::DatabaseCorrupt {
            message: format!("stored tariff: {e}"),
        })?,
        None => Tariff::urmia_default(),
    };
    Ok((offset, locked, tariff))
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
        let dir_lock = crate::files::prepare_data_dir_for(&data_dir, keystore.as_ref())?;
        let db_path = data_dir.join(DB_FILE);
        let db = Writer::open(&db_path)?;
        let (offset, locked, tariff) = load_settings(&db)?;
        let (bundle, issuer_keys) = crate::bundle::load(&db)?;
        let (log, last_counter) = load_log_head(&db)?;
        let active = load_active(&db, keystore.as_ref())?;

        // Counters: never below the durable mark, the log, or the certificate's range.
        let used_before = db.read().rows_ever_used()?;
        let file = ReservationFile::open(&data_dir.join(COUNTER_FILE), used_before == 0)?;
        let mut next = file
            .reserved_end()
            .max(last_counter.map_or(0, |c| c.saturating_add(1)));
        if let Some(a) = &active {
            next = next.max(u64::from(a.cert.body.allowance.counter_first));
        }
        // Nothing is reserved here: the first reader that selects ManCard starts a reservation
        // in the background (an open that never taps writes nothing, and loses nothing).
        let counters = Arc::new(Counters::new(file, next, config.counter_block));

        let reader = Reader::open(&db_path)?;
        let spare = Spare::open(&db_path)?;
        let log_entries = log.next_seq;
        let key_problem = active.as_ref().and_then(|a| a.key_problem.clone());
        let writer = Arc::new(Mutex::new(WriterState {
            db,
            session: None,
            log,
            next_counter: next,
            active,
            last_pass: None,
            commits_since_checkpoint: 0,
            bundle,
            issuer_keys,
            readers: ReaderCache::default(),
            recent_taps: RateWindow::default(),
        }));
        let (kick, maintenance, inline_maintenance) =
            start_maintenance(&config, &writer, &counters, spare)?;

        let language = config.language;
        Ok(Self {
            data_dir,
            keystore,
            config,
            writer,
            reader: Mutex::new(reader),
            counters,
            locked: AtomicBool::new(locked),
            time_offset: AtomicI64::new(offset),
            log_entries: AtomicU64::new(log_entries),
            key_problem: Mutex::new(key_problem),
            language: Mutex::new(language),
            tariff: Mutex::new(Arc::new(tariff)),
            lifecycle: Mutex::new(()),
            kick,
            maintenance,
            inline_maintenance,
            closed: AtomicBool::new(false),
            _dir_lock: dir_lock,
        })
    }

    /// Closes the wallet cleanly and says whether that worked: the background work finishes
    /// and the next counter is recorded durably, so the next open resumes where this one
    /// stopped (dropping the wallet does the same, logging a failure instead).
    pub fn close(mut self) -> Result<(), WalletError> {
        self.kick.take();
        if let Some(h) = self.maintenance.take() {
            let _ = h.join();
        }
        self.closed.store(true, Ordering::Release);
        park_counter(&self.writer, &self.counters, false).map(|_| ())
    }

    /// Records the next counter durably now (what a clean close and a quiet period after the
    /// field drops do): an app about to be stopped calls it so that a kill loses no counter.
    /// The next tap's reservation runs when a reader selects ManCard. Returns whether it wrote
    /// (false: nothing was reserved beyond the next counter).
    pub fn park_counter(&self) -> Result<bool, WalletError> {
        park_counter(&self.writer, &self.counters, false)
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    // ----- the wallet's parts, for the files that implement its concerns ------------------

    /// The writer state (the tap path's lock: hold it briefly, never across I/O).
    pub(crate) fn writer(&self) -> MutexGuard<'_, WriterState> {
        lock(&self.writer)
    }

    /// The reader connection (never blocks a tap).
    pub(crate) fn reader(&self) -> MutexGuard<'_, Reader> {
        lock(&self.reader)
    }

    /// The lifecycle lock (credential request, install, revoke).
    pub(crate) fn lifecycle(&self) -> MutexGuard<'_, ()> {
        lock(&self.lifecycle)
    }

    pub(crate) fn counters(&self) -> &Counters {
        &self.counters
    }

    pub(crate) fn keystore(&self) -> &dyn PlatformKeystore {
        self.keystore.as_ref()
    }

    /// The language of the status line and the history's sentences.
    pub fn language(&self) -> Lang {
        *self.language.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Speaks `lang` from now on (the app's language setting, or the phone's locale through
    /// [`Lang::negotiate`]). The codes in every record stay the same.
    pub fn set_language(&self, lang: Lang) {
        *self.language.lock().unwrap_or_else(|e| e.into_inner()) = lang;
    }

    pub(crate) fn config(&self) -> &WalletConfig {
        &self.config
    }

    /// The readers' copy of the tap key problem.
    pub(crate) fn key_problem(&self) -> Option<String> {
        lock(&self.key_problem).clone()
    }

    pub(crate) fn set_key_problem(&self, problem: Option<String>) {
        *lock(&self.key_problem) = problem;
    }

    /// Publishes the log length for [`Wallet::stats`].
    pub(crate) fn publish_log_len(&self, len: u64) {
        self.log_entries.store(len, Ordering::Relaxed);
    }

    /// Asks for background work without ever blocking (a full queue means work is pending).
    /// Without the maintenance thread the job runs here, except a quiet park, which has no
    /// timer to wait on: it runs only with `park_after_quiet_ms` 0 (else the close parks).
    pub(crate) fn request(&self, job: Job) {
        match &self.kick {
            Some(tx) => {
                let reserve = matches!(job, Job::Reserve(_));
                if reserve {
                    self.counters.mark_requested();
                }
                match tx.try_send(job) {
                    Ok(()) => {}
                    Err(TrySendError::Full(job)) => {
                        // a quiet timer that never started must not stay "armed"
                        if matches!(job, Job::Quiet) {
                            self.counters.quiet_armed.store(false, Ordering::Release);
                        }
                    }
                    Err(TrySendError::Disconnected(_)) => {
                        if reserve {
                            self.counters.request_done();
                        }
                        tracing::warn!("maintenance thread is gone");
                    }
                }
            }
            None => {
                if matches!(job, Job::Quiet) && self.config.park_after_quiet_ms > 0 {
                    return;
                }
                if let Some(spare) = &self.inline_maintenance {
                    run_job(job, &self.writer, &self.counters, &lock(spare), false);
                }
            }
        }
    }

    /// Asks for the counter to be parked after the quiet period: one request starts the timer,
    /// later activity only moves the time it looks at (no thread is woken per tap).
    pub(crate) fn request_quiet(&self) {
        if self.kick.is_some() && self.counters.quiet_armed.swap(true, Ordering::AcqRel) {
            return;
        }
        self.request(Job::Quiet);
    }

    /// Asks for counters to be reserved ahead (in the background), unless a park comes first.
    pub(crate) fn request_reservation(&self) {
        self.request(Job::Reserve(self.counters.epoch()));
    }

    /// After a commit on the tap path: publish the counter, ask for a reservation when half
    /// the block is used, and for a checkpoint now and then.
    pub(crate) fn after_commit(&self, ws: &mut WriterState) {
        self.counters.next.store(ws.next_counter, Ordering::Release);
        self.publish_log_len(ws.log.next_seq);
        if self.counters.wants_reservation(ws.next_counter) {
            self.request_reservation();
        }
        self.count_write(ws);
    }

    /// Every write on the writer connection counts toward the next background checkpoint: a
    /// flood of refusals (a rogue reader needs no authentication to be refused) must not grow
    /// the write-ahead log without bound.
    pub(crate) fn count_write(&self, ws: &mut WriterState) {
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

    pub(crate) fn tariff(&self) -> Arc<Tariff> {
        Arc::clone(&lock(&self.tariff))
    }

    /// Replaces the in-memory tariff (the caller stored it).
    pub(crate) fn replace_tariff(&self, tariff: Tariff) {
        *lock(&self.tariff) = Arc::new(tariff);
    }

    // ----- settings -------------------------------------------------------------------------

    /// Stores the offset (server − device clock, seconds) learned at sync; QR passes and the
    /// status use the corrected clock. NFC taps use the validator's time instead.
    pub fn set_server_time_offset(&self, offset_secs: i64) -> Result<(), WalletError> {
        let mut ws = self.writer();
        ws.db
            .write(|w| w.set_setting(settings::SERVER_TIME_OFFSET, offset_secs))?;
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
        let mut ws = self.writer();
        ws.db
            .write(|w| w.set_setting(settings::LOCKED, i64::from(locked)))?;
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
        let mut ws = self.writer();
        ws.db.write(|w| w.set_setting(settings::TARIFF, &tariff))?;
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
        let mut ws = self.writer();
        if let Some(s) = through_log_seq {
            if s >= ws.log.next_seq {
                return Err(WalletError::invalid(format!(
                    "log entry {s} does not exist (the log has {} entries)",
                    ws.log.next_seq
                )));
            }
        }
        let seq = through_log_seq.and_then(|s| i64::try_from(s).ok());
        ws.db.write(|w| w.set_confirmed(balance, seq, as_of))
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
        let mut ws = self.writer();
        let after = ws.log.next_seq_db();
        ws.db.write(|w| {
            w.insert_event(&store::EventRow {
                after_seq: after,
                time,
                kind: "top_up",
                amount,
                line_id: None,
                validator_id: None,
                status_word: None,
                detail: &reference,
            })
        })
    }

    // ----- the tap log and diagnostics ------------------------------------------------------

    /// Encoded `WalletLogEntry`s from `from_seq` on (at most `limit`), for upload at sync.
    pub fn tap_log(&self, from_seq: u64, limit: u32) -> Result<Vec<Vec<u8>>, WalletError> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        self.reader().read().entries_from(from, limit)
    }

    /// Decodes the whole tap log and checks its signed chain (each proof's `prev` is the link
    /// before it under the same certificate) and counters; returns its length.
    pub fn verify_tap_log(&self) -> Result<u64, WalletError> {
        let mut head = ChainHead::default();
        self.reader().read().each_entry(|row| {
            let n = head.next_seq;
            let e = mancard_protocol::WalletLogEntry::decode(&row.entry).map_err(|e| {
                WalletError::DatabaseCorrupt {
                    message: format!("tap log entry {n}: {e}"),
                }
            })?;
            if i64::from(e.counter()) != row.counter || e.hash().as_slice() != row.hash.as_slice() {
                return Err(WalletError::DatabaseCorrupt {
                    message: format!("tap log entry {n} does not match its index"),
                });
            }
            head = mancard_protocol::verify_chain(std::slice::from_ref(&e), head).map_err(|e| {
                WalletError::DatabaseCorrupt {
                    message: format!("tap log: {e}"),
                }
            })?;
            Ok(())
        })?;
        Ok(head.next_seq)
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
            counter_parks: self.counters.parks.load(Ordering::Relaxed),
            counter_mark: self.counters.mark(),
        }
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
