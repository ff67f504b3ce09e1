//! The append-only ledger: balances are sums over it.

use super::db::{col, named_params, ColType, Dialect, Row, ToValue, Value};
use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, PseudonymBytes, TapRef};
use mancard_api::{LedgerEntry, LedgerKind};
use std::collections::{BTreeSet, HashMap};

/// A ledger entry to append.
#[derive(Debug, Clone)]
pub struct NewEntry<'a> {
    pub account_id: AccountId,
    pub kind: LedgerKind,
    pub amount: i64,
    pub idempotency_key: &'a str,
    /// The tap a fare entry charges.
    pub tap: Option<TapRef>,
    pub intent_id: Option<&'a str>,
    pub note: Option<&'a str>,
    pub created_at: i64,
}

/// A fare or fare-adjustment entry of a re-rating (it charges a tap; no intent, no note).
#[derive(Debug, Clone)]
pub struct FareEntry {
    pub account_id: AccountId,
    pub kind: LedgerKind,
    pub amount: i64,
    pub idempotency_key: String,
    pub tap: TapRef,
    pub created_at: i64,
}

const LEDGER_COLS: &str =
    "id, account_id, kind, amount, idempotency_key, pseudonym, counter, intent_id, note, created_at";

fn ledger_row(r: &Row<'_>) -> Result<LedgerEntry, StoreError> {
    let pseudonym: Option<PseudonymBytes> = r.get("pseudonym")?;
    Ok(LedgerEntry {
        id: r.get("id")?,
        kind: parsed(r, "kind", LedgerKind::parse)?,
        amount: r.get("amount")?,
        idempotency_key: r.get("idempotency_key")?,
        pseudonym: pseudonym.map(|p| p.to_hex()),
        counter: r.get("counter")?,
        intent_id: r.get("intent_id")?,
        note: r.get("note")?,
        created_at: r.get("created_at")?,
    })
}

impl Reader<'_> {
    pub fn ledger_by_key(&self, key: &str) -> Result<Option<LedgerEntry>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {LEDGER_COLS} FROM ledger WHERE idempotency_key = :key"),
            named_params! {":key": key},
            ledger_row,
        )
    }

    /// Confirmed balance: the sum of the account's entries.
    pub fn balance(&self, account_id: AccountId) -> Result<i64, StoreError> {
        self.conn.query_one(
            "SELECT CAST(COALESCE(SUM(amount), 0) AS BIGINT) AS balance FROM ledger
             WHERE account_id = :account",
            named_params! {":account": account_id},
            |r| r.get("balance"),
        )
    }

    /// Entries after `cursor`, oldest first, at most `limit`.
    pub fn ledger_since(
        &self,
        account_id: impl Into<AccountId>,
        cursor: i64,
        limit: i64,
    ) -> Result<Vec<LedgerEntry>, StoreError> {
        self.conn.query_vec(
            &format!(
                "SELECT {LEDGER_COLS} FROM ledger WHERE account_id = :account AND id > :cursor
                 ORDER BY id LIMIT :limit"
            ),
            named_params! {":account": account_id.into(), ":cursor": cursor, ":limit": limit},
            ledger_row,
        )
    }

    /// What has been charged for each of `taps` (positive rials; 0 for a tap never charged),
    /// in one statement (a few on SQLite, [`super::db::Conn::query_rows`]).
    ///
    /// Each tap's sum is a subquery on the list of taps, so the ledger is searched on both
    /// columns of the tap for each. A `WHERE (p = ? AND c = ?) OR …` (or a `(p, c) IN …`)
    /// whose taps share a pseudonym, as one rider's do, was planned by PostgreSQL on stale
    /// statistics as `p = ?` and read every ledger entry of that rider.
    pub fn tap_charges(&self, taps: &[TapRef]) -> Result<HashMap<TapRef, i64>, StoreError> {
        let keys: Vec<[Value<'_>; 2]> = taps
            .iter()
            .map(|t| [t.pseudonym.to_value(), t.counter.to_value()])
            .collect();
        let rows = self.conn.query_rows(
            &[ColType::Blob, ColType::Int],
            &keys,
            &|from| {
                format!(
                    "SELECT k.c0 AS pseudonym, k.c1 AS counter,
                            CAST(COALESCE((SELECT -SUM(l.amount) FROM ledger l
                                           WHERE l.pseudonym = k.c0 AND l.counter = k.c1), 0)
                                 AS BIGINT) AS charged
                     FROM {from}"
                )
            },
            |r| {
                let tap = TapRef {
                    pseudonym: r.get("pseudonym")?,
                    counter: r.get("counter")?,
                };
                Ok((tap, r.get::<i64>("charged")?))
            },
        )?;
        Ok(rows.into_iter().collect())
    }
}

