//! Counter reservation: counters are handed out only below a mark that has been written to its
//! own small file with a full fsync. The invariant: **every counter ever handed out is below the
//! mark of the newest valid slot.** So after a crash the wallet resumes at the mark and never
//! reuses a counter; what lies between the last counter used and the mark is skipped.
//!
//! The mark moves both ways (see docs/adr/0002):
//! - *raise* (reserve): a block ahead of need, off the tap path: when a reader selects ManCard
//!   and when half a block is used, by the maintenance thread. Nothing is reserved at open.
//! - *park*: under the tap path's lock (no tap in flight), the mark is lowered to the next
//!   counter and the in-memory limit with it. A clean close and a quiet period after the NFC
//!   field drops park, so a restart resumes inside the block instead of skipping it; only a
//!   crash between a tap and the next park skips the rest of a block.
//!
//! File layout (64 bytes): two 32-byte slots written alternately; each slot is
//! `"MCCR" ‖ version (1) ‖ 3 zero bytes ‖ generation (u64 BE) ‖ mark (u64 BE) ‖
//! first 8 bytes of SHA-256(previous 24 bytes)`. The valid slot with the highest generation
//! wins, so a torn write can only lose the newest mark, never one whose fsync completed — and
//! either mark keeps the invariant (a park is written only once no counter at or above the new
//! mark has been handed out, and the old, higher mark covers at least as much).

use crate::error::WalletError;
use crate::util::lock;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::{Duration, Instant};

const MAGIC: &[u8; 4] = b"MCCR";
const VERSION: u8 = 1;
const SLOT: usize = 32;

fn counter_err(message: impl Into<String>) -> WalletError {
    WalletError::CounterFile {
        message: message.into(),
    }
}

fn encode_slot(generation: u64, reserved_end: u64) -> [u8; SLOT] {
    let mut s = [0u8; SLOT];
    let mut body = Vec::with_capacity(24);
    body.extend_from_slice(MAGIC);
    body.extend_from_slice(&[VERSION, 0, 0, 0]);
    body.extend_from_slice(&generation.to_be_bytes());
    body.extend_from_slice(&reserved_end.to_be_bytes());
    let sum = mancard_protocol::sha256(&[&body]);
    for (d, b) in s.iter_mut().zip(body.iter().chain(sum.iter().take(8))) {
        *d = *b;
    }
    s
}

fn decode_slot(s: &[u8]) -> Option<(u64, u64)> {
    let body = s.get(..24)?;
    let sum = s.get(24..32)?;
    if body.get(..4)? != MAGIC || body.get(4..8)? != [VERSION, 0, 0, 0] {
        return None;
    }
    if mancard_protocol::sha256(&[body]).get(..8)? != sum {
        return None;
    }
    let generation = u64::from_be_bytes(body.get(8..16)?.try_into().ok()?);
    let end = u64::from_be_bytes(body.get(16..24)?.try_into().ok()?);
    Some((generation, end))
}

/// The reservation file, open for writing.
pub(crate) struct ReservationFile {
    path: PathBuf,
    file: File,
    generation: u64,
    reserved_end: u64,
}

