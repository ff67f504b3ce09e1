//! The credential flows: provisioning a phone, replenishing its certificate, and deciding
//! when a replenishment is worth it. Each request's binding-key proof is stored before it is
//! sent, so a retry after a lost answer resends it as is.

use super::flows::{server_err, unhex, Inner};
use super::http::{CallError, NO_BODY};
use super::{OnlineError, ProvisionReport};
use crate::error::WalletError;
use crate::types::{CredentialRequest, CredentialState, IssuerKeyInfo};
use crate::util::now_utc;
use mancard_api::endpoints::{self, Endpoint};
use mancard_api::{CredentialResponse, NonceResponse, ProblemCode};
use mancard_protocol::provision::{provision_transcript, ProvisionPurpose, NONCE_LEN};
use mancard_protocol::{PublicKey, Signature};

const SCOPE_CREDENTIAL: &str = "credential";

/// The stored provisioning attempt: purpose ‖ tap key (65) ‖ nonce (32) ‖ signature (64) ‖
/// nonce expiry (8, big endian). The nonce makes the request idempotent: resent as is after a
/// nonce expiry (8, big endian). The nonce makes the request idempotent: resent as is after a
/// lost answer.
struct CredentialAttempt {
    purpose: u8,
    tap_key: Vec<u8>,
    nonce: Vec<u8>,
    signature: Vec<u8>,
    expires_at: i64,
}

impl CredentialAttempt {
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(1 + 65 + 32 + 64 + 8);
        v.push(self.purpose);
        v.extend_from_slice(&self.tap_key);
        v.extend_from_slice(&self.nonce);
        v.extend_from_slice(&self.signature);
        v.extend_from_slice(&self.expires_at.to_be_bytes());
        v
    }
    fn decode(b: &[u8]) -> Option<Self> {
        let (purpose, rest) = b.split_first()?;
        let (tap_key, rest) = rest.split_at_checked(65)?;
        let (nonce, rest) = rest.split_at_checked(NONCE_LEN)?;
        let (signature, rest) = rest.split_at_checked(64)?;
        let exp: [u8; 8] = rest.try_into().ok()?;
        Some(Self {
            purpose: *purpose,
            tap_key: tap_key.to_vec(),
            nonce: nonce.to_vec(),
            signature: signature.to_vec(),
            expires_at: i64::from_be_bytes(exp),
        })
    }
}

impl CredentialAttempt {
    /// The request body of this attempt.
    fn body(&self, req: &CredentialRequest) -> mancard_api::CredentialRequest {
        mancard_api::CredentialRequest {
            nonce: hex::encode(&self.nonce),
            binding_public_key: hex::encode(&req.binding_public_key),
            tap_public_key: hex::encode(&self.tap_key),
            signature: hex::encode(&self.signature),
            next_counter: Some(req.next_counter),
        }
    }
}

fn endpoint_of(purpose: ProvisionPurpose) -> Endpoint {
    match purpose {
        ProvisionPurpose::Replenish => endpoints::REPLENISH,
        _ => endpoints::PROVISION,
    }
}

fn report_of(resp: CredentialResponse) -> ProvisionReport {
    ProvisionReport {
        pseudonym: resp.pseudonym,
        certificate_hash: resp.certificate_hash,
        valid_from: resp.valid_from,
        valid_until: resp.valid_until,
        counter_first: resp.counter_first,
        counter_last: resp.counter_last,
        max_amount: resp.max_amount,
        fare_class: resp.fare_class,
        balance: resp.balance,
        revoked_pseudonyms: resp.revoked_pseudonyms,
    }
}

impl Inner {
    /// A replenishment needs an installed, unrevoked credential.
    fn check_replenishable(&self) -> Result<(), OnlineError> {
        match self.wallet.current_pseudonym() {
            None => Err(OnlineError::Validation {
                code: "no_credential".into(),
                message: "this phone has no ticket yet; provision it first".into(),
            }),
            // the rider's words for why ("this card was moved to another phone", ...)
            Some((_, true)) => Err(OnlineError::CredentialRevoked {
                reason: self
                    .wallet
                    .status(now_utc())?
                    .problem
                    .unwrap_or_else(|| "the ticket was revoked".into()),
            }),
            Some(_) => Ok(()),
        }
    }

