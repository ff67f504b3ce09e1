//! The credential lifecycle: a request for a new certificate (a new sealed tap key), its
//! installation after every check, and revocation.

use crate::error::WalletError;
use crate::store::NewCredential;
use crate::types::{CredentialRequest, IssuerKeyInfo};
use crate::util::now_utc;
use crate::wallet::{unseal_tap_key, Active, Wallet};
use mancard_protocol::{
    check_validity, verify_certificate_signature, CredentialCertificate, IssuerKey, PublicKey,
    SigningKey, VerifyError,
};
use std::sync::atomic::Ordering;

fn refused(message: String) -> WalletError {
    WalletError::InvalidCertificate { message }
}

/// The issuer keys as the protocol's verifier takes them.
fn issuer_keys(keys: Vec<IssuerKeyInfo>) -> Result<Vec<IssuerKey>, WalletError> {
    keys.into_iter()
        .map(|k| {
            Ok(IssuerKey {
                key_id: k.key_id,
                public_key: PublicKey::from_bytes(&k.public_key, "issuer public key")
                    .map_err(|e| WalletError::invalid(e.to_string()))?,
                valid_from: k.valid_from,
                valid_until: k.valid_until,
            })
        })
        .collect()
}

impl Wallet {
    /// Returns the request for a new certificate: creates a new tap key (sealed by the platform
    /// keystore) unless one is already waiting, in which case the same request is returned.
    pub fn prepare_credential_request(&self) -> Result<CredentialRequest, WalletError> {
        let _lifecycle = self.lifecycle();
        let binding_public_key = self.keystore().binding_public_key()?;
        let tap_public_key = match self.pending_tap_public_key()? {
            Some(pk) => pk,
            None => {
                // Generate and seal outside the writer lock: the platform keystore may take
                // tens of milliseconds and a tap must not wait for it.
                let (key, pkcs8) = SigningKey::generate()
                    .map_err(|e| WalletError::internal(format!("tap key generation: {e}")))?;
                let sealed = self.keystore().seal(pkcs8.to_vec())?;
                drop(pkcs8);
                let pk = key.public_key().as_bytes().to_vec();
                self.writer()
                    .db
                    .write(|w| w.insert_pending_tap_key(&pk, &sealed, now_utc()))?;
                pk
            }
        };
        let next_counter =
            u32::try_from(self.counters().next.load(Ordering::Acquire)).unwrap_or(u32::MAX);
        Ok(CredentialRequest {
            tap_public_key,
            binding_public_key,
            next_counter,
        })
    }

    /// The pending tap key's public half, if a request is waiting for its certificate.
    pub fn pending_tap_public_key(&self) -> Result<Option<Vec<u8>>, WalletError> {
        self.reader().read().pending_tap_public_key()
    }

    /// Installs a certificate issued for the pending tap key: checks the issuer signature
    /// against `issuer_keys`, that it is for this wallet's pending key, not already expired (at
    /// `now`, server-corrected), and that its counter range is still reachable. The previous
    /// credential is superseded and its key deleted only once the new one is stored.
    /// `issuer_keys` are stored: they are the keys a config bundle must be signed by
    /// ([`Wallet::install_config`]). Installing the already installed certificate again is a
    /// no-op.
    pub fn install_certificate(
        &self,
        certificate: Vec<u8>,
        issuer_keys_info: Vec<IssuerKeyInfo>,
        now: i64,
    ) -> Result<(), WalletError> {
        let cert =
            CredentialCertificate::decode(&certificate).map_err(|e| refused(e.to_string()))?;
        let keys = issuer_keys(issuer_keys_info)?;
        verify_certificate_signature(&cert, &keys).map_err(|e| refused(e.to_string()))?;
        let hash = cert.id();
        let t = self.corrected(now);
        let _lifecycle = self.lifecycle();
        if let Err(VerifyError::Expired { .. }) = check_validity(&cert, t) {
            return Err(refused(format!(
                "it expired at {} (wallet time {})",
                cert.body.valid_until, t
            )));
        }
        let pk = cert.body.tap_public_key.as_bytes().to_vec();
        let pending = self.reader().read().pending_tap_key(&pk)?;
        let Some(pending) = pending else {
            if self.reader().read().is_active_certificate(&hash)? {
                return Ok(());
            }
            return Err(refused(
                "its tap key is not this wallet's pending tap key (prepare a request first)".into(),
            ));
        };
        // Unseal outside the writer lock (the platform keystore can be slow).
        let key = unseal_tap_key(
            self.keystore(),
            pending.sealed_key,
            &cert.body.tap_public_key,
        )
        .map_err(|m| WalletError::KeyUnavailable { message: m })?;

        let mut ws = self.writer();
        let last = u64::from(cert.body.allowance.counter_last);
        if last < ws.next_counter {
            return Err(refused(format!(
                "its counter range ends at {last}, below this wallet's next counter {}",
                ws.next_counter
            )));
        }
        let first_seq = i64::try_from(ws.log.next_seq)
            .map_err(|_| WalletError::internal("tap log sequence out of range"))?;
        let stored_keys = crate::bundle::encode_keys(&keys);
        let id = ws.db.write_now(|w| {
            w.set_setting(crate::store::settings::ISSUER_KEYS, &stored_keys)?;
            w.install_credential(&NewCredential {
                tap_key_id: pending.id,
                certificate: &certificate,
                cert_hash: &hash,
                installed_at: t,
                first_seq,
            })
        })?;
        ws.issuer_keys = keys;
        let first_counter = u64::from(cert.body.allowance.counter_first);
        ws.active = Some(Active {
            id,
            cert_bytes: certificate,
            hash,
            key: Some(key),
            key_problem: None,
            spent: 0,
            revoked: false,
            revoked_reason: None,
            cert,
        });
        ws.next_counter = ws.next_counter.max(first_counter);
        ws.last_pass = None;
        // The readers this phone met under its old pseudonym must not link it to the new one.
        ws.readers.clear();
        self.counters()
            .next
            .store(ws.next_counter, Ordering::Release);
        self.set_key_problem(None);
        // nothing reserved here: the first reader that selects ManCard starts the reservation
        Ok(())
    }

    /// Marks the installed credential revoked (called by the sync layer when the backend says
    /// so): taps and passes are refused from now on and its tap key is deleted.
    pub fn mark_revoked(&self, reason: String, now: i64) -> Result<(), WalletError> {
        let _lifecycle = self.lifecycle();
        let mut ws = self.writer();
        let id = match &ws.active {
            Some(a) if !a.revoked => a.id,
            _ => return Err(WalletError::NoCredential),
        };
        let t = self.corrected(now);
        ws.db.write_now(|w| w.revoke_credential(id, t, &reason))?;
        if let Some(a) = ws.active.as_mut() {
            a.revoked = true;
            a.revoked_reason = Some(reason);
            a.key = None;
        }
        ws.last_pass = None;
        Ok(())
    }
}
