//! The validator device: engine + journal + key + its validator certificate + clock, the QR
//! flow, the journal commits and uploads. The NFC tap is in `nfc.rs`.

use crate::certificate::{check_certificate, CertificateError};
use crate::decision::{Acceptance, Decision, Medium, Refusal, TapOutcome};
use crate::engine::{ConfigError, ConfigInstall, Engine, PassCheck, TrustAnchor};
use crate::journal::{Journal, JournalCounts, JournalError, SealedBatch};
use mancard_protocol::{
    BoardingPass, FareQuote, PublicKey, SigningKey, TapProof, TapRecord, TimeRules,
    ValidatorCertificate, ValidatorConfig,
};
use ring::rand::SystemRandom;
use std::fs;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use thiserror::Error;

/// File names inside the data directory.
pub const KEY_FILE: &str = "validator.key";
pub const PUBLIC_KEY_FILE: &str = "validator.pub";
pub const JOURNAL_FILE: &str = "journal.db";

const META_VALIDATOR_ID: &str = "validator_id";
const META_LINE_ID: &str = "line_id";
const META_ANCHOR: &str = "trust_anchor";
const META_CONFIG: &str = "config_bundle";
const META_CERTIFICATE: &str = "validator_certificate";
const META_TORN_WINDOW: &str = "torn_window_secs";

/// A source of UTC seconds (the real clock, or a fixed one in tests).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock, UTC seconds.
pub fn system_clock() -> Clock {
    Arc::new(|| chrono::Utc::now().timestamp())
}

