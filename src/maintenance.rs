//! The wallet's background work: counter reservations, WAL checkpoints and the quiet-period
//! park of the next counter, on the `mancard-maintenance` thread (or inline, for tests that
//! want determinism). See docs/adr/0002.

use crate::counters::Counters;
use crate::error::WalletError;
use crate::store::Spare;
use crate::types::WalletConfig;
use crate::util::lock;
use crate::wallet::WriterState;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub(crate) enum Job {
    /// Reserve counters ahead of need (a reader selected ManCard, or half a block is used);
    /// also cancels a pending park. Carries the park epoch it was asked in: a park since then
    /// makes it moot.
    Reserve(u64),
    Checkpoint,
    /// The NFC field dropped: park the counter after the quiet period unless a reader selects
    /// ManCard again first.
    Quiet,
}

/// Parks the counter at the writer's next counter, under the writer lock (no tap in flight).
/// With `quiet_only`, nothing is done while a reader has ManCard selected.
pub(crate) fn park_counter(
    writer: &Mutex<WriterState>,
    counters: &Counters,
    quiet_only: bool,
) -> Result<bool, WalletError> {
    let ws = lock(writer);
    if quiet_only && ws.session.is_some() {
        return Ok(false);
    }
    counters.park(ws.next_counter)
}

pub(crate) fn run_job(
    job: Job,
    writer: &Mutex<WriterState>,
    counters: &Counters,
    spare: &Spare,
    background: bool,
) {
    match job {
        Job::Quiet => {
            if let Err(e) = park_counter(writer, counters, true) {
                tracing::warn!("could not record the next counter: {e}");
            }
        }
        Job::Reserve(epoch) => {
            let r = counters.reserve_if_current(epoch);
            counters.request_done();
            if let Err(e) = r {
                if background {
                    tracing::warn!("background counter reservation failed: {e}");
                } else {
                    tracing::warn!("counter reservation failed: {e}");
                }
            }
        }
        Job::Checkpoint => {
            if let Err(e) = spare.checkpoint() {
                if background {
                    tracing::warn!("background WAL checkpoint failed: {e}");
                }
            }
        }
    }
}

/// The maintenance thread: runs jobs as they come; a `Quiet` arms a timer that parks the
/// counter once the wallet has been quiet for `quiet` (activity since — a SELECT, a field
/// drop, a pass — moves the deadline on; a park is never made during a session).
fn maintenance_loop(
    rx: Receiver<Job>,
    writer: Arc<Mutex<WriterState>>,
    counters: Arc<Counters>,
    spare: Spare,
    quiet: Duration,
) {
    let mut park_at: Option<Instant> = None;
    loop {
        let job = match park_at {
            None => rx.recv().map_err(|_| RecvTimeoutError::Disconnected),
            Some(at) => rx.recv_timeout(at.saturating_duration_since(Instant::now())),
        };
        match job {
            Ok(Job::Quiet) => park_at = Some(counters.last_activity().max(Instant::now()) + quiet),
            Ok(job) => run_job(job, &writer, &counters, &spare, true),
            Err(RecvTimeoutError::Timeout) => {
                let due = counters.last_activity() + quiet;
                if due > Instant::now() {
                    park_at = Some(due);
                    continue;
                }
                park_at = None;
                // disarmed first: a field drop during the park arms a new timer
                counters.quiet_armed.store(false, Ordering::Release);
                run_job(Job::Quiet, &writer, &counters, &spare, true);
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
    }
}

pub(crate) type Maintenance = (
    Option<SyncSender<Job>>,
    Option<JoinHandle<()>>,
    Option<Mutex<Spare>>,
);

pub(crate) fn start_maintenance(
    config: &WalletConfig,
    writer: &Arc<Mutex<WriterState>>,
    counters: &Arc<Counters>,
    spare: Spare,
) -> Result<Maintenance, WalletError> {
    if !config.background_maintenance {
        return Ok((None, None, Some(Mutex::new(spare))));
    }
    let (tx, rx) = sync_channel::<Job>(32);
    let c = Arc::clone(counters);
    let w = Arc::clone(writer);
    let quiet = Duration::from_millis(u64::from(config.park_after_quiet_ms));
    let h = std::thread::Builder::new()
        .name("mancard-maintenance".into())
        .spawn(move || maintenance_loop(rx, w, c, spare, quiet))?;
    Ok((Some(tx), Some(h), None))
}
