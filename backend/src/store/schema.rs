//! The backend's schema and its migrations, opened through `mancard_sql::open_database`.
//!
//! Version 1 is [`SCHEMA_V1`]; each later version is one step in [`BackendSchema::upgrade_from`].
//! A fresh database runs version 1 and then every step, so a fresh and an upgraded database
//! are the same by construction (and the migration test checks it).

use crate::error::StoreError;
use mancard_sql::{ConnectionInitializer, OpenError};
use rusqlite::{Connection, Transaction};

/// Schema version in `PRAGMA user_version`.
pub const SCHEMA_VERSION: u32 = 15;

/// Version 1 of the schema.
pub const SCHEMA_V1: &str = r#"
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

/// Version 3, protocol v2:
/// - every certificate has its own pseudonym (`certificates.pseudonym`, back-filled with the
///   device's one pseudonym for the certificates issued before); a pseudonym is looked up
///   through the certificate that carries it, and `devices.pseudonym` is only the device's
///   first one;
/// - a revocation is looked up by device (`revocations_device`);
/// - validators keep their operator, their issuer-signed certificate (none for those
///   registered before) and when they were put on the validator deny list;
/// - each device's tap chain head (`chain_heads`: next sequence number, certificate id and
///   link of the last entry, last counter), back-filled from the stored logs with no last link
///   (a v1 link is not a v2 link: the next proof under any certificate starts its chain) and
///   the last counter (counters keep increasing across the upgrade);
/// - a settled tap keeps its identity (`taps.tap_id`, the hash of what the phone signed;
///   none for the taps settled before), unique; taps are found by device (`taps_device`).
const MIGRATION_3: &str = r#"
ALTER TABLE certificates ADD COLUMN pseudonym BLOB;
UPDATE certificates SET pseudonym =
    (SELECT d.pseudonym FROM devices d WHERE d.id = certificates.device_id);
CREATE INDEX certificates_pseudonym ON certificates(pseudonym);
CREATE INDEX revocations_device ON revocations(device_id);
ALTER TABLE validators ADD COLUMN operator_id INTEGER NOT NULL DEFAULT 1;
ALTER TABLE validators ADD COLUMN certificate BLOB;
ALTER TABLE validators ADD COLUMN denied_at INTEGER;
CREATE TABLE chain_heads (
    device_id INTEGER PRIMARY KEY REFERENCES devices(id),
    next_seq INTEGER NOT NULL,
    last_cert BLOB,
    last_link BLOB,
    last_counter INTEGER
);
INSERT INTO chain_heads (device_id, next_seq, last_cert, last_link, last_counter)
    SELECT w.device_id, w.seq + 1, NULL, NULL, w.counter FROM wallet_log w
    WHERE w.seq = (SELECT MAX(x.seq) FROM wallet_log x WHERE x.device_id = w.device_id);
ALTER TABLE taps ADD COLUMN tap_id BLOB;
CREATE UNIQUE INDEX taps_tap_id ON taps(tap_id) WHERE tap_id IS NOT NULL;
CREATE INDEX taps_device ON taps(device_id, counter);
"#;

