//! All storage, behind one narrow interface: [`Repo`] opens the database and runs closures in a
//! transaction; [`Tx`] offers typed operations and is the only code that speaks SQL.
//!
//! A second backend (PostgreSQL) would re-implement `Repo`/`Tx` with the same methods; the
//! engine and the HTTP handlers never see SQL or rusqlite types.
//!
//! SQLite runs in WAL mode with `synchronous=FULL`: a request is answered only after its
//! transaction has committed durably. One connection, behind a mutex, serializes every
//! transaction (SQLite has one writer anyway); callers run on blocking threads, never on the
//! async runtime. The ledger is append-only, enforced by triggers.

use crate::error::StoreError;
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};
use std::path::Path;
use std::sync::Mutex;

/// Schema version in `PRAGMA user_version`.
pub const SCHEMA_VERSION: i64 = 2;

const SCHEMA: &str = r#"
CREATE TABLE accounts (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    fare_class INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL
);
CREATE TABLE otp_codes (
    id INTEGER PRIMARY KEY,
    phone TEXT NOT NULL,
    code_hash BLOB NOT NULL,
    sandbox_code TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE INDEX otp_codes_phone ON otp_codes(phone, created_at);
CREATE TABLE sessions (
    token_hash BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE nonces (
    nonce BLOB PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    expires_at INTEGER NOT NULL,
    used_at INTEGER
);
CREATE TABLE devices (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    binding_key BLOB NOT NULL UNIQUE,
    pseudonym BLOB NOT NULL UNIQUE,
    created_at INTEGER NOT NULL
);
CREATE INDEX devices_account ON devices(account_id);
CREATE TABLE certificates (
    hash BLOB PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    encoded BLOB NOT NULL,
    counter_first INTEGER NOT NULL,
    counter_last INTEGER NOT NULL,
    valid_until INTEGER NOT NULL,
    issued_at INTEGER NOT NULL
);
CREATE INDEX certificates_device ON certificates(device_id, counter_last);
CREATE TABLE revocations (
    pseudonym BLOB PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    reason TEXT NOT NULL,
    revoked_at INTEGER NOT NULL
);
CREATE TABLE fraud_cases (
    id INTEGER PRIMARY KEY,
    device_id INTEGER NOT NULL REFERENCES devices(id),
    pseudonym BLOB NOT NULL,
    kind TEXT NOT NULL,
    counter INTEGER,
    detail TEXT NOT NULL,
    opened_at INTEGER NOT NULL
);
CREATE TABLE taps (
    pseudonym BLOB NOT NULL,
    counter INTEGER NOT NULL,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    device_id INTEGER NOT NULL REFERENCES devices(id),
    cert_hash BLOB NOT NULL,
    fare_class INTEGER NOT NULL,
    time INTEGER NOT NULL,
    fare_day INTEGER NOT NULL,
    line_id INTEGER,
    authorized INTEGER NOT NULL,
    proof BLOB NOT NULL,
    source TEXT NOT NULL,
    reported_at INTEGER NOT NULL,
    PRIMARY KEY (pseudonym, counter)
) WITHOUT ROWID;
CREATE INDEX taps_account_day ON taps(account_id, fare_day, time);
CREATE TABLE wallet_log (
    device_id INTEGER NOT NULL REFERENCES devices(id),
    seq INTEGER NOT NULL,
    hash BLOB NOT NULL,
    counter INTEGER NOT NULL,
    encoded BLOB NOT NULL,
    PRIMARY KEY (device_id, seq)
) WITHOUT ROWID;
CREATE TABLE ledger (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    amount INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    pseudonym BLOB,
    counter INTEGER,
    intent_id TEXT,
    note TEXT,
    created_at INTEGER NOT NULL
);
CREATE INDEX ledger_account ON ledger(account_id, id);
CREATE INDEX ledger_tap ON ledger(pseudonym, counter) WHERE pseudonym IS NOT NULL;
CREATE TRIGGER ledger_no_update BEFORE UPDATE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TRIGGER ledger_no_delete BEFORE DELETE ON ledger
    BEGIN SELECT RAISE(ABORT, 'the ledger is append-only'); END;
CREATE TABLE gateway_payments (
    token TEXT PRIMARY KEY,
    amount INTEGER NOT NULL,
    status TEXT NOT NULL,
    ref_id TEXT,
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    paid_at INTEGER,
    verified_at INTEGER
);
CREATE TABLE topup_intents (
    id TEXT PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL,
    gateway_token TEXT NOT NULL UNIQUE REFERENCES gateway_payments(token),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    UNIQUE (account_id, idempotency_key)
);
CREATE TABLE validators (
    id INTEGER PRIMARY KEY,
    public_key BLOB NOT NULL,
    registered_at INTEGER NOT NULL
);
CREATE TABLE batches (
    batch_id BLOB PRIMARY KEY,
    validator_id INTEGER NOT NULL,
    body_hash BLOB NOT NULL,
    response TEXT NOT NULL,
    received_at INTEGER NOT NULL
);
CREATE TABLE config_bundles (
    version INTEGER PRIMARY KEY,
    content_hash BLOB NOT NULL,
    encoded BLOB NOT NULL,
    issued_at INTEGER NOT NULL
);
"#;

/// Migrations after the version-1 [`SCHEMA`], in order: (version reached, SQL). A new database
/// runs the schema and then every migration; an existing one runs the migrations above its
/// `user_version`, all in one transaction.
const MIGRATIONS: &[(i64, &str)] = &[(2, MIGRATION_2)];

/// Version 2: the running total of the signed amounts settled under each certificate (the
/// cumulative offline-allowance check reads and bumps one row per new tap). Back-filled from
/// the taps already stored; a sum beyond `i64` saturates (the CAST of a too-large REAL does).
const MIGRATION_2: &str = r#"
CREATE TABLE cert_usage (
    cert_hash BLOB PRIMARY KEY,
    authorized INTEGER NOT NULL
) WITHOUT ROWID;
INSERT INTO cert_usage (cert_hash, authorized)
    SELECT cert_hash, CAST(TOTAL(MAX(authorized, 0)) AS INTEGER) FROM taps GROUP BY cert_hash;
"#;

/// The database.
#[derive(Debug)]
pub struct Repo {
    conn: Mutex<Connection>,
}

/// An open transaction: every typed storage operation.
pub struct Tx<'c> {
    tx: rusqlite::Transaction<'c>,
}

fn arr<const N: usize>(v: Vec<u8>, what: &'static str) -> Result<[u8; N], StoreError> {
    v.try_into().map_err(|_| StoreError::Corrupt(what))
}

fn u32_of(v: i64, what: &'static str) -> Result<u32, StoreError> {
    u32::try_from(v).map_err(|_| StoreError::Corrupt(what))
}

impl Repo {
    /// Opens (creating if needed) the database and brings the schema up to date.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        // The database holds phone numbers and session digests: create it owner-only (SQLite
        // gives its -wal and -shm files the database file's permissions).
        #[cfg(unix)]
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map_err(|e| StoreError::File(format!("create {}: {e}", path.display())))?;
        }
        let mut conn = Connection::open(path)?;
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let version: i64 = conn.pragma_query_value(None, "user_version", |r| r.get(0))?;
        if version > SCHEMA_VERSION {
            return Err(StoreError::SchemaTooNew {
                found: version,
                supported: SCHEMA_VERSION,
            });
        }
        if version < SCHEMA_VERSION {
            let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
            // Read again under the write lock: another process may have migrated meanwhile.
            let mut v: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
            if v > SCHEMA_VERSION {
                return Err(StoreError::SchemaTooNew {
                    found: v,
                    supported: SCHEMA_VERSION,
                });
            }
            if v == 0 {
                tx.execute_batch(SCHEMA)?;
                v = 1;
            }
            for (to, sql) in MIGRATIONS {
                if *to > v {
                    tx.execute_batch(sql)?;
                    v = *to;
                }
            }
            tx.pragma_update(None, "user_version", v)?;
            tx.commit()?;
        }
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Runs `f` in an immediate (write) transaction; commits if it returns `Ok`.
    pub fn write<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.run(TransactionBehavior::Immediate, f)
    }

    /// Runs `f` in a read transaction (a consistent snapshot).
    pub fn read<R, E: From<StoreError>>(
        &self,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        self.run(TransactionBehavior::Deferred, f)
    }

    fn run<R, E: From<StoreError>>(
        &self,
        behavior: TransactionBehavior,
        f: impl FnOnce(&Tx<'_>) -> Result<R, E>,
    ) -> Result<R, E> {
        // A panic while holding the lock leaves the transaction rolled back (dropped), so the
        // connection is still consistent: recover it.
        let mut guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        let tx = guard
            .transaction_with_behavior(behavior)
            .map_err(StoreError::from)?;
        let t = Tx { tx };
        let out = f(&t)?;
        t.tx.commit().map_err(StoreError::from)?;
        Ok(out)
    }

    /// Checkpoints the WAL into the main file (at shutdown).
    pub fn checkpoint(&self) -> Result<(), StoreError> {
        let guard = self.conn.lock().unwrap_or_else(|p| p.into_inner());
        guard.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        Ok(())
    }
}

