//! Issuer keys: listing (public halves only) and rotation.

use crate::engine::Engine;
use crate::error::Result;
use mancard_api::{KeyInfo, KeysResponse};

impl Engine {
    /// The issuer keys and which one signs.
    pub fn keys(&self) -> Result<KeysResponse> {
        let keys = self.keyring();
        Ok(KeysResponse {
            current_key_id: keys.current()?.key_id,
            keys: keys.info(),
        })
    }

    /// Adds a new issuer key; the old one stops signing new certificates.
    pub fn rotate_key(&self) -> Result<KeysResponse> {
        let now = self.now();
        self.keyring_mut().rotate(now)?;
        self.keys()
    }

    /// The public summary of every key.
    pub fn key_info(&self) -> Vec<KeyInfo> {
        self.keyring().info()
    }
}
