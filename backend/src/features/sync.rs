//! Wallet sync: the device (named by any of its certificates' pseudonyms) appends its tap log
//! (it must continue the stored signed chain, checked with the protocol's `verify_chain`), its
//! taps are settled on their own evidence, and the wallet learns its balance, new ledger
//! entries, whether its credential is active, due for replenishment or revoked, and the current
//! config bundle. Also the stored log read-back.

use crate::engine::{hex_array, Engine};
use crate::error::{Error, Result};
use crate::features::fraud::evidence_bytes;
use crate::features::settlement::{challenge_validators, Reporter};
use crate::ids::{AccountId, CertHash, PseudonymBytes, TapRef};
use crate::settle::{check_entry, proof_bytes, CertInfo, Check};
use crate::store::{Device, NewFraudCase, NewLogEntry, NewVerdict, Writer};
use mancard_api::{
    ChainState, CredentialState, CredentialStatus, FraudKind, LogItem, LogResponse, SyncRequest,
    SyncResponse, TapResult, TapStatus, VerdictStatus,
};
use mancard_protocol::{
    prove_fork, verify_chain, ChainError, ChainHead, CredentialCertificate, Fork, TapProof,
    WalletLogEntry,
};
use rayon::prelude::{IntoParallelRefIterator, ParallelIterator};
use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Counters of the work wallet syncs made the engine do.
#[derive(Debug, Default)]
pub(crate) struct SyncStats {
    /// Entries whose tap evidence was checked (see [`Engine::signature_checks`]).
    signature_checks: AtomicU64,
}

/// Ledger entries returned by one sync at most.
const SYNC_LEDGER_PAGE: i64 = 500;

/// Why a device should ask for a new certificate now (the credential's `reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ReplenishReason {
    /// Less than the policy's margin remains of its lifetime.
    ExpiryNear,
    /// More than three quarters of its counters are used: under a quarter is left (the
    /// wallet's own rule, so both ask at the same tap).
    CountersLow,
    /// The balance now allows a larger offline allowance.
    AllowanceCanGrow,
    /// The device holds no certificate.
    NoCertificate,
}

impl ReplenishReason {
    const fn as_str(self) -> &'static str {
        match self {
            Self::ExpiryNear => "expiry_near",
            Self::CountersLow => "counters_low",
            Self::AllowanceCanGrow => "allowance_can_grow",
            Self::NoCertificate => "no_certificate",
        }
    }
}

/// A fork proved by signatures: the case's detail, the certificate's pseudonym and the
/// evidence (both entries).
type SignedFork = (String, [u8; 16], Vec<u8>);

/// An uploaded entry with its encoding.
type Upload = (WalletLogEntry, Vec<u8>);

/// The checks of the entries not settled yet (by sequence number), and for every uploaded
/// entry whether the phone signed it.
type FreshChecks = (Vec<(u64, Check)>, Vec<bool>);

fn decode_entries(req: &SyncRequest, max: usize) -> Result<Vec<Upload>> {
    if req.entries.len() > max {
        return Err(Error::TooManyEntries { max });
    }
    if req.cursor < 0 {
        return Err(Error::InvalidCursor);
    }
    let mut entries = Vec::with_capacity(req.entries.len());
    for (i, h) in req.entries.iter().enumerate() {
        let bytes = hex::decode(h.trim())
            .map_err(|_| Error::InvalidEntry(format!("entry {i} is not hex")))?;
        let e = WalletLogEntry::decode(&bytes)
            .map_err(|e| Error::InvalidEntry(format!("entry {i}: {e}")))?;
        entries.push((e, bytes));
    }
    Ok(entries)
}

impl Engine {
    /// The device of the account that holds the certificate with `pseudonym` (any of the
    /// device's), and that pseudonym.
    fn device_of_account(
        &self,
        account_id: AccountId,
        pseudonym: &str,
    ) -> Result<(Device, PseudonymBytes)> {
        let p = PseudonymBytes(hex_array(pseudonym, "pseudonym")?);
        let device = self
            .store
            .read(|tx| tx.device_by_pseudonym(&p))?
            .filter(|d| d.account_id == account_id)
            .ok_or(Error::UnknownDevice)?;
        Ok((device, p))
    }

    /// Tap-evidence checks wallet syncs have run since the engine opened (each verifies one
    /// or more signatures). An entry uploaded again that is already settled costs none.
    pub fn signature_checks(&self) -> u64 {
        self.sync_stats.signature_checks.load(Ordering::Relaxed)
    }