/// Version 4, settlement v2:
/// - a tap has a verdict state (`charged`; `pending`: a pass only the wallet reported;
///   `not_charged`: a torn tap whose gate stayed closed) with its reason, the first validator
///   that reported it (none: only the wallet did) and, for NFC, its challenge's id (torn
///   challenges are matched on it);
/// - `torn_challenges`: challenges a validator signed, sent, and got no valid answer to;
/// - `abuse_events`: one pass reported by several validators;
/// - `tap_verdicts`: the feed of every change of a tap's status or charge, read by the wallet;
/// - a certificate keeps its tap key (a provisioning retry gets the same certificate back) and
///   when a newer certificate of its device superseded it (its pseudonym is then deny-listed);
/// - a fraud case keeps its evidence bytes and how an operator resolved it;
/// - a certificate's running total counts its NFC authorizations only (recomputed): a phone
///   releases an expired pass's reservation, since it cannot know whether it was scanned.
const MIGRATION_4: &str = r#"
ALTER TABLE taps ADD COLUMN state TEXT NOT NULL DEFAULT 'charged';
ALTER TABLE taps ADD COLUMN state_reason TEXT;
ALTER TABLE taps ADD COLUMN validator_id INTEGER;
ALTER TABLE taps ADD COLUMN challenge_id BLOB;
CREATE INDEX taps_challenge ON taps(challenge_id) WHERE challenge_id IS NOT NULL;
CREATE TABLE torn_challenges (
    challenge_id BLOB PRIMARY KEY,
    validator_id INTEGER NOT NULL,
    time INTEGER NOT NULL,
    received_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE abuse_events (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    device_id INTEGER NOT NULL REFERENCES devices(id),
    pseudonym BLOB NOT NULL,
    counter INTEGER NOT NULL,
    kind TEXT NOT NULL,
    validator_id INTEGER NOT NULL,
    first_validator_id INTEGER NOT NULL,
    fare_day INTEGER NOT NULL,
    time INTEGER NOT NULL,
    created_at INTEGER NOT NULL,
    UNIQUE (pseudonym, counter, validator_id)
);
CREATE INDEX abuse_events_account_day ON abuse_events(account_id, fare_day);
CREATE TABLE tap_verdicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    device_id INTEGER NOT NULL REFERENCES devices(id),
    pseudonym BLOB NOT NULL,
    counter INTEGER NOT NULL,
    status TEXT NOT NULL,
    charged INTEGER NOT NULL,
    reason TEXT,
    time INTEGER NOT NULL,
    line_id INTEGER,
    created_at INTEGER NOT NULL
);
CREATE INDEX tap_verdicts_device ON tap_verdicts(device_id, id);
CREATE INDEX tap_verdicts_tap ON tap_verdicts(pseudonym, counter, id);
ALTER TABLE certificates ADD COLUMN tap_key BLOB;
ALTER TABLE certificates ADD COLUMN superseded_at INTEGER;
CREATE INDEX certificates_tap_key ON certificates(tap_key) WHERE tap_key IS NOT NULL;
ALTER TABLE fraud_cases ADD COLUMN evidence BLOB;
ALTER TABLE fraud_cases ADD COLUMN resolved_at INTEGER;
ALTER TABLE fraud_cases ADD COLUMN resolved_by TEXT;
ALTER TABLE fraud_cases ADD COLUMN resolution TEXT;
ALTER TABLE fraud_cases ADD COLUMN resolution_note TEXT;
CREATE INDEX fraud_cases_device ON fraud_cases(device_id);
DELETE FROM cert_usage;
INSERT INTO cert_usage (cert_hash, authorized)
    SELECT cert_hash, CAST(TOTAL(MAX(authorized, 0)) AS INTEGER) FROM taps
    WHERE substr(proof, 1, 1) = x'01' GROUP BY cert_hash;
"#;

/// Version 5 (issue #15, sessions): a session gets a public id (what the rider's session list
/// shows; never the token), a last-use time (idle expiry) and, once its device provisioned, the
/// device and binding key it is bound to. Per-phone code sends are paced by `otp_senders` (the
/// earliest time of the next send, GCRA). Phone numbers stored as `+0098…` (the old normalizer
/// kept the international prefix) become `+98…` unless that spelling already has an account.
const MIGRATION_5: &str = r#"
ALTER TABLE sessions ADD COLUMN public_id TEXT;
ALTER TABLE sessions ADD COLUMN last_used_at INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sessions ADD COLUMN device_id INTEGER REFERENCES devices(id);
ALTER TABLE sessions ADD COLUMN binding_key BLOB;
UPDATE sessions SET public_id = lower(hex(randomblob(16))), last_used_at = created_at;
CREATE UNIQUE INDEX sessions_public_id ON sessions(public_id);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE INDEX nonces_expiry ON nonces(expires_at);
CREATE INDEX otp_codes_expiry ON otp_codes(expires_at);
CREATE TABLE otp_senders (
    phone TEXT PRIMARY KEY,
    next_at INTEGER NOT NULL
);
UPDATE accounts SET phone = '+' || substr(phone, 4)
    WHERE phone LIKE '+0098%'
      AND NOT EXISTS (SELECT 1 FROM accounts b WHERE b.phone = '+' || substr(accounts.phone, 4));
"#;

/// Version 6 (issue #15, payment and SMS providers): filled in by the providers work.
///
/// The backend no longer keeps the gateway's records: `gateway_payments` becomes the
/// merchant's record of each payment at an outside gateway (its page, the verified reference,
/// trace number and masked card, settlement or reversal). A reference number is recorded on
/// one payment only. Old sandbox rows: a verified payment was credited (settled); an unverified
/// one was paid at the old in-backend sandbox gateway, which is gone: it becomes pending and
/// expires (sandbox data only).
const MIGRATION_6: &str = r#"
ALTER TABLE gateway_payments ADD COLUMN trace_no TEXT;
ALTER TABLE gateway_payments ADD COLUMN masked_pan TEXT;
ALTER TABLE gateway_payments ADD COLUMN payment_url TEXT;
ALTER TABLE gateway_payments ADD COLUMN reason TEXT;
ALTER TABLE gateway_payments ADD COLUMN settled_at INTEGER;
ALTER TABLE gateway_payments ADD COLUMN reversed_at INTEGER;
UPDATE gateway_payments SET status = 'settled', settled_at = verified_at
    WHERE status = 'paid' AND verified_at IS NOT NULL;
