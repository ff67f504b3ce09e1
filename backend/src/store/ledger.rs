//! The append-only ledger: balances are sums over it.

use super::db::{named_params, Dialect, Row};
use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, PseudonymBytes, TapRef};
use mancard_api::{LedgerEntry, LedgerKind};

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

    /// What has been charged for one tap (positive rials).
    pub fn tap_charge(&self, tap: &TapRef) -> Result<i64, StoreError> {
        self.conn.query_one(
            "SELECT CAST(COALESCE(-SUM(amount), 0) AS BIGINT) AS charged FROM ledger
             WHERE pseudonym = :p AND counter = :counter",
            named_params! {":p": tap.pseudonym, ":counter": tap.counter},
            |r| r.get("charged"),
        )
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
        if self.tx.dialect() == Dialect::Postgres && !self.bumped.borrow().contains(&account_id.0) {
            self.tx.execute(
                "UPDATE accounts SET feed_seq = feed_seq + 1 WHERE id = :account",
                named_params! {":account": account_id},
            )?;
            self.bumped.borrow_mut().insert(account_id.0);
        }
        Ok(())
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