    pub(crate) async fn provision(&self, replenish: bool) -> Result<ProvisionReport, OnlineError> {
        let _g = self.credential_lock.lock().await;
        let purpose = if replenish {
            ProvisionPurpose::Replenish
        } else {
            ProvisionPurpose::Provision
        };
        if replenish {
            self.check_replenishable()?;
        }
        let req = self.wallet.prepare_credential_request()?;
        let resp = self.request_certificate(purpose, &req).await?;
        let certificate = unhex(&resp.certificate, "certificate")?;
        let keys = resp
            .issuer_keys
            .iter()
            .map(|k| {
                Ok(IssuerKeyInfo {
                    key_id: k.key_id,
                    public_key: unhex(&k.public_key, "issuer key")?,
                    valid_from: k.valid_from,
                    valid_until: k.valid_until,
                })
            })
            .collect::<Result<Vec<_>, OnlineError>>()?;
        // Installed only after the signature, the key and the range are checked.
        self.wallet
            .install_certificate(certificate, keys, now_utc())?;
        self.wallet.idempotency_clear(SCOPE_CREDENTIAL)?;
        // after the certificate: its issuer keys are the ones the bundle must be signed by
        self.install_bundle(&resp.config_bundle);
        if !resp.tariff.is_empty() {
            if let Err(e) = self.wallet.set_tariff(unhex(&resp.tariff, "tariff")?) {
                tracing::warn!("the backend's tariff was not installed: {e}");
            }
        }
        Ok(report_of(resp))
    }

    /// Sends the credential request (a stored attempt first, else a fresh proof) until the
    /// backend answers with a certificate or refuses.
    async fn request_certificate(
        &self,
        purpose: ProvisionPurpose,
        req: &CredentialRequest,
    ) -> Result<CredentialResponse, OnlineError> {
        let ep = endpoint_of(purpose);
        // A stored attempt for the same key and purpose is resent first (its answer may have
        // been lost after the backend applied it).
        let stored = self
            .wallet
            .idempotency_get(SCOPE_CREDENTIAL)?
            .and_then(|(_, b)| CredentialAttempt::decode(&b))
            .filter(|a| {
                a.purpose == purpose as u8
                    && a.tap_key == req.tap_public_key
                    && a.expires_at > self.wallet.corrected(now_utc())
            });
        // A nonce is single-use: `invalid_nonce` means it was consumed (by a request of ours
        // whose answer was lost, possibly inside the retries of this very call) or expired.
        // One fresh proof is then tried; the backend treats the same binding key as the same
        // device, so this never creates a second device.
        let mut fresh_left = 1u32;
        let mut attempt = match stored {
            Some(a) => a,
            None => self.new_attempt(purpose, req).await?,
        };
        loop {
            let body = attempt.body(req);
            match self.authed(ep, ep.path, Some(&body)).await {
                Ok(r) => return Ok(r),
                Err(e) if fresh_left > 0 && e.code() == Some(ProblemCode::InvalidNonce) => {
                    fresh_left -= 1;
                    attempt = self.new_attempt(purpose, req).await?;
                }
                Err(e) => {
                    if matches!(e, CallError::Problem { .. }) {
                        self.wallet.idempotency_clear(SCOPE_CREDENTIAL)?;
                    }
                    return Err(e.into());
                }
            }
        }
    }