UPDATE gateway_payments SET status = 'pending', ref_id = NULL WHERE status = 'paid';
CREATE UNIQUE INDEX gateway_payments_ref ON gateway_payments(ref_id) WHERE ref_id IS NOT NULL;
CREATE INDEX gateway_payments_open ON gateway_payments(created_at)
    WHERE status IN ('pending', 'verified', 'reversing');
"#;

/// Version 7 (issue #15, operators and their audit log):
/// - `operator_log`: every admin request (refused ones too) and every operator's effect on
///   the books; append-only (triggers refuse UPDATE and DELETE) and chained by hash (each
///   row's `hash` is SHA-256 over the previous row's hash and its own fields), so an edit of
///   the file is detected by `mancard backend audit-log`;
/// - `adjustments`: every manual adjustment an operator asked for, and the two-person rule's
///   state (a pending one is not in the ledger; a second operator approves or rejects it;
///   only `pending` rows may change, and an approval never by the requester).
const MIGRATION_7: &str = r#"
CREATE TABLE operator_log (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    operator TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BLOB NOT NULL,
    hash BLOB NOT NULL UNIQUE
);
CREATE TRIGGER operator_log_no_update BEFORE UPDATE ON operator_log
    BEGIN SELECT RAISE(ABORT, 'the operator log is append-only'); END;
CREATE TRIGGER operator_log_no_delete BEFORE DELETE ON operator_log
    BEGIN SELECT RAISE(ABORT, 'the operator log is append-only'); END;
CREATE TABLE adjustments (
    id INTEGER PRIMARY KEY,
    account_id INTEGER NOT NULL REFERENCES accounts(id),
    amount INTEGER NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'pending', 'approved', 'rejected')),
    requested_by TEXT NOT NULL,
    requested_at INTEGER NOT NULL,
    decided_by TEXT,
    decided_at INTEGER,
    decision_note TEXT,
    ledger_entry_id INTEGER REFERENCES ledger(id),
    CHECK (status <> 'approved' OR (decided_by IS NOT NULL AND decided_by <> requested_by)),
    CHECK ((status IN ('applied', 'approved')) = (ledger_entry_id IS NOT NULL))
);
CREATE INDEX adjustments_requester ON adjustments(requested_by, requested_at);
CREATE INDEX adjustments_pending ON adjustments(status) WHERE status = 'pending';
CREATE TRIGGER adjustments_decided_once BEFORE UPDATE ON adjustments
    WHEN OLD.status <> 'pending' OR NEW.status NOT IN ('approved', 'rejected')
      OR NEW.account_id IS NOT OLD.account_id OR NEW.amount IS NOT OLD.amount
      OR NEW.requested_by IS NOT OLD.requested_by
      OR NEW.idempotency_key IS NOT OLD.idempotency_key
    BEGIN SELECT RAISE(ABORT, 'an adjustment is decided once'); END;
CREATE TRIGGER adjustments_no_delete BEFORE DELETE ON adjustments
    BEGIN SELECT RAISE(ABORT, 'adjustments are never deleted'); END;
"#;

/// Version 8 (issue #15, a stranger cannot lock a rider out): a code belongs to the request
/// that asked for it (`request_hash`, the SHA-256 of the request id its requester got back),
/// and a guess counts only against the code of the request it names. Code sends are paced per
/// number (`otp_senders`) and per number and client address (`otp_pair_senders`). Codes
/// stored before this version have no request and can no longer be used (they expire within
/// minutes).
const MIGRATION_8: &str = r#"
ALTER TABLE otp_codes ADD COLUMN request_hash BLOB;
CREATE INDEX otp_codes_request ON otp_codes(request_hash);
CREATE TABLE otp_pair_senders (
    phone TEXT NOT NULL,
    address TEXT NOT NULL,
    next_at INTEGER NOT NULL,
    PRIMARY KEY (phone, address)
);
"#;

/// Version 9 (issue #16, several backend instances on one database): leases over the
/// background jobs, so that exactly one instance runs each (`features::jobs`).
const MIGRATION_9: &str = r#"
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at INTEGER NOT NULL
);
"#;

