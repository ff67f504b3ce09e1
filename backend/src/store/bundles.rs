//! Signed validator config bundles, one row per version.

use super::db::named_params;
use super::{Reader, Writer};
use crate::error::StoreError;

/// A stored config bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub version: u64,
    pub content_hash: Vec<u8>,
    pub encoded: Vec<u8>,
}

impl Reader<'_> {
    pub fn latest_bundle(&self) -> Result<Option<Bundle>, StoreError> {
        self.conn.query_opt(
            "SELECT version, content_hash, encoded FROM config_bundles
                 ORDER BY version DESC LIMIT 1",
            named_params! {},
            |r| {
                Ok(Bundle {
                    version: r.get("version")?,
                    content_hash: r.get("content_hash")?,
                    encoded: r.get("encoded")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    pub fn insert_bundle(
        &self,
        version: u64,
        content_hash: &[u8; 32],
        encoded: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let v = i64::try_from(version).map_err(|_| StoreError::Corrupt("bundle version"))?;
        self.tx.execute(
            "INSERT INTO config_bundles (version, content_hash, encoded, issued_at)
             VALUES (:version, :hash, :encoded, :now)",
            named_params! {
                ":version": v,
                ":hash": &content_hash[..],
                ":encoded": encoded,
                ":now": now,
            },
        )?;
        Ok(())
    }
}
