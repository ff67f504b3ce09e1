//! Background jobs (top-up reconciliation, the purge of expired sessions and codes): run by
//! one backend instance at a time when several share a database. Each run first takes or
//! renews the jobs lease, and renews it again during a long reconciliation (every third of
//! its length), stopping if it was lost; an instance that does not hold it skips the run. A
//! lease lapses after three run intervals (at least 30 s), so a crashed holder is replaced
//! within that. Lapsing is judged by each instance's clock: the instances' clocks must agree
//! to well within the lease's length (NTP). Every job is idempotent on its own (compare-and-set
//! payment status, keyed ledger entries), so two runs at once would cost gateway calls, not
//! money.

use crate::engine::{random, Engine};
use crate::error::Result;
use crate::store::Purged;

/// The name of the lease over the background jobs.
pub const JOBS_LEASE: &str = "background-jobs";

/// What one run of the background jobs did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct JobsRun {
    /// Open payments asked about.
    pub reconciled: usize,
    pub purged: Purged,
}

/// A random name for one backend instance (its lease holder id).
pub(crate) fn instance_id() -> String {
    random::<8>().map_or_else(|_| format!("pid-{}", std::process::id()), hex::encode)
}

impl Engine {
    /// How long a jobs lease lasts.
    fn jobs_lease_secs(&self) -> i64 {
        let every = i64::try_from(self.config().policy.reconcile_every_secs).unwrap_or(i64::MAX);
        every.saturating_mul(3).max(30)
    }

    /// Takes or renews the jobs lease: true if this instance holds it now.
    fn hold_jobs_lease(&self) -> Result<bool> {
        let now = self.now();
        let until = now.saturating_add(self.jobs_lease_secs());
        let holder = self.instance_id();
        Ok(self
            .store
            .write(|tx| tx.take_lease(JOBS_LEASE, holder, now, until))?)
    }

    /// Runs the background jobs if this instance holds (or now takes) the jobs lease;
    /// `None` when another instance holds it. A failing job is logged and does not keep the
    /// other from running.
    pub fn run_background_jobs(&self) -> Result<Option<JobsRun>> {
        if !self.hold_jobs_lease()? {
            return Ok(None);
        }
        let third =
            std::time::Duration::from_secs(u64::try_from(self.jobs_lease_secs() / 3).unwrap_or(10));
        let mut renewed = std::time::Instant::now();
        let reconciled = self
            .reconcile_topups_while(|| {
                if renewed.elapsed() < third {
                    return true;
                }
                renewed = std::time::Instant::now();
                self.hold_jobs_lease().unwrap_or(false)
            })
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "top-up reconciliation failed");
                0
            });
        let purged = self.purge_expired().unwrap_or_else(|e| {
            tracing::warn!(error = %e, "purge of expired sessions and codes failed");
            Purged::default()
        });
        Ok(Some(JobsRun { reconciled, purged }))
    }

    /// Gives the jobs lease up if this instance holds it (at shutdown).
    pub fn release_jobs_lease(&self) -> Result<()> {
        let holder = self.instance_id();
        self.store
            .write(|tx| tx.release_lease(JOBS_LEASE, holder))?;
        Ok(())
    }
}
