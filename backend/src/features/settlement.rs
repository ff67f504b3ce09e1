//! Settlement by the evidence rules of docs/settlement.md: verified taps are stored once (a
//! tap's identity is the hash of what the phone signed), whoever reports them first; an NFC
//! tap is charged at the fare the validator signed, a pass only once a validator reports it, a
//! tap whose challenge its validator reported torn not at all; two different signed taps with
//! one counter are proof of a fork that opens a fraud case and revokes the device; one pass
//! at two validators is an abuse event; each affected fare day is re-rated. Validator batches
//! are ingested here; wallet uploads arrive through `sync`.

use crate::engine::Engine;
use crate::error::{Error, Result};
use crate::features::fraud::evidence_bytes;
use crate::features::verdicts::{
    fraud_reason, Settling, OTHER_CARD, PASS_NOT_SCANNED, SHARED_PASS, TORN_REASON,
};
use crate::ids::{BatchId, CertHash, DeviceId, TapRef};
use crate::settle::{
    check_record, fork_between, over_allowance_total, Check, CheckedTap, Evidence, Reject,
};
use crate::store::{
    NewFraudCase, NewTap, Revocation, StoredBatch, TapRow, TapSource, TapState, Writer,
};
use mancard_api::{BatchResponse, FraudKind, TapResult, TapStatus};
use mancard_protocol::{
    sha256, CredentialCertificate, SignatureError, TapBatch, TapProof, TornRecord,
};
use rayon::prelude::{IndexedParallelIterator, IntoParallelRefIterator, ParallelIterator};
use std::collections::BTreeSet;

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

/// Who reported a tap: the wallet, or a validator (by id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Reporter {
    Wallet,
    Validator(u32),
}

impl Reporter {
    const fn source(self) -> TapSource {
        match self {
            Self::Wallet => TapSource::Wallet,
            Self::Validator(_) => TapSource::Validator,
        }
    }

    const fn validator(self) -> Option<u32> {
        match self {
            Self::Wallet => None,
            Self::Validator(v) => Some(v),
        }
    }
}

/// The row of a verified tap as its reporter reported it.
fn new_tap<'a>(
    t: &'a CheckedTap,
    reporter: Reporter,
    fare_day: i64,
    (state, state_reason): (TapState, Option<&'a str>),
    now: i64,
) -> NewTap<'a> {
    NewTap {
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
        source: reporter.source(),
        validator_id: reporter.validator(),
        challenge_id: t.challenge_id,
        state,
        state_reason,
        reported_at: now,
    }
}

/// One report of a tap, as the settlement steps pass it on.
struct Report<'a> {
    t: &'a CheckedTap,
    tap: TapRef,
    reporter: Reporter,
    now: i64,
}

impl Engine {
    /// Opens a fraud case against a device and revokes it (every pseudonym of its live
    /// certificates goes on the deny list). The account is frozen until an operator resolves
    /// the case.
    ///
    /// A fraud event a case was opened on already (the same device, kind and counter,
    /// reported again: a validator re-sending a record in a new batch, a wallet resending
    /// its log, a body signed afresh) opens none and revokes nothing again: an operator's
    /// resolution of that case stands.
    pub(crate) fn open_fraud(&self, tx: &Writer<'_>, case: &NewFraudCase<'_>) -> Result<()> {
        if let Some(counter) = case.counter {
            if let Some(id) = tx.fraud_case_on(case.device_id, case.kind, counter)? {
                let (device, kind) = (case.device_id.0, case.kind.as_str());
                tx.after_commit(move || {
                    tracing::info!(
                        case = id,
                        device_id = device,
                        kind,
                        "the evidence of a case reported again; no new case"
                    )
                });
                return Ok(());
            }
        }
        let id = tx.insert_fraud_case(case)?;
        tx.revoke(case.device_id, Revocation::Fraud(case.kind), case.opened_at)?;
        let (device, pseudonym, kind) = (
            case.device_id.0,
            case.pseudonym.to_string(),
            case.kind.as_str(),
        );
        tx.after_commit(move || tracing::warn!(case = id, device_id = device, pseudonym = %pseudonym, kind, "fraud case opened; credential revoked"));
        Ok(())
    }

    /// Applies verified reports in one transaction: each (pseudonym, counter) is stored once
    /// and charged by the evidence rules (docs/settlement.md); conflicting signed evidence
    /// opens a fraud case. `seqs` name the results.
    pub(crate) fn apply_checks(
        &self,
        tx: &Writer<'_>,
        checks: Vec<(u64, Check)>,
        reporter: Reporter,
        now: i64,
    ) -> Result<Vec<TapResult>> {
        let mut s = Settling {
            results: Vec::with_capacity(checks.len()),
            ..Settling::default()
        };
        self.apply_into(tx, &mut s, checks, reporter, now)?;
        s.finish(self, tx, now)
    }

