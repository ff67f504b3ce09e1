//! The backend's PostgreSQL schema and its runner (issue #16).
//!
//! PostgreSQL starts at a baseline equal to SQLite's version 9 ([`PG_BASELINE`]): no legacy
//! data needs the back-fills of the SQLite steps. Every later SQLite step gets its PostgreSQL
//! twin in [`PG_STEPS`] under the same version number, so one version number describes both.
//! The version is the one row of `schema_version`; the runner holds a transaction-level
//! advisory lock, so instances starting together migrate once, and it refuses a database
//! newer than this build.
//!
//! Type mapping: SQLite `INTEGER` → `BIGINT`, `BLOB` → `BYTEA`; ids the database assigns →
//! `BIGINT GENERATED ALWAYS AS IDENTITY`; `sessions.seq` replaces SQLite's implicit rowid (the
//! order sessions were made in); the append-only triggers raise from one plpgsql function and
//! also refuse TRUNCATE (which bypasses row triggers).

use super::db::pg::{PgPool, PgTx};
use super::db::Conn;
use super::SCHEMA_VERSION;

mod guards;
#[cfg(test)]
mod tests;
use crate::error::StoreError;

/// The version [`PG_BASELINE`] is.
pub const PG_BASELINE_VERSION: u32 = 9;