    /// The taps of the uploaded entries that are settled already: the tap is stored under
    /// that proof's id, for a certificate of this device, and either the stored log holds
    /// the very same bytes at that sequence number or the stored tap's proof is the entry's
    /// byte for byte (a validator reported the tap first). Either way what the entry signs,
    /// signature included, was verified when it was stored: reads and hashes only, no
    /// signature work, so a wallet resending its whole log costs a few statements, and a tap
    /// reported by both its validator and its wallet is verified once. `None` for every
    /// other entry.
    fn settled_entries(
        &self,
        device: &Device,
        entries: &[Upload],
        certs: &HashMap<CertHash, Arc<CertInfo>>,
    ) -> Result<Vec<Option<TapRef>>> {
        let Some(first) = entries.iter().map(|(e, _)| e.seq).min() else {
            return Ok(Vec::new());
        };
        let limit = i64::try_from(entries.len()).unwrap_or(i64::MAX);
        // the tap each entry names under a certificate of this device
        let named: Vec<Option<TapRef>> = entries
            .iter()
            .map(|(e, _)| {
                certs
                    .get(&CertHash(e.proof.cert_id()))
                    .filter(|ci| ci.device_id == device.id)
                    .map(|ci| TapRef {
                        pseudonym: PseudonymBytes(ci.cert.body.pseudonym.0),
                        counter: e.proof.counter(),
                    })
            })
            .collect();
        let wanted: Vec<TapRef> = named.iter().flatten().copied().collect();
        self.store.read(|tx| {
            let stored: HashMap<u64, Vec<u8>> = tx
                .log_from(device.id, first, limit)?
                .into_iter()
                .map(|r| (r.seq, r.encoded))
                .collect();
            let taps = tx.taps_of(&wanted)?;
            let out = entries
                .iter()
                .zip(named)
                .map(|((e, bytes), tap)| {
                    let tap = tap?;
                    let row = taps.get(&tap).filter(|r| r.tap_id == Some(e.proof.id()))?;
                    let logged = stored.get(&e.seq) == Some(bytes);
                    (logged || row.proof == proof_bytes(&e.proof)).then_some(tap)
                })
                .collect();
            Ok::<_, Error>(out)
        })
    }

    /// Checks the evidence of the entries not settled yet (in parallel), and whether each
    /// entry is signed by a tap key of this device's certificates (only those may enter the
    /// stored chain: the chain is evidence, so it holds only what the phone signed). A
    /// settled entry was verified when it was stored.
    fn check_fresh(
        &self,
        device: &Device,
        entries: &[Upload],
        settled: &[Option<TapRef>],
        certs: &HashMap<CertHash, Arc<CertInfo>>,
    ) -> Result<FreshChecks> {
        let validators = self.validator_infos(challenge_validators(
            entries
                .iter()
                .zip(settled)
                .filter(|(_, s)| s.is_none())
                .map(|((e, _), _)| &e.proof),
        ))?;
        let time_rules = self.time_rules();
        let ev = self.evidence(&validators, &time_rules, self.now());
        let fresh: Vec<&WalletLogEntry> = entries
            .iter()
            .zip(settled)
            .filter(|(_, s)| s.is_none())
            .map(|((e, _), _)| e)
            .collect();
        self.sync_stats
            .signature_checks
            .fetch_add(fresh.len() as u64, Ordering::Relaxed);
        let checked: Vec<(u64, Check, bool)> = fresh
            .par_iter()
            .map(|e| {
                let ci = certs
                    .get(&CertHash(e.proof.cert_id()))
                    .map(|a| &**a)
                    .filter(|ci| ci.device_id == device.id);
                let check = check_entry(e, device.id, ci, &ev);
                // A check that passed verified the phone's signature under `ci` already.
                let signed = matches!(check, Check::Ok(_))
                    || ci.is_some_and(|ci| {
                        e.proof
                            .verify_phone_signature(&ci.cert.body.tap_public_key)
                            .is_ok()
                    });
                (e.seq, check, signed)
            })
            .collect();
        let mut flags = checked.iter().map(|(_, _, ok)| *ok);
        let signed = settled
            .iter()
            .map(|s| s.is_some() || flags.next().unwrap_or(false))
            .collect();
        let checks = checked.into_iter().map(|(seq, c, _)| (seq, c)).collect();
        Ok((checks, signed))
    }