    /// [`Self::apply_checks`] without finishing (the caller adds more to `s` first).
    pub(crate) fn apply_into(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        checks: Vec<(u64, Check)>,
        reporter: Reporter,
        now: i64,
    ) -> Result<()> {
        // what settling them reads, in a few statements instead of a few per tap
        let oks: Vec<&CheckedTap> = checks
            .iter()
            .filter_map(|(_, c)| match c {
                Check::Ok(t) => Some(&**t),
                Check::Rejected { .. } => None,
            })
            .collect();
        let taps: Vec<TapRef> = oks
            .iter()
            .map(|t| TapRef {
                pseudonym: t.pseudonym,
                counter: t.counter,
            })
            .collect();
        let challenges: Vec<[u8; 32]> = oks.iter().filter_map(|t| t.challenge_id).collect();
        let certs: Vec<CertHash> = oks
            .iter()
            .filter(|t| t.challenge_id.is_some())
            .map(|t| t.cert_hash)
            .collect();
        tx.read_ahead(&taps, &challenges, &certs)?;
        for (seq, check) in checks {
            match check {
                Check::Rejected { reason, detail } => {
                    let mut r = tap_result(seq, TapStatus::Rejected);
                    r.reason = Some(reason.as_str().to_string());
                    r.detail = Some(detail);
                    s.results.push(r);
                }
                Check::Ok(t) => self.settle_tap(tx, s, seq, *t, reporter, now)?,
            }
        }
        Ok(())
    }

    /// How a newly reported tap starts: a pass only the wallet reported is pending (charged
    /// only when a validator reports it); a tap only the wallet reported whose challenge a
    /// validator reported torn is not charged; anything else is charged.
    fn initial_state(
        tx: &Writer<'_>,
        t: &CheckedTap,
        reporter: Reporter,
    ) -> Result<(TapState, Option<&'static str>)> {
        if reporter != Reporter::Wallet {
            return Ok((TapState::Charged, None));
        }
        match &t.challenge_id {
            None => Ok((TapState::Pending, Some(PASS_NOT_SCANNED))),
            Some(c) if tx.is_torn(c)? => Ok((TapState::NotCharged, Some(TORN_REASON))),
            Some(c) if Self::gate_opened_for_another(tx, c, &t.pseudonym)? => {
                Ok((TapState::NotCharged, Some(OTHER_CARD)))
            }
            Some(_) => Ok((TapState::Charged, None)),
        }
    }

