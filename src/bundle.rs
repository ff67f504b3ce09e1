//! The config bundle on the phone: the issuer-signed `ValidatorConfig` whose issuer keys,
//! validator deny list, time rules and tariff the tap path and passes use, and the issuer keys
//! the wallet trusts to sign it.
//!
//! A bundle is installed only if it is signed by an issuer key it lists that the wallet
//! already trusts (the keys given with the installed certificate, or those of the installed
//! bundle); a wallet that trusts no key yet accepts the first bundle it gets (over the
//! authenticated TLS session, as it got its certificate). Only a newer version replaces the
//! installed one. Stored in the settings table, loaded at open.

use crate::error::WalletError;
use crate::store::{settings, Writer};
use crate::wallet::Wallet;
use mancard_protocol::codec::{Reader as ByteReader, Writer as ByteWriter};
use mancard_protocol::list::{read_list, write_list};
use mancard_protocol::{verify_config, IssuerKey, ValidatorConfig};

fn refused(message: impl Into<String>) -> WalletError {
    WalletError::InvalidConfig {
        message: message.into(),
    }
}

/// The stored bundle and trusted issuer keys.
pub(crate) fn load(db: &Writer) -> Result<(Option<ValidatorConfig>, Vec<IssuerKey>), WalletError> {
    let r = db.read();
    let bundle = match r.setting::<Vec<u8>>(settings::CONFIG_BUNDLE)? {
        Some(b) => Some(
            ValidatorConfig::decode(&b).map_err(|e| WalletError::DatabaseCorrupt {
                message: format!("stored config bundle: {e}"),
            })?,
        ),
        None => None,
    };
    let keys = match r.setting::<Vec<u8>>(settings::ISSUER_KEYS)? {
        Some(b) => decode_keys(&b).map_err(|e| WalletError::DatabaseCorrupt {
            message: format!("stored issuer keys: {e}"),
        })?,
        None => Vec::new(),
    };
    Ok((bundle, keys))
}

/// Issuer keys as the settings table stores them (the bundle's list encoding).
pub(crate) fn encode_keys(keys: &[IssuerKey]) -> Vec<u8> {
    let mut sorted = keys.to_vec();
    sorted.sort_by_key(|k| k.key_id);
    sorted.dedup_by_key(|k| k.key_id);
    let mut w = ByteWriter::with_capacity(1 + sorted.len().saturating_mul(85));
    write_list(&mut w, &sorted);
    w.into_vec()
}

fn decode_keys(b: &[u8]) -> Result<Vec<IssuerKey>, mancard_protocol::DecodeError> {
    let mut r = ByteReader::new(b);
    let keys = read_list(&mut r)?;
    r.finish()?;
    Ok(keys)
}

/// What the checks of a new bundle need from the wallet's state.
struct Trust {
    keys: Vec<IssuerKey>,
    installed: Option<ValidatorConfig>,
}

/// Checks `config` against what the wallet trusts; `Ok(false)`: it is the installed bundle.
fn check(config: &ValidatorConfig, trust: &Trust) -> Result<bool, WalletError> {
    let id = config.body.signer_key_id;
    let signer = config.issuer_key(id).ok_or_else(|| {
        refused(format!(
            "it is signed by issuer key {id}, which it does not list"
        ))
    })?;
    if !trust.keys.is_empty()
        && !trust
            .keys
            .iter()
            .any(|k| k.key_id == id && k.public_key == signer.public_key)
    {
        return Err(refused(format!(
            "it is signed by issuer key {id}, which this wallet does not trust"
        )));
    }
    verify_config(config, std::slice::from_ref(signer), None)
        .map_err(|e| refused(format!("its signature is refused: {e}")))?;
    if let Some(installed) = &trust.installed {
        // the same bundle (ECDSA signatures are randomized: compare what was signed)
        if installed.body == config.body {
            return Ok(false);
        }
        let (offered, have) = (config.body.bundle_version, installed.body.bundle_version);
        if offered <= have {
            return Err(refused(format!(
                "version {offered} is not newer than the installed version {have}"
            )));
        }
    }
    Ok(true)
}

impl Wallet {
    /// Installs a config bundle (an encoded, signed `ValidatorConfig`): its issuer keys and
    /// validator deny list decide which readers the phone answers, its time rules bound taps
    /// and passes, its tariff bounds fares. Refused (and nothing changed) when it does not
    /// decode, is not signed by a key the wallet trusts, or is not newer than the installed
    /// one; installing the installed bundle again is a no-op.
    pub fn install_config(&self, bundle: Vec<u8>) -> Result<(), WalletError> {
        let config =
            ValidatorConfig::decode(&bundle).map_err(|e| refused(format!("unreadable: {e}")))?;
        let _lifecycle = self.lifecycle();
        let trust = {
            let ws = self.writer();
            let mut keys = ws.issuer_keys.clone();
            if let Some(b) = &ws.bundle {
                keys.extend(b.body.issuer_keys.iter().cloned());
            }
            Trust {
                keys,
                installed: ws.bundle.clone(),
            }
        };
        // the signature is checked outside the writer lock (a tap must not wait for it)
        if !check(&config, &trust)? {
            return Ok(());
        }
        let tariff = config.body.tariff.encode();
        let mut ws = self.writer();
        ws.db.write(|w| {
            w.set_setting(settings::CONFIG_BUNDLE, &bundle)?;
            w.set_setting(settings::TARIFF, &tariff)
        })?;
        self.replace_tariff(config.body.tariff.clone());
        tracing::info!(
            "config bundle version {} installed",
            config.body.bundle_version
        );
        ws.bundle = Some(config);
        // a certificate verified under the old keys is verified again under the new ones
        ws.readers.clear();
        Ok(())
    }

    /// The installed config bundle's version, if any.
    pub fn config_version(&self) -> Option<u64> {
        self.writer().bundle.as_ref().map(|b| b.body.bundle_version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mancard_protocol::SigningKey;

    #[test]
    fn issuer_keys_roundtrip_through_their_stored_form() {
        let k = |id| IssuerKey {
            key_id: id,
            public_key: SigningKey::generate().unwrap().0.public_key(),
            valid_from: 1,
            valid_until: 2,
        };
        let keys = vec![k(3), k(1)];
        let back = decode_keys(&encode_keys(&keys)).unwrap();
        assert_eq!(back.iter().map(|k| k.key_id).collect::<Vec<_>>(), [1, 3]);
        assert!(decode_keys(&[1, 2, 3]).is_err());
        assert!(decode_keys(&encode_keys(&[])).unwrap().is_empty());
    }
}
