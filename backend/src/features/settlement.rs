//! Settlement: verified taps are stored once (a tap's identity is the hash of what the phone
//! signed), two different signed taps with one counter are proof of a fork that opens a fraud
//! case and revokes the device, and each affected fare day is re-rated so the ledger charges
//! every ride its tariff fare. Validator batches are ingested here; wallet uploads arrive
//! through `sync`.

use crate::engine::Engine;
use crate::error::{Error, Result, StoreError};
use crate::ids::{AccountId, BatchId, CertHash, DeviceId, TapRef};
use crate::settle::{
    check_record, fork_between, over_allowance_total, rate, Check, CheckedTap, Evidence, Reject,
};
use crate::store::{NewEntry, NewFraudCase, NewTap, Revocation, StoredBatch, TapSource, Writer};
use mancard_api::{BatchResponse, FraudKind, LedgerKind, TapResult, TapStatus};
use mancard_protocol::{
    sha256, CredentialCertificate, RideState, SignatureError, TapBatch, TapProof,
};
use rayon::prelude::{IndexedParallelIterator, IntoParallelRefIterator, ParallelIterator};
use std::collections::{BTreeMap, BTreeSet, HashMap};

fn tap_result(seq: u64, status: TapStatus) -> TapResult {
    TapResult {
        seq,
        pseudonym: None,
        counter: None,
        status,
        fare: None,
        reason: None,
        detail: None,
    }
}

/// What one settlement run has to finish after its taps are stored.
#[derive(Default)]
struct Settling {
    results: Vec<TapResult>,
    /// (account, fare day) → earliest changed ride time.
    groups: BTreeMap<(AccountId, i64), i64>,
    /// Results whose fare is filled after rating: result index and tap.
    pending: Vec<(usize, TapRef)>,
}

impl Settling {
    fn touch(&mut self, account: AccountId, fare_day: i64, time: i64) {
        let e = self.groups.entry((account, fare_day)).or_insert(time);
        *e = (*e).min(time);
    }
}

impl Engine {
    /// Opens a fraud case against a device and revokes it (every pseudonym of its live
    /// certificates goes on the deny list).
    pub(crate) fn open_fraud(&self, tx: &Writer<'_>, case: &NewFraudCase<'_>) -> Result<()> {
        let id = tx.insert_fraud_case(case)?;
        tx.revoke(case.device_id, Revocation::Fraud(case.kind), case.opened_at)?;
        tracing::warn!(case = id, device_id = case.device_id.0, pseudonym = %case.pseudonym, kind = case.kind.as_str(), "fraud case opened; credential revoked");
        Ok(())
    }

    /// Recomputes the fares of an account's fare day in time order and appends the ledger
    /// entries that bring each ride's charge to its fare. Rides before `from_time` (the earliest
    /// ride that changed) only advance the rider's state: their fares cannot change. Returns
    /// the fares of the rides from `from_time` on.
    fn rerate(
        &self,
        tx: &Writer<'_>,
        (account_id, fare_day): (AccountId, i64),
        from_time: i64,
        now: i64,
    ) -> Result<HashMap<TapRef, i64>> {
        let tariff = &self.config().tariff;
        let rides = tx.day_rides(account_id, fare_day, from_time)?;
        let mut state = RideState {
            fare_day,
            spent_today: 0,
            last_ride: tx
                .last_ride_before_day(account_id, fare_day)?
                .map(|r| (r.time, r.line_id)),
        };
        let mut fares = HashMap::with_capacity(rides.len());
        for r in rides {
            let (amount, next) = rate(
                tariff,
                r.fare_class,
                r.line_id,
                r.time,
                r.authorized,
                &state,
            );
            state = next;
            if r.time < from_time {
                continue;
            }
            let tap = TapRef {
                pseudonym: r.pseudonym,
                counter: r.counter,
            };
            fares.insert(tap, amount);
            if amount == r.charged && r.entries > 0 {
                continue;
            }
            let p = r.pseudonym.to_hex();
            let (kind, key) = if r.entries == 0 {
                (LedgerKind::Fare, format!("fare:{p}:{}", r.counter))
            } else {
                (
                    LedgerKind::FareAdjustment,
                    format!("fare-adj:{p}:{}:{}", r.counter, r.entries),
                )
            };
            let inserted = tx.insert_ledger(&NewEntry {
                account_id,
                kind,
                amount: r.charged.saturating_sub(amount),
                idempotency_key: &key,
                tap: Some(tap),
                intent_id: None,
                note: None,
                created_at: now,
            })?;
            if inserted.is_none() {
                return Err(StoreError::Corrupt("fare entry key reused").into());
            }
        }
        Ok(fares)
    }

