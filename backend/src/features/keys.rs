//! Issuer keys: listing (public halves only) and rotation.

use crate::engine::Engine;
use crate::error::{Error, Result};
use mancard_api::{KeyInfo, KeysResponse};
use mancard_protocol::list::ListElement;
use mancard_protocol::IssuerKey;

impl Engine {
    /// The issuer keys and which one signs.
    pub fn keys(&self) -> Result<KeysResponse> {
        let keys = self.keyring();
        Ok(KeysResponse {
            current_key_id: keys.current()?.key_id,
            keys: keys.info(),
        })
    }

    /// Adds a new issuer key; the old one stops signing new certificates. Refused while the
    /// keys still listed for verification (retired ones stay listed for a certificate
    /// lifetime and a day) would, with the new one, be more than a config bundle carries:
    /// every bundle, and with it provisioning and sync, would fail.
    pub fn rotate_key(&self) -> Result<KeysResponse> {
        let now = self.now();
        let lifetime = self.config().policy.cert_lifetime_secs;
        let mut ring = self.keyring_mut();
        let listed = ring.listed(now, lifetime).len();
        let max = <IssuerKey as ListElement>::MAX;
        if listed >= max {
            return Err(Error::TooManyIssuerKeys { listed, max });
        }
        ring.rotate(now)?;
        drop(ring);
        self.keys()
    }

    /// The public summary of every key.
    pub fn key_info(&self) -> Vec<KeyInfo> {
        self.keyring().info()
    }
}
