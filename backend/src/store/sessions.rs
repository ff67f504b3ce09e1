//! Sessions (bearer token digests, their public ids, last use and device binding), provisioning
//! and request-proof nonces, and the purge of everything expired.

use super::db::{named_params, Dialect, Row};
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, DeviceId};

/// A live session as stored (the token itself is never stored: only its digest).
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// Public id: what the rider's session list shows and `…/sessions/{id}/end` names.
    pub public_id: String,
    pub account_id: AccountId,
    pub created_at: i64,
    pub last_used_at: i64,
    pub expires_at: i64,
    /// The device this session provisioned (or replenished) and is bound to.
    pub device_id: Option<DeviceId>,
    /// That device's binding key (uncompressed SEC1).
    pub binding_key: Option<Vec<u8>>,
}

/// What one purge removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Purged {
    pub sessions: usize,
    pub nonces: usize,
    pub codes: usize,
    pub senders: usize,
    /// Rows of PostgreSQL's `challenge_guard` older than [`CHALLENGE_GUARD_KEEP_SECS`].
    pub challenge_guards: usize,
}

/// How long a `challenge_guard` row is kept (PostgreSQL, schema version 14): it only
/// matters while a transaction that wrote it and one whose snapshot is older both run, and
/// every transaction ends within seconds (statement and idle timeouts).
pub const CHALLENGE_GUARD_KEEP_SECS: i64 = 3600;

fn session_row(r: &Row<'_>) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        public_id: r.get("public_id")?,
        account_id: r.get("account_id")?,
        created_at: r.get("created_at")?,
        last_used_at: r.get("last_used_at")?,
        expires_at: r.get("expires_at")?,
        device_id: r.get("device_id")?,
        binding_key: r.get("binding_key")?,
    })
}

const SESSION_COLS: &str =
    "public_id, account_id, created_at, last_used_at, expires_at, device_id, binding_key";

/// The column that orders sessions by when they were made ("older" is smaller).
fn made_order(d: Dialect) -> &'static str {
    match d {
        // dialect: SQLite's implicit rowid; PostgreSQL has a column (`sessions.seq`).
        Dialect::Sqlite => "rowid",
        Dialect::Postgres => "seq",
    }
}

/// A session is live until its absolute expiry and while it was used in the last
/// `idle_secs` seconds.
const LIVE: &str = "expires_at >= :now AND last_used_at >= :now - :idle";

impl Reader<'_> {
    /// The live session of a token digest.
    pub fn session(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        idle_secs: i64,
    ) -> Result<Option<SessionRow>, StoreError> {
        self.conn.query_opt(
            &format!("SELECT {SESSION_COLS} FROM sessions WHERE token_hash = :hash AND {LIVE}"),
            named_params! {":hash": &token_hash[..], ":now": now, ":idle": idle_secs},
            session_row,
        )
    }

    /// The account of a live session.
    pub fn session_account(
        &self,
        token_hash: &[u8; 32],
        now: i64,
        idle_secs: i64,
    ) -> Result<Option<AccountId>, StoreError> {
        Ok(self
            .session(token_hash, now, idle_secs)?
            .map(|s| s.account_id))
    }

    /// The account's live sessions, oldest first.
    pub fn account_sessions(
        &self,
        account_id: AccountId,
        now: i64,
        idle_secs: i64,
    ) -> Result<Vec<SessionRow>, StoreError> {
        self.conn.query_vec(
            &format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE account_id = :account AND {LIVE}
                 ORDER BY created_at, public_id"
            ),
            named_params! {":account": account_id, ":now": now, ":idle": idle_secs},
            session_row,
        )
    }
}

