//! The account and challenge guards of PostgreSQL schema versions 14 and 15 (ADR 0012 §8,
//! "Money writes at REPEATABLE READ"): the steps that make every write of an account's rows
//! a write of the account's row, and every write of a challenge's taps a write of the
//! challenge's guard row.

/// The statement triggers that touch the accounts of a table's changed rows
/// ([`PG_STEP_14`]): `"table" "kind"` pairs, kind as `mancard_touch_accounts` takes it. A
/// statement trigger with transition tables has one event, so a table gets three; an update
/// touches its rows' accounts before and after (an account moved is touched on both sides).
macro_rules! touch_triggers {
    ($($table:literal $kind:literal),* $(,)?) => {
        concat!($(
            "CREATE TRIGGER ", $table, "_touch_inserted AFTER INSERT ON ", $table,
            " REFERENCING NEW TABLE AS changed FOR EACH STATEMENT",
            " EXECUTE FUNCTION mancard_touch_accounts('", $kind, "');\n",
            "CREATE TRIGGER ", $table, "_touch_updated AFTER UPDATE ON ", $table,
            " REFERENCING OLD TABLE AS changed_before NEW TABLE AS changed FOR EACH STATEMENT",
            " EXECUTE FUNCTION mancard_touch_accounts('", $kind, "');\n",
            "CREATE TRIGGER ", $table, "_touch_deleted AFTER DELETE ON ", $table,
            " REFERENCING OLD TABLE AS changed FOR EACH STATEMENT",
            " EXECUTE FUNCTION mancard_touch_accounts('", $kind, "');\n",
        )*)
    };
}

/// Version 14 (PostgreSQL only; SQLite's twin changes nothing): the database makes every
/// write of an account's rows a write of the account's row, and every write of a challenge's
/// taps a write of one row per challenge, so that two transactions writing one account's or
/// one challenge's rows at once cannot both commit, at REPEATABLE READ as at SERIALIZABLE
/// (ADR 0012 §8, "Money writes at REPEATABLE READ").
///
/// - `mancard_touch_accounts(kind)`: after each statement that inserts, updates or deletes
///   rows of an account (found by `account_id`, by `device_id` through `devices`, or by
///   `cert_hash` through `certificates`), the account's row is updated once per transaction
///   (`feed_seq + 1`, `touched_by` set to the transaction's 64-bit id, which skips it the
///   next time). A transaction whose snapshot
///   predates another's committed write of that row fails there with a serialization
///   failure (40001), and the backend runs it again.
/// - `challenge_guard` (UNLOGGED: it only matters while the transactions writing it run, and
///   a crash ends them all): a tap inserted or deleted on a challenge, a tap whose validator,
///   challenge, state or card changes, and a torn challenge upsert the challenge's row, so
///   no two writes that decide "the gate opened for another card" on one challenge commit
///   side by side unseen. Its rows are purged after an hour (`purge_expired`).
pub(super) const PG_STEP_14: &str = concat!(
    "
ALTER TABLE accounts ADD COLUMN touched_by xid8;
CREATE UNLOGGED TABLE challenge_guard (
    challenge_id BYTEA PRIMARY KEY,
    at BIGINT NOT NULL
);
CREATE INDEX challenge_guard_at ON challenge_guard(at);
CREATE FUNCTION mancard_touch_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one statement a case, each planned once a session (a SQL function called from here
    -- would be planned on every call)
    IF TG_ARGV[0] = 'account' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT account_id FROM changed
                        UNION SELECT account_id FROM changed_before)
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'account' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT account_id FROM changed)
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'device' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT d.account_id FROM devices d
                         WHERE d.id IN (SELECT device_id FROM changed
                                        UNION SELECT device_id FROM changed_before))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'device' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT d.account_id FROM devices d
                         WHERE d.id IN (SELECT device_id FROM changed))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'certificate' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT d.account_id FROM certificates c JOIN devices d ON d.id = c.device_id
                         WHERE c.hash IN (SELECT cert_hash FROM changed
                                          UNION SELECT cert_hash FROM changed_before))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'certificate' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id IN (SELECT d.account_id FROM certificates c JOIN devices d ON d.id = c.device_id
                         WHERE c.hash IN (SELECT cert_hash FROM changed))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSE
        RAISE EXCEPTION 'mancard_touch_accounts: unknown kind %', TG_ARGV[0];
    END IF;
    RETURN NULL;
END;
$$;
CREATE FUNCTION mancard_guard_challenges() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO challenge_guard (challenge_id, at)
    SELECT DISTINCT challenge_id, extract(epoch FROM now())::bigint FROM changed
     WHERE challenge_id IS NOT NULL
    ON CONFLICT (challenge_id) DO UPDATE SET at = EXCLUDED.at;
    RETURN NULL;
