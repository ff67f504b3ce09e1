//! Read-ahead and write-behind for settlement (issue #16): a batch's taps cost a few
//! set-based statements, not a dozen round trips each.
//!
//! A settlement run reads the stored taps, the challenges' taps and the certificates' running
//! totals of a whole batch at once ([`Writer::read_ahead`]), then settles tap by tap against
//! what it read. The new taps and total increments it writes are kept, and written in
//! multi-row statements ([`Writer::flush`]). The rules that keep this equal to writing
//! each at once:
//! * a read of something read ahead is answered from memory, which includes what is kept;
//! * a read of anything else through these methods writes what is kept first (so do the
//!   `Writer` versions of the other reads of `taps` and `cert_usage`: `max_counter`,
//!   `cert_usage`; the re-rating's bulk reads run after `finish` has flushed);
//! * a validator's first report of a stored tap read ahead is kept too, and written after
//!   the taps kept before it ([`Writer::keep_tap_validator`]);
//! * every other write of a tap row writes what is kept first and forgets that row;
//! * the re-rating that follows (`Settling::finish`) flushes first, and so does every commit
//!   ([`super::Store::write_for`]): nothing kept outlives its transaction unwritten.

use super::db::{col, col_as, named_params, ColType, ToValue, Value};
use super::taps::{NewTap, TapRow, TapSource, TapState};
use super::{Writer, SCHEMA_VERSION};
use crate::error::StoreError;
use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes, TapRef};
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// What a write transaction has read ahead and kept to write.
#[derive(Default)]
pub(crate) struct Ahead {
    /// Taps by (pseudonym, counter); `None`: not stored.
    taps: HashMap<TapRef, Option<TapRow>>,
    /// The taps answering each challenge.
    challenges: HashMap<[u8; 32], Vec<(PseudonymBytes, u32)>>,
    /// Certificates' running totals of NFC authorizations, with what is kept added.
    usage: HashMap<CertHash, i64>,
    /// Increments of those totals not written yet.
    kept_usage: BTreeMap<CertHash, i64>,
    /// New taps not written yet, in the order they were settled.
    kept_taps: Vec<KeptTap>,
    /// Validators' first reports of taps stored without one, not written yet: (tap,
    /// validator), written after `kept_taps` ([`Writer::keep_tap_validator`]).
    kept_validators: Vec<(TapRef, u32)>,
    /// A flush failed part-way: what it had not written is gone, so this transaction must
    /// never commit (every later flush, and so the commit, fails too).
    broken: bool,
}

/// A new tap kept to write ([`NewTap`], owned).
struct KeptTap {
    tap_id: [u8; 32],
    pseudonym: PseudonymBytes,
    counter: u32,
    account_id: AccountId,
    device_id: DeviceId,
    cert_hash: CertHash,
    fare_class: u8,
    time: i64,
    fare_day: i64,
    line_id: Option<u32>,
    authorized: i64,
    proof: Vec<u8>,
    source: TapSource,
    validator_id: Option<u32>,
    challenge_id: Option<[u8; 32]>,
    state: TapState,
    state_reason: Option<String>,
    reported_at: i64,
}

impl KeptTap {
    fn new(t: &NewTap<'_>) -> Self {
        Self {
            tap_id: t.tap_id,
            pseudonym: t.pseudonym,
            counter: t.counter,
            account_id: t.account_id,
            device_id: t.device_id,
            cert_hash: t.cert_hash,
            fare_class: t.fare_class as u8,
            time: t.time,
            fare_day: t.fare_day,
            line_id: t.line_id,
            authorized: t.authorized,
            proof: t.proof.to_vec(),
            source: t.source,
            validator_id: t.validator_id,
            challenge_id: t.challenge_id,
            state: t.state,
            state_reason: t.state_reason.map(str::to_string),
            reported_at: t.reported_at,
        }
    }

