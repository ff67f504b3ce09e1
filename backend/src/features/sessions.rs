//! Sessions: bearer tokens (stored as digests), their binding to the device they provisioned,
//! the request proof a bound session's money and credential calls carry, the rider's session
//! list, logout and ending one session, idle expiry and the purge of everything expired.
//!
//! A session starts unbound (a login with an SMS code). Provisioning binds it to the new
//! device's binding key and ends every older session of the account (the lost phone's token
//! stops working; no session ever ends one made after it); replenishing binds an unbound
//! session to its device. From then on:
//! - provision and replenish are accepted only with that binding key ([`Error::WrongDevice`]);
//! - creating a top-up and ending another session need a `ManCard-Proof` header: the binding
//!   key's signature over a single-use server nonce and the request's method, path and body
//!   ([`mancard_protocol::provision::request_transcript`]), so a stolen token alone moves
//!   nothing.

use crate::engine::{public_key, Engine};
use crate::error::{Error, Result, StoreError};
use crate::ids::AccountId;
use crate::store::{Purged, SessionRow};
use mancard_api::{SessionList, SessionView};
use mancard_protocol::provision::{parse_proof_header, verify_request};
use mancard_protocol::{sha256, PublicKey};

/// How stale a session's recorded last use may get before a request writes a new one (one
/// write a minute per session, not one per request).
const TOUCH_EVERY_SECS: i64 = 60;

/// The digest a session token is stored as.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    sha256(&[b"MANCARD-SESSION-v1\0", token.as_bytes()])
}

/// The session a request was made with.
#[derive(Debug, Clone)]
pub struct SessionCtx {
    pub account_id: AccountId,
    /// Its public id (the session list's `id`).
    pub session_id: String,
    pub(crate) token_hash: [u8; 32],
    /// The binding key of the device it is bound to.
    pub binding_key: Option<PublicKey>,
}

/// What a request proof covers: the request's method, path (no query) and body bytes.
#[derive(Debug, Clone, Copy)]
pub struct ProvenRequest<'a> {
    pub method: &'a str,
    pub path: &'a str,
    pub body: &'a [u8],
}

fn view(s: &SessionRow, current: &str, idle: i64) -> SessionView {
    SessionView {
        id: s.public_id.clone(),
        created_at: s.created_at,
        last_used_at: s.last_used_at,
        expires_at: s.expires_at,
        idle_expires_at: s.last_used_at.saturating_add(idle).min(s.expires_at),
        bound: s.binding_key.is_some(),
        device_id: s.device_id.map(|d| d.0),
        current: s.public_id == current,
    }
}

impl Engine {
    fn idle_secs(&self) -> i64 {
        self.config().policy.session_idle_secs.max(1)
    }

    /// The live session of a bearer token (and a record of its use).
    pub fn session(&self, token: &str) -> Result<SessionCtx> {
        if token.len() != 64 || !token.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(Error::Unauthorized("malformed bearer token"));
        }
        let now = self.now();
        let th = token_hash(token);
        let row = self
            .store
            .read(|tx| tx.session(&th, now, self.idle_secs()))?
            .ok_or(Error::Unauthorized(
                "unknown, ended or expired session; log in again",
            ))?;
        if row.last_used_at < now.saturating_sub(TOUCH_EVERY_SECS) {
            self.store.write(|tx| tx.touch_session(&th, now))?;
        }
        let binding_key = match &row.binding_key {
            Some(k) => Some(
                PublicKey::from_bytes(k, "session binding key")
                    .map_err(|_| StoreError::Corrupt("session binding key"))?,
            ),
            None => None,
        };
        Ok(SessionCtx {
            account_id: row.account_id,
            session_id: row.public_id,
            token_hash: th,
            binding_key,
        })
    }

    /// The account of a bearer token.
    pub fn authenticate(&self, token: &str) -> Result<AccountId> {
        self.session(token).map(|s| s.account_id)
    }

    /// Checks a bound session's request proof (the `ManCard-Proof` header's value) and
    /// consumes its nonce. An unbound session needs none.
    pub fn check_proof(
        &self,
        session: &SessionCtx,
        proof: Option<&str>,
        req: ProvenRequest<'_>,
    ) -> Result<()> {
        let Some(key) = &session.binding_key else {
            return Ok(());
        };
        let value = proof.ok_or(Error::ProofRequired)?;
        let (nonce, sig) = parse_proof_header(value).ok_or(Error::BadRequestProof(
            "the ManCard-Proof header is <nonce hex>.<signature hex> (32 and 64 bytes)",
        ))?;
        verify_request(key, &nonce, (req.method, req.path, req.body), &sig).map_err(|_| {
            Error::BadRequestProof(
                "the request proof does not verify under this session's device binding key",
            )
        })?;
        let now = self.now();
        self.store.write(|tx| {
            if tx.take_nonce(&nonce, session.account_id, now)? {
                Ok(())
            } else {
                Err(Error::InvalidNonce)
            }
        })
    }

    /// Ends the session of this token (logout).
    pub fn logout(&self, session: &SessionCtx) -> Result<()> {
        self.store
            .write(|tx| tx.end_session_by_token(&session.token_hash))?;
        tracing::info!(account_id = session.account_id.0, "logged out");
        Ok(())
    }

    /// The account's live sessions (ids, never tokens).
    pub fn list_sessions(&self, session: &SessionCtx) -> Result<SessionList> {
        let now = self.now();
        let idle = self.idle_secs();
        let rows = self
            .store
            .read(|tx| tx.account_sessions(session.account_id, now, idle))?;
        Ok(SessionList {
            sessions: rows
                .iter()
                .map(|r| view(r, &session.session_id, idle))
                .collect(),
        })
    }

    /// Ends one session of the caller's account (the request proof, if the caller is bound,
    /// is checked by the caller of this function: [`Engine::check_proof`]).
    pub fn end_session(&self, session: &SessionCtx, id: &str) -> Result<()> {
        let ended = self
            .store
            .write(|tx| tx.end_session(session.account_id, id.trim(), &session.token_hash))?;
        match ended {
            Some(true) => {}
            Some(false) => return Err(Error::NewerSession),
            None => return Err(Error::UnknownSession),
        }
        tracing::info!(
            account_id = session.account_id.0,
            "session ended by the rider"
        );
        Ok(())
    }

    /// Deletes expired sessions (absolute or idle), nonces, one-time codes and code-send
    /// pacing rows, and (PostgreSQL) old challenge guards. The server runs it periodically.
    pub fn purge_expired(&self) -> Result<Purged> {
        let now = self.now();
        let idle = self.idle_secs();
        let purged = self.store.write(|tx| tx.purge_expired(now, idle))?;
        if purged != Purged::default() {
            tracing::info!(
                sessions = purged.sessions,
                nonces = purged.nonces,
                codes = purged.codes,
                senders = purged.senders,
                challenge_guards = purged.challenge_guards,
                "expired rows purged"
            );
        }
        Ok(purged)
    }

    /// The binding key a credential request names, checked against a bound session's.
    pub(crate) fn check_session_device(session: &SessionCtx, binding_hex: &str) -> Result<()> {
        if let Some(bound) = &session.binding_key {
            let asked = public_key(binding_hex, "binding_public_key")?;
            if asked.as_bytes() != bound.as_bytes() {
                return Err(Error::WrongDevice);
            }
        }
        Ok(())
    }
}