END;
$$;
CREATE FUNCTION mancard_guard_tap_challenge() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        INSERT INTO challenge_guard (challenge_id, at)
        VALUES (OLD.challenge_id, extract(epoch FROM now())::bigint)
        ON CONFLICT (challenge_id) DO UPDATE SET at = EXCLUDED.at;
    ELSE
        INSERT INTO challenge_guard (challenge_id, at)
        SELECT DISTINCT c, extract(epoch FROM now())::bigint
          FROM unnest(ARRAY[OLD.challenge_id, NEW.challenge_id]) c
         WHERE c IS NOT NULL
        ON CONFLICT (challenge_id) DO UPDATE SET at = EXCLUDED.at;
    END IF;
    RETURN NULL;
END;
$$;
",
    touch_triggers!(
        "taps" "account", "ledger" "account", "tap_verdicts" "account", "fare_days" "account",
        "abuse_events" "account", "topup_intents" "account", "adjustments" "account",
        "devices" "account", "wallet_log" "device", "chain_heads" "device",
        "fraud_cases" "device", "certificates" "device", "revocations" "device",
        "cert_usage" "certificate",
    ),
    "
CREATE TRIGGER taps_guard_challenges AFTER INSERT ON taps REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mancard_guard_challenges();
CREATE TRIGGER taps_guard_challenge_changed AFTER UPDATE ON taps
    FOR EACH ROW WHEN ((OLD.challenge_id IS NOT NULL OR NEW.challenge_id IS NOT NULL)
        AND (OLD.validator_id IS DISTINCT FROM NEW.validator_id
          OR OLD.challenge_id IS DISTINCT FROM NEW.challenge_id
          OR OLD.state IS DISTINCT FROM NEW.state
          OR OLD.pseudonym IS DISTINCT FROM NEW.pseudonym))
    EXECUTE FUNCTION mancard_guard_tap_challenge();
CREATE TRIGGER taps_guard_challenge_deleted AFTER DELETE ON taps
    FOR EACH ROW WHEN (OLD.challenge_id IS NOT NULL)
    EXECUTE FUNCTION mancard_guard_tap_challenge();
CREATE TRIGGER torn_challenges_guard AFTER INSERT ON torn_challenges
    REFERENCING NEW TABLE AS changed
    FOR EACH STATEMENT EXECUTE FUNCTION mancard_guard_challenges();
"
);

/// Version 15 (PostgreSQL only; SQLite's twin changes nothing): `mancard_touch_accounts` finds
/// the accounts by `id = ANY (ARRAY(…))` instead of `id IN (SELECT …)`. Same rows, same
/// effect. The plan of a trigger's statement is cached for its session, and for `IN` the
/// planner could settle on a hash join over every account (a full index scan:
/// `enable_seqscan` is off in writes): a session that did spent 0.2 ms on each touch that
/// found nothing to do. A load run whose sessions chose it spent 9.5 s of its 30 s on
/// touches, against 1.7 s in a run that did not (docs/perf.md §8). An array of keys is
/// always looked up in the primary key's index, a key at a time (an index or bitmap scan).
pub(super) const PG_STEP_15: &str = "
CREATE OR REPLACE FUNCTION mancard_touch_accounts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- one statement a case, each planned once a session (a SQL function called from here
    -- would be planned on every call); keys as arrays, whose plan is a primary-key lookup
    -- whatever the planner guesses of the transition tables
    IF TG_ARGV[0] = 'account' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT account_id FROM changed
                                 UNION SELECT account_id FROM changed_before))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'account' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT account_id FROM changed))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'device' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT d.account_id FROM devices d
                                 WHERE d.id = ANY (ARRAY(SELECT device_id FROM changed
                                                         UNION SELECT device_id FROM changed_before))))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'device' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT d.account_id FROM devices d
                                 WHERE d.id = ANY (ARRAY(SELECT device_id FROM changed))))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'certificate' AND TG_OP = 'UPDATE' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT d.account_id FROM devices d
                                 WHERE d.id = ANY (ARRAY(
                                     SELECT c.device_id FROM certificates c
                                      WHERE c.hash = ANY (ARRAY(SELECT cert_hash FROM changed
                                                  UNION SELECT cert_hash FROM changed_before))))))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSIF TG_ARGV[0] = 'certificate' THEN
        UPDATE accounts a SET feed_seq = a.feed_seq + 1, touched_by = pg_current_xact_id()
         WHERE a.id = ANY (ARRAY(SELECT d.account_id FROM devices d
                                 WHERE d.id = ANY (ARRAY(
                                     SELECT c.device_id FROM certificates c
                                      WHERE c.hash = ANY (ARRAY(SELECT cert_hash FROM changed))))))
           AND a.touched_by IS DISTINCT FROM pg_current_xact_id();
    ELSE
        RAISE EXCEPTION 'mancard_touch_accounts: unknown kind %', TG_ARGV[0];
    END IF;
    RETURN NULL;
END;
$$;
";