    /// Applies verified reports in one transaction: each (pseudonym, counter) is charged once;
    /// conflicting evidence opens a fraud case. `seqs` name the results.
    pub(crate) fn apply_checks(
        &self,
        tx: &Writer<'_>,
        checks: Vec<(u64, Check)>,
        source: TapSource,
        now: i64,
    ) -> Result<Vec<TapResult>> {
        let mut s = Settling {
            results: Vec::with_capacity(checks.len()),
            ..Settling::default()
        };
        for (seq, check) in checks {
            match check {
                Check::Rejected { reason, detail } => {
                    let mut r = tap_result(seq, TapStatus::Rejected);
                    r.reason = Some(reason.as_str().to_string());
                    r.detail = Some(detail);
                    s.results.push(r);
                }
                Check::Ok(t) => self.settle_tap(tx, &mut s, seq, *t, source, now)?,
            }
        }
        let mut fares: HashMap<TapRef, i64> = HashMap::new();
        for (group, from_time) in std::mem::take(&mut s.groups) {
            fares.extend(self.rerate(tx, group, from_time, now)?);
        }
        for (i, tap) in s.pending {
            let fare = match fares.get(&tap) {
                Some(f) => *f,
                None => tx.tap_charge(&tap)?,
            };
            if let Some(r) = s.results.get_mut(i) {
                r.fare = Some(fare);
            }
        }
        Ok(s.results)
    }

    /// Settles one verified tap: a duplicate, a conflicting report (fraud) or a new tap.
    fn settle_tap(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        seq: u64,
        mut t: CheckedTap,
        source: TapSource,
        now: i64,
    ) -> Result<()> {
        let mut r = tap_result(seq, TapStatus::Settled);
        r.pseudonym = Some(t.pseudonym.to_hex());
        r.counter = Some(t.counter);
        let tap = TapRef {
            pseudonym: t.pseudonym,
            counter: t.counter,
        };
        if let Some(existing) = tx.tap(&t.pseudonym, t.counter)? {
            if existing.tap_id == Some(t.id) {
                r.status = TapStatus::Duplicate;
                if let (None, Some(line)) = (existing.line_id, t.line_id) {
                    tx.set_tap_line(&t.pseudonym, t.counter, line)?;
                    s.touch(existing.account_id, existing.fare_day, existing.time);
                }
                s.pending.push((s.results.len(), tap));
                s.results.push(r);
                return Ok(());
            }
            // Read in this transaction (the store's one connection is held by it).
            let cert = tx
                .certificate(&t.cert_hash)?
                .and_then(|row| CredentialCertificate::decode(&row.encoded).ok());
            let fork = match &cert {
                Some(c) => fork_between(c, &existing.proof, &t.proof),
                None => Err("the certificate is not issued here".to_string()),
            };
            match fork {
                Ok(proven) => {
                    let detail = format!("{proven} (reported by {})", source.as_str());
                    let why = (FraudKind::DuplicateCounter, detail.as_str());
                    self.fraud_result(tx, &mut r, existing.device_id, &t, why, now)?;
                }
                Err(detail) => {
                    r.status = TapStatus::Rejected;
                    r.reason = Some(Reject::UnprovenConflict.as_str().to_string());
                    r.detail = Some(detail);
                }
            }
            s.results.push(r);
            return Ok(());
        }
        let fare_day = self.config().tariff.fare_day(t.time);
        tx.insert_tap(&NewTap {
            tap_id: t.id,
            pseudonym: t.pseudonym,
            counter: t.counter,
            account_id: t.account_id,
            device_id: t.device_id,
            cert_hash: t.cert_hash,
            fare_class: t.fare_class,
            time: t.time,
            fare_day,
            line_id: t.line_id,
            authorized: t.authorized,
            proof: &t.proof,
            source,
            reported_at: now,
        })?;
        // The certificate's running total, bumped in this transaction with the insert: a
        // replayed report never gets here (it is a duplicate above), and concurrent
        // uploads are serialized by the write transaction.
        let total = tx.add_cert_usage(&t.cert_hash, t.authorized)?;
        let fraud = t
            .fraud
            .take()
            .or_else(|| over_allowance_total(total, t.allowance));
        if let Some((kind, detail)) = &fraud {
            self.fraud_result(tx, &mut r, t.device_id, &t, (*kind, detail), now)?;
        }
        s.touch(t.account_id, fare_day, t.time);
        s.pending.push((s.results.len(), tap));
        s.results.push(r);
        Ok(())
    }

