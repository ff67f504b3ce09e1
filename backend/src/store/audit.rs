//! The ledger invariant checks, each one query over the whole database.

use super::db::{named_params, Dialect, Params};
use super::Reader;
use crate::error::StoreError;
use mancard_api::AuditReport;

impl Reader<'_> {
    fn count(&self, sql: &str) -> Result<i64, StoreError> {
        self.count_with(sql, named_params! {})
    }

    fn count_with(&self, sql: &str, params: Params<'_, '_>) -> Result<i64, StoreError> {
        self.conn.query_one(sql, params, |r| r.get("n"))
    }

    /// Checks the ledger invariants.
    pub fn audit(&self) -> Result<AuditReport, StoreError> {
        let accounts = self.count("SELECT COUNT(*) AS n FROM accounts")?;
        let ledger_entries = self.count("SELECT COUNT(*) AS n FROM ledger")?;
        let taps = self.count("SELECT COUNT(*) AS n FROM taps")?;
        let ledger_total =
            self.count("SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS n FROM ledger")?;
        let balances_total = self.count(
            "SELECT CAST(COALESCE(SUM(b), 0) AS BIGINT) AS n FROM
                (SELECT (SELECT COALESCE(SUM(amount), 0) FROM ledger l
                         WHERE l.account_id = a.id) AS b FROM accounts a) s",
        )?;
        let taps_without_charge = self.count(
            "SELECT COUNT(*) AS n FROM taps t WHERE (t.state = 'charged' AND NOT EXISTS
                (SELECT 1 FROM ledger l WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter
                   AND l.kind = 'fare'))
                OR (t.state <> 'charged' AND (SELECT COALESCE(SUM(l.amount), 0) FROM ledger l
                   WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter) <> 0)",
        )?;
        let taps_negative_charge = self.count(
            "SELECT COUNT(*) AS n FROM (SELECT SUM(amount) AS s FROM ledger
                WHERE pseudonym IS NOT NULL GROUP BY pseudonym, counter) t WHERE s > 0",
        )?;
        let orphan_fare_entries = self.count(
            "SELECT COUNT(*) AS n FROM ledger l WHERE l.kind IN
                ('fare', 'fare_adjustment') AND NOT EXISTS (SELECT 1 FROM taps t
                WHERE t.pseudonym = l.pseudonym AND t.counter = l.counter)",
        )?;
        let intents_credited_twice = self.count(
            "SELECT COUNT(*) AS n FROM (SELECT intent_id FROM ledger
                WHERE kind = 'topup' GROUP BY intent_id HAVING COUNT(*) > 1) t",
        )?;
        let total = nfc_total_sql(self.conn.dialect());
        let cert_totals_mismatched = self.count_with(
            &format!(
                "SELECT COUNT(*) AS n FROM
                    (SELECT cert_hash, {total} AS s
                     FROM taps WHERE substr(proof, 1, 1) = :nfc GROUP BY cert_hash) t
                    FULL OUTER JOIN cert_usage u ON u.cert_hash = t.cert_hash
                    WHERE t.s IS DISTINCT FROM u.authorized"
            ),
            named_params! {":nfc": [1u8]},
        )?;
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

/// The SQL of the positive authorized amounts of a certificate's NFC taps, summed saturating at
/// i64::MAX (as `cert_usage` keeps them; an aggregate over `taps`).
pub(super) fn nfc_total_sql(dialect: Dialect) -> &'static str {
    match dialect {
        // dialect: TOTAL is a float sum that never overflows (the cast saturates);
        // PostgreSQL: LEAST(SUM(…), 9223372036854775807)::bigint.
        Dialect::Sqlite => {
            "CAST(TOTAL(CASE WHEN authorized > 0 THEN authorized ELSE 0 END) AS INTEGER)"
        }
        Dialect::Postgres => {
            "CAST(LEAST(SUM(CASE WHEN authorized > 0 THEN authorized ELSE 0 END), \
             9223372036854775807) AS BIGINT)"
        }
    }
}