/// An account.
#[derive(Debug, Clone)]
pub struct Account {
    pub id: i64,
    pub phone: String,
    pub fare_class: u8,
}

/// A stored one-time code.
#[derive(Debug, Clone)]
pub struct OtpRow {
    pub id: i64,
    pub code_hash: Vec<u8>,
    pub attempts: i64,
    pub expires_at: i64,
}

/// A wallet installation.
#[derive(Debug, Clone)]
pub struct Device {
    pub id: i64,
    pub account_id: i64,
    pub binding_key: Vec<u8>,
    pub pseudonym: [u8; 16],
    pub created_at: i64,
}

/// An issued certificate as stored.
#[derive(Debug, Clone)]
pub struct CertRow {
    pub hash: [u8; 32],
    pub device_id: i64,
    pub account_id: i64,
    pub encoded: Vec<u8>,
    pub counter_first: u32,
    pub counter_last: u32,
    pub valid_until: i64,
}

/// A settled tap.
#[derive(Debug, Clone)]
pub struct TapRow {
    pub account_id: i64,
    pub device_id: i64,
    pub time: i64,
    pub fare_day: i64,
    pub line_id: Option<u32>,
    pub proof: Vec<u8>,
}

/// A new tap to store.
#[derive(Debug, Clone)]
pub struct NewTap<'a> {
    pub pseudonym: &'a [u8; 16],
    pub counter: u32,
    pub account_id: i64,
    pub device_id: i64,
    pub cert_hash: &'a [u8; 32],
    pub fare_class: u8,
    pub time: i64,
    pub fare_day: i64,
    pub line_id: Option<u32>,
    pub authorized: i64,
    pub proof: &'a [u8],
    pub source: &'static str,
    pub reported_at: i64,
}

/// A ride of one fare day with what has been charged for it so far.
#[derive(Debug, Clone)]
pub struct Ride {
    pub pseudonym: [u8; 16],
    pub counter: u32,
    pub time: i64,
    pub line_id: Option<u32>,
    pub fare_class: u8,
    pub authorized: i64,
    /// Sum of the (negative) ledger amounts of this ride, negated.
    pub charged: i64,
    /// Number of ledger entries of this ride.
    pub entries: i64,
}

/// A ledger entry.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct LedgerEntry {
    /// Monotonic id; the sync cursor.
    pub id: i64,
    /// `topup`, `fare`, `fare_adjustment` or `adjustment`.
    pub kind: String,
    /// Rials: positive credits, negative debits.
    pub amount: i64,
    pub idempotency_key: String,
    /// Card pseudonym (hex) of a fare entry.
    pub pseudonym: Option<String>,
    /// Tap counter of a fare entry.
    pub counter: Option<u32>,
    /// Top-up intent of a top-up entry.
    pub intent_id: Option<String>,
    pub note: Option<String>,
    pub created_at: i64,
}

/// A ledger entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub account_id: i64,
    pub kind: &'static str,
    pub amount: i64,
    pub idempotency_key: &'a str,
    pub tap: Option<(&'a [u8; 16], u32)>,
    pub intent_id: Option<&'a str>,
    pub note: Option<&'a str>,
    pub created_at: i64,
}