/// PostgreSQL steps after the baseline: `(version, SQL)`, the twins of SQLite's steps.
pub const PG_STEPS: &[(u32, &str)] = &[
    (
        10,
        "ALTER TABLE accounts ADD COLUMN feed_seq BIGINT NOT NULL DEFAULT 0;",
    ),
    (
        11,
        "CREATE TABLE bundle_inputs (
             id BIGINT PRIMARY KEY CHECK (id = 1),
             generation BIGINT NOT NULL
         );
         INSERT INTO bundle_inputs (id, generation) VALUES (1, 0);
         CREATE INDEX certificates_superseded ON certificates(valid_until)
             WHERE superseded_at IS NOT NULL;",
    ),
    (
        12,
        // PostgreSQL allows no subquery in a trigger's WHEN: the certificates' condition is
        // in its function; TRUNCATE skips row triggers, so it has its own
        "CREATE FUNCTION mancard_bundle_inputs_changed() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;
             RETURN NULL;
         END;
         $$;
         CREATE FUNCTION mancard_certificate_listed_changed() RETURNS trigger LANGUAGE plpgsql AS $$
         DECLARE
             was BOOLEAN;
             is_now BOOLEAN;
         BEGIN
             -- an insert always: a revocation of its device may commit beside it, unseen
             IF TG_OP = 'INSERT' THEN
                 UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;
                 RETURN NULL;
             END IF;
             was := OLD.superseded_at IS NOT NULL
                 OR EXISTS (SELECT 1 FROM revocations r WHERE r.device_id = OLD.device_id);
             IF TG_OP = 'DELETE' THEN
                 IF was THEN
                     UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;
                 END IF;
                 RETURN NULL;
             END IF;
             is_now := NEW.superseded_at IS NOT NULL
                 OR EXISTS (SELECT 1 FROM revocations r WHERE r.device_id = NEW.device_id);
             IF (was OR is_now) AND (OLD.superseded_at IS DISTINCT FROM NEW.superseded_at
                 OR OLD.pseudonym IS DISTINCT FROM NEW.pseudonym
                 OR OLD.valid_until IS DISTINCT FROM NEW.valid_until
                 OR OLD.device_id IS DISTINCT FROM NEW.device_id) THEN
                 UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;
             END IF;
             RETURN NULL;
         END;
         $$;
         CREATE TRIGGER revocations_bundle AFTER INSERT OR UPDATE OR DELETE ON revocations
             FOR EACH ROW EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER revocations_truncated_bundle AFTER TRUNCATE ON revocations
             FOR EACH STATEMENT EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER certificates_bundle
             AFTER INSERT OR DELETE OR UPDATE OF superseded_at, pseudonym, valid_until, device_id
             ON certificates
             FOR EACH ROW EXECUTE FUNCTION mancard_certificate_listed_changed();
         CREATE TRIGGER certificates_truncated_bundle AFTER TRUNCATE ON certificates
             FOR EACH STATEMENT EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER validators_added_bundle AFTER INSERT ON validators
             FOR EACH ROW WHEN (NEW.denied_at IS NOT NULL)
             EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER validators_changed_bundle AFTER UPDATE OF denied_at, id ON validators
             FOR EACH ROW WHEN (OLD.denied_at IS DISTINCT FROM NEW.denied_at
                                OR (OLD.id IS DISTINCT FROM NEW.id AND OLD.denied_at IS NOT NULL))
             EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER validators_deleted_bundle AFTER DELETE ON validators
             FOR EACH ROW WHEN (OLD.denied_at IS NOT NULL)
             EXECUTE FUNCTION mancard_bundle_inputs_changed();
         CREATE TRIGGER validators_truncated_bundle AFTER TRUNCATE ON validators
             FOR EACH STATEMENT EXECUTE FUNCTION mancard_bundle_inputs_changed();
         UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1;",
    ),
    (
        13,
        // row triggers filtered by WHEN (evaluated before any function call, so this build's
        // inserts and its updates of other columns cost next to nothing); TRUNCATE skips row
        // triggers
        "ALTER TABLE taps ADD COLUMN stored_by BIGINT;
         CREATE TABLE fare_days (
             account_id BIGINT NOT NULL,
             fare_day BIGINT NOT NULL,
             through BIGINT NOT NULL,
             through_pseudonym BYTEA NOT NULL,
             through_counter BIGINT NOT NULL,
             spent BIGINT NOT NULL,
             last_time BIGINT,
             last_line BIGINT,
             tariff BIGINT NOT NULL,
             PRIMARY KEY (account_id, fare_day)
         );
         CREATE FUNCTION mancard_taps_added_fare_day() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             DELETE FROM fare_days
              WHERE account_id = NEW.account_id AND fare_day = NEW.fare_day
                AND (through, through_pseudonym, through_counter)
                    >= (NEW.time, NEW.pseudonym, NEW.counter);
             RETURN NULL;
         END;
         $$;
         CREATE FUNCTION mancard_taps_changed_fare_day() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
             IF TG_OP = 'TRUNCATE' THEN
                 DELETE FROM fare_days;
                 RETURN NULL;
             END IF;
             DELETE FROM fare_days WHERE account_id = OLD.account_id AND fare_day = OLD.fare_day;
             IF TG_OP = 'UPDATE' THEN
                 DELETE FROM fare_days
                  WHERE account_id = NEW.account_id AND fare_day = NEW.fare_day;
             END IF;
             RETURN NULL;
         END;
         $$;
         CREATE TRIGGER taps_added_fare_day AFTER INSERT ON taps
             FOR EACH ROW WHEN (NEW.stored_by IS NULL)
             EXECUTE FUNCTION mancard_taps_added_fare_day();
         CREATE TRIGGER taps_changed_fare_day AFTER UPDATE ON taps
             FOR EACH ROW WHEN (OLD.state IS DISTINCT FROM NEW.state
                 OR OLD.line_id IS DISTINCT FROM NEW.line_id
                 OR OLD.account_id IS DISTINCT FROM NEW.account_id
                 OR OLD.fare_day IS DISTINCT FROM NEW.fare_day
                 OR OLD.time IS DISTINCT FROM NEW.time
                 OR OLD.authorized IS DISTINCT FROM NEW.authorized
                 OR OLD.fare_class IS DISTINCT FROM NEW.fare_class)
             EXECUTE FUNCTION mancard_taps_changed_fare_day();
         CREATE TRIGGER taps_deleted_fare_day AFTER DELETE ON taps
             FOR EACH ROW EXECUTE FUNCTION mancard_taps_changed_fare_day();
         CREATE TRIGGER taps_truncated_fare_day AFTER TRUNCATE ON taps
             FOR EACH STATEMENT EXECUTE FUNCTION mancard_taps_changed_fare_day();",
    ),
    (14, guards::PG_STEP_14),
    (15, guards::PG_STEP_15),
];

/// The arbitrary key of the advisory lock the runner holds.
const MIGRATION_LOCK: i64 = 0x6d61_6e63_6172_6401;