impl ReservationFile {
    /// Opens the file; creates it (with mark 0) only if `may_create` is true.
    pub(crate) fn open(path: &Path, may_create: bool) -> Result<Self, WalletError> {
        if !path.exists() {
            if !may_create {
                return Err(counter_err(format!(
                    "{} is missing but this wallet has already used counters; refusing to \
                     start again from zero",
                    path.display()
                )));
            }
            let mut opts = OpenOptions::new();
            opts.read(true).write(true).create_new(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                opts.mode(0o600);
            }
            let mut f = opts
                .open(path)
                .map_err(|e| counter_err(format!("cannot create {}: {e}", path.display())))?;
            let mut both = Vec::with_capacity(2 * SLOT);
            both.extend_from_slice(&encode_slot(0, 0));
            both.extend_from_slice(&[0u8; SLOT]);
            f.write_all(&both)
                .and_then(|()| f.sync_all())
                .map_err(|e| counter_err(format!("cannot write {}: {e}", path.display())))?;
            if let Some(dir) = path.parent() {
                // make the new directory entry durable too
                if let Ok(d) = File::open(dir) {
                    let _ = d.sync_all();
                }
            }
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .map_err(|e| counter_err(format!("cannot open {}: {e}", path.display())))?;
        let mut buf = Vec::new();
        file.read_to_end(&mut buf)
            .map_err(|e| counter_err(format!("cannot read {}: {e}", path.display())))?;
        let best = [buf.get(..SLOT), buf.get(SLOT..2 * SLOT)]
            .into_iter()
            .flatten()
            .filter_map(decode_slot)
            .max_by_key(|(g, _)| *g);
        let (generation, reserved_end) = best.ok_or_else(|| {
            counter_err(format!(
                "{} is damaged (no valid slot); refusing to guess the counter mark",
                path.display()
            ))
        })?;
        Ok(Self {
            path: path.to_path_buf(),
            file,
            generation,
            reserved_end,
        })
    }

    pub(crate) fn reserved_end(&self) -> u64 {
        self.reserved_end
    }

    /// Durably raises the mark to `end` (no-op if it is not higher). Returns true if it wrote.
    pub(crate) fn raise_to(&mut self, end: u64) -> Result<bool, WalletError> {
        if end <= self.reserved_end {
            return Ok(false);
        }
        self.write_mark(end).map(|()| true)
    }

    /// Durably lowers the mark to `next` (no-op if it is not lower). The caller guarantees that
    /// no counter at or above `next` has been handed out. Returns true if it wrote.
    pub(crate) fn lower_to(&mut self, next: u64) -> Result<bool, WalletError> {
        if next >= self.reserved_end {
            return Ok(false);
        }
        self.write_mark(next).map(|()| true)
    }

    fn write_mark(&mut self, end: u64) -> Result<(), WalletError> {
        let generation = self.generation.wrapping_add(1);
        let offset = if generation.is_multiple_of(2) {
            0
        } else {
            SLOT as u64
        };
        let slot = encode_slot(generation, end);
        let written = self
            .file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(&slot))
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // The slot may have reached the disk anyway: remember the lower of the two marks
            // (so a failed park is never mistaken for a standing reservation) and keep the
            // generation, so that the next write overwrites that very slot.
            self.reserved_end = self.reserved_end.min(end);
            return Err(counter_err(format!(
                "cannot write {}: {e}",
                self.path.display()
            )));
        }
        self.generation = generation;
        self.reserved_end = end;
        Ok(())
    }
}

/// Shared counter state: the tap path reads `durable_end` and publishes `next`; the reserver
/// raises `durable_end` after each fsync.
pub(crate) struct Counters {
    pub(crate) file: Mutex<ReservationFile>,
    /// Every counter below this value is covered by an fsynced reservation.
    pub(crate) durable_end: AtomicU64,
    /// The next counter the tap path will hand out (mirror for the reserver).
    pub(crate) next: AtomicU64,
    /// Number of reservation writes (each one fsync).
    pub(crate) fsyncs: AtomicU64,
    /// Counters per reservation: starts at the configured block and doubles (up to 16×) each
    /// time taps outrun the fsync and one has to wait, so bursts stop waiting.
    pub(crate) block: AtomicU64,
    max_block: u64,
    /// Taps that had to wait for a reservation.
    pub(crate) stalls: AtomicU64,
    /// Parks written (each one fsync).
    pub(crate) parks: AtomicU64,
    /// A reservation was asked of the background thread and has not run yet.
    requested: AtomicBool,
    /// Guards `requested` for [`Counters::wait_for_requested`] (no lost wake-up).
    waiting: Mutex<()>,
    done: Condvar,
    /// The mark last written (read without the file lock, for statistics).
    disk_mark: AtomicU64,
    /// Parks so far: a reservation asked for before the latest park is not run.
    epoch: AtomicU64,
    /// The configured block, restored at each park (bursts are over by then).
    base_block: u64,
    /// When a reader last selected ManCard or the field last dropped, ms since `born` (read by
    /// the quiet timer, so that the tap path never has to wake the maintenance thread).
    activity_ms: AtomicU64,
    born: Instant,
    /// A quiet timer is running on the maintenance thread.
    pub(crate) quiet_armed: AtomicBool,
}