    /// A fresh nonce, signed by the binding key; stored before the request is sent.
    async fn new_attempt(
        &self,
        purpose: ProvisionPurpose,
        req: &CredentialRequest,
    ) -> Result<CredentialAttempt, OnlineError> {
        let ep = endpoints::CREDENTIAL_NONCE;
        let n: NonceResponse = self.authed(ep, ep.path, NO_BODY).await?;
        let nonce_bytes = unhex(&n.nonce, "nonce")?;
        let nonce: [u8; NONCE_LEN] = nonce_bytes
            .as_slice()
            .try_into()
            .map_err(|_| server_err("the backend's nonce is not 32 bytes"))?;
        let bk = PublicKey::from_bytes(&req.binding_public_key, "binding public key")
            .map_err(|e| WalletError::internal(e.to_string()))?;
        let tk = PublicKey::from_bytes(&req.tap_public_key, "tap public key")
            .map_err(|e| WalletError::internal(e.to_string()))?;
        let transcript = provision_transcript(purpose, &nonce, &bk, &tk);
        let signature = self
            .wallet
            .keystore()
            .sign_with_binding_key(transcript)
            .map_err(WalletError::from)?;
        let raw: [u8; 64] = signature.as_slice().try_into().map_err(|_| {
            WalletError::internal(format!(
                "the keystore returned a {}-byte signature, not the fixed 64-byte form",
                signature.len()
            ))
        })?;
        // A platform keystore (Android's, JCA) signs with either S; every ManCard verifier
        // takes only the canonical low-S one, which verifies just the same.
        let signature = Signature(raw).to_low_s().as_bytes().to_vec();
        let a = CredentialAttempt {
            purpose: purpose as u8,
            tap_key: req.tap_public_key.clone(),
            nonce: nonce.to_vec(),
            signature,
            expires_at: n.expires_at,
        };
        self.wallet.idempotency_put(
            SCOPE_CREDENTIAL,
            &hex::encode(&a.nonce),
            &a.encode(),
            now_utc(),
        )?;
        Ok(a)
    }

    /// Whether a new certificate would help: expired, key unusable, expiry near, counters low
    /// (under a quarter of the range, or no more than the ride margin: counters cannot be
    /// topped up, so this asks whatever the balance), or rides low *and* the balance allows
    /// more allowance than is left (a certificate cannot grant more than the balance, so
    /// replenishing a poor wallet at every sync is pointless). A rider whose balance covers
    /// the ride is therefore never left without one after a sync.
    pub(super) fn replenish_wanted(&self) -> Result<bool, OnlineError> {
        let now = now_utc();
        let (st, counters_low) = self.wallet.status_and_counters(now)?;
        let cfg = self.wallet.config();
        Ok(match st.state {
            CredentialState::NoCredential | CredentialState::Revoked => false,
            CredentialState::Expired | CredentialState::KeyUnavailable => true,
            CredentialState::Active
            | CredentialState::ReplenishDue
            | CredentialState::NotYetValid
            | CredentialState::Exhausted => {
                let expiry_near = st.valid_until.is_some_and(|u| {
                    u.saturating_sub(self.wallet.corrected(now)) <= cfg.replenish_before_expiry_secs
                });
                let l = self.wallet.ledger()?;
                let can_grow =
                    st.replenish_due && l.available_balance > l.offline_allowance_remaining.max(0);
                expiry_near || counters_low || can_grow
            }
        })
    }

    pub(crate) async fn replenish_if_due(&self) -> Result<Option<ProvisionReport>, OnlineError> {
        if !self.replenish_wanted()? {
            return Ok(None);
        }
        self.provision(true).await.map(Some)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credential_attempt_roundtrip_and_garbage() {
        let a = CredentialAttempt {
            purpose: 2,
            tap_key: vec![4; 65],
            nonce: vec![7; 32],
            signature: vec![9; 64],
            expires_at: 1_795_840_200,
        };
        let b = CredentialAttempt::decode(&a.encode()).unwrap();
        assert_eq!(
            (b.purpose, b.tap_key, b.nonce, b.signature, b.expires_at),
            (
                a.purpose,
                a.tap_key.clone(),
                a.nonce.clone(),
                a.signature.clone(),
                a.expires_at
            )
        );
        assert!(CredentialAttempt::decode(&[]).is_none());
        assert!(CredentialAttempt::decode(&a.encode()[..100]).is_none());
        let mut long = a.encode();
        long.push(0);
        assert!(CredentialAttempt::decode(&long).is_none());
    }
}
