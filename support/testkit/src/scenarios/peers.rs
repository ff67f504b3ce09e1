//! The peers: the physical floor each scenario is compared with, measured in the same run
//! (a raw ring P-256 sign, verify, or both, a raw SQLite insert of the same rows).

use super::Res;
use mancard_protocol::crypto::tags;
use mancard_protocol::{PublicKey, Signature, SigningKey, TapRecord};
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

/// One raw ring ECDSA P-256 signature over a 120-byte message (a tap's size).
pub struct RawSigner {
    key: EcdsaKeyPair,
    rng: SystemRandom,
    msg: [u8; 120],
}

impl RawSigner {
    pub fn new() -> Res<Self> {
        let rng = SystemRandom::new();
        let doc = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "ring key generation failed")?;
        let key = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, doc.as_ref(), &rng)
            .map_err(|_| "ring key parse failed")?;
        Ok(Self {
            key,
            rng,
            msg: [0x42; 120],
        })
    }

    pub fn run_once(&self) -> Res<()> {
        let sig = self
            .key
            .sign(&self.rng, black_box(&self.msg))
            .map_err(|_| "ring sign failed")?;
        black_box(sig);
        Ok(())
    }
}

/// One raw ring P-256 verify of a tap-tagged signature over 120 bytes.
pub struct RawVerifier {
    key: PublicKey,
    sig: Signature,
    msg: [u8; 120],
}

impl RawVerifier {
    pub fn new() -> Res<Self> {
        let k = SigningKey::generate()?.0;
        let msg = [0x17; 120];
        Ok(Self {
            sig: k.sign(tags::TAP, &msg)?,
            key: k.public_key(),
            msg,
        })
    }

    pub fn run_once(&self) -> Res<()> {
        self.key
            .verify(tags::TAP, black_box(&self.msg), &self.sig)
            .map_err(|_| "raw verify failed")?;
        Ok(())
    }

    /// `n` verifies back to back on this core: the least a backend does for `n` taps.
    pub fn run_n(&self, n: usize) -> Res<Duration> {
        let t = Instant::now();
        for _ in 0..n {
            self.run_once()?;
        }
        Ok(t.elapsed())
    }
}

/// One raw ring P-256 verify and one raw ring sign: the floor of either side of a v2 tap (the
/// phone verifies the reader's challenge and signs; the validator signs its challenge and
/// verifies the answer).
pub struct RawSignVerify {
    signer: RawSigner,
    verifier: RawVerifier,
}

impl RawSignVerify {
    pub fn new() -> Res<Self> {
        Ok(Self {
            signer: RawSigner::new()?,
            verifier: RawVerifier::new()?,
        })
    }

    pub fn run_once(&self) -> Res<()> {
        self.verifier.run_once()?;
        self.signer.run_once()
    }
}

/// A raw SQLite insert of tap records into a table of its own (`raw.sqlite`: one
/// transaction, WAL, synchronous=FULL): what storing a settled tap costs without any check.
pub struct RawInsert {
    conn: rusqlite::Connection,
}

impl RawInsert {
    pub fn open(dir: &Path) -> Res<Self> {
        let conn = rusqlite::Connection::open(dir.join("raw.sqlite"))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS taps (pseudonym BLOB NOT NULL, counter INTEGER NOT NULL,
                line_id INTEGER, time INTEGER NOT NULL, fare INTEGER NOT NULL, proof BLOB NOT NULL,
                PRIMARY KEY (pseudonym, counter)) WITHOUT ROWID;",
        )?;
        Ok(Self { conn })
    }

    /// Inserts `records` (round `round`, so counters never collide); the time taken.
    pub fn run_once(&mut self, records: &[TapRecord], round: usize) -> Res<Duration> {
        let rows: Vec<_> = records
            .iter()
            .map(|r| {
                (
                    r.pseudonym.0,
                    r.counter,
                    r.line_id,
                    r.time,
                    r.fare,
                    r.encode(),
                )
            })
            .collect();
        let offset = u32::try_from(round)?.saturating_mul(1_000_000);
        let t = Instant::now();
        let tx = self.conn.transaction()?;
        {
            let mut st = tx.prepare(
                "INSERT INTO taps (pseudonym, counter, line_id, time, fare, proof)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            for (p, c, l, tm, f, proof) in &rows {
                st.execute(rusqlite::params![
                    &p[..],
                    c.saturating_add(offset),
                    l,
                    tm,
                    f,
                    proof
                ])?;
            }
        }
        tx.commit()?;
        Ok(t.elapsed())
    }
}
