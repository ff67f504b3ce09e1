-- The least CPU PostgreSQL spends storing a settled tap's rows (docs/perf.md §8), run by
-- scripts/load-figures.sh on the database a load run left: one session, nothing running
-- beside it, READ COMMITTED, 100 taps a transaction, the statements planned once (PL/pgSQL).
-- Rows are copies of that run's rows (same widths, same indexes, foreign keys and triggers),
-- under counters and keys no run uses; a tap keeps the `stored_by` the build gave it, so the
-- trigger for writers that do not rate their own taps stays quiet, as it does under the load.
-- A fare day's kept state (one row per rider-day a batch touches) is not counted. Two measures, in CPU µs a tap of this session's
-- server process (/proc, so superuser only):
--   all_rows:  what one settled tap writes: its row, its fare entry, its verdict, its wallet
--              log entry, its certificate's running total, its account's feed number;
--   tap_row:   the tap's row alone.
-- Run with psql -v ON_ERROR_STOP=1 -v hz="$(getconf CLK_TCK)" -qAt -f; prints "name|µs" lines.
SET mancard.hz = :'hz';
CREATE TEMP TABLE s_taps AS
  SELECT pseudonym, counter, account_id, device_id, cert_hash, fare_class, time, fare_day,
         line_id, authorized, proof, source, reported_at, tap_id, state, state_reason,
         validator_id, challenge_id, stored_by
  FROM taps WHERE tap_id IS NOT NULL AND validator_id IS NOT NULL LIMIT 100;
CREATE TEMP TABLE s_ledger AS
  SELECT account_id, kind, amount, idempotency_key, pseudonym, counter, created_at
  FROM ledger WHERE pseudonym IS NOT NULL LIMIT 100;
CREATE TEMP TABLE s_verdicts AS
  SELECT account_id, device_id, pseudonym, counter, status, charged, reason, time, line_id,
         created_at FROM tap_verdicts LIMIT 100;
CREATE TEMP TABLE s_log AS SELECT device_id, seq, hash, counter, encoded FROM wallet_log LIMIT 100;
CREATE TEMP TABLE s_usage AS SELECT cert_hash, authorized FROM cert_usage LIMIT 100;
CREATE TEMP TABLE floor_out (name TEXT, us NUMERIC);
-- this process's user + system CPU, in clock ticks (fields 14 and 15 of /proc/PID/stat)
CREATE FUNCTION pg_temp.cpu_ticks() RETURNS BIGINT LANGUAGE sql AS $$
  SELECT split_part(x, ' ', 12)::BIGINT + split_part(x, ' ', 13)::BIGINT
  FROM (SELECT split_part(pg_read_file('/proc/' || pg_backend_pid() || '/stat'), ') ', 2) AS x) s $$;
CREATE PROCEDURE pg_temp.floor(name TEXT, all_rows BOOLEAN, batches INT)
LANGUAGE plpgsql AS $$
DECLARE
  base BIGINT;
  t0 BIGINT;
  n BIGINT;
BEGIN
  IF (SELECT count(*) FROM s_taps) < 100 OR (SELECT count(*) FROM s_ledger) < 100
     OR (SELECT count(*) FROM s_verdicts) < 100 OR (SELECT count(*) FROM s_log) < 100
     OR (SELECT count(*) FROM s_usage) < 100 THEN
    RAISE EXCEPTION 'the load run left fewer than 100 rows of a table to copy';
  END IF;
  -- counters above any a run uses (a counter is a u32, under 10^10), and keys of their own
  base := (SELECT GREATEST(max(counter), 0) FROM taps) / 10000000000 + 1;
  t0 := pg_temp.cpu_ticks();
  FOR i IN 1..batches LOOP
    n := (base + i) * 10000000000;
    INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash, fare_class, time,
                      fare_day, line_id, authorized, proof, source, reported_at, tap_id, state,
                      state_reason, validator_id, challenge_id, stored_by)
      SELECT pseudonym, counter + n, account_id, device_id, cert_hash, fare_class, time,
             fare_day, line_id, authorized, proof, source, reported_at, tap_id || int8send(n),
             state, state_reason, validator_id, challenge_id, stored_by FROM s_taps;
    IF all_rows THEN
      UPDATE accounts SET feed_seq = feed_seq + 1 WHERE id IN (SELECT account_id FROM s_taps);
      INSERT INTO ledger (account_id, kind, amount, idempotency_key, pseudonym, counter, created_at)
        SELECT account_id, kind, amount, idempotency_key || '/floor/' || n, pseudonym,
               counter + n, created_at FROM s_ledger;
      INSERT INTO tap_verdicts (account_id, device_id, pseudonym, counter, status, charged,
                                reason, time, line_id, created_at)
        SELECT account_id, device_id, pseudonym, counter + n, status, charged, reason, time,
               line_id, created_at FROM s_verdicts;
      INSERT INTO wallet_log (device_id, seq, hash, counter, encoded)
        SELECT device_id, seq + n, hash, counter, encoded FROM s_log;
      INSERT INTO cert_usage (cert_hash, authorized) SELECT cert_hash, authorized FROM s_usage
        ON CONFLICT (cert_hash) DO UPDATE SET authorized = cert_usage.authorized + 1;
    END IF;
    COMMIT;
  END LOOP;
  INSERT INTO floor_out
    VALUES (name, round((pg_temp.cpu_ticks() - t0) * 1e6 / current_setting('mancard.hz')::NUMERIC
                        / (batches * 100)));
  COMMIT;
END $$;
CALL pg_temp.floor('all_rows', true, 200);
CALL pg_temp.floor('tap_row', false, 200);
SELECT name || '|' || us FROM floor_out;