impl Counters {
    pub(crate) fn new(file: ReservationFile, next: u64, block: u32) -> Self {
        let end = file.reserved_end();
        let base_block = u64::from(block.max(2));
        Self {
            file: Mutex::new(file),
            durable_end: AtomicU64::new(end),
            next: AtomicU64::new(next),
            fsyncs: AtomicU64::new(0),
            block: AtomicU64::new(u64::from(block.max(2))),
            max_block: u64::from(block.max(2)).saturating_mul(16),
            stalls: AtomicU64::new(0),
            parks: AtomicU64::new(0),
            requested: AtomicBool::new(false),
            waiting: Mutex::new(()),
            done: Condvar::new(),
            disk_mark: AtomicU64::new(end),
            epoch: AtomicU64::new(0),
            base_block,
            activity_ms: AtomicU64::new(0),
            born: Instant::now(),
            quiet_armed: AtomicBool::new(false),
        }
    }

    /// A reader selected ManCard or the field dropped: the quiet period starts again.
    pub(crate) fn touch(&self) {
        let ms = u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity_ms.store(ms, Ordering::Release);
    }

    /// When the wallet was last touched.
    pub(crate) fn last_activity(&self) -> Instant {
        self.born + Duration::from_millis(self.activity_ms.load(Ordering::Acquire))
    }