    /// Settles one verified tap: the same tap again, a conflicting report (fraud) or a new tap.
    fn settle_tap(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        seq: u64,
        mut t: CheckedTap,
        reporter: Reporter,
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
                let rep = Report {
                    t: &t,
                    tap,
                    reporter,
                    now,
                };
                self.same_tap_again(tx, s, &existing, &rep, &mut r)?;
                s.pending.push((s.results.len(), tap));
                s.results.push(r);
                return Ok(());
            }
            let rep = Report {
                t: &t,
                tap,
                reporter,
                now,
            };
            self.conflicting_tap(tx, s, &existing, &rep, &mut r)?;
            s.results.push(r);
            return Ok(());
        }
        let fare_day = self.config().tariff.fare_day(t.time);
        let (state, state_reason) = Self::initial_state(tx, &t, reporter)?;
        tx.insert_tap(&new_tap(&t, reporter, fare_day, (state, state_reason), now))?;
        if reporter.validator().is_some() {
            if let Some(c) = &t.challenge_id {
                self.gate_opened_for(tx, s, c, tap)?;
            }
        }
        // The certificate's running total of NFC authorizations, bumped in this transaction
        // with the insert: a replayed report never gets here (it is the same tap above), and
        // concurrent uploads are serialized by the write transaction. A pass is not counted:
        // the phone cannot know whether an expired pass was scanned, so it releases the
        // pass's reservation at expiry, and an honest phone must never look like a clone.
        let fraud = match t.challenge_id {
            Some(_) => {
                let total = tx.add_cert_usage(&t.cert_hash, t.authorized)?;
                t.fraud
                    .take()
                    .or_else(|| over_allowance_total(total, t.allowance))
            }
            None => t.fraud.take(),
        };
        if let Some((kind, detail)) = &fraud {
            let evidence = evidence_bytes(&[&t.proof]);
            self.fraud_result(tx, &mut r, t.device_id, &t, (*kind, detail, evidence), now)?;
            tx.set_tap_state(&t.pseudonym, t.counter, state, Some(kind.as_str()))?;
        }
        if state == TapState::Pending {
            r.status = TapStatus::Pending;
            r.reason = state_reason.map(str::to_string);
        } else if state == TapState::NotCharged {
            r.status = TapStatus::NotCharged;
            r.reason = state_reason.map(str::to_string);
        }
        s.touch(
            (t.account_id, fare_day, t.time, tap),
            state == TapState::Charged,
        );
        s.changed.insert(tap, None);
        s.pending.push((s.results.len(), tap));
        s.results.push(r);
        Ok(())
    }

    /// Whether a validator recorded another card's answer to challenge `c` (the gate opened
    /// for that card, not for `pseudonym`).
    fn gate_opened_for_another(
        tx: &Writer<'_>,
        c: &[u8; 32],
        pseudonym: &crate::ids::PseudonymBytes,
    ) -> Result<bool> {
        for (p, counter) in tx.taps_by_challenge(c)? {
            if p != *pseudonym
                && tx
                    .tap(&p, counter)?
                    .is_some_and(|row| row.validator_id.is_some())
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// A validator recorded `tap` as the answer to challenge `c`: the gate opened for that card.
    /// Another card's tap on the same challenge known only from its wallet (a torn challenge
    /// answered at the gate by someone else) is not charged.
    fn gate_opened_for(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        c: &[u8; 32],
        tap: TapRef,
    ) -> Result<()> {
        for (p, counter) in tx.taps_by_challenge(c)? {
            if p == tap.pseudonym {
                continue;
            }
            let Some(row) = tx.tap(&p, counter)? else {
                continue;
            };
            if row.validator_id.is_none() && row.state != TapState::NotCharged {
                // (a fraud tap keeps its fraud reason: only the charge goes)
                let why = fraud_reason(&row).unwrap_or(OTHER_CARD);
                tx.set_tap_state(&p, counter, TapState::NotCharged, Some(why))?;
                let other = TapRef {
                    pseudonym: p,
                    counter,
                };
                s.touch((row.account_id, row.fare_day, row.time, other), true);
                s.changed.insert(other, None);
            }
        }
        Ok(())
    }

    /// A tap stored before is reported again (by the wallet, the same or another validator):
    /// the first validator report of a tap only the wallet had reported makes it charged
    /// (the pass was scanned; the gate opened), and names its line; a second validator's
    /// report of one pass is abuse.
    fn same_tap_again(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        existing: &TapRow,
        rep: &Report<'_>,
        r: &mut TapResult,
    ) -> Result<()> {
        let (t, tap, now) = (rep.t, rep.tap, rep.now);
        let Some(v) = rep.reporter.validator() else {
            return Ok(());
        };
        match existing.validator_id {
            None => {
                tx.set_tap_validator(&t.pseudonym, t.counter, v)?;
                // the day is re-rated only if what rating reads changed (a pass's line, a
                // charge): a validator's report of a tap its wallet reported first changes
                // neither, and its fare is the one charged
                let mut rated = false;
                if let (None, Some(line)) = (existing.line_id, t.line_id) {
                    tx.set_tap_line(&t.pseudonym, t.counter, line)?;
                    rated = true;
                }
                if existing.state != TapState::Charged {
                    // the reason it was not charged goes; a fraud reason stays
                    let why = fraud_reason(existing);
                    tx.set_tap_state(&t.pseudonym, t.counter, TapState::Charged, why)?;
                    rated = true;
                }
                // the gate opened for this card: another card's wallet-only answer to the
                // same challenge is not charged, whichever of the reports came first
                if let Some(c) = &t.challenge_id {
                    self.gate_opened_for(tx, s, c, tap)?;
                }
                // (nor its verdict: a verdict decided without the day's rating would lose its
                // reason, a transfer or the daily cap)
                if rated {
                    s.touch(
                        (existing.account_id, existing.fare_day, existing.time, tap),
                        true,
                    );
                    s.changed.insert(tap, None);
                }
            }
            Some(first) if first != v => {
                r.reason = Some(SHARED_PASS.to_string());
                r.detail = Some(format!(
                    "validator {first} reported this pass first: one pass shown on two buses"
                ));
                self.shared_pass(tx, existing, tap, (v, first), now)?;
                s.changed.insert(tap, Some(SHARED_PASS));
            }
            Some(_) => {}
        }
        Ok(())
    }

    /// Another tap with the same counter is stored: a fraud case if the two prove a fork by
    /// the phone's signatures, else a rejection (nobody is blamed for bytes they did not sign).
    fn conflicting_tap(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        existing: &TapRow,
        rep: &Report<'_>,
        r: &mut TapResult,
    ) -> Result<()> {
        let (t, reporter, now) = (rep.t, rep.reporter, rep.now);
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
                let detail = format!("{proven} (reported by {})", reporter.source().as_str());
                let evidence = evidence_bytes(&[&existing.proof, &t.proof]);
                let why = (FraudKind::DuplicateCounter, detail.as_str(), evidence);
                self.fraud_result(tx, r, existing.device_id, t, why, now)?;
                let kind = FraudKind::DuplicateCounter.as_str();
                let mut state = existing.state;
                // A ride a validator attests beats what only the wallet reported for the same
                // counter (a pass never scanned, a tap whose gate stayed closed): the counter
                // pays for the ride the gate let through, whichever body came first.
                if let (Some(v), None) = (reporter.validator(), existing.validator_id) {
                    let fare_day = self.config().tariff.fare_day(t.time);
                    tx.replace_tap(&new_tap(
                        t,
                        reporter,
                        fare_day,
                        (TapState::Charged, Some(kind)),
                        now,
                    ))?;
                    // the certificate's total counts the stored body only (the fork proved
                    // both bodies signed under this certificate): recounted from its taps
                    tx.recount_cert_usage(&t.cert_hash, &t.pseudonym)?;
                    let counter = t.counter;
                    tx.after_commit(move || {
                        tracing::info!(
                            validator = v,
                            counter,
                            "a validator's record replaces a wallet-only tap of the same counter"
                        );
                    });
                    s.touch(
                        (
                            existing.account_id,
                            existing.fare_day,
                            existing.time,
                            rep.tap,
                        ),
                        existing.state == TapState::Charged,
                    );
                    s.touch((t.account_id, fare_day, t.time, rep.tap), true);
                    if let Some(c) = &t.challenge_id {
                        self.gate_opened_for(tx, s, c, rep.tap)?;
                    }
                    state = TapState::Charged;
                }
                tx.set_tap_state(&t.pseudonym, t.counter, state, Some(kind))?;
                s.changed.insert(rep.tap, None);
            }
            Err(detail) => {
                r.status = TapStatus::Rejected;
                r.reason = Some(Reject::UnprovenConflict.as_str().to_string());
                r.detail = Some(detail);
            }
        }
        Ok(())
    }

    /// Opens the case of a fraudulent tap and marks its result.
    fn fraud_result(
        &self,
        tx: &Writer<'_>,
        r: &mut TapResult,
        device_id: DeviceId,
        t: &CheckedTap,
        (kind, detail, evidence): (FraudKind, &str, Vec<u8>),
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
                evidence,
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
        let now = self.now();
        let ev = self.evidence(&validators, &time_rules, now);
        let torn = own_torn(&batch.body.torn, vid, &key);
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
        let accounts: Vec<_> = certs.values().map(|c| c.account_id).collect();
        let resp = self
            .store
            .write_for(accounts, |tx| -> Result<BatchResponse> {
                if let Some(stored) = tx.batch(&batch_id)? {
                    return stored_batch(stored, vid, &body_hash);
                }
                let mut s = Settling {
                    results: Vec::with_capacity(checks.len()),
                    ..Settling::default()
                };
                // cloned: a write may run again (a retried transaction)
                self.apply_into(tx, &mut s, checks.clone(), Reporter::Validator(vid), now)?;
                let torn = self.record_torn(tx, &mut s, vid, &torn, now)?;
                let records = s.finish(self, tx, now)?;
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
                    torn,
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

impl Engine {
    /// What reports are checked against now: the validators they name, the bundle's time
    /// rules, the tariff, and the latest tap time accepted.
    pub(crate) fn evidence<'a>(
        &'a self,
        validators: &'a std::collections::HashMap<u32, crate::settle::ValidatorInfo>,
        time_rules: &'a mancard_protocol::TimeRules,
        now: i64,
    ) -> Evidence<'a> {
        Evidence {
            validators,
            time_rules,
            tariff: &self.config().tariff,
            not_after: now.saturating_add(self.config().policy.future_tolerance_secs),
        }
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

/// The batch's torn records that are its validator's own: challenges naming it, signed by its
/// key (anything else is ignored: it is no evidence of the gate's state).
fn own_torn(torn: &[TornRecord], vid: u32, key: &mancard_protocol::PublicKey) -> Vec<TornRecord> {
    torn.iter()
        .filter(|t| t.challenge.body.validator_id == vid && t.challenge.verify(key).is_ok())
        .cloned()
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