    /// The results in upload order: a settled entry's is a duplicate at its current fare.
    fn merge_results(
        tx: &Writer<'_>,
        entries: &[Upload],
        settled: &[Option<TapRef>],
        fresh: Vec<TapResult>,
    ) -> Result<Vec<TapResult>> {
        let mut fresh = fresh.into_iter();
        let known: Vec<TapRef> = settled.iter().flatten().copied().collect();
        let charged = tx.tap_charges(&known)?;
        let mut out = Vec::with_capacity(entries.len());
        for ((e, _), s) in entries.iter().zip(settled) {
            match s {
                Some(tap) => out.push(TapResult {
                    seq: e.seq,
                    pseudonym: Some(tap.pseudonym.to_hex()),
                    counter: Some(tap.counter),
                    status: TapStatus::Duplicate,
                    fare: Some(charged.get(tap).copied().unwrap_or(0)),
                    reason: None,
                    detail: None,
                }),
                None => out.extend(fresh.next()),
            }
        }
        Ok(out)
    }

    /// Uploads tap-log entries, settles them, and answers with balance, ledger and status.
    /// Entries settled before are recognized by their stored bytes and skip every signature
    /// check ([`Self::signature_checks`]).
    pub fn sync(
        &self,
        account_id: impl Into<AccountId>,
        req: &SyncRequest,
    ) -> Result<SyncResponse> {
        let account_id = account_id.into();
        let entries = decode_entries(req, self.config().policy.max_sync_entries)?;
        let (device, _named) = self.device_of_account(account_id, &req.pseudonym)?;
        let hashes: BTreeSet<CertHash> = entries
            .iter()
            .map(|(e, _)| CertHash(e.proof.cert_id()))
            .collect();
        let certs = self.cert_infos(&hashes)?;
        let settled = self.settled_entries(&device, &entries, &certs)?;
        let (checks, signed) = self.check_fresh(&device, &entries, &settled, &certs)?;
        let now = self.now();
        // only the rider's own account: entries under anyone else's certificate are refused
        // (check_fresh keeps this device's), so naming their accounts would only let a
        // wallet that saw other cards' certificate ids hold those riders' locks
        self.store.write_for([account_id], |tx| {
            let chain = self.append_log(tx, &device, (&entries, &signed), now)?;
            // cloned: a write may run again (a retried transaction)
            let fresh = self.apply_checks(tx, checks.clone(), Reporter::Wallet, now)?;
            let taps = Self::merge_results(tx, &entries, &settled, fresh)?;
            self.rejected_verdicts(tx, &device, &entries, &taps, now)?;
            let mut verdicts =
                tx.verdicts_since(device.id, req.verdict_cursor, SYNC_LEDGER_PAGE)?;
            verdicts.truncate(SYNC_LEDGER_PAGE as usize);
            let verdict_cursor = verdicts.last().map_or(req.verdict_cursor, |v| v.id);
            let balance = tx.balance(account_id)?;
            let mut ledger = tx.ledger_since(account_id, req.cursor, SYNC_LEDGER_PAGE + 1)?;
            let more = ledger.len() > SYNC_LEDGER_PAGE as usize;
            ledger.truncate(SYNC_LEDGER_PAGE as usize);
            let cursor = ledger.last().map(|e| e.id).unwrap_or(req.cursor);
            let credential = self.credential_status(tx, &device, balance, now)?;
            Ok::<_, Error>(SyncResponse {
                server_time: now,
                balance,
                cursor,
                ledger,
                more,
                credential,
                taps,
                chain: ChainState {
                    next_seq: chain.next_seq,
                    head_hash: chain.last.map(|(_, l)| hex::encode(l)).unwrap_or_default(),
                },
                tariff: self.tariff_hex(),
                // In this transaction: the bundle names a device this sync revoked.
                config_bundle: self.bundle_hex_in(tx, now)?,
                verdicts,
                verdict_cursor,
            })
        })
    }

