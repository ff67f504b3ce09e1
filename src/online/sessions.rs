//! The session's server side: the binding proof a bound session's money and session calls
//! carry (signed automatically by the keystore's binding key), logout, the account's session
//! list and ending one session.
//!
//! After this phone provisions, the backend binds its session to the binding key: creating a
//! top-up or ending another session then needs a `ManCard-Proof` header, the binding key's
//! signature over a single-use server nonce and the request's method, path and body
//! (`mancard_protocol::provision::request_transcript`). A stolen token alone moves nothing.

use super::flows::{server_err, unhex, Inner};
use super::http::{body_bytes, method_of, CallError, NO_BODY};
use super::{OnlineError, SessionEntry};
use crate::error::WalletError;
use mancard_api::endpoints::{self, Endpoint};
use mancard_api::{NonceResponse, ProblemCode, SessionList};
use mancard_protocol::provision::{proof_header, request_transcript, NONCE_LEN};
use mancard_protocol::Signature;
use serde::de::DeserializeOwned;
use serde::Serialize;

impl Inner {
    /// A `ManCard-Proof` header value for `method path` with `body`.
    async fn request_proof(
        &self,
        method: &str,
        path: &str,
        body: &[u8],
    ) -> Result<String, OnlineError> {
        let ep = endpoints::CREDENTIAL_NONCE;
        let n: NonceResponse = self.authed(ep, ep.path, NO_BODY).await?;
        let nonce: [u8; NONCE_LEN] = unhex(&n.nonce, "nonce")?
            .as_slice()
            .try_into()
            .map_err(|_| server_err("the backend's nonce is not 32 bytes"))?;
        let transcript = request_transcript(&nonce, method, path, body);
        let sig = self
            .wallet
            .keystore()
            .sign_with_binding_key(transcript)
            .map_err(WalletError::from)?;
        let raw: [u8; 64] = sig.as_slice().try_into().map_err(|_| {
            WalletError::internal(format!(
                "the keystore returned a {}-byte signature, not the fixed 64-byte form",
                sig.len()
            ))
        })?;
        // Only the canonical low-S form verifies at the backend.
        Ok(proof_header(&nonce, &Signature(raw).to_low_s()))
    }

    /// A request carrying the binding proof. A nonce is single-use: when a retry inside the
    /// HTTP client resends a proof the backend already consumed (its first answer was lost),
    /// `invalid_nonce` comes back and one fresh proof is tried (the calls proven this way are
    /// idempotent: a top-up by its key, ending a session by its id).
    pub(super) async fn proven<T: DeserializeOwned, B: Serialize + ?Sized>(
        &self,
        endpoint: Endpoint,
        path: &str,
        body: Option<&B>,
    ) -> Result<T, CallError> {
        let bytes = body_bytes(body)?;
        let signed = bytes.as_deref().unwrap_or_default();
        let method = method_of(endpoint);
        let mut fresh_left = 1u32;
        loop {
            let proof = self
                .request_proof(method.as_str(), path, signed)
                .await
                .map_err(|e| CallError::Local(Box::new(e)))?;
            let token = self.token().map_err(|e| CallError::Local(Box::new(e)))?;
            let r = self
                .http
                .call_bytes(endpoint, path, Some(&token), bytes.as_deref(), Some(&proof))
                .await;
            match r {
                Err(e) if fresh_left > 0 && e.code() == Some(ProblemCode::InvalidNonce) => {
                    fresh_left -= 1;
                }
                r => return r,
            }
        }
    }

    /// Ends this session at the backend and forgets it here. The local session is forgotten
    /// whatever the backend said; an error says the backend could not be told (the session
    /// then ends by itself after its idle time).
    pub(crate) async fn logout(&self) -> Result<(), OnlineError> {
        let told = match self.token() {
            Ok(t) => {
                let ep = endpoints::LOGOUT;
                self.http
                    .call::<(), ()>(ep, ep.path, Some(&t), NO_BODY)
                    .await
            }
            Err(_) => Ok(()),
        };
        self.wallet.clear_session()?;
        match told {
            Ok(()) | Err(CallError::Problem { status: 401, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }

    /// The account's live sessions (this one marked `current`).
    pub(crate) async fn sessions(&self) -> Result<Vec<SessionEntry>, OnlineError> {
        let ep = endpoints::SESSIONS;
        let list: SessionList = self.authed(ep, ep.path, NO_BODY).await?;
        Ok(list
            .sessions
            .into_iter()
            .map(|s| SessionEntry {
                id: s.id,
                created_at: s.created_at,
                last_used_at: s.last_used_at,
                expires_at: s.expires_at,
                idle_expires_at: s.idle_expires_at,
                bound: s.bound,
                current: s.current,
            })
            .collect())
    }

    /// Ends one session of the account (e.g. a lost phone's), with this phone's proof.
    pub(crate) async fn end_session(&self, id: String) -> Result<(), OnlineError> {
        let id = id.trim();
        if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(OnlineError::Validation {
                code: "invalid_session_id".into(),
                message: "a session id is the hex id from the session list".into(),
            });
        }
        let ep = endpoints::END_SESSION;
        self.proven::<(), ()>(ep, &ep.path_with(id), NO_BODY)
            .await?;
        Ok(())
    }
}