    /// The row a read of it returns.
    fn row(&self) -> TapRow {
        TapRow {
            tap_id: Some(self.tap_id),
            account_id: self.account_id,
            device_id: self.device_id,
            time: self.time,
            fare_day: self.fare_day,
            line_id: self.line_id,
            proof: self.proof.clone(),
            state: self.state,
            state_reason: self.state_reason.clone(),
            validator_id: self.validator_id,
            source: self.source,
            authorized: self.authorized,
        }
    }
}

impl Writer<'_> {
    /// Reads ahead, in a few statements, what settling these taps will read: the stored taps
    /// of `taps`, the taps answering `challenges`, and the running totals of `certs`.
    pub fn read_ahead(
        &self,
        taps: &[TapRef],
        challenges: &[[u8; 32]],
        certs: &[CertHash],
    ) -> Result<(), StoreError> {
        self.flush()?;
        let (taps, challenges, certs) = {
            let a = self.ahead.borrow();
            let taps: BTreeSet<TapRef> = taps
                .iter()
                .filter(|t| !a.taps.contains_key(t))
                .copied()
                .collect();
            let challenges: BTreeSet<[u8; 32]> = challenges
                .iter()
                .filter(|c| !a.challenges.contains_key(*c))
                .copied()
                .collect();
            let certs: BTreeSet<CertHash> = certs
                .iter()
                .filter(|c| !a.usage.contains_key(c))
                .copied()
                .collect();
            (
                taps.into_iter().collect::<Vec<_>>(),
                challenges.into_iter().collect::<Vec<_>>(),
                certs.into_iter().collect::<Vec<_>>(),
            )
        };
        self.read_taps_ahead(&taps)?;
        self.read_challenges_ahead(&challenges)?;
        self.read_usage_ahead(&certs)
    }

    /// The stored taps of `taps` (not read ahead yet).
    fn read_taps_ahead(&self, taps: &[TapRef]) -> Result<(), StoreError> {
        let mut rows = self.reader.taps_of(taps)?;
        let mut a = self.ahead.borrow_mut();
        for t in taps {
            // a tap listed twice keeps the row read for it
            let row = rows.remove(t);
            let slot = a.taps.entry(*t).or_insert(None);
            if row.is_some() {
                *slot = row;
            }
        }
        Ok(())
    }

    /// [`super::Reader::taps_of`] after writing what is kept, as the other reads of `taps`
    /// through a `Writer` do: a write reads its own taps.
    pub fn taps_of(&self, taps: &[TapRef]) -> Result<HashMap<TapRef, TapRow>, StoreError> {
        self.flush()?;
        self.reader.taps_of(taps)
    }

    /// The taps answering `challenges` (not read ahead yet): one statement on PostgreSQL, a
    /// few on SQLite ([`super::db::Conn::query_in`]).
    fn read_challenges_ahead(&self, challenges: &[[u8; 32]]) -> Result<(), StoreError> {
        let keys: Vec<Value<'_>> = challenges.iter().map(|c| Value::Blob(c)).collect();
        let rows = self.tx.query_in(
            ("challenge_id", ColType::Blob),
            &keys,
            &|cond| format!("SELECT challenge_id, pseudonym, counter FROM taps WHERE {cond}"),
            |r| {
                let c: [u8; 32] = r.get("challenge_id")?;
                Ok((c, (r.get("pseudonym")?, r.get("counter")?)))
            },
        )?;
        let mut a = self.ahead.borrow_mut();
        for c in challenges {
            a.challenges.entry(*c).or_default();
        }
        for (c, tap) in rows {
            a.challenges.entry(c).or_default().push(tap);
        }
        Ok(())
    }

    /// The running totals of `certs` (not read ahead yet; 0 for a certificate without one),
    /// in one statement (a few on SQLite).
    fn read_usage_ahead(&self, certs: &[CertHash]) -> Result<(), StoreError> {
        let keys: Vec<Value<'_>> = certs.iter().map(ToValue::to_value).collect();
        let rows = self.tx.query_in(
            ("cert_hash", ColType::Blob),
            &keys,
            &|cond| format!("SELECT cert_hash, authorized FROM cert_usage WHERE {cond}"),
            |r| Ok((r.get::<CertHash>("cert_hash")?, r.get::<i64>("authorized")?)),
        )?;
        let mut a = self.ahead.borrow_mut();
        for c in certs {
            a.usage.insert(*c, 0);
        }
        a.usage.extend(rows);
        Ok(())
    }

    /// The stored tap (pseudonym, counter), with what this transaction wrote.
    pub fn tap(&self, p: &PseudonymBytes, counter: u32) -> Result<Option<TapRow>, StoreError> {
        let key = TapRef {
            pseudonym: *p,
            counter,
        };
        if let Some(row) = self.ahead.borrow().taps.get(&key) {
            return Ok(row.clone());
        }
        self.flush()?;
        self.reader.tap(p, counter)
    }

    /// The taps (pseudonym, counter) answering a challenge, with what this transaction wrote.
    pub fn taps_by_challenge(
        &self,
        challenge_id: &[u8; 32],
    ) -> Result<Vec<(PseudonymBytes, u32)>, StoreError> {
        if let Some(taps) = self.ahead.borrow().challenges.get(challenge_id) {
            return Ok(taps.clone());
        }
        self.flush()?;
        self.reader.taps_by_challenge(challenge_id)
    }

    /// The highest counter settled for a device, with what this transaction kept.
    pub fn max_counter(&self, device_id: DeviceId) -> Result<Option<u32>, StoreError> {
        self.flush()?;
        self.reader.max_counter(device_id)
    }

    /// A certificate's running total of NFC authorizations, with what this transaction kept.
    pub fn cert_usage(&self, cert_hash: &CertHash) -> Result<i64, StoreError> {
        if let Some(total) = self.ahead.borrow().usage.get(cert_hash) {
            return Ok(*total);
        }
        self.flush()?;
        self.reader.cert_usage(cert_hash)
    }

    /// Stores a new tap (kept, and written by [`Self::flush`]).
    pub fn insert_tap(&self, t: &NewTap<'_>) -> Result<(), StoreError> {
        let kept = KeptTap::new(t);
        let mut a = self.ahead.borrow_mut();
        let key = TapRef {
            pseudonym: t.pseudonym,
            counter: t.counter,
        };
        a.taps.insert(key, Some(kept.row()));
        if let Some(c) = &t.challenge_id {
            if let Some(taps) = a.challenges.get_mut(c) {
                taps.push((t.pseudonym, t.counter));
            }
        }
        a.kept_taps.push(kept);
        Ok(())
    }

    /// Adds `amount` (its positive part) to a certificate's running total of NFC
    /// authorizations, saturating; returns the new total.
    pub fn add_cert_usage(&self, cert_hash: &CertHash, amount: i64) -> Result<i64, StoreError> {
        {
            let mut a = self.ahead.borrow_mut();
            if let Some(total) = a.usage.get_mut(cert_hash) {
                *total = total.saturating_add(amount.max(0));
                let new = *total;
                let kept = a.kept_usage.entry(*cert_hash).or_insert(0);
                *kept = kept.saturating_add(amount.max(0));
                return Ok(new);
            }
        }
        self.flush()?;
        self.write_cert_usage(cert_hash, amount)
    }

    /// Sets a certificate's running total to what its stored NFC taps signed (summed as
    /// [`Self::add_cert_usage`] sums them), or removes it when none is left: after a stored tap
    /// of the certificate was replaced by another body of its counter (an NFC tap or a pass).
    /// `pseudonym` is the certificate's: every tap under it carries it, so the primary key
    /// serves the read (the certificate's taps only, not the device's whole history).
    pub fn recount_cert_usage(
        &self,
        cert_hash: &CertHash,
        pseudonym: &PseudonymBytes,
    ) -> Result<(), StoreError> {
        self.flush()?;
        self.ahead.borrow_mut().usage.remove(cert_hash);
        let total = super::audit::nfc_total_sql(self.tx.dialect());
        let (n, sum): (i64, i64) = self.tx.query_one(
            &format!(
                "SELECT COUNT(*) AS n, COALESCE({total}, 0) AS s FROM taps
                 WHERE pseudonym = :p AND cert_hash = :hash AND substr(proof, 1, 1) = :nfc"
            ),
            named_params! {":p": pseudonym, ":hash": cert_hash, ":nfc": [1u8]},
            |r| Ok((r.get("n")?, r.get("s")?)),
        )?;
        if n == 0 {
            self.tx.execute(
                "DELETE FROM cert_usage WHERE cert_hash = :hash",
                named_params! {":hash": cert_hash},
            )?;
        } else {
            self.tx.execute(
                "INSERT INTO cert_usage (cert_hash, authorized) VALUES (:hash, :sum)
                 ON CONFLICT (cert_hash) DO UPDATE SET authorized = excluded.authorized",
                named_params! {":hash": cert_hash, ":sum": sum},
            )?;
        }
        Ok(())
    }

    /// A validator's first report of a tap stored without one (`UPDATE … SET validator_id
    /// … WHERE validator_id IS NULL`), kept when the tap's row was read ahead: the row read
    /// ahead names the validator from now on, and [`Self::flush`] writes the update after
    /// the taps kept before it, as writing it now would have found them. A validator's
    /// report of a tap a wallet synced first was one statement each, and forced the taps
    /// kept so far out in a statement of their own (perf.md §8). False when the row was not
    /// read ahead: the caller writes it at once.
    pub(super) fn keep_tap_validator(&self, key: TapRef, validator_id: u32) -> bool {
        let mut a = self.ahead.borrow_mut();
        if a.broken {
            return false;
        }
        let Some(Some(row)) = a.taps.get_mut(&key) else {
            return false;
        };
        if row.validator_id.is_none() {
            row.validator_id = Some(validator_id);
            a.kept_validators.push((key, validator_id));
        }
        true
    }

    /// Before another write of tap `key`: writes what is kept and forgets the row read ahead
    /// (the next read asks the database).
    pub(super) fn before_tap_write(&self, key: TapRef) -> Result<(), StoreError> {
        self.flush()?;
        self.ahead.borrow_mut().taps.remove(&key);
        Ok(())
    }

    /// Before a write that may move a tap to another challenge: also forgets every
    /// challenge read ahead.
    pub(super) fn before_tap_replace(&self, key: TapRef) -> Result<(), StoreError> {
        self.before_tap_write(key)?;
        self.ahead.borrow_mut().challenges.clear();
        Ok(())
    }

    /// Writes the kept taps and total increments, in multi-row statements. After a failure
    /// the transaction cannot commit: a caller that went on past the error fails at commit.
    pub fn flush(&self) -> Result<(), StoreError> {
        let (taps, usage, validators) = {
            let mut a = self.ahead.borrow_mut();
            if a.broken {
                return Err(StoreError::Corrupt(
                    "a write of this transaction failed part-way; it cannot commit",
                ));
            }
            (
                std::mem::take(&mut a.kept_taps),
                std::mem::take(&mut a.kept_usage),
                std::mem::take(&mut a.kept_validators),
            )
        };
        let written = self
            .write_kept(&taps, usage)
            .and_then(|()| self.write_kept_validators(&validators));
        if written.is_err() {
            self.ahead.borrow_mut().broken = true;
        }
        written
    }

    /// [`Self::flush`]'s writes.
    fn write_kept(
        &self,
        taps: &[KeptTap],
        usage: BTreeMap<CertHash, i64>,
    ) -> Result<(), StoreError> {
        self.insert_tap_rows(taps)?;
        let usage: Vec<[Value<'_>; 2]> = usage
            .iter()
            .map(|(c, n)| [c.to_value(), n.to_value()])
            .collect();
        self.tx.insert_rows(
            (
                "INSERT INTO cert_usage (cert_hash, authorized)",
                "ON CONFLICT (cert_hash) DO UPDATE SET authorized =
                     CASE WHEN cert_usage.authorized > 9223372036854775807 - excluded.authorized
                          THEN 9223372036854775807
                          ELSE cert_usage.authorized + excluded.authorized END",
            ),
            &[col(ColType::Blob), col(ColType::Int)],
            &usage,
        )?;
        Ok(())
    }

    /// The kept validators' reports, in one statement (a few on SQLite): each sets the tap's
    /// validator only if it has none yet, as [`Writer::set_tap_validator`] does.
    fn write_kept_validators(&self, reports: &[(TapRef, u32)]) -> Result<(), StoreError> {
        let rows: Vec<[Value<'_>; 3]> = reports
            .iter()
            .map(|(t, v)| [t.pseudonym.to_value(), t.counter.to_value(), v.to_value()])
            .collect();
        self.tx.execute_rows(
            &[ColType::Blob, ColType::Int, ColType::Int],
            &rows,
            &|from| {
                format!(
                    "UPDATE taps SET validator_id = k.c2 FROM {from}
                     WHERE taps.pseudonym = k.c0 AND taps.counter = k.c1
                       AND taps.validator_id IS NULL"
                )
            },
        )?;
        Ok(())
    }

    /// The kept taps' rows: one statement on PostgreSQL, a few on SQLite
    /// ([`super::db::Conn::insert_rows`]). The nullable columns are bound never null (a value
    /// no row has stands for null), so each statement has one parameter type list whatever
    /// mix of taps it carries.
    fn insert_tap_rows(&self, rows: &[KeptTap]) -> Result<(), StoreError> {
        use ColType::{Blob, Int, Text};
        let cols = [
            col(Blob),
            col(Int),
            col(Int),
            col(Int),
            col(Blob),
            col(Int),
            col(Int),
            col(Int),
            col_as(Int, "NULLIF(?, -1)"),
            col(Int),
            col(Blob),
            col(Text),
            col(Int),
            col(Blob),
            col_as(Int, "NULLIF(?, -1)"),
            col_as(Blob, "CASE WHEN length(?) = 0 THEN NULL ELSE ? END"),
            col(Text),
            col_as(Text, "NULLIF(?, '')"),
            // `stored_by`: this build rates the taps it stores with their fare day
            col(Int),
        ];
        let values: Vec<[Value<'_>; 19]> = rows
            .iter()
            .map(|t| {
                [
                    t.pseudonym.to_value(),
                    t.counter.to_value(),
                    t.account_id.to_value(),
                    t.device_id.to_value(),
                    t.cert_hash.to_value(),
                    t.fare_class.to_value(),
                    t.time.to_value(),
                    t.fare_day.to_value(),
                    Value::Int(t.line_id.map_or(-1, i64::from)),
                    t.authorized.to_value(),
                    t.proof.to_value(),
                    t.source.as_str().to_value(),
                    t.reported_at.to_value(),
                    t.tap_id.to_value(),
                    Value::Int(t.validator_id.map_or(-1, i64::from)),
                    Value::Blob(t.challenge_id.as_ref().map_or(&[], |c| &c[..])),
                    t.state.as_str().to_value(),
                    t.state_reason.as_deref().unwrap_or_default().to_value(),
                    SCHEMA_VERSION.to_value(),
                ]
            })
            .collect();
        self.tx.insert_rows(
            (
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source, reported_at,
                    tap_id, validator_id, challenge_id, state, state_reason, stored_by)",
                "",
            ),
            &cols,
            &values,
        )?;
        Ok(())
    }
}