/// Version 10 (issue #16, feeds in commit order): a per-account counter every transaction that
/// appends to the account's ledger or verdict feed bumps first (on PostgreSQL; SQLite's single
/// writer already commits in id order). Appends to one account's feeds then commit one after
/// another in id order, so a wallet's cursor (`id > cursor`) never passes an entry that
/// commits later with a smaller id.
const MIGRATION_10: &str = r#"
ALTER TABLE accounts ADD COLUMN feed_seq INTEGER NOT NULL DEFAULT 0;
"#;

/// Version 11 (issue #16, no deny-list scan a sync): a counter every write that revokes a
/// device, lifts a revocation, supersedes a certificate or denies a validator bumps, so an
/// instance knows its last config bundle is still current from one row instead of reading
/// every certificate and revocation (`Engine::bundle_in`); and an index of superseded
/// certificates, so that the deny list, when it is built, reads the listed certificates
/// rather than all of them.
const MIGRATION_11: &str = r#"
CREATE TABLE bundle_inputs (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    generation INTEGER NOT NULL
);
INSERT INTO bundle_inputs (id, generation) VALUES (1, 0);
CREATE INDEX certificates_superseded ON certificates(valid_until) WHERE superseded_at IS NOT NULL;
"#;

/// Version 12 (issue #16, a rolling upgrade): the database itself bumps `bundle_inputs`
/// whenever what the deny lists read changes, so a write by any build counts:
/// - a revocation added, changed or lifted;
/// - a certificate added (always: a revocation of its device may commit beside it, unseen),
///   or changed (supersession, pseudonym, expiry, device) or deleted while it is listed
///   before or after: superseded, or of a revoked device;
/// - a validator added denied, its denial set or cleared, or a denied validator changed or
///   deleted.
///
/// Before, the store's methods bumped it, and an instance of a build before version 11,
/// still running while the database was upgraded, revoked without bumping: the other
/// instances served a bundle without that revocation for up to a minute. The step bumps it
/// once itself, so no bundle built before it is served on.
const MIGRATION_12: &str = r#"
CREATE TRIGGER revocations_added_bundle AFTER INSERT ON revocations
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER revocations_changed_bundle AFTER UPDATE ON revocations
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER revocations_lifted_bundle AFTER DELETE ON revocations
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER certificates_added_bundle AFTER INSERT ON certificates
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER certificates_changed_bundle
AFTER UPDATE OF superseded_at, pseudonym, valid_until, device_id ON certificates
WHEN (OLD.superseded_at IS NOT NEW.superseded_at OR OLD.pseudonym IS NOT NEW.pseudonym
      OR OLD.valid_until IS NOT NEW.valid_until OR OLD.device_id IS NOT NEW.device_id)
 AND (OLD.superseded_at IS NOT NULL OR NEW.superseded_at IS NOT NULL
      OR EXISTS (SELECT 1 FROM revocations r WHERE r.device_id IN (OLD.device_id, NEW.device_id)))
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER certificates_deleted_bundle AFTER DELETE ON certificates
WHEN OLD.superseded_at IS NOT NULL
  OR EXISTS (SELECT 1 FROM revocations r WHERE r.device_id = OLD.device_id)
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER validators_added_bundle AFTER INSERT ON validators
WHEN NEW.denied_at IS NOT NULL
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER validators_changed_bundle AFTER UPDATE OF denied_at, id ON validators
WHEN OLD.denied_at IS NOT NEW.denied_at OR (OLD.id IS NOT NEW.id AND OLD.denied_at IS NOT NULL)
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
CREATE TRIGGER validators_deleted_bundle AFTER DELETE ON validators
WHEN OLD.denied_at IS NOT NULL
BEGIN UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1; END;
UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;
"#;

/// Version 13 (issue #16, a fare day's state kept with the day): the rating state a fare day
/// reached (`through`: the last ride it covers, in rating order: time, pseudonym, counter;
/// `spent`: what its charged rides cost;
/// its last transfer origin in the day, if any; the tariff it was rated under), written by
/// each settlement that re-rates the day. A ride arriving after `through` is then rated from
/// that state, reading only the rides after it instead of the whole day (a cost that grew
/// with the square of a day's rides).
///
/// The database drops a day's state whenever the rides it covers may have changed, whoever
/// writes (an older build through a rolling upgrade, a hand fix): a ride's rated columns
/// changed, a ride deleted, or a ride added at or before `through` in rating order by a
/// writer that does not rate it itself. `taps.stored_by` names the schema version of the
/// build that stored a tap; a build from this version on leaves it set and rates its own
/// inserts with the day (`Settling::finish` reads all of a day whose changed rides do not all
/// come after its state), so the trigger costs its inserts nothing. A day without state is
/// rated from all its rides, as before, and gets its state back.
const MIGRATION_13: &str = r#"
CREATE TABLE fare_days (
    account_id INTEGER NOT NULL,
    fare_day INTEGER NOT NULL,
    through INTEGER NOT NULL,
    through_pseudonym BLOB NOT NULL,
    through_counter INTEGER NOT NULL,
    spent INTEGER NOT NULL,
    last_time INTEGER,
    last_line INTEGER,
    tariff INTEGER NOT NULL,
    PRIMARY KEY (account_id, fare_day)
);
ALTER TABLE taps ADD COLUMN stored_by INTEGER;
CREATE TRIGGER taps_added_fare_day AFTER INSERT ON taps WHEN NEW.stored_by IS NULL
BEGIN
    DELETE FROM fare_days WHERE account_id = NEW.account_id AND fare_day = NEW.fare_day
       AND (through, through_pseudonym, through_counter)
           >= (NEW.time, NEW.pseudonym, NEW.counter);