impl Writer<'_> {
    pub fn insert_session(
        &self,
        token_hash: &[u8; 32],
        public_id: &str,
        account_id: AccountId,
        now: i64,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO sessions
                 (token_hash, public_id, account_id, created_at, last_used_at, expires_at)
             VALUES (:hash, :public_id, :account, :now, :now, :expires_at)",
            named_params! {
                ":hash": &token_hash[..],
                ":public_id": public_id,
                ":account": account_id,
                ":now": now,
                ":expires_at": expires_at,
            },
        )?;
        Ok(())
    }

    /// Records a use of the session (idle expiry counts from the last one).
    pub fn touch_session(&self, token_hash: &[u8; 32], now: i64) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE sessions SET last_used_at = :now
             WHERE token_hash = :hash AND last_used_at < :now",
            named_params! {":hash": &token_hash[..], ":now": now},
        )?;
        Ok(())
    }

    /// Binds the session to the device it provisioned (or replenished).
    pub fn bind_session(
        &self,
        token_hash: &[u8; 32],
        device_id: DeviceId,
        binding_key: &[u8],
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "UPDATE sessions SET device_id = :device, binding_key = :key WHERE token_hash = :hash",
            named_params! {":hash": &token_hash[..], ":device": device_id, ":key": binding_key},
        )?;
        Ok(())
    }

    /// Ends the session of a token digest; true if there was one.
    pub fn end_session_by_token(&self, token_hash: &[u8; 32]) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "DELETE FROM sessions WHERE token_hash = :hash",
            named_params! {":hash": &token_hash[..]},
        )?;
        Ok(n == 1)
    }

    /// Ends the account's session with this public id if it is older than the caller's
    /// session (`by`): a session never ends one made after it (a lost phone's session must
    /// not log out the rider's new phone). `Some(true)` ended, `Some(false)` the session is
    /// newer than the caller's, `None` no such session.
    pub fn end_session(
        &self,
        account_id: AccountId,
        public_id: &str,
        by: &[u8; 32],
    ) -> Result<Option<bool>, StoreError> {
        let o = made_order(self.tx.dialect());
        let n = self.tx.execute(
            &format!(
                "DELETE FROM sessions WHERE account_id = :account AND public_id = :id
                   AND {o} < (SELECT {o} FROM sessions WHERE token_hash = :by)"
            ),
            named_params! {":account": account_id, ":id": public_id, ":by": &by[..]},
        )?;
        if n == 1 {
            return Ok(Some(true));
        }
        let exists = self.tx.query_opt(
            "SELECT 1 AS one FROM sessions WHERE account_id = :account AND public_id = :id",
            named_params! {":account": account_id, ":id": public_id},
            |_| Ok(()),
        )?;
        Ok(exists.map(|_| false))
    }

    /// Ends every session of the account older than the one of `keep` (sessions made after it,
    /// e.g. the rider's login on a new phone, are left alone); how many were ended.
    pub fn end_other_sessions(
        &self,
        account_id: AccountId,
        keep: &[u8; 32],
    ) -> Result<usize, StoreError> {
        let o = made_order(self.tx.dialect());
        self.tx.execute(
            &format!(
                "DELETE FROM sessions WHERE account_id = :account AND token_hash <> :keep
                   AND {o} < (SELECT {o} FROM sessions WHERE token_hash = :keep)"
            ),
            named_params! {":account": account_id, ":keep": &keep[..]},
        )
    }

    pub fn insert_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: AccountId,
        expires_at: i64,
    ) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT INTO nonces (nonce, account_id, expires_at) VALUES (:nonce, :account, :exp)",
            named_params! {":nonce": &nonce[..], ":account": account_id, ":exp": expires_at},
        )?;
        Ok(())
    }

    /// Consumes a nonce: true if it was this account's, unused and unexpired.
    pub fn take_nonce(
        &self,
        nonce: &[u8; 32],
        account_id: AccountId,
        now: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE nonces SET used_at = :now
             WHERE nonce = :nonce AND account_id = :account AND used_at IS NULL
               AND expires_at >= :now",
            named_params! {":nonce": &nonce[..], ":account": account_id, ":now": now},
        )?;
        Ok(n == 1)
    }

    /// Deletes what can no longer be used at `now`: sessions past their absolute or idle
    /// expiry, expired nonces and one-time codes, and code-send pacing rows whose next
    /// allowed send is in the past (an absent row means the same); on PostgreSQL, challenge
    /// guards older than [`CHALLENGE_GUARD_KEEP_SECS`].
    pub fn purge_expired(&self, now: i64, idle_secs: i64) -> Result<Purged, StoreError> {
        let sessions = self.tx.execute(
            "DELETE FROM sessions WHERE expires_at < :now OR last_used_at < :now - :idle",
            named_params! {":now": now, ":idle": idle_secs},
        )?;
        let nonces = self.tx.execute(
            "DELETE FROM nonces WHERE expires_at < :now",
            named_params! {":now": now},
        )?;
        let codes = self.tx.execute(
            "DELETE FROM otp_codes WHERE expires_at < :now",
            named_params! {":now": now},
        )?;
        let senders = self.tx.execute(
            "DELETE FROM otp_senders WHERE next_at < :now",
            named_params! {":now": now},
        )? + self.tx.execute(
            "DELETE FROM otp_pair_senders WHERE next_at < :now",
            named_params! {":now": now},
        )?;
        // by the database's clock, which stamped the rows
        let challenge_guards = if self.tx.dialect() == Dialect::Postgres {
            self.tx.execute(
                "DELETE FROM challenge_guard
                  WHERE at < extract(epoch FROM now())::bigint - :keep",
                named_params! {":keep": CHALLENGE_GUARD_KEEP_SECS},
            )?
        } else {
            0
        };
        Ok(Purged {
            sessions,
            nonces,
            codes,
            senders,
            challenge_guards,
        })
    }
}
