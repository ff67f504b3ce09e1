//! Counter reservation: counters are handed out only below a high-water mark that has been
//! written to its own small file with a full fsync. The mark is raised a block at a time, ahead
//! of need and off the tap path, by a background thread (see docs/adr/0002).
//!
//! File layout (64 bytes): two 32-byte slots written alternately; each slot is
//! `"MCCR" ‖ version (1) ‖ 3 zero bytes ‖ generation (u64 BE) ‖ reserved_end (u64 BE) ‖
//! first 8 bytes of SHA-256(previous 24 bytes)`. The valid slot with the highest generation
//! wins, so a torn write can only lose the newest mark, never one whose fsync completed.

use crate::error::WalletError;
use crate::util::lock;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
            let mut f = OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
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
        let generation = self.generation.wrapping_add(1);
        let offset = if generation % 2 == 0 { 0 } else { SLOT as u64 };
        let slot = encode_slot(generation, end);
        self.file
            .seek(SeekFrom::Start(offset))
            .and_then(|_| self.file.write_all(&slot))
            .and_then(|()| self.file.sync_data())
            .map_err(|e| counter_err(format!("cannot write {}: {e}", self.path.display())))?;
        self.generation = generation;
        self.reserved_end = end;
        Ok(true)
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
}

impl Counters {
    pub(crate) fn new(file: ReservationFile, next: u64, block: u32) -> Self {
        let end = file.reserved_end();
        Self {
            file: Mutex::new(file),
            durable_end: AtomicU64::new(end),
            next: AtomicU64::new(next),
            fsyncs: AtomicU64::new(0),
            block: AtomicU64::new(u64::from(block.max(2))),
            max_block: u64::from(block.max(2)).saturating_mul(16),
            stalls: AtomicU64::new(0),
        }
    }

    /// Raises the durable mark so that at least `[next, next + block)` is covered, extending by
    /// a whole block past the current mark. Blocking (one fsync); called by the reserver thread,
    /// at open, at certificate installation, and by the tap path only if the reserver fell behind.
    pub(crate) fn reserve_ahead(&self) -> Result<(), WalletError> {
        let mut f = lock(&self.file);
        let next = self.next.load(Ordering::Acquire);
        let current = f.reserved_end();
        let block = self.block.load(Ordering::Relaxed);
        if current > next && current - next > block / 2 {
            return Ok(()); // someone else already did it
        }
        let end = current.max(next).saturating_add(block);
        if f.raise_to(end)? {
            self.fsyncs.fetch_add(1, Ordering::Relaxed);
        }
        self.durable_end.store(f.reserved_end(), Ordering::Release);
        Ok(())
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
        assert!(f.raise_to(16).unwrap());
        assert!(f.raise_to(32).unwrap());
        assert!(!f.raise_to(20).unwrap());
        drop(f);
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 32);
        // tear the newest slot (generation 2 lives in slot 0): the older one (16) is used
        let mut bytes = std::fs::read(&p).unwrap();
        bytes[20] ^= 0xFF;
        std::fs::write(&p, &bytes).unwrap();
        assert_eq!(ReservationFile::open(&p, false).unwrap().reserved_end(), 16);
        // both slots damaged: error, not zero
        bytes[SLOT + 20] ^= 0xFF;
        std::fs::write(&p, &bytes).unwrap();
        assert!(matches!(
            ReservationFile::open(&p, true),
            Err(WalletError::CounterFile { .. })
        ));
    }
}
