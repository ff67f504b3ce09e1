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

/// Whether a config bundle built earlier is still current, in one statement: how many times
/// the deny lists were changed, and the newest stored bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleState {
    pub generation: i64,
    /// The newest stored bundle's version and content hash.
    pub latest: Option<(u64, Vec<u8>)>,
}

impl Reader<'_> {
    pub fn bundle_state(&self) -> Result<BundleState, StoreError> {
        self.conn
            .query_opt(
                "SELECT i.generation AS generation, b.version AS version,
                        b.content_hash AS content_hash
                   FROM bundle_inputs i
                   LEFT JOIN (SELECT version, content_hash FROM config_bundles
                               ORDER BY version DESC LIMIT 1) b ON 1 = 1
                  WHERE i.id = 1",
                named_params! {},
                |r| {
                    let version: Option<u64> = r.get("version")?;
                    let hash: Option<Vec<u8>> = r.get("content_hash")?;
                    Ok(BundleState {
                        generation: r.get("generation")?,
                        latest: version.zip(hash),
                    })
                },
            )?
            .ok_or(StoreError::Corrupt("the bundle_inputs row is missing"))
    }

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
    /// What a config bundle lists changed in this transaction (a revocation made or lifted, a
    /// certificate superseded, a validator denied): the next [`Reader::bundle_state`] says so.
    pub(super) fn bundle_inputs_changed(&self) -> Result<(), StoreError> {
        let bumped = self.tx.execute(
            "UPDATE bundle_inputs SET generation = generation + 1 WHERE id = 1",
            named_params! {},
        )?;
        if bumped != 1 {
            return Err(StoreError::Corrupt("the bundle_inputs row is missing"));
        }
        Ok(())
    }

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
