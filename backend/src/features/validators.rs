//! Validators: registration of their batch-signing keys, and the signed config bundle they
//! download (issuer keys, deny list, tariff), re-signed whenever its content changes.

use crate::engine::{public_key, Engine};
use crate::error::{Error, Result};
use mancard_api::{RegisterValidatorRequest, RegisterValidatorResponse};
use mancard_protocol::{sha256, IssuerKey, Pseudonym};

/// The bytes a bundle's content hash covers: everything but its version and issue time.
fn bundle_content(
    signer_key_id: u32,
    listed: &[IssuerKey],
    deny: &[crate::ids::PseudonymBytes],
    tariff: &[u8],
) -> Vec<u8> {
    let mut content = Vec::with_capacity(64 + listed.len() * 90 + deny.len() * 16 + tariff.len());
    content.extend_from_slice(&signer_key_id.to_be_bytes());
    for k in listed {
        content.extend_from_slice(&k.key_id.to_be_bytes());
        content.extend_from_slice(k.public_key.as_bytes());
        content.extend_from_slice(&k.valid_from.to_be_bytes());
        content.extend_from_slice(&k.valid_until.to_be_bytes());
    }
    content.extend_from_slice(&(deny.len() as u64).to_be_bytes());
    for p in deny {
        content.extend_from_slice(&p.0);
    }
    content.extend_from_slice(tariff);
    content
}

/// A signed validator config bundle.
#[derive(Debug, Clone)]
pub struct SignedBundle {
    /// `bundle_version`, also the HTTP ETag.
    pub version: u64,
    /// The `ValidatorConfig` encoding.
    pub encoded: Vec<u8>,
}

impl Engine {
    /// Registers (or re-keys) a validator.
    pub fn register_validator(
        &self,
        req: &RegisterValidatorRequest,
    ) -> Result<RegisterValidatorResponse> {
        let key = public_key(&req.public_key, "public_key")?;
        let now = self.now();
        self.store
            .write(|tx| tx.upsert_validator(req.validator_id, key.as_bytes(), now))?;
        tracing::info!(validator = req.validator_id, "validator registered");
        Ok(RegisterValidatorResponse {
            validator_id: req.validator_id,
            registered_at: now,
        })
    }

    /// The current signed config bundle. A new version is signed whenever the issuer keys,
    /// deny list or tariff change.
    pub fn config_bundle(&self) -> Result<SignedBundle> {
        let now = self.now();
        let lifetime = self.config().policy.cert_lifetime_secs;
        self.store.write(|tx| {
            let deny = tx.deny_list(now)?;
            let keys = self.keyring();
            let signer = keys.current()?;
            let listed = keys.listed(now, lifetime);
            let tariff = self.config().tariff.encode();
            let content = bundle_content(signer.key_id, &listed, &deny, &tariff);
            let content_hash = sha256(&[b"MANCARD-BUNDLE-CONTENT\0", &content]);
            let latest = tx.latest_bundle()?;
            if let Some(b) = &latest {
                if b.content_hash.as_slice() == content_hash.as_slice() {
                    return Ok(SignedBundle {
                        version: b.version,
                        encoded: b.encoded.clone(),
                    });
                }
            }
            let version = latest.map(|b| b.version.saturating_add(1)).unwrap_or(1);
            let body = mancard_protocol::ConfigBody {
                bundle_version: version,
                issued_at: now,
                signer_key_id: signer.key_id,
                issuer_keys: listed,
                deny_list: deny.into_iter().map(|p| Pseudonym(p.0)).collect(),
                tariff: self.config().tariff.clone(),
            };
            let signed = body.sign(&signer.key).map_err(Error::internal)?;
            let encoded = signed.encode();
            tx.insert_bundle(version, &content_hash, &encoded, now)?;
            tracing::info!(
                version,
                deny = signed.body.deny_list.len(),
                "config bundle signed"
            );
            Ok(SignedBundle { version, encoded })
        })
    }
}