#[derive(Debug, Error)]
pub enum ValidatorError {
    #[error("{0}")]
    Journal(#[from] JournalError),
    #[error("{0}")]
    Config(#[from] ConfigError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("validator key: {0}")]
    Key(#[from] mancard_protocol::KeyError),
    #[error("the data directory {0} is not initialised (run `mancard validator init`)")]
    NotInitialised(PathBuf),
    #[error("invalid trust anchor: {0}")]
    Anchor(String),
    #[error("upload failed: {0}")]
    Upload(String),
    #[error("{0}")]
    Certificate(#[from] CertificateError),
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> ValidatorError + '_ {
    move |source| ValidatorError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What `status` shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidatorStatus {
    pub validator_id: u32,
    pub line_id: u32,
    pub public_key: PublicKey,
    pub config_version: Option<u64>,
    pub config_issued_at: Option<i64>,
    /// Now minus the config's issued_at: how old the deny list is.
    pub deny_list_age_secs: Option<i64>,
    pub deny_list_len: usize,
    /// The installed validator certificate (none: every NFC tap is refused).
    pub certificate: Option<ValidatorCertificate>,
    /// True if the installed bundle lists this validator on its validator deny list: every
    /// tap is refused ("this validator is blocked").
    pub blocked: bool,
    /// The time rules QR passes are checked under (the bundle's, the skew possibly narrowed).
    pub time_rules: TimeRules,
    /// True if the validator's clock is more than an hour before the bundle's `issued_at`: the
    /// clock is wrong (certificates will look not yet valid, fare days will be off).
    pub clock_behind_bundle: bool,
    pub journal: JournalCounts,
    /// How long a torn tap waits for its card (seconds) before it is uploaded as torn.
    pub torn_window_secs: i64,
    pub cert_cache: usize,
    pub replay_cache: usize,
}

/// What one upload run did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct UploadReport {
    /// Batch ids acknowledged in this run, in order.
    pub acked: Vec<[u8; 16]>,
    pub records: usize,
    /// Torn records in the acknowledged batches.
    pub torn: usize,
    /// True if nothing was left to send.
    pub complete: bool,
}

/// The validator on the bus.
pub struct Validator {
    dir: Option<PathBuf>,
    pub(crate) engine: Engine,
    pub(crate) journal: Journal,
    pub(crate) key: SigningKey,
    pub(crate) validator_id: u32,
    pub(crate) line_id: u32,
    clock: Clock,
    pub(crate) rng: SystemRandom,
    pub(crate) certificate: Option<ValidatorCertificate>,
}

impl std::fmt::Debug for Validator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Validator")
            .field("dir", &self.dir)
            .field("validator_id", &self.validator_id)
            .field("line_id", &self.line_id)
            .finish_non_exhaustive()
    }
}

impl Validator {
    /// Initialises (or re-initialises) a data directory: the validator key (created once,
    /// PKCS#8, mode 0600), its id, line and trust anchor. Keeps an existing key, journal,
    /// config bundle and validator certificate (install one with
    /// [`Validator::install_certificate`]: without it every NFC tap is refused).
    pub fn init(
        dir: &Path,
        anchor: &TrustAnchor,
        validator_id: u32,
        line_id: u32,
    ) -> Result<Self, ValidatorError> {
        fs::create_dir_all(dir).map_err(io_err(dir))?;
        restrict_dir(dir)?;
        let key_path = dir.join(KEY_FILE);
        if !key_path.exists() {
            let (key, pkcs8) = SigningKey::generate()?;
            write_secret(&key_path, &pkcs8)?;
            let pub_path = dir.join(PUBLIC_KEY_FILE);
            fs::write(
                &pub_path,
                format!("{}\n", hex::encode(key.public_key().as_bytes())),
            )
            .map_err(io_err(&pub_path))?;
        }
        let mut journal = Journal::open(&dir.join(JOURNAL_FILE))?;
        journal.set_meta_i64(META_VALIDATOR_ID, i64::from(validator_id))?;
        journal.set_meta_i64(META_LINE_ID, i64::from(line_id))?;
        journal.set_meta(META_ANCHOR, anchor.to_text().as_bytes())?;
        drop(journal);
        Self::open(dir)
    }

    /// Opens an initialised data directory: loads the key, settings, the validator certificate
    /// and the installed config
    /// (re-verified against the trust anchor chain is not needed: it was verified before it was
    /// stored), and rebuilds the replay cache and ride states from the journal.
    pub fn open(dir: &Path) -> Result<Self, ValidatorError> {
        let key_path = dir.join(KEY_FILE);
        let db = dir.join(JOURNAL_FILE);
        if !key_path.exists() || !db.exists() {
            return Err(ValidatorError::NotInitialised(dir.to_path_buf()));
        }
        let pkcs8 = mancard_protocol::crypto::Zeroizing::new(
            fs::read(&key_path).map_err(io_err(&key_path))?,
        );
        let key = SigningKey::from_pkcs8(&pkcs8)?;
        let journal = Journal::open(&db)?;
        let mut v = Self::from_parts(journal, key, system_clock())?;
        v.dir = Some(dir.to_path_buf());
        Ok(v)
    }

    /// A validator over an already opened journal (in-memory journals for tests and benches).
    pub fn from_parts(
        journal: Journal,
        key: SigningKey,
        clock: Clock,
    ) -> Result<Self, ValidatorError> {
        let validator_id = journal
            .get_meta_i64(META_VALIDATOR_ID)?
            .and_then(|v| u32::try_from(v).ok())
            .ok_or_else(|| ValidatorError::NotInitialised(PathBuf::from("(journal)")))?;
        let line_id = journal
            .get_meta_i64(META_LINE_ID)?
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(0);
        let anchor_text = journal
            .get_meta(META_ANCHOR)?
            .ok_or_else(|| ValidatorError::NotInitialised(PathBuf::from("(journal)")))?;
        let anchor = TrustAnchor::parse(&String::from_utf8_lossy(&anchor_text))
            .map_err(ValidatorError::Anchor)?;
        let mut engine = Engine::new(vec![anchor]);
        if let Some(bytes) = journal.get_meta(META_CONFIG)? {
            // Stored only after verification; decode again (never trust a half-written row).
            let cfg = ValidatorConfig::decode(&bytes).map_err(ConfigError::from)?;
            engine.set_config(cfg);
        }
        for ride in journal.rides()? {
            engine.replay_ride(&ride);
        }
        let mut journal = journal;
        if let Some(secs) = journal.get_meta_i64(META_TORN_WINDOW)? {
            journal.set_torn_window_secs(secs);
        }
        // Stored only after it was checked; decoded again. A directory re-initialised with
        // another validator id keeps a certificate that no longer names it: not used.
        let certificate = journal
            .get_meta(META_CERTIFICATE)?
            .map(|bytes| ValidatorCertificate::decode(&bytes))
            .transpose()
            .map_err(CertificateError::from)?
            .filter(|c| {
                c.body.validator_id == validator_id && c.body.public_key == key.public_key()
            });
        Ok(Self {
            dir: None,
            engine,
            journal,
            key,
            validator_id,
            line_id,
            clock,
            rng: SystemRandom::new(),
            certificate,
        })
    }

    /// Writes the settings of a fresh in-memory journal (tests and benches).
    pub fn provision_journal(
        journal: &mut Journal,
        anchor: &TrustAnchor,
        validator_id: u32,
        line_id: u32,
    ) -> Result<(), ValidatorError> {
        journal.set_meta_i64(META_VALIDATOR_ID, i64::from(validator_id))?;
        journal.set_meta_i64(META_LINE_ID, i64::from(line_id))?;
        journal.set_meta(META_ANCHOR, anchor.to_text().as_bytes())?;
        Ok(())
    }

    pub fn set_clock(&mut self, clock: Clock) {
        self.clock = clock;
    }

    /// Narrows the QR clock skew to at most `skew` seconds. The signed bundle's time rules
    /// decide the skew and the longest pass lifetime; this can only make the validator
    /// stricter than the bundle, never more lenient.
    pub fn set_skew_secs(&mut self, skew: i64) {
        let cap = u16::try_from(skew.max(0)).unwrap_or(u16::MAX);
        self.engine.set_skew_cap_secs(Some(cap));
    }

    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    pub fn public_key(&self) -> PublicKey {
        self.key.public_key()
    }

    pub fn validator_id(&self) -> u32 {
        self.validator_id
    }

    pub fn line_id(&self) -> u32 {
        self.line_id
    }

    /// Changes the line (the bus changed route); persisted.
    pub fn set_line(&mut self, line_id: u32) -> Result<(), ValidatorError> {
        self.journal
            .set_meta_i64(META_LINE_ID, i64::from(line_id))?;
        self.line_id = line_id;
        Ok(())
    }

    /// How long a torn tap waits for its card (seconds, default
    /// [`crate::journal::DEFAULT_TORN_WINDOW_SECS`]): within it the reader repeats the torn
    /// challenge to the next cards; after it the next batch uploads it as torn.
    pub fn torn_window_secs(&self) -> i64 {
        self.journal.torn_window_secs()
    }

    /// Sets the torn window (seconds, at least 0); persisted.
    pub fn set_torn_window_secs(&mut self, secs: i64) -> Result<(), ValidatorError> {
        let secs = secs.max(0);
        self.journal.set_meta_i64(META_TORN_WINDOW, secs)?;
        self.journal.set_torn_window_secs(secs);
        Ok(())
    }

    pub fn engine(&mut self) -> &mut Engine {
        &mut self.engine
    }

    pub fn journal(&mut self) -> &mut Journal {
        &mut self.journal
    }

    pub fn config(&self) -> Option<&ValidatorConfig> {
        self.engine.config()
    }

    /// Verifies and installs a config bundle. A bundle that does not decode, is not signed by a
    /// trusted key, or is not newer than the installed one is refused and the old one kept.
    pub fn install_config(&mut self, bytes: &[u8]) -> Result<ConfigInstall, ValidatorError> {
        let checked = self.engine.check_config(bytes)?;
        if let ConfigInstall::Installed { .. } = checked.install {
            self.journal
                .set_meta(META_CONFIG, &checked.config.encode())?;
            self.engine.set_config(checked.config);
        }
        Ok(checked.install)
    }

    /// Verifies and installs this validator's certificate (see [`crate::certificate`]):
    /// it must name this validator's id and public key and be signed by a trusted issuer key.
    /// Persisted in the journal; a refused certificate changes nothing.
    pub fn install_certificate(&mut self, bytes: &[u8]) -> Result<(), ValidatorError> {
        let cert = ValidatorCertificate::decode(bytes).map_err(CertificateError::from)?;
        let trusted = self.engine.certificate_keys(cert.body.issuer_key_id);
        let cert = check_certificate(cert, self.validator_id, &self.public_key(), &trusted)?;
        self.journal.set_meta(META_CERTIFICATE, &cert.encode())?;
        self.certificate = Some(cert);
        Ok(())
    }

    /// The installed validator certificate.
    pub fn certificate(&self) -> Option<&ValidatorCertificate> {
        self.certificate.as_ref()
    }

    /// Refused if the installed bundle lists this validator on its validator deny list.
    pub(crate) fn check_not_blocked(&self) -> Result<(), Refusal> {
        if self.engine.is_validator_denied(self.validator_id) {
            return Err(Refusal::ValidatorBlocked);
        }
        Ok(())
    }

    /// Refused if this validator's certificate names lines and not the one it is on: the
    /// backend charges no ride (NFC or QR) on a line the certificate does not cover. QR needs no
    /// certificate of this validator; without one there is nothing to check.
    pub(crate) fn check_own_line(&self) -> Result<(), Refusal> {
        match &self.certificate {
            Some(c) if !c.body.allows_line(self.line_id) => {
                Err(Refusal::ValidatorLineNotAllowed(self.line_id))
            }
            _ => Ok(()),
        }
    }

    // ---------------------------------------------------------------- QR

    /// Verifies a QR pass text at the validator's time. Journaled before it is returned.
    pub fn verify_qr(&mut self, text: &str) -> TapOutcome {
        let start = Instant::now();
        let now = self.now();
        let result = self.qr_check(text, now);
        let decision = match result {
            Ok((record, quote)) => self.commit_accept(Medium::Qr, record, &quote),
            Err(r) => self.commit_refusal(Medium::Qr, now, r),
        };
        TapOutcome {
            decision,
            medium: Medium::Qr,
            time: now,
            elapsed: start.elapsed(),
            apdus: 0,
            cert_cached: false,
        }
    }

    fn qr_check(&mut self, text: &str, now: i64) -> Result<(TapRecord, FareQuote), Refusal> {
        self.engine.require_config()?;
        self.check_not_blocked()?;
        self.check_own_line()?;
        let pass = BoardingPass::from_text(text).map_err(|e| Refusal::NotAPass(e.to_string()))?;
        let PassCheck { cert: vc, quote } = self.engine.check_pass(&pass, self.line_id, now)?;
        let record = TapRecord {
            validator_id: self.validator_id,
            line_id: self.line_id,
            time: now,
            pseudonym: vc.cert.body.pseudonym,
            counter: pass.body.counter,
            fare: quote.amount,
            fare_kind: quote.kind,
            proof: TapProof::Qr { pass },
        };
        Ok((record, quote))
    }

    // ---------------------------------------------------------------- journal

    pub(crate) fn commit_accept(
        &mut self,
        medium: Medium,
        record: TapRecord,
        quote: &FareQuote,
    ) -> Decision {
        let journaled = self.journal.record_accepted(medium, &record);
        self.after_commit(medium, record, quote, journaled)
    }

    /// A recovered torn tap: journaled as an accepted NFC tap, its torn entry deleted, in one
    /// transaction.
    pub(crate) fn commit_recovered(
        &mut self,
        record: TapRecord,
        quote: &FareQuote,
        torn_seq: i64,
    ) -> Decision {
        let journaled = self
            .journal
            .record_recovered(Medium::Nfc, &record, torn_seq);
        self.after_commit(Medium::Nfc, record, quote, journaled)
    }

    /// A fresh NFC tap: journaled as an accepted tap, the pending entry of its challenge
    /// (journaled before it was sent) deleted, in one transaction.
    pub(crate) fn commit_answered(
        &mut self,
        record: TapRecord,
        quote: &FareQuote,
        pending_seq: i64,
    ) -> Decision {
        let journaled = self
            .journal
            .record_answered(Medium::Nfc, &record, pending_seq);
        self.after_commit(Medium::Nfc, record, quote, journaled)
    }

    /// The decision once the accepted tap was (or failed to be) journaled.
    fn after_commit(
        &mut self,
        medium: Medium,
        record: TapRecord,
        quote: &FareQuote,
        journaled: Result<i64, JournalError>,
    ) -> Decision {
        match journaled {
            Ok(seq) => {
                self.engine
                    .record_ride(record.pseudonym, record.counter, record.time, quote.next);
                Decision::Accepted(Acceptance {
                    medium,
                    pseudonym: record.pseudonym,
                    counter: record.counter,
                    fare: record.fare,
                    fare_kind: record.fare_kind,
                    base_fare: quote.base,
                    journal_seq: seq,
                })
            }
            Err(e) => {
                let r = Refusal::JournalFailure(e.to_string());
                let _ = self.journal.record_refusal(medium, record.time, &r);
                Decision::Refused(r)
            }
        }
    }

    pub(crate) fn commit_refusal(&mut self, medium: Medium, now: i64, r: Refusal) -> Decision {
        match self.journal.record_refusal(medium, now, &r) {
            Ok(_) => Decision::Refused(r),
            // The refusal stands either way; say the journal is broken if it is.
            Err(e) => Decision::Refused(Refusal::JournalFailure(format!(
                "{e} (while refusing: {r:?})"
            ))),
        }
    }

    // ---------------------------------------------------------------- upload

    /// Uploads accepted taps, and torn taps older than the torn window, in signed batches
    /// through `send` (which returns Ok once the backend acknowledged the batch). A batch is sealed durably before it is sent and resent with the
    /// same id until acknowledged, across restarts. Stops at the first failure.
    pub fn upload<F>(&mut self, mut send: F) -> Result<UploadReport, ValidatorError>
    where
        F: FnMut(&SealedBatch) -> Result<(), String>,
    {
        let mut report = UploadReport::default();
        loop {
            let batch = match self.journal.pending_batch()? {
                Some(b) => b,
                None => match self
                    .journal
                    .seal_batch(self.validator_id, &self.key, self.now())?
                {
                    Some(b) => b,
                    None => {
                        report.complete = true;
                        return Ok(report);
                    }
                },
            };
            if let Err(e) = send(&batch) {
                return if report.acked.is_empty() {
                    Err(ValidatorError::Upload(e))
                } else {
                    Ok(report)
                };
            }
            self.journal.ack_batch(&batch.batch_id, self.now())?;
            report.acked.push(batch.batch_id);
            report.records = report.records.saturating_add(batch.records);
            report.torn = report.torn.saturating_add(batch.torn);
        }
    }

    /// Seals the pending taps (and the torn taps past the torn window) into a batch without
    /// sending it (or returns the pending one).
    pub fn seal(&mut self) -> Result<Option<SealedBatch>, ValidatorError> {
        if let Some(b) = self.journal.pending_batch()? {
            return Ok(Some(b));
        }
        Ok(self
            .journal
            .seal_batch(self.validator_id, &self.key, self.now())?)
    }

    pub fn status(&self) -> Result<ValidatorStatus, ValidatorError> {
        let now = self.now();
        let cfg = self.engine.config();
        Ok(ValidatorStatus {
            validator_id: self.validator_id,
            line_id: self.line_id,
            public_key: self.key.public_key(),
            config_version: cfg.map(|c| c.body.bundle_version),
            config_issued_at: cfg.map(|c| c.body.issued_at),
            deny_list_age_secs: cfg.map(|c| now.saturating_sub(c.body.issued_at)),
            deny_list_len: cfg.map(|c| c.body.deny_list.len()).unwrap_or(0),
            certificate: self.certificate.clone(),
            blocked: self.engine.is_validator_denied(self.validator_id),
            time_rules: self.engine.time_rules(),
            clock_behind_bundle: cfg.is_some_and(|c| now < c.body.issued_at.saturating_sub(3600)),
            journal: self.journal.counts()?,
            torn_window_secs: self.journal.torn_window_secs(),
            cert_cache: self.engine.cert_cache_len(),
            replay_cache: self.engine.replay_len(),
        })
    }
}

fn write_secret(path: &Path, bytes: &[u8]) -> Result<(), ValidatorError> {
    let mut opts = fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        opts.mode(0o600);
    }
    let mut f = opts.open(path).map_err(io_err(path))?;
    f.write_all(bytes).map_err(io_err(path))?;
    f.sync_all().map_err(io_err(path))?;
    Ok(())
}

fn restrict_dir(dir: &Path) -> Result<(), ValidatorError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700)).map_err(io_err(dir))?;
    }
    Ok(())
}

/// How long a tap may take before the reader gives up on the card (used by readers).
pub const TAP_TIMEOUT: Duration = Duration::from_millis(500);