/// A top-up intent.
#[derive(Debug, Clone)]
pub struct Intent {
    pub id: String,
    pub account_id: i64,
    pub amount: i64,
    pub idempotency_key: String,
    pub gateway_token: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// The sandbox gateway's record of a payment.
#[derive(Debug, Clone)]
pub struct GatewayPayment {
    pub token: String,
    pub amount: i64,
    /// `pending`, `paid` or `cancelled`.
    pub status: String,
    pub ref_id: Option<String>,
    pub expires_at: i64,
    pub verified_at: Option<i64>,
}

/// An open fraud case.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct FraudCase {
    pub id: i64,
    pub device_id: i64,
    /// Hex pseudonym.
    pub pseudonym: String,
    /// `duplicate_counter`, `counter_out_of_range`, `over_allowance` or `broken_chain`.
    pub kind: String,
    pub counter: Option<u32>,
    pub detail: String,
    pub opened_at: i64,
}

/// A stored config bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub version: u64,
    pub content_hash: Vec<u8>,
    pub encoded: Vec<u8>,
}

/// Results of the ledger invariant checks.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct AuditReport {
    pub accounts: i64,
    pub ledger_entries: i64,
    pub taps: i64,
    pub ledger_total: i64,
    /// Sum over accounts of their balances (must equal `ledger_total`).
    pub balances_total: i64,
    /// Taps with no fare entry (must be 0).
    pub taps_without_charge: i64,
    /// Taps whose charge is negative (must be 0).
    pub taps_negative_charge: i64,
    /// Fare entries that do not name a tap (must be 0).
    pub orphan_fare_entries: i64,
    /// Top-up intents credited more than once (must be 0).
    pub intents_credited_twice: i64,
    /// Certificates whose running total of signed amounts differs from the sum over their
    /// stored taps (must be 0).
    pub cert_totals_mismatched: i64,
    pub ok: bool,
}

fn ledger_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<LedgerEntry> {
    let pseudo: Option<Vec<u8>> = r.get(5)?;
    let counter: Option<i64> = r.get(6)?;
    Ok(LedgerEntry {
        id: r.get(0)?,
        kind: r.get(2)?,
        amount: r.get(3)?,
        idempotency_key: r.get(4)?,
        pseudonym: pseudo.map(hex::encode),
        counter: counter.and_then(|c| u32::try_from(c).ok()),
        intent_id: r.get(7)?,
        note: r.get(8)?,
        created_at: r.get(9)?,
    })
}

const LEDGER_COLS: &str =
    "id, account_id, kind, amount, idempotency_key, pseudonym, counter, intent_id, note, created_at";

fn account_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Account> {
    Ok(Account {
        id: r.get(0)?,
        phone: r.get(1)?,
        fare_class: r.get(2)?,
    })
}