    /// Appends the new entries to the device's stored chain. Entries uploaded before must be
    /// identical (the same signed tap); a gap is the wallet's to fill first; a chain that does
    /// not link is refused (409 `chain_conflict`) and opens no case: the chain is checked
    /// before the entries' signatures, so it is not evidence. A clone is proved by two signed
    /// taps of one counter at settlement (`prove_fork`), never by an unsigned link.
    fn append_log(
        &self,
        tx: &Writer<'_>,
        device: &Device,
        (entries, signed): (&[Upload], &[bool]),
        now: i64,
    ) -> Result<ChainHead> {
        let mut head = tx.chain_head(device.id)?;
        let mut broken: Option<String> = None;
        let split = entries
            .iter()
            .position(|(e, _)| e.seq >= head.next_seq)
            .unwrap_or(entries.len());
        let (known, fresh) = entries.split_at(split);
        if let Some(i) = signed.iter().skip(split).position(|ok| !ok) {
            let seq = fresh.get(i).map_or(0, |(e, _)| e.seq);
            tracing::info!(
                device_id = device.id.0,
                seq,
                "wallet log refused: unsigned entry"
            );
            return Err(Error::ChainConflict(format!(
                "entry {seq} is not signed by a tap key of this device's certificates"
            )));
        }
        for (e, bytes) in known {
            if tx.log_hash_at(device.id, e.seq)? != Some(e.hash()) {
                if let Some(fork) = self.signed_fork(tx, device, e, bytes)? {
                    // Signed proof of a rollback or a clone: a case, and the chain stays as
                    // stored (the entries' taps are still settled on their own evidence).
                    self.open_fraud(
                        tx,
                        &NewFraudCase {
                            device_id: device.id,
                            pseudonym: PseudonymBytes(fork.1),
                            kind: FraudKind::BrokenChain,
                            counter: Some(e.counter()),
                            detail: &fork.0,
                            evidence: fork.2,
                            opened_at: now,
                        },
                    )?;
                    return Ok(head);
                }
                broken = Some(format!(
                    "entry {} differs from the entry uploaded before with that number",
                    e.seq
                ));
                break;
            }
        }
        if broken.is_none() && !fresh.is_empty() {
            let list: Vec<WalletLogEntry> = fresh.iter().map(|(e, _)| e.clone()).collect();
            match verify_chain(&list, head) {
                Ok(h) => {
                    let rows: Vec<NewLogEntry<'_>> = fresh
                        .iter()
                        .map(|(e, bytes)| NewLogEntry {
                            seq: e.seq,
                            hash: e.hash(),
                            counter: e.counter(),
                            encoded: bytes,
                        })
                        .collect();
                    tx.insert_log(device.id, &rows)?;
                    tx.set_chain_head(device.id, &h)?;
                    head = h;
                }
                Err(ChainError::SequenceGap { seq, expected }) if seq > expected => {
                    return Err(Error::ChainGap { seq, expected });
                }
                Err(e) => broken = Some(e.to_string()),
            }
        }
        if let Some(detail) = broken {
            tracing::info!(device_id = device.id.0, %detail, "wallet log refused");
            return Err(Error::ChainConflict(detail));
        }
        Ok(head)
    }

    /// Whether `e` and the entry stored at its sequence number prove a fork by signatures
    /// alone ([`prove_fork`]: one certificate, both tap signatures canonical and valid, two
    /// different signed bodies with one predecessor or one counter). Returns the case's detail
    /// the certificate's pseudonym and the evidence (both entries).
    fn signed_fork(
        &self,
        tx: &Writer<'_>,
        device: &Device,
        e: &WalletLogEntry,
        bytes: &[u8],
    ) -> Result<Option<SignedFork>> {
        let Some(row) = tx.log_from(device.id, e.seq, 1)?.into_iter().next() else {
            return Ok(None);
        };
        let Ok(stored) = WalletLogEntry::decode(&row.encoded) else {
            return Ok(None);
        };
        let id = CertHash(stored.proof.cert_id());
        let certs = self.cert_infos_in(tx, &BTreeSet::from([id]))?;
        let Some(ci) = certs.get(&id).filter(|c| c.device_id == device.id) else {
            return Ok(None);
        };
        Ok(prove_fork(&ci.cert, &stored.proof, &e.proof).ok().map(|f| {
            (
                format!(
                    "entry {}: two signed taps {} ({fork:?}): a restored backup or a clone",
                    e.seq,
                    match f {
                        Fork::SamePredecessor => "continue the same previous tap",
                        Fork::SameCounter => "use the same counter",
                    },
                    fork = f
                ),
                ci.cert.body.pseudonym.0,
                evidence_bytes(&[&row.encoded, bytes]),
            )
        }))
    }