impl Writer<'_> {
    /// Before appending to an account's ledger or verdict feed (PostgreSQL only): bumps the
    /// account's `feed_seq`, so that two transactions appending to one account's feeds take
    /// turns on its row and the second one's ids are drawn after the first one committed.
    /// Without it, an id drawn earlier could commit later, after a wallet's sync had already
    /// moved its cursor past it, and the wallet would never see that entry. SQLite's single
    /// writer already commits in id order.
    /// Once per account and transaction: the row stays locked until the transaction ends.
    pub(crate) fn bump_feed(&self, account_id: AccountId) -> Result<(), StoreError> {
        self.bump_feeds([account_id])
    }

    /// [`Self::bump_feed`] for several accounts, in one statement.
    pub(crate) fn bump_feeds(
        &self,
        accounts: impl IntoIterator<Item = AccountId>,
    ) -> Result<(), StoreError> {
        if self.tx.dialect() != Dialect::Postgres {
            return Ok(());
        }
        let todo: Vec<i64> = {
            let bumped = self.bumped.borrow();
            let new: BTreeSet<i64> = accounts
                .into_iter()
                .map(|a| a.0)
                .filter(|a| !bumped.contains(a))
                .collect();
            new.into_iter().collect()
        };
        if !todo.is_empty() {
            self.tx.execute(
                // dialect: PostgreSQL only. `touched_by` (schema version 14): a row the guard
                // triggers already touched in this transaction is locked by it already, and
                // is not updated twice; one touched here spares the triggers' touch. The rows
                // are locked in the order the scan meets them (account order for an index
                // scan of the primary key); a deadlock with another write is retried
                "UPDATE accounts SET feed_seq = feed_seq + 1, touched_by = pg_current_xact_id()
                 WHERE id = ANY (:ids::bigint[])
                   AND touched_by IS DISTINCT FROM pg_current_xact_id()",
                named_params! {":ids": Value::Ints(&todo)},
            )?;
        }
        self.bumped.borrow_mut().extend(todo);
        Ok(())
    }

    /// Appends fare entries in order, in one statement (a few on SQLite,
    /// [`super::db::Conn::insert_rows`]); how many were new (an entry whose idempotency key
    /// exists is skipped, as in [`Self::insert_ledger`]).
    pub fn insert_fare_entries(&self, es: &[FareEntry]) -> Result<usize, StoreError> {
        use ColType::{Blob, Int, Text};
        self.bump_feeds(es.iter().map(|e| e.account_id))?;
        let rows: Vec<[Value<'_>; 7]> = es
            .iter()
            .map(|e| {
                [
                    e.account_id.to_value(),
                    e.kind.as_str().to_value(),
                    e.amount.to_value(),
                    e.idempotency_key.to_value(),
                    e.tap.pseudonym.to_value(),
                    e.tap.counter.to_value(),
                    e.created_at.to_value(),
                ]
            })
            .collect();
        self.tx.insert_rows(
            (
                "INSERT INTO ledger (account_id, kind, amount, idempotency_key, pseudonym,
                                     counter, created_at)",
                "ON CONFLICT (idempotency_key) DO NOTHING",
            ),
            &[Int, Text, Int, Text, Blob, Int, Int].map(col),
            &rows,
        )
    }

    /// Appends an entry; returns its id, or `None` if the idempotency key already exists.
    pub fn insert_ledger(&self, e: &NewEntry<'_>) -> Result<Option<i64>, StoreError> {
        let (p, c) = match e.tap {
            Some(t) => (Some(t.pseudonym), Some(t.counter)),
            None => (None, None),
        };
        self.bump_feed(e.account_id)?;
        self.tx.query_opt(
            "INSERT INTO ledger (account_id, kind, amount, idempotency_key, pseudonym, counter,
                                 intent_id, note, created_at)
             VALUES (:account, :kind, :amount, :key, :p, :counter, :intent, :note, :at)
             ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
            named_params! {
                ":account": e.account_id,
                ":kind": e.kind.as_str(),
                ":amount": e.amount,
                ":key": e.idempotency_key,
                ":p": p,
                ":counter": c,
                ":intent": e.intent_id,
                ":note": e.note,
                ":at": e.created_at,
            },
            |r| r.get("id"),
        )
    }
}