impl Tx<'_> {
    // ---- accounts, codes, sessions -------------------------------------------------------

    pub fn account_by_phone(&self, phone: &str) -> Result<Option<Account>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT id, phone, fare_class FROM accounts WHERE phone = ?1")?
            .query_row(params![phone], account_row)
            .optional()?)
    }

    pub fn account(&self, id: i64) -> Result<Option<Account>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT id, phone, fare_class FROM accounts WHERE id = ?1")?
            .query_row(params![id], account_row)
            .optional()?)
    }

    pub fn create_account(&self, phone: &str, now: i64) -> Result<i64, StoreError> {
        self.tx.execute(
            "INSERT INTO accounts (phone, created_at) VALUES (?1, ?2)",
            params![phone, now],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn otp_count_since(&self, phone: &str, since: i64) -> Result<i64, StoreError> {
        Ok(self.tx.query_row(
            "SELECT COUNT(*) FROM otp_codes WHERE phone = ?1 AND created_at >= ?2",
            params![phone, since],
            |r| r.get(0),
        )?)
    }

    pub fn insert_otp(
        &self,
        phone: &str,
        code_hash: &[u8],
        sandbox_code: Option<&str>,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        // a new code supersedes the older ones
        self.tx.execute(
            "UPDATE otp_codes SET used_at = ?2 WHERE phone = ?1 AND used_at IS NULL",
            params![phone, now],
        )?;
        self.tx.execute(
            "INSERT INTO otp_codes (phone, code_hash, sandbox_code, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![phone, code_hash, sandbox_code, now, expires_at],
        )?;
        Ok(())
    }

    /// The newest unused, unexpired code of a phone number.
    pub fn live_otp(&self, phone: &str, now: i64) -> Result<Option<OtpRow>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, code_hash, attempts, expires_at FROM otp_codes
                 WHERE phone = ?1 AND used_at IS NULL AND expires_at >= ?2
                 ORDER BY id DESC LIMIT 1",
                params![phone, now],
                |r| {
                    Ok(OtpRow {
                        id: r.get(0)?,
                        code_hash: r.get(1)?,
                        attempts: r.get(2)?,
                        expires_at: r.get(3)?,
                    })
                },
            )
            .optional()?)
    }

    pub fn otp_failed_attempt(&self, id: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET attempts = attempts + 1 WHERE id = ?1",
            params![id],
        )?;
        Ok(())
    }

    pub fn otp_mark_used(&self, id: i64, now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE otp_codes SET used_at = ?2 WHERE id = ?1",
            params![id, now],
        )?;
        Ok(())
    }

    /// Sandbox only: the live code of a phone number in clear.
    pub fn sandbox_otp(&self, phone: &str, now: i64) -> Result<Option<(String, i64)>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT sandbox_code, expires_at FROM otp_codes
                 WHERE phone = ?1 AND used_at IS NULL AND expires_at >= ?2
                   AND sandbox_code IS NOT NULL
                 ORDER BY id DESC LIMIT 1",
                params![phone, now],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?)
    }

    pub fn insert_session(
        &self,
        token_hash: &[u8; 32],
        account_id: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO sessions (token_hash, account_id, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![&token_hash[..], account_id, now, expires_at],
        )?;
        Ok(())
    }

    pub fn session_account(
        &self,
        token_hash: &[u8; 32],
        now: i64,
    ) -> Result<Option<i64>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT account_id FROM sessions WHERE token_hash = ?1 AND expires_at >= ?2",
            )?
            .query_row(params![&token_hash[..], now], |r| r.get(0))
            .optional()?)
    }

    // ---- nonces, devices, certificates ---------------------------------------------------

    pub fn insert_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO nonces (nonce, account_id, expires_at) VALUES (?1, ?2, ?3)",
            params![&nonce[..], account_id, expires_at],
        )?;
        Ok(())
    }

    /// Consumes a nonce: true if it was this account's, unused and unexpired.
    pub fn take_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: i64,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE nonces SET used_at = ?3
             WHERE nonce = ?1 AND account_id = ?2 AND used_at IS NULL AND expires_at >= ?3",
            params![&nonce[..], account_id, now],
        )?;
        Ok(n == 1)
    }

    fn device_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeviceTuple> {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
    }

    fn device_of(t: Option<DeviceTuple>) -> Result<Option<Device>, StoreError> {
        t.map(|(id, account_id, binding_key, p, created_at)| {
            Ok(Device {
                id,
                account_id,
                binding_key,
                pseudonym: arr(p, "pseudonym")?,
                created_at,
            })
        })
        .transpose()
    }

    pub fn device_by_binding_key(&self, key: &[u8]) -> Result<Option<Device>, StoreError> {
        let t = self
            .tx
            .prepare_cached(
                "SELECT id, account_id, binding_key, pseudonym, created_at FROM devices
                 WHERE binding_key = ?1",
            )?
            .query_row(params![key], Self::device_from)
            .optional()?;
        Self::device_of(t)
    }

    pub fn device_by_pseudonym(&self, p: &[u8; 16]) -> Result<Option<Device>, StoreError> {
        let t = self
            .tx
            .prepare_cached(
                "SELECT id, account_id, binding_key, pseudonym, created_at FROM devices
                 WHERE pseudonym = ?1",
            )?
            .query_row(params![&p[..]], Self::device_from)
            .optional()?;
        Self::device_of(t)
    }

    /// The account's devices that are not revoked.
    pub fn active_devices(&self, account_id: i64) -> Result<Vec<Device>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT d.id, d.account_id, d.binding_key, d.pseudonym, d.created_at FROM devices d
             WHERE d.account_id = ?1
               AND NOT EXISTS (SELECT 1 FROM revocations r WHERE r.pseudonym = d.pseudonym)
             ORDER BY d.id",
        )?;
        let rows = st.query_map(params![account_id], Self::device_from)?;
        let mut out = Vec::new();
        for r in rows {
            if let Some(d) = Self::device_of(Some(r?))? {
                out.push(d);
            }
        }
        Ok(out)
    }

    pub fn insert_device(
        &self,
        account_id: i64,
        binding_key: &[u8],
        pseudonym: &[u8; 16],
        now: i64,
    ) -> Result<i64, StoreError> {
        self.tx.execute(
            "INSERT INTO devices (account_id, binding_key, pseudonym, created_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![account_id, binding_key, &pseudonym[..], now],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    /// Why a pseudonym was revoked, if it was.
    pub fn revocation(&self, p: &[u8; 16]) -> Result<Option<String>, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT reason FROM revocations WHERE pseudonym = ?1")?
            .query_row(params![&p[..]], |r| r.get(0))
            .optional()?)
    }

    /// Revokes a pseudonym (idempotent: the first reason is kept).
    pub fn revoke(
        &self,
        p: &[u8; 16],
        device_id: i64,
        reason: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO revocations (pseudonym, device_id, reason, revoked_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![&p[..], device_id, reason, now],
        )?;
        Ok(())
    }

    fn cert_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<CertTuple> {
        Ok((
            r.get(0)?,
            r.get(1)?,
            r.get(2)?,
            r.get(3)?,
            r.get(4)?,
            r.get(5)?,
            r.get(6)?,
        ))
    }

    fn cert_of(t: CertTuple) -> Result<CertRow, StoreError> {
        let (hash, device_id, account_id, encoded, first, last, valid_until) = t;
        Ok(CertRow {
            hash: arr(hash, "certificate hash")?,
            device_id,
            account_id,
            encoded,
            counter_first: u32_of(first, "counter")?,
            counter_last: u32_of(last, "counter")?,
            valid_until,
        })
    }

    /// The newest certificate of a device.
    pub fn latest_certificate(&self, device_id: i64) -> Result<Option<CertRow>, StoreError> {
        let t = self
            .tx
            .prepare_cached(
                "SELECT c.hash, c.device_id, d.account_id, c.encoded, c.counter_first,
                        c.counter_last, c.valid_until
                 FROM certificates c JOIN devices d ON d.id = c.device_id
                 WHERE c.device_id = ?1 ORDER BY c.counter_last DESC LIMIT 1",
            )?
            .query_row(params![device_id], Self::cert_from)
            .optional()?;
        t.map(Self::cert_of).transpose()
    }

    pub fn certificate(&self, hash: &[u8; 32]) -> Result<Option<CertRow>, StoreError> {
        let t = self
            .tx
            .prepare_cached(
                "SELECT c.hash, c.device_id, d.account_id, c.encoded, c.counter_first,
                        c.counter_last, c.valid_until
                 FROM certificates c JOIN devices d ON d.id = c.device_id
                 WHERE c.hash = ?1",
            )?
            .query_row(params![&hash[..]], Self::cert_from)
            .optional()?;
        t.map(Self::cert_of).transpose()
    }

    #[allow(clippy::too_many_arguments)]
    pub fn insert_certificate(
        &self,
        hash: &[u8; 32],
        device_id: i64,
        encoded: &[u8],
        counter_first: u32,
        counter_last: u32,
        valid_until: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO certificates
                (hash, device_id, encoded, counter_first, counter_last, valid_until, issued_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                &hash[..],
                device_id,
                encoded,
                counter_first,
                counter_last,
                valid_until,
                now
            ],
        )?;
        Ok(())
    }

    /// The highest counter settled for a pseudonym.
    pub fn max_counter(&self, p: &[u8; 16]) -> Result<Option<u32>, StoreError> {
        let v: Option<i64> = self.tx.query_row(
            "SELECT MAX(counter) FROM taps WHERE pseudonym = ?1",
            params![&p[..]],
            |r| r.get(0),
        )?;
        v.map(|c| u32_of(c, "counter")).transpose()
    }

    // ---- fraud -------------------------------------------------------------------------

    pub fn insert_fraud_case(
        &self,
        device_id: i64,
        p: &[u8; 16],
        kind: &str,
        counter: Option<u32>,
        detail: &str,
        now: i64,
    ) -> Result<i64, StoreError> {
        self.tx.execute(
            "INSERT INTO fraud_cases (device_id, pseudonym, kind, counter, detail, opened_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![device_id, &p[..], kind, counter, detail, now],
        )?;
        Ok(self.tx.last_insert_rowid())
    }

    pub fn fraud_cases(&self) -> Result<Vec<FraudCase>, StoreError> {
        let mut st = self.tx.prepare(
            "SELECT id, device_id, pseudonym, kind, counter, detail, opened_at
             FROM fraud_cases ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let p: Vec<u8> = r.get(2)?;
            let c: Option<i64> = r.get(4)?;
            Ok(FraudCase {
                id: r.get(0)?,
                device_id: r.get(1)?,
                pseudonym: hex::encode(p),
                kind: r.get(3)?,
                counter: c.and_then(|c| u32::try_from(c).ok()),
                detail: r.get(5)?,
                opened_at: r.get(6)?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- taps and rating ---------------------------------------------------------------

    pub fn tap(&self, p: &[u8; 16], counter: u32) -> Result<Option<TapRow>, StoreError> {
        let t = self
            .tx
            .prepare_cached(
                "SELECT account_id, device_id, time, fare_day, line_id, proof FROM taps
                 WHERE pseudonym = ?1 AND counter = ?2",
            )?
            .query_row(params![&p[..], counter], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, i64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, i64>(3)?,
                    r.get::<_, Option<i64>>(4)?,
                    r.get::<_, Vec<u8>>(5)?,
                ))
            })
            .optional()?;
        t.map(|(account_id, device_id, time, fare_day, line, proof)| {
            Ok(TapRow {
                account_id,
                device_id,
                time,
                fare_day,
                line_id: line.map(|l| u32_of(l, "line")).transpose()?,
                proof,
            })
        })
        .transpose()
    }

    pub fn insert_tap(&self, t: &NewTap<'_>) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source, reported_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            )?
            .execute(params![
                &t.pseudonym[..],
                t.counter,
                t.account_id,
                t.device_id,
                &t.cert_hash[..],
                t.fare_class,
                t.time,
                t.fare_day,
                t.line_id,
                t.authorized,
                t.proof,
                t.source,
                t.reported_at
            ])?;
        Ok(())
    }

    /// Adds a newly settled tap's signed amount to its certificate's running total and returns
    /// the new total (one primary-key upsert; saturates at `i64::MAX`). Call it once per
    /// inserted tap, in the transaction that inserts it.
    pub fn add_cert_usage(&self, cert_hash: &[u8; 32], amount: i64) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "INSERT INTO cert_usage (cert_hash, authorized) VALUES (?1, ?2)
                 ON CONFLICT (cert_hash) DO UPDATE SET authorized =
                     CASE WHEN authorized > 9223372036854775807 - excluded.authorized
                          THEN 9223372036854775807
                          ELSE authorized + excluded.authorized END
                 RETURNING authorized",
            )?
            .query_row(params![&cert_hash[..], amount.max(0)], |r| r.get(0))?)
    }

    /// The running total of the signed amounts settled under a certificate.
    pub fn cert_usage(&self, cert_hash: &[u8; 32]) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT authorized FROM cert_usage WHERE cert_hash = ?1")?
            .query_row(params![&cert_hash[..]], |r| r.get::<_, i64>(0))
            .optional()?
            .unwrap_or(0))
    }

    /// Fills in the line of a tap first reported without one (a QR pass known only from the
    /// wallet); the validator's record names it.
    pub fn set_tap_line(&self, p: &[u8; 16], counter: u32, line: u32) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE taps SET line_id = ?3 WHERE pseudonym = ?1 AND counter = ?2 AND line_id IS NULL",
            params![&p[..], counter, line],
        )?;
        Ok(())
    }

    /// An account's rides on one fare day in time order, with what each has been charged; the
    /// charge is read only for rides at or after `from_time` (0 and 0 entries before it).
    pub fn day_rides(
        &self,
        account_id: i64,
        fare_day: i64,
        from_time: i64,
    ) -> Result<Vec<Ride>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT t.pseudonym, t.counter, t.time, t.line_id, t.fare_class, t.authorized,
                    CASE WHEN t.time >= ?3 THEN
                        COALESCE((SELECT -SUM(l.amount) FROM ledger l
                                  WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter), 0)
                    ELSE 0 END,
                    CASE WHEN t.time >= ?3 THEN
                        (SELECT COUNT(*) FROM ledger l
                         WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter)
                    ELSE 0 END
             FROM taps t WHERE t.account_id = ?1 AND t.fare_day = ?2
             ORDER BY t.time, t.pseudonym, t.counter",
        )?;
        let rows = st.query_map(params![account_id, fare_day, from_time], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, u8>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, i64>(6)?,
                r.get::<_, i64>(7)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (p, c, time, line, fare_class, authorized, charged, entries) = row?;
            out.push(Ride {
                pseudonym: arr(p, "pseudonym")?,
                counter: u32_of(c, "counter")?,
                time,
                line_id: line.map(|l| u32_of(l, "line")).transpose()?,
                fare_class,
                authorized,
                charged,
                entries,
            });
        }
        Ok(out)
    }

    /// Time and line of the account's last ride with a known line before fare day `fare_day`.
    pub fn last_ride_before_day(
        &self,
        account_id: i64,
        fare_day: i64,
    ) -> Result<Option<(i64, u32)>, StoreError> {
        let t: Option<(i64, i64)> = self
            .tx
            .prepare_cached(
                "SELECT time, line_id FROM taps
                 WHERE account_id = ?1 AND fare_day < ?2 AND line_id IS NOT NULL
                 ORDER BY fare_day DESC, time DESC LIMIT 1",
            )?
            .query_row(params![account_id, fare_day], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()?;
        t.map(|(time, line)| Ok((time, u32_of(line, "line")?)))
            .transpose()
    }

    /// What has been charged for one tap (positive rials).
    pub fn tap_charge(&self, p: &[u8; 16], counter: u32) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .prepare_cached(
                "SELECT COALESCE(-SUM(amount), 0) FROM ledger WHERE pseudonym = ?1 AND counter = ?2",
            )?
            .query_row(params![&p[..], counter], |r| r.get(0))?)
    }

    // ---- ledger ------------------------------------------------------------------------

    /// Appends an entry; returns its id, or `None` if the idempotency key already exists.
    pub fn insert_ledger(&self, e: &NewEntry<'_>) -> Result<Option<i64>, StoreError> {
        let (p, c) = match e.tap {
            Some((p, c)) => (Some(&p[..]), Some(c)),
            None => (None, None),
        };
        let n = self
            .tx
            .prepare_cached(
                "INSERT INTO ledger (account_id, kind, amount, idempotency_key, pseudonym, counter,
                                     intent_id, note, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
                 ON CONFLICT (idempotency_key) DO NOTHING",
            )?
            .execute(params![
                e.account_id,
                e.kind,
                e.amount,
                e.idempotency_key,
                p,
                c,
                e.intent_id,
                e.note,
                e.created_at
            ])?;
        Ok((n == 1).then(|| self.tx.last_insert_rowid()))
    }

    pub fn ledger_by_key(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        Ok(self
            .tx
            .prepare_cached(&format!(
                "SELECT {LEDGER_COLS} FROM ledger WHERE idempotency_key = ?1"
            ))?
            .query_row(params![key], ledger_row)
            .optional()?)
    }

    pub fn balance(&self, account_id: i64) -> Result<i64, StoreError> {
        Ok(self
            .tx
            .prepare_cached("SELECT COALESCE(SUM(amount), 0) FROM ledger WHERE account_id = ?1")?
            .query_row(params![account_id], |r| r.get(0))?)
    }

    /// Entries after `cursor`, oldest first, at most `limit`.
    pub fn ledger_since(
        &self,
        account_id: i64,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        let mut st = self.tx.prepare_cached(&format!(
            "SELECT {LEDGER_COLS} FROM ledger WHERE account_id = ?1 AND id > ?2
             ORDER BY id LIMIT ?3"
        ))?;
        let rows = st.query_map(params![account_id, cursor, limit], ledger_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    // ---- wallet log --------------------------------------------------------------------

    /// The last stored log entry of a device: (seq, hash, counter).
    pub fn chain_head(&self, device_id: i64) -> Result<Option<(u64, [u8; 32], u32)>, StoreError> {
        let t: Option<(i64, Vec<u8>, i64)> = self
            .tx
            .prepare_cached(
                "SELECT seq, hash, counter FROM wallet_log WHERE device_id = ?1
                 ORDER BY seq DESC LIMIT 1",
            )?
            .query_row(params![device_id], |r| {
                Ok((r.get(0)?, r.get(1)?, r.get(2)?))
            })
            .optional()?;
        t.map(|(s, h, c)| {
            Ok((
                u64::try_from(s).map_err(|_| StoreError::Corrupt("seq"))?,
                arr(h, "log hash")?,
                u32_of(c, "counter")?,
            ))
        })
        .transpose()
    }

    pub fn log_hash_at(&self, device_id: i64, seq: u64) -> Result<Option<[u8; 32]>, StoreError> {
        let seq = i64::try_from(seq).unwrap_or(i64::MAX);
        let h: Option<Vec<u8>> = self
            .tx
            .prepare_cached("SELECT hash FROM wallet_log WHERE device_id = ?1 AND seq = ?2")?
            .query_row(params![device_id, seq], |r| r.get(0))
            .optional()?;
        h.map(|h| arr(h, "log hash")).transpose()
    }

    pub fn insert_log(
        &self,
        device_id: i64,
        seq: u64,
        hash: &[u8; 32],
        counter: u32,
        encoded: &[u8],
    ) -> Result<(), StoreError> {
        let seq = i64::try_from(seq).map_err(|_| StoreError::Corrupt("seq"))?;
        self.tx
            .prepare_cached(
                "INSERT INTO wallet_log (device_id, seq, hash, counter, encoded)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![device_id, seq, &hash[..], counter, encoded])?;
        Ok(())
    }

    /// Stored log entries from `from_seq` on: (seq, encoding).
    pub fn log_from(
        &self,
        device_id: i64,
        from_seq: u64,
        limit: i64,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        let from = i64::try_from(from_seq).unwrap_or(i64::MAX);
        let mut st = self.tx.prepare_cached(
            "SELECT seq, encoded FROM wallet_log WHERE device_id = ?1 AND seq >= ?2
             ORDER BY seq LIMIT ?3",
        )?;
        let rows = st.query_map(params![device_id, from, limit], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
        })?;
        let mut out = Vec::new();
        for r in rows {
            let (s, e) = r?;
            out.push((u64::try_from(s).map_err(|_| StoreError::Corrupt("seq"))?, e));
        }
        Ok(out)
    }

    // ---- top-up and the sandbox gateway ------------------------------------------------

    fn intent_from(r: &rusqlite::Row<'_>) -> rusqlite::Result<Intent> {
        Ok(Intent {
            id: r.get(0)?,
            account_id: r.get(1)?,
            amount: r.get(2)?,
            idempotency_key: r.get(3)?,
            gateway_token: r.get(4)?,
            created_at: r.get(5)?,
            expires_at: r.get(6)?,
        })
    }

    pub fn intent_by_key(&self, account_id: i64, key: &str) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, account_id, amount, idempotency_key, gateway_token, created_at,
                        expires_at
                 FROM topup_intents WHERE account_id = ?1 AND idempotency_key = ?2",
                params![account_id, key],
                Self::intent_from,
            )
            .optional()?)
    }

    pub fn intent(&self, id: &str) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, account_id, amount, idempotency_key, gateway_token, created_at,
                        expires_at
                 FROM topup_intents WHERE id = ?1",
                params![id],
                Self::intent_from,
            )
            .optional()?)
    }

    pub fn intent_by_token(&self, token: &str) -> Result<Option<Intent>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT id, account_id, amount, idempotency_key, gateway_token, created_at,
                        expires_at
                 FROM topup_intents WHERE gateway_token = ?1",
                params![token],
                Self::intent_from,
            )
            .optional()?)
    }

    pub fn insert_intent(&self, i: &Intent) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO topup_intents
                (id, account_id, amount, idempotency_key, gateway_token, created_at, expires_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                i.id,
                i.account_id,
                i.amount,
                i.idempotency_key,
                i.gateway_token,
                i.created_at,
                i.expires_at
            ],
        )?;
        Ok(())
    }

    pub fn insert_gateway_payment(
        &self,
        token: &str,
        amount: i64,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO gateway_payments (token, amount, status, created_at, expires_at)
             VALUES (?1, ?2, 'pending', ?3, ?4)",
            params![token, amount, now, expires_at],
        )?;
        Ok(())
    }

    pub fn gateway_payment(&self, token: &str) -> Result<Option<GatewayPayment>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT token, amount, status, ref_id, expires_at, verified_at
                 FROM gateway_payments WHERE token = ?1",
                params![token],
                |r| {
                    Ok(GatewayPayment {
                        token: r.get(0)?,
                        amount: r.get(1)?,
                        status: r.get(2)?,
                        ref_id: r.get(3)?,
                        expires_at: r.get(4)?,
                        verified_at: r.get(5)?,
                    })
                },
            )
            .optional()?)
    }

    /// Moves a pending payment to `paid` (with a reference id) or `cancelled`; false if it was
    /// not pending.
    pub fn gateway_settle(
        &self,
        token: &str,
        status: &str,
        ref_id: Option<&str>,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE gateway_payments SET status = ?2, ref_id = ?3, paid_at = ?4
             WHERE token = ?1 AND status = 'pending'",
            params![token, status, ref_id, now],
        )?;
        Ok(n == 1)
    }

    /// Payments the gateway reports paid that the merchant has not verified yet.
    pub fn paid_unverified(&self) -> Result<Vec<String>, StoreError> {
        let mut st = self.tx.prepare(
            "SELECT token FROM gateway_payments WHERE status = 'paid' AND verified_at IS NULL
             ORDER BY paid_at",
        )?;
        let rows = st.query_map([], |r| r.get::<_, String>(0))?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    pub fn gateway_mark_verified(&self, token: &str, now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE gateway_payments SET verified_at = ?2 WHERE token = ?1 AND verified_at IS NULL",
            params![token, now],
        )?;
        Ok(())
    }

    // ---- validators, batches, bundles --------------------------------------------------

    pub fn upsert_validator(&self, id: u32, key: &[u8], now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO validators (id, public_key, registered_at) VALUES (?1, ?2, ?3)
             ON CONFLICT (id) DO UPDATE SET public_key = excluded.public_key,
                                            registered_at = excluded.registered_at",
            params![id, key, now],
        )?;
        Ok(())
    }

    pub fn validator_key(&self, id: u32) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .tx
            .query_row(
                "SELECT public_key FROM validators WHERE id = ?1",
                params![id],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// A processed batch: (validator id, body hash, stored response JSON).
    pub fn batch(&self, id: &[u8; 16]) -> Result<Option<(u32, Vec<u8>, String)>, StoreError> {
        let t: Option<(i64, Vec<u8>, String)> = self
            .tx
            .query_row(
                "SELECT validator_id, body_hash, response FROM batches WHERE batch_id = ?1",
                params![&id[..]],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        t.map(|(v, h, r)| Ok((u32_of(v, "validator id")?, h, r)))
            .transpose()
    }

    pub fn insert_batch(
        &self,
        id: &[u8; 16],
        validator_id: u32,
        body_hash: &[u8; 32],
        response: &str,
        now: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO batches (batch_id, validator_id, body_hash, response, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![&id[..], validator_id, &body_hash[..], response, now],
        )?;
        Ok(())
    }

    /// Revoked pseudonyms that may still hold an unexpired certificate at `now`, sorted.
    pub fn deny_list(&self, now: i64) -> Result<Vec<[u8; 16]>, StoreError> {
        let mut st = self.tx.prepare_cached(
            "SELECT r.pseudonym FROM revocations r
             WHERE EXISTS (SELECT 1 FROM certificates c
                           WHERE c.device_id = r.device_id AND c.valid_until >= ?1)
             ORDER BY r.pseudonym",
        )?;
        let rows = st.query_map(params![now], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = Vec::new();
        for r in rows {
            out.push(arr(r?, "pseudonym")?);
        }
        Ok(out)
    }

    pub fn latest_bundle(&self) -> Result<Option<Bundle>, StoreError> {
        let t: Option<(i64, Vec<u8>, Vec<u8>)> = self
            .tx
            .query_row(
                "SELECT version, content_hash, encoded FROM config_bundles
                 ORDER BY version DESC LIMIT 1",
                [],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        t.map(|(v, content_hash, encoded)| {
            Ok(Bundle {
                version: u64::try_from(v).map_err(|_| StoreError::Corrupt("bundle version"))?,
                content_hash,
                encoded,
            })
        })
        .transpose()
    }

    pub fn insert_bundle(
        &self,
        version: u64,
        content_hash: &[u8; 32],
        encoded: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let v = i64::try_from(version).map_err(|_| StoreError::Corrupt("bundle version"))?;
        self.tx.execute(
            "INSERT INTO config_bundles (version, content_hash, encoded, issued_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![v, &content_hash[..], encoded, now],
        )?;
        Ok(())
    }

    // ---- audit -------------------------------------------------------------------------

    /// Checks the ledger invariants.
    pub fn audit(&self) -> Result<AuditReport, StoreError> {
        let q = |sql: &str| -> Result<i64, StoreError> {
            Ok(self.tx.query_row(sql, [], |r| r.get::<_, i64>(0))?)
        };
        let accounts = q("SELECT COUNT(*) FROM accounts")?;
        let ledger_entries = q("SELECT COUNT(*) FROM ledger")?;
        let taps = q("SELECT COUNT(*) FROM taps")?;
        let ledger_total = q("SELECT COALESCE(SUM(amount), 0) FROM ledger")?;
        let balances_total = q("SELECT COALESCE(SUM(b), 0) FROM
                (SELECT (SELECT COALESCE(SUM(amount), 0) FROM ledger l
                         WHERE l.account_id = a.id) AS b FROM accounts a)")?;
        let taps_without_charge = q("SELECT COUNT(*) FROM taps t WHERE NOT EXISTS
                (SELECT 1 FROM ledger l WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter
                   AND l.kind = 'fare')")?;
        let taps_negative_charge = q("SELECT COUNT(*) FROM (SELECT SUM(amount) AS s FROM ledger
                WHERE pseudonym IS NOT NULL GROUP BY pseudonym, counter) WHERE s > 0")?;
        let orphan_fare_entries = q("SELECT COUNT(*) FROM ledger l WHERE l.kind IN
                ('fare', 'fare_adjustment') AND NOT EXISTS (SELECT 1 FROM taps t
                WHERE t.pseudonym = l.pseudonym AND t.counter = l.counter)")?;
        let intents_credited_twice = q("SELECT COUNT(*) FROM (SELECT intent_id FROM ledger
                WHERE kind = 'topup' GROUP BY intent_id HAVING COUNT(*) > 1)")?;
        let cert_totals_mismatched = q("SELECT COUNT(*) FROM
                (SELECT cert_hash, CAST(TOTAL(MAX(authorized, 0)) AS INTEGER) AS s FROM taps
                 GROUP BY cert_hash) t
                FULL OUTER JOIN cert_usage u ON u.cert_hash = t.cert_hash
                WHERE t.s IS NOT u.authorized")?;
        let ok = ledger_total == balances_total
            && taps_without_charge == 0
            && taps_negative_charge == 0
            && orphan_fare_entries == 0
            && intents_credited_twice == 0
            && cert_totals_mismatched == 0;
        Ok(AuditReport {
            accounts,
            ledger_entries,
            taps,
            ledger_total,
            balances_total,
            taps_without_charge,
            taps_negative_charge,
            orphan_fare_entries,
            intents_credited_twice,
            cert_totals_mismatched,
            ok,
        })
    }
}

type DeviceTuple = (i64, i64, Vec<u8>, Vec<u8>, i64);
type CertTuple = (Vec<u8>, i64, i64, Vec<u8>, i64, i64, i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ledger_is_append_only_and_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let repo = Repo::open(&dir.path().join("db.sqlite")).unwrap();
        repo.write(|tx| -> Result<(), StoreError> {
            let a = tx.create_account("+989120000000", 1)?;
            let e = NewEntry {
                account_id: a,
                kind: "adjustment",
                amount: 5,
                idempotency_key: "k1",
                tap: None,
                intent_id: None,
                note: None,
                created_at: 1,
            };
            assert!(tx.insert_ledger(&e)?.is_some());
            assert!(tx.insert_ledger(&e)?.is_none());
            assert_eq!(tx.balance(a)?, 5);
            Ok(())
        })
        .unwrap();
        let upd = repo.write(|tx| -> Result<usize, StoreError> {
            Ok(tx.tx.execute("UPDATE ledger SET amount = 6", [])?)
        });
        assert!(upd.is_err());
        let del = repo.write(|tx| -> Result<usize, StoreError> {
            Ok(tx.tx.execute("DELETE FROM ledger", [])?)
        });
        assert!(del.is_err());
        // reopening keeps the schema and data
        drop(repo);
        let repo = Repo::open(&dir.path().join("db.sqlite")).unwrap();
        let audit = repo.read(|tx| tx.audit()).unwrap();
        assert!(audit.ok);
        assert_eq!(audit.ledger_total, 5);
    }

    /// A version-1 database (before the per-certificate totals) opens, is migrated in place and
    /// gets the totals of the taps it already holds.
    #[test]
    fn version_1_database_is_migrated_with_backfilled_totals() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("v1.sqlite");
        let (c1, c2) = ([1u8; 32], [2u8; 32]);
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(SCHEMA).unwrap();
            conn.pragma_update(None, "user_version", 1).unwrap();
            conn.execute_batch(
                "INSERT INTO accounts (id, phone, created_at) VALUES (1, '+989120000000', 1);
                 INSERT INTO devices (id, account_id, binding_key, pseudonym, created_at)
                     VALUES (1, 1, x'01', x'00000000000000000000000000000001', 1);",
            )
            .unwrap();
            for (counter, cert, authorized) in [(0, c1, 20_000), (1, c1, 30_000), (2, c2, 7)] {
                conn.execute(
                    "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                        fare_class, time, fare_day, line_id, authorized, proof, source,
                        reported_at)
                     VALUES (x'00000000000000000000000000000001', ?1, 1, 1, ?2, 0, 0, 0, 1, ?3,
                             x'00', 'wallet', 0)",
                    params![counter, &cert[..], authorized],
                )
                .unwrap();
            }
        }
        let repo = Repo::open(&path).unwrap();
        let version: i64 = repo
            .conn
            .lock()
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        repo.read(|tx| -> Result<(), StoreError> {
            assert_eq!(tx.cert_usage(&c1)?, 50_000);
            assert_eq!(tx.cert_usage(&c2)?, 7);
            assert_eq!(tx.cert_usage(&[3u8; 32])?, 0);
            assert_eq!(tx.audit()?.cert_totals_mismatched, 0);
            Ok(())
        })
        .unwrap();
        // the running total keeps counting from the back-filled value, and saturates
        repo.write(|tx| -> Result<(), StoreError> {
            assert_eq!(tx.add_cert_usage(&c1, 10_000)?, 60_000);
            assert_eq!(tx.add_cert_usage(&[3u8; 32], 5)?, 5);
            assert_eq!(tx.add_cert_usage(&[3u8; 32], i64::MAX)?, i64::MAX);
            assert_eq!(tx.add_cert_usage(&[3u8; 32], -9)?, i64::MAX);
            Ok(())
        })
        .unwrap();
        // reopening an up-to-date database changes nothing
        drop(repo);
        let repo = Repo::open(&path).unwrap();
        assert_eq!(repo.read(|tx| tx.cert_usage(&c1)).unwrap(), 60_000);
        // a newer schema is refused
        drop(repo);
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
        assert!(matches!(
            Repo::open(&path),
            Err(StoreError::SchemaTooNew { .. })
        ));
    }
}