END;
CREATE TRIGGER taps_changed_fare_day
AFTER UPDATE OF state, line_id, account_id, fare_day, time, authorized, fare_class ON taps
WHEN OLD.state IS NOT NEW.state OR OLD.line_id IS NOT NEW.line_id
  OR OLD.account_id IS NOT NEW.account_id OR OLD.fare_day IS NOT NEW.fare_day
  OR OLD.time IS NOT NEW.time OR OLD.authorized IS NOT NEW.authorized
  OR OLD.fare_class IS NOT NEW.fare_class
BEGIN
    DELETE FROM fare_days WHERE (account_id = OLD.account_id AND fare_day = OLD.fare_day)
       OR (account_id = NEW.account_id AND fare_day = NEW.fare_day);
END;
CREATE TRIGGER taps_deleted_fare_day AFTER DELETE ON taps
BEGIN
    DELETE FROM fare_days WHERE account_id = OLD.account_id AND fare_day = OLD.fare_day;
END;
"#;

/// Version 14 changes nothing on SQLite. Its PostgreSQL twin makes every write of an
/// account's rows a write of the account's row (and of a challenge's taps, of a row of the
/// challenge), so money writes may run at REPEATABLE READ there (`schema_pg::guards::PG_STEP_14`);
/// SQLite's one writer at a time needs no such thing.
const MIGRATION_14: &str = "-- nothing on SQLite (see schema_pg, version 14)";

/// Version 15 changes nothing on SQLite either: its PostgreSQL twin rewrites the statements
/// of version 14's account touches so that their plans cannot turn into a scan of every
/// account (`schema_pg::guards::PG_STEP_15`).
const MIGRATION_15: &str = "-- nothing on SQLite (see schema_pg, version 15)";

/// The backend's [`ConnectionInitializer`].
///
/// SQLite runs in WAL mode with `synchronous=FULL`: a request is answered only after its
/// transaction has committed durably. Foreign keys are enforced; a locked database is waited
/// for up to 10 s.
#[derive(Debug, Clone, Copy, Default)]
pub struct BackendSchema;

impl ConnectionInitializer for BackendSchema {
    type Error = StoreError;
    const NAME: &'static str = "backend";
    const END_VERSION: u32 = SCHEMA_VERSION;

    fn prepare(&self, conn: &Connection) -> Result<(), StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        Ok(())
    }

    fn init(&self, tx: &Transaction<'_>) -> Result<(), StoreError> {
        tx.execute_batch(SCHEMA_V1)?;
        for v in 1..SCHEMA_VERSION {
            self.upgrade_from(tx, v)?;
        }
        Ok(())
    }

    fn upgrade_from(&self, tx: &Transaction<'_>, version: u32) -> Result<(), StoreError> {
        match version {
            1 => tx.execute_batch(MIGRATION_2)?,
            2 => tx.execute_batch(MIGRATION_3)?,
            3 => tx.execute_batch(MIGRATION_4)?,
            4 => tx.execute_batch(MIGRATION_5)?,
            5 => tx.execute_batch(MIGRATION_6)?,
            6 => tx.execute_batch(MIGRATION_7)?,
            7 => tx.execute_batch(MIGRATION_8)?,
            8 => tx.execute_batch(MIGRATION_9)?,
            9 => tx.execute_batch(MIGRATION_10)?,
            10 => tx.execute_batch(MIGRATION_11)?,
            11 => tx.execute_batch(MIGRATION_12)?,
            12 => tx.execute_batch(MIGRATION_13)?,
            13 => tx.execute_batch(MIGRATION_14)?,
            14 => tx.execute_batch(MIGRATION_15)?,
            v => {
                return Err(OpenError::Corrupt(format!(
                    "no migration from backend schema version {v}"
                ))
                .into())
            }
        }
        Ok(())
    }
}