    /// The device's own entries that were refused get a verdict too (not charged, and why),
    /// so the rider's history shows every tap the phone signed.
    fn rejected_verdicts(
        &self,
        tx: &Writer<'_>,
        device: &Device,
        entries: &[Upload],
        results: &[mancard_api::TapResult],
        now: i64,
    ) -> Result<()> {
        for ((e, _), r) in entries.iter().zip(results) {
            if r.status != mancard_api::TapStatus::Rejected {
                continue;
            }
            let Some(cert) = tx.certificate(&CertHash(e.proof.cert_id()))? else {
                continue;
            };
            if cert.device_id != device.id {
                continue;
            }
            let counter = e.proof.counter();
            let reason = r.reason.as_deref();
            let same = tx
                .last_verdict(&cert.pseudonym, counter)?
                .is_some_and(|(s, c, why)| {
                    s == VerdictStatus::Rejected.as_str() && c == 0 && why.as_deref() == reason
                });
            if same || tx.tap(&cert.pseudonym, counter)?.is_some() {
                continue;
            }
            let (time, line_id) = match &e.proof {
                TapProof::Nfc { challenge, .. } => {
                    (challenge.body.validator_time, Some(challenge.body.line_id))
                }
                TapProof::Qr { pass } => (pass.body.issued_at, None),
            };
            tx.insert_verdict(&NewVerdict {
                account_id: device.account_id,
                device_id: device.id,
                pseudonym: cert.pseudonym,
                counter,
                status: VerdictStatus::Rejected,
                charged: 0,
                reason,
                time,
                line_id,
                created_at: now,
            })?;
        }
        Ok(())
    }

    fn credential_status(
        &self,
        tx: &Writer<'_>,
        device: &Device,
        balance: i64,
        now: i64,
    ) -> Result<CredentialStatus> {
        let policy = &self.config().policy;
        let cert = tx.latest_certificate(device.id)?;
        let decoded = cert
            .as_ref()
            .and_then(|c| CredentialCertificate::decode(&c.encoded).ok());
        let due = |why: ReplenishReason| (CredentialState::ReplenishDue, Some(why.as_str().into()));
        let (status, reason) = if let Some(r) = tx.revocation(device.id)? {
            (CredentialState::Revoked, Some(r))
        } else if let Some(c) = &decoded {
            let a = c.body.allowance;
            let used = tx
                .max_counter(device.id)?
                .filter(|m| a.contains(*m))
                .map(|m| u64::from(m - a.counter_first) + 1)
                .unwrap_or(0);
            let grantable = balance.clamp(0, policy.max_offline_amount.max(0));
            if c.body.valid_until.saturating_sub(now) < policy.replenish_before_expiry_secs {
                due(ReplenishReason::ExpiryNear)
            } else if used.saturating_mul(4) > a.counters().saturating_mul(3) {
                due(ReplenishReason::CountersLow)
            } else if grantable > a.max_amount {
                due(ReplenishReason::AllowanceCanGrow)
            } else {
                (CredentialState::Active, None)
            }
        } else {
            due(ReplenishReason::NoCertificate)
        };
        Ok(CredentialStatus {
            status,
            reason,
            pseudonym: cert
                .as_ref()
                .map_or(device.pseudonym, |c| c.pseudonym)
                .to_hex(),
            certificate: cert.as_ref().map(|c| hex::encode(&c.encoded)),
            valid_until: decoded.as_ref().map(|c| c.body.valid_until),
            counter_first: decoded.as_ref().map(|c| c.body.allowance.counter_first),
            counter_last: decoded.as_ref().map(|c| c.body.allowance.counter_last),
            max_amount: decoded.as_ref().map(|c| c.body.allowance.max_amount),
        })
    }

    /// Stored log entries of a device from `from_seq` (a wallet that lost its last records
    /// after a power loss learns them back here).
    pub fn wallet_log(
        &self,
        account_id: impl Into<AccountId>,
        pseudonym: &str,
        from_seq: u64,
    ) -> Result<LogResponse> {
        let (device, _) = self.device_of_account(account_id.into(), pseudonym)?;
        let rows = self
            .store
            .read(|tx| tx.log_from(device.id, from_seq, 1_000))?;
        Ok(LogResponse {
            entries: rows
                .into_iter()
                .map(|r| LogItem {
                    seq: r.seq,
                    entry: hex::encode(r.encoded),
                })
                .collect(),
        })
    }
}