/// The whole schema at [`PG_BASELINE_VERSION`].
pub const PG_BASELINE: &str = r#"
CREATE FUNCTION mancard_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '%', TG_ARGV[0] USING ERRCODE = 'restrict_violation';
END;
$$;
CREATE TABLE accounts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone TEXT NOT NULL UNIQUE,
    fare_class BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL
);
CREATE TABLE otp_codes (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    phone TEXT NOT NULL,
    code_hash BYTEA NOT NULL,
    sandbox_code TEXT,
    attempts BIGINT NOT NULL DEFAULT 0,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    request_hash BYTEA
);
CREATE INDEX otp_codes_phone ON otp_codes(phone, created_at);
CREATE INDEX otp_codes_expiry ON otp_codes(expires_at);
CREATE INDEX otp_codes_request ON otp_codes(request_hash);
CREATE TABLE otp_senders (
    phone TEXT PRIMARY KEY,
    next_at BIGINT NOT NULL
);
CREATE TABLE otp_pair_senders (
    phone TEXT NOT NULL,
    address TEXT NOT NULL,
    next_at BIGINT NOT NULL,
    PRIMARY KEY (phone, address)
);
CREATE TABLE devices (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    binding_key BYTEA NOT NULL UNIQUE,
    pseudonym BYTEA NOT NULL UNIQUE,
    created_at BIGINT NOT NULL
);
CREATE INDEX devices_account ON devices(account_id);
CREATE TABLE sessions (
    token_hash BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    public_id TEXT,
    last_used_at BIGINT NOT NULL DEFAULT 0,
    device_id BIGINT REFERENCES devices(id),
    binding_key BYTEA,
    seq BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE UNIQUE INDEX sessions_public_id ON sessions(public_id);
CREATE INDEX sessions_account ON sessions(account_id);
CREATE INDEX sessions_expiry ON sessions(expires_at);
CREATE TABLE nonces (
    nonce BYTEA PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX nonces_expiry ON nonces(expires_at);
CREATE TABLE certificates (
    hash BYTEA PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    encoded BYTEA NOT NULL,
    counter_first BIGINT NOT NULL,
    counter_last BIGINT NOT NULL,
    valid_until BIGINT NOT NULL,
    issued_at BIGINT NOT NULL,
    pseudonym BYTEA,
    tap_key BYTEA,
    superseded_at BIGINT
);
CREATE INDEX certificates_device ON certificates(device_id, counter_last);
CREATE INDEX certificates_pseudonym ON certificates(pseudonym);
CREATE INDEX certificates_tap_key ON certificates(tap_key) WHERE tap_key IS NOT NULL;
CREATE TABLE revocations (
    pseudonym BYTEA PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    reason TEXT NOT NULL,
    revoked_at BIGINT NOT NULL
);
CREATE INDEX revocations_device ON revocations(device_id);
CREATE TABLE fraud_cases (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    device_id BIGINT NOT NULL REFERENCES devices(id),
    pseudonym BYTEA NOT NULL,
    kind TEXT NOT NULL,
    counter BIGINT,
    detail TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    evidence BYTEA,
    resolved_at BIGINT,
    resolved_by TEXT,
    resolution TEXT,
    resolution_note TEXT
);
CREATE INDEX fraud_cases_device ON fraud_cases(device_id);
CREATE TABLE taps (
    pseudonym BYTEA NOT NULL,
    counter BIGINT NOT NULL,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    device_id BIGINT NOT NULL REFERENCES devices(id),
    cert_hash BYTEA NOT NULL,
    fare_class BIGINT NOT NULL,
    time BIGINT NOT NULL,
    fare_day BIGINT NOT NULL,
    line_id BIGINT,
    authorized BIGINT NOT NULL,
    proof BYTEA NOT NULL,
    source TEXT NOT NULL,
    reported_at BIGINT NOT NULL,
    tap_id BYTEA,
    state TEXT NOT NULL DEFAULT 'charged',
    state_reason TEXT,
    validator_id BIGINT,
    challenge_id BYTEA,
    PRIMARY KEY (pseudonym, counter)
);
CREATE INDEX taps_account_day ON taps(account_id, fare_day, time);
CREATE UNIQUE INDEX taps_tap_id ON taps(tap_id) WHERE tap_id IS NOT NULL;
CREATE INDEX taps_device ON taps(device_id, counter);
CREATE INDEX taps_challenge ON taps(challenge_id) WHERE challenge_id IS NOT NULL;
CREATE TABLE wallet_log (
    device_id BIGINT NOT NULL REFERENCES devices(id),
    seq BIGINT NOT NULL,
    hash BYTEA NOT NULL,
    counter BIGINT NOT NULL,
    encoded BYTEA NOT NULL,
    PRIMARY KEY (device_id, seq)
);
CREATE TABLE cert_usage (
    cert_hash BYTEA PRIMARY KEY,
    authorized BIGINT NOT NULL
);
CREATE TABLE chain_heads (
    device_id BIGINT PRIMARY KEY REFERENCES devices(id),
    next_seq BIGINT NOT NULL,
    last_cert BYTEA,
    last_link BYTEA,
    last_counter BIGINT
);
CREATE TABLE ledger (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    kind TEXT NOT NULL,
    amount BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    pseudonym BYTEA,
    counter BIGINT,
    intent_id TEXT,
    note TEXT,
    created_at BIGINT NOT NULL
);
CREATE INDEX ledger_account ON ledger(account_id, id);
CREATE INDEX ledger_tap ON ledger(pseudonym, counter) WHERE pseudonym IS NOT NULL;
CREATE TRIGGER ledger_no_update BEFORE UPDATE OR DELETE ON ledger
    FOR EACH ROW EXECUTE FUNCTION mancard_refuse('the ledger is append-only');
CREATE TRIGGER ledger_no_truncate BEFORE TRUNCATE ON ledger
    FOR EACH STATEMENT EXECUTE FUNCTION mancard_refuse('the ledger is append-only');
CREATE TABLE gateway_payments (
    token TEXT PRIMARY KEY,
    amount BIGINT NOT NULL,
    status TEXT NOT NULL,
    ref_id TEXT,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    paid_at BIGINT,
    verified_at BIGINT,
    trace_no TEXT,
    masked_pan TEXT,
    payment_url TEXT,
    reason TEXT,
    settled_at BIGINT,
    reversed_at BIGINT
);
CREATE UNIQUE INDEX gateway_payments_ref ON gateway_payments(ref_id) WHERE ref_id IS NOT NULL;
CREATE INDEX gateway_payments_open ON gateway_payments(created_at)
    WHERE status IN ('pending', 'verified', 'reversing');
CREATE TABLE topup_intents (
    id TEXT PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    amount BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL,
    gateway_token TEXT NOT NULL UNIQUE REFERENCES gateway_payments(token),
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    UNIQUE (account_id, idempotency_key)
);
CREATE TABLE validators (
    id BIGINT PRIMARY KEY,
    public_key BYTEA NOT NULL,
    registered_at BIGINT NOT NULL,
    operator_id BIGINT NOT NULL DEFAULT 1,
    certificate BYTEA,
    denied_at BIGINT
);
CREATE TABLE batches (
    batch_id BYTEA PRIMARY KEY,
    validator_id BIGINT NOT NULL,
    body_hash BYTEA NOT NULL,
    response TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE config_bundles (
    version BIGINT PRIMARY KEY,
    content_hash BYTEA NOT NULL,
    encoded BYTEA NOT NULL,
    issued_at BIGINT NOT NULL
);
CREATE TABLE torn_challenges (
    challenge_id BYTEA PRIMARY KEY,
    validator_id BIGINT NOT NULL,
    time BIGINT NOT NULL,
    received_at BIGINT NOT NULL
);
CREATE TABLE abuse_events (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    device_id BIGINT NOT NULL REFERENCES devices(id),
    pseudonym BYTEA NOT NULL,
    counter BIGINT NOT NULL,
    kind TEXT NOT NULL,
    validator_id BIGINT NOT NULL,
    first_validator_id BIGINT NOT NULL,
    fare_day BIGINT NOT NULL,
    time BIGINT NOT NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (pseudonym, counter, validator_id)
);
CREATE INDEX abuse_events_account_day ON abuse_events(account_id, fare_day);
CREATE TABLE tap_verdicts (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    device_id BIGINT NOT NULL REFERENCES devices(id),
    pseudonym BYTEA NOT NULL,
    counter BIGINT NOT NULL,
    status TEXT NOT NULL,
    charged BIGINT NOT NULL,
    reason TEXT,
    time BIGINT NOT NULL,
    line_id BIGINT,
    created_at BIGINT NOT NULL
);
CREATE INDEX tap_verdicts_device ON tap_verdicts(device_id, id);
CREATE INDEX tap_verdicts_tap ON tap_verdicts(pseudonym, counter, id);
CREATE TABLE operator_log (
    id BIGINT PRIMARY KEY,
    at BIGINT NOT NULL,
    operator TEXT,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL,
    detail TEXT NOT NULL,
    prev_hash BYTEA NOT NULL,
    hash BYTEA NOT NULL UNIQUE
);
CREATE TRIGGER operator_log_no_update BEFORE UPDATE OR DELETE ON operator_log
    FOR EACH ROW EXECUTE FUNCTION mancard_refuse('the operator log is append-only');
CREATE TRIGGER operator_log_no_truncate BEFORE TRUNCATE ON operator_log
    FOR EACH STATEMENT EXECUTE FUNCTION mancard_refuse('the operator log is append-only');
CREATE TABLE adjustments (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id BIGINT NOT NULL REFERENCES accounts(id),
    amount BIGINT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    note TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('applied', 'pending', 'approved', 'rejected')),
    requested_by TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    decided_by TEXT,
    decided_at BIGINT,
    decision_note TEXT,
    ledger_entry_id BIGINT REFERENCES ledger(id),
    CHECK (status <> 'approved' OR (decided_by IS NOT NULL AND decided_by <> requested_by)),
    CHECK ((status IN ('applied', 'approved')) = (ledger_entry_id IS NOT NULL))
);
CREATE INDEX adjustments_requester ON adjustments(requested_by, requested_at);
CREATE INDEX adjustments_pending ON adjustments(status) WHERE status = 'pending';
CREATE TRIGGER adjustments_decided_once BEFORE UPDATE ON adjustments
    FOR EACH ROW
    WHEN (OLD.status <> 'pending' OR NEW.status NOT IN ('approved', 'rejected')
      OR NEW.account_id IS DISTINCT FROM OLD.account_id
      OR NEW.amount IS DISTINCT FROM OLD.amount
      OR NEW.requested_by IS DISTINCT FROM OLD.requested_by
      OR NEW.idempotency_key IS DISTINCT FROM OLD.idempotency_key)
    EXECUTE FUNCTION mancard_refuse('an adjustment is decided once');
CREATE TRIGGER adjustments_no_delete BEFORE DELETE ON adjustments
    FOR EACH ROW EXECUTE FUNCTION mancard_refuse('adjustments are never deleted');
CREATE TRIGGER adjustments_no_truncate BEFORE TRUNCATE ON adjustments
    FOR EACH STATEMENT EXECUTE FUNCTION mancard_refuse('adjustments are never deleted');
CREATE TABLE leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    expires_at BIGINT NOT NULL
);
"#;

/// Brings the database at `pool` to [`SCHEMA_VERSION`]: the baseline on an empty database,
/// then every step; a version newer than this build is refused.
pub fn migrate(pool: &PgPool) -> Result<(), StoreError> {
    migrate_up_to(pool, SCHEMA_VERSION)
}

/// [`migrate`], stopping after step `last` (tests: a database of an older build).
pub(crate) fn migrate_up_to(pool: &PgPool, last: u32) -> Result<(), StoreError> {
    let tx = PgTx::begin(pool, "BEGIN ISOLATION LEVEL READ COMMITTED")?;
    match run(&tx, last) {
        Ok(()) => tx.commit(),
        Err(e) => {
            // the migration's error is the one to report
            let _ = tx.rollback();
            Err(e)
        }
    }
}

fn run(tx: &PgTx<'_>, last: u32) -> Result<(), StoreError> {
    let conn = Conn::Pg(tx);
    conn.query_one(
        "SELECT 1 AS locked FROM (SELECT pg_advisory_xact_lock(:key)) l",
        crate::store::db::named_params! {":key": MIGRATION_LOCK},
        |_| Ok(()),
    )?;
    conn.execute_batch("CREATE TABLE IF NOT EXISTS schema_version (version BIGINT NOT NULL)")?;
    let current: Option<u32> = conn.query_opt(
        "SELECT version FROM schema_version",
        crate::store::db::named_params! {},
        |r| r.get("version"),
    )?;
    let mut version = match current {
        Some(v) => v,
        None => {
            conn.execute_batch(PG_BASELINE)?;
            conn.execute(
                "INSERT INTO schema_version (version) VALUES (:v)",
                crate::store::db::named_params! {":v": PG_BASELINE_VERSION},
            )?;
            PG_BASELINE_VERSION
        }
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Postgres(format!(
            "the database's schema is version {version}, newer than this build's \
             {SCHEMA_VERSION}: run a newer mancard"
        )));
    }
    for (v, sql) in PG_STEPS {
        if *v > version && *v <= last {
            conn.execute_batch(sql)?;
            version = *v;
        }
    }
    conn.execute(
        "UPDATE schema_version SET version = :v",
        crate::store::db::named_params! {":v": version},
    )?;
    Ok(())
}