    /// Opens the case of a fraudulent tap and marks its result.
    fn fraud_result(
        &self,
        tx: &Writer<'_>,
        r: &mut TapResult,
        device_id: DeviceId,
        t: &CheckedTap,
        (kind, detail): (FraudKind, &str),
        now: i64,
    ) -> Result<()> {
        self.open_fraud(
            tx,
            &NewFraudCase {
                device_id,
                pseudonym: t.pseudonym,
                kind,
                counter: Some(t.counter),
                detail,
                opened_at: now,
            },
        )?;
        r.status = TapStatus::Fraud;
        r.reason = Some(kind.as_str().to_string());
        r.detail = Some(detail.to_string());
        Ok(())
    }

    /// Ingests a validator's signed batch (the `TapBatch` encoding).
    pub fn ingest_batch(&self, bytes: &[u8]) -> Result<BatchResponse> {
        let batch = TapBatch::decode(bytes).map_err(|e| Error::InvalidBatch(e.to_string()))?;
        let vid = batch.body.validator_id;
        let batch_id = BatchId(batch.body.batch_id);
        // The batch's identity for idempotency: what the validator signed, never its signature
        // (a re-signed identical batch is the same batch).
        let body_hash = sha256(&[&batch.signed_bytes()]);
        let (key, prior) = self
            .store
            .read(|tx| -> Result<_> { Ok((tx.validator_key(vid)?, tx.batch(&batch_id)?)) })?;
        let key = key
            .and_then(|k| mancard_protocol::PublicKey::from_bytes(&k, "validator key").ok())
            .ok_or(Error::UnknownValidator(vid))?;
        match batch.verify(&key) {
            Ok(()) => {}
            Err(SignatureError::NonCanonical) => return Err(Error::NonCanonicalBatchSignature),
            Err(SignatureError::Invalid) => return Err(Error::BadBatchSignature),
        }
        if let Some(stored) = prior {
            return stored_batch(stored, vid, &body_hash);
        }
        let hashes: BTreeSet<CertHash> = batch
            .body
            .records
            .iter()
            .map(|r| CertHash(r.proof.cert_id()))
            .collect();
        let certs = self.cert_infos(&hashes)?;
        let mut named = challenge_validators(batch.body.records.iter().map(|r| &r.proof));
        named.insert(vid);
        let validators = self.validator_infos(named)?;
        let time_rules = self.time_rules();
        let ev = Evidence {
            validators: &validators,
            time_rules: &time_rules,
            tariff: &self.config().tariff,
        };
        let checks: Vec<(u64, Check)> = batch
            .body
            .records
            .par_iter()
            .enumerate()
            .map(|(i, rec)| {
                let ci = certs.get(&CertHash(rec.proof.cert_id())).map(|a| &**a);
                (i as u64, check_record(rec, vid, ci, &ev))
            })
            .collect();
        let now = self.now();
        let resp = self.store.write(|tx| -> Result<BatchResponse> {
            if let Some(stored) = tx.batch(&batch_id)? {
                return stored_batch(stored, vid, &body_hash);
            }
            let records = self.apply_checks(tx, checks, TapSource::Validator, now)?;
            let count = |s: TapStatus| records.iter().filter(|r| r.status == s).count();
            let resp = BatchResponse {
                batch_id: batch_id.to_hex(),
                validator_id: vid,
                duplicate_batch: false,
                settled: count(TapStatus::Settled),
                duplicates: count(TapStatus::Duplicate),
                fraud: count(TapStatus::Fraud),
                rejected: count(TapStatus::Rejected),
                records,
            };
            let response = serde_json::to_string(&resp).map_err(Error::internal)?;
            let stored = StoredBatch {
                validator_id: vid,
                body_hash,
                response,
            };
            tx.insert_batch(&batch_id, &stored, now)?;
            Ok(resp)
        })?;
        tracing::info!(validator = vid, batch = %resp.batch_id, settled = resp.settled, duplicates = resp.duplicates, fraud = resp.fraud, rejected = resp.rejected, "batch ingested");
        Ok(resp)
    }
}

/// The validators whose challenges `proofs` carry.
pub(crate) fn challenge_validators<'a>(
    proofs: impl Iterator<Item = &'a TapProof>,
) -> BTreeSet<u32> {
    proofs
        .filter_map(|p| match p {
            TapProof::Nfc { challenge, .. } => Some(challenge.body.validator_id),
            TapProof::Qr { .. } => None,
        })
        .collect()
}

/// The answer to a batch id seen before: the stored one, if it is the same batch.
fn stored_batch(stored: StoredBatch, vid: u32, body_hash: &[u8; 32]) -> Result<BatchResponse> {
    if stored.validator_id != vid || stored.body_hash != *body_hash {
        return Err(Error::BatchIdConflict);
    }
    let mut r: BatchResponse = serde_json::from_str(&stored.response).map_err(Error::internal)?;
    r.duplicate_batch = true;
    Ok(r)
}