    /// The park epoch a reservation request carries (see [`Counters::reserve_if_current`]).
    pub(crate) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A queued reservation: skipped if a park happened since it was asked for (an app that
    /// parked before being stopped must not see a stale request raise the mark again).
    pub(crate) fn reserve_if_current(&self, epoch: u64) -> Result<bool, WalletError> {
        self.reserve(Some(epoch))
    }

    /// A reservation has been asked of the background thread.
    pub(crate) fn mark_requested(&self) {
        let _g = lock(&self.waiting);
        self.requested.store(true, Ordering::Release);
    }

    /// The background reservation asked for has run (or will not run).
    pub(crate) fn request_done(&self) {
        let _g = lock(&self.waiting);
        self.requested.store(false, Ordering::Release);
        self.done.notify_all();
    }

    /// While a requested background reservation is in flight and `counter` is not yet covered,
    /// waits for it (at most `limit`): the tap then uses that fsync instead of writing its own.
    pub(crate) fn wait_for_requested(&self, counter: u64, limit: Duration) {
        let deadline = Instant::now() + limit;
        let mut g = lock(&self.waiting);
        while self.requested.load(Ordering::Acquire)
            && counter >= self.durable_end.load(Ordering::Acquire)
        {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            g = match self.done.wait_timeout(g, left) {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
    }

    /// Raises the durable mark so that at least `[next, next + block)` is covered, extending by
    /// a whole block past the current mark. Blocking (one fsync); called by the reserver thread,
    /// at open, at certificate installation, and by the tap path only if the reserver fell behind.
    /// Returns true if this call wrote (and waited for) the fsync.
    pub(crate) fn reserve_ahead(&self) -> Result<bool, WalletError> {
        self.reserve(None)
    }

    /// [`Counters::reserve_ahead`]; with `epoch`, only if no park happened since (checked
    /// under the file lock, which every park holds while it bumps the epoch).
    fn reserve(&self, epoch: Option<u64>) -> Result<bool, WalletError> {
        let mut f = lock(&self.file);
        if epoch.is_some_and(|e| e != self.epoch()) {
            return Ok(false);
        }
        let next = self.next.load(Ordering::Acquire);
        let current = f.reserved_end();
        let block = self.block.load(Ordering::Relaxed);
        if current > next && current - next > block / 2 {
            // someone else already did it
            self.durable_end.store(current, Ordering::Release);
            return Ok(false);
        }
        let end = current.max(next).saturating_add(block);
        let wrote = f.raise_to(end)?;
        if wrote {
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.disk_mark.store(f.reserved_end(), Ordering::Release);
        self.durable_end.store(f.reserved_end(), Ordering::Release);
        Ok(wrote)
    }

    /// Parks the mark at `next`, the next counter the tap path would hand out. The caller holds
    /// the tap path's lock, so no counter at or above `next` is in flight. The in-memory limit
    /// drops first: even if the write fails or tears, no counter at or above `next` is handed
    /// out before a new reservation's fsync. Returns true if it wrote.
    pub(crate) fn park(&self, next: u64) -> Result<bool, WalletError> {
        let mut f = lock(&self.file);
        self.next.fetch_max(next, Ordering::AcqRel);
        self.durable_end.fetch_min(next, Ordering::AcqRel);
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.block.store(self.base_block, Ordering::Relaxed);
        let wrote = f.lower_to(next);
        self.disk_mark.store(f.reserved_end(), Ordering::Release);
        if wrote? {
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
            self.parks.fetch_add(1, Ordering::Relaxed);
            return Ok(true);
        }
        Ok(false)
    }

    /// The durable mark (what a restart would resume at, at the latest), without waiting for
    /// a write in progress.
    pub(crate) fn mark(&self) -> u64 {
        self.disk_mark.load(Ordering::Acquire)
    }

    /// True when the reserver should run: half a block or less remains.
    pub(crate) fn wants_reservation(&self, next: u64) -> bool {
        self.durable_end
            .load(Ordering::Acquire)
            .saturating_sub(next)
            <= self.block.load(Ordering::Relaxed) / 2
    }

    /// A tap had to wait for a reservation: reserve bigger blocks from now on.
    pub(crate) fn stalled(&self) {
        // (restored to the configured block at the next park)
        self.stalls.fetch_add(1, Ordering::Relaxed);
        let b = self.block.load(Ordering::Relaxed);
        self.block
            .store(b.saturating_mul(2).min(self.max_block), Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_survive_torn_writes_and_refuse_damage() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.bin");
        assert!(ReservationFile::open(&p, false).is_err());
        let mut f = ReservationFile::open(&p, true).unwrap();
        assert_eq!(f.reserved_end(), 0);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&p).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(f.raise_to(16).unwrap());
        assert!(f.raise_to(32).unwrap());
        assert!(!f.raise_to(20).unwrap());
        // a park lowers the mark (and only lowers it); the reopened file resumes there
        assert!(f.lower_to(20).unwrap());
        assert!(!f.lower_to(25).unwrap());
        drop(f);
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 20);
        let mut f = ReservationFile::open(&p, false).unwrap();
        assert!(f.raise_to(32).unwrap());
        drop(f);
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 32);
        // tear the newest slot (generation 4 lives in slot 0): the older one (20) is used
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 0xFF;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 20);
        // both slots damaged: error, not zero
        bytes[SLOT + 20] ^= 0xFF;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            ReservationFile::open(&p, true),
            Err(WalletError::CounterFile { .. })
        ));
    }

    #[test]
    fn a_failed_park_is_never_taken_for_a_standing_reservation() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("c.bin");
        let mut f = ReservationFile::open(&p, true).unwrap();
        assert!(f.raise_to(12).unwrap());
        // the park's write fails (a read-only handle stands in for EIO after the page cache)
        let writable = std::mem::replace(&mut f.file, File::open(&p).unwrap());
        assert!(f.lower_to(1).is_err());
        // whatever reached the disk, the mark in memory is the lower one: the next reservation
        // writes instead of trusting 12
        assert_eq!(f.reserved_end(), 1);
        f.file = writable;
        assert!(f.raise_to(5).unwrap());
        drop(f);
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 5);
    }
}
