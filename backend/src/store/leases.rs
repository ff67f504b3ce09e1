//! Leases: which backend instance runs a background job (top-up reconciliation, purges) when
//! several share one database. A lease is a row naming its holder and when it lapses; taking
//! it is one statement, so two instances racing for it cannot both win.

use super::db::named_params;
use super::{Reader, Writer};
use crate::error::StoreError;

/// Who holds a lease, and until when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    pub holder: String,
    pub expires_at: i64,
}

impl Reader<'_> {
    pub fn lease(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        self.conn.query_opt(
            "SELECT holder, expires_at FROM leases WHERE name = :name",
            named_params! {":name": name},
            |r| {
                Ok(Lease {
                    holder: r.get("holder")?,
                    expires_at: r.get("expires_at")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    /// Takes or renews lease `name` for `holder` until `expires_at`: true if `holder` now
    /// holds it (it was free, lapsed before `now`, or already `holder`'s).
    pub fn take_lease(
        &self,
        name: &str,
        holder: &str,
        now: i64,
        expires_at: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "INSERT INTO leases (name, holder, expires_at) VALUES (:name, :holder, :until)
             ON CONFLICT (name) DO UPDATE
                 SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE leases.holder = excluded.holder OR leases.expires_at < :now",
            named_params! {":name": name, ":holder": holder, ":until": expires_at, ":now": now},
        )?;
        Ok(n == 1)
    }

    /// Gives lease `name` up if `holder` holds it (a clean shutdown: another instance takes
    /// over at once instead of after the lease lapses).
    pub fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.tx.execute(
            "DELETE FROM leases WHERE name = :name AND holder = :holder",
            named_params! {":name": name, ":holder": holder},
        )?;
        Ok(())
    }
}
