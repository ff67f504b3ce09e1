//! The books after the timed phase (untimed): what is still in a validator's journal is
//! uploaded and every wallet syncs its whole tap log, then each rider's ledger is read from
//! the start and every tap made at a gate must be charged exactly once, every paid top-up
//! credited exactly once, each balance the sum of its ledger, and the backend's own audit
//! (`GET /v1/admin/audit`) clean. [`check`] is the comparison, kept pure for its tests.

use super::scenarios::{State, SyncState};
use super::setup::{read_json, wait_credited, Api};
use super::{LoadError, Res};
use mancard_api::endpoints::{ADMIN_AUDIT, VALIDATOR_BATCHES, WALLET_SYNC};
use mancard_api::{AuditReport, BatchResponse, LedgerKind, SyncRequest, SyncResponse, TopupStatus};
use std::collections::{BTreeMap, BTreeSet};

/// What the load generator did and so expects to find.
#[derive(Debug, Default)]
pub(super) struct Expected {
    /// (rider, counter) of every tap a validator accepted.
    pub(super) taps: BTreeSet<(usize, u32)>,
    /// (rider, intent id, credited): every top-up paid, and whether the backend says it is
    /// credited (a paid one that is not is a problem too).
    pub(super) topups: Vec<(usize, String, bool)>,
    /// Batches sent twice that the backend processed again.
    pub(super) resends_reprocessed: u64,
}

/// One rider's ledger as the backend reports it.
#[derive(Debug, Default, Clone)]
pub(super) struct RiderBooks {
    /// Fare entries per tap counter.
    pub(super) fares: BTreeMap<u32, u64>,
    /// Top-up entries per intent id.
    pub(super) topups: BTreeMap<String, u64>,
    pub(super) ledger_sum: i64,
    pub(super) balance: i64,
}

/// Every way the books disagree, in words (empty: they agree).
pub(super) fn check(
    expected: &Expected,
    riders: &[RiderBooks],
    audit: Option<&AuditReport>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for &(r, counter) in &expected.taps {
        let n = riders
            .get(r)
            .and_then(|b| b.fares.get(&counter))
            .copied()
            .unwrap_or(0);
        match n {
            1 => {}
            0 => problems.push(format!(
                "LOST: rider {r}'s tap (counter {counter}) was never charged"
            )),
            n => problems.push(format!(
                "DOUBLED: rider {r}'s tap (counter {counter}) was charged {n} times"
            )),
        }
    }
    for (r, b) in riders.iter().enumerate() {
        for (&counter, &n) in &b.fares {
            if n > 0 && !expected.taps.contains(&(r, counter)) {
                problems.push(format!(
                    "rider {r} was charged for a tap never made (counter {counter})"
                ));
            }
        }
        if b.ledger_sum != b.balance {
            problems.push(format!(
                "rider {r}: balance {} is not the sum of its ledger {}",
                b.balance, b.ledger_sum
            ));
        }
    }
    let mut ours: BTreeSet<(usize, &str)> = BTreeSet::new();
    for (r, intent, credited) in &expected.topups {
        ours.insert((*r, intent.as_str()));
        let n = riders
            .get(*r)
            .and_then(|b| b.topups.get(intent))
            .copied()
            .unwrap_or(0);
        match (credited, n) {
            (true, 1) | (false, 0) => {}
            (true, 0) => problems.push(format!(
                "LOST: top-up {intent} of rider {r} is credited but has no ledger entry"
            )),
            (false, _) => problems.push(format!(
                "LOST: top-up {intent} of rider {r} was paid but never credited"
            )),
            (true, n) => problems.push(format!(
                "DOUBLED: top-up {intent} of rider {r} was credited {n} times"
            )),
        }
    }
    for (r, b) in riders.iter().enumerate() {
        for intent in b.topups.keys() {
            if !ours.contains(&(r, intent.as_str())) {
                problems.push(format!(
                    "rider {r} was credited a top-up nobody paid ({intent})"
                ));
            }
        }
    }
    if expected.resends_reprocessed > 0 {
        problems.push(format!(
            "DOUBLED: {} batch(es) sent twice were processed twice",
            expected.resends_reprocessed
        ));
    }
    match audit {
        Some(a) if a.ok => {}
        Some(a) => problems.push(format!(
            "the backend's audit is not clean: {}",
            serde_json::to_string(a).unwrap_or_default()
        )),
        None => problems.push("the backend's audit could not be read".into()),
    }
    problems
}

/// Uploads the presealed batches the timed phase did not reach, then what the validators'
/// journals still hold (batches whose answer was lost or failed, taps not sealed yet).
/// Batches uploaded.
pub(super) async fn flush_validators(api: &Api, s: &State) -> Res<u64> {
    let mut sent = 0u64;
    for queue in &s.presealed {
        loop {
            let next = queue
                .lock()
                .map_err(|_| LoadError::Books("the batch queue was poisoned".into()))?
                .pop_front();
            let Some(batch) = next else { break };
            upload_final(api, batch.bytes).await?;
            sent = sent.saturating_add(1);
        }
    }
    for slot in &s.validators {
        let mut v = slot.lock().await;
        for _ in 0..1000 {
            let fail =
                |e: &dyn std::fmt::Display| LoadError::Books(format!("validator journal: {e}"));
            let Some(batch) = v.seal().map_err(|e| fail(&e))? else {
                break;
            };
            upload_final(api, batch.bytes.clone()).await?;
            let now = v.now();
            v.journal()
                .ack_batch(&batch.batch_id, now)
                .map_err(|e| fail(&e))?;
            sent = sent.saturating_add(1);
        }
    }
    Ok(sent)
}

/// One batch uploaded after the timed phase (not timed): the backend must accept it.
async fn upload_final(api: &Api, bytes: Vec<u8>) -> Res<()> {
    let resp = api
        .http
        .post(format!("{}{}", api.base, VALIDATOR_BATCHES.path))
        .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
        .body(bytes)
        .send()
        .await
        .map_err(|e| LoadError::Http(format!("final upload: {e}")))?;
    let _: BatchResponse = read_json(VALIDATOR_BATCHES.path, resp).await?;
    Ok(())
}

/// Syncs rider `i`'s whole tap log, then reads its ledger from the start.
pub(super) async fn rider_books(api: &Api, s: &State, i: usize) -> Res<RiderBooks> {
    let rider = s
        .riders
        .get(i)
        .ok_or_else(|| LoadError::Books(format!("no rider {i}")))?;
    let fresh = SyncState::default();
    let mut st = match s.sync.get(i) {
        Some(slot) => {
            let g = slot.lock().await;
            SyncState {
                uploaded_through: g.uploaded_through,
                cursor: 0,
                verdict_cursor: g.verdict_cursor,
            }
        }
        None => fresh,
    };
    let mut books = RiderBooks::default();
    for _ in 0..10_000 {
        let entries = rider
            .wallet
            .tap_log(st.uploaded_through, 500)
            .map_err(|e| LoadError::Books(format!("rider {i}'s tap log: {e}")))?;
        let body = SyncRequest {
            pseudonym: rider.pseudonym.clone(),
            cursor: st.cursor,
            entries: entries.iter().map(hex::encode).collect(),
            verdict_cursor: st.verdict_cursor,
        };
        let v: SyncResponse = api
            .call(true, WALLET_SYNC.path, Some(&rider.token), Some(&body))
            .await?;
        st.uploaded_through = st
            .uploaded_through
            .saturating_add(u64::try_from(entries.len()).unwrap_or(0));
        st.cursor = v.cursor;
        st.verdict_cursor = v.verdict_cursor;
        books.balance = v.balance;
        for e in &v.ledger {
            books.ledger_sum = books.ledger_sum.saturating_add(e.amount);
            match (e.kind, e.counter, &e.intent_id) {
                (LedgerKind::Fare, Some(c), _) => *books.fares.entry(c).or_default() += 1,
                (LedgerKind::Topup, _, Some(intent)) => {
                    *books.topups.entry(intent.clone()).or_default() += 1
                }
                _ => {}
            }
        }
        if entries.is_empty() && !v.more {
            return Ok(books);
        }
    }
    Err(LoadError::Books(format!("rider {i}'s ledger did not end")))
}

/// Whether each paid top-up is credited now (polled a few seconds: verification and
/// settlement at the gateway may still be under way).
pub(super) async fn topups_now(
    api: &Api,
    s: &State,
    paid: &[(usize, String)],
) -> Res<Vec<(usize, String, bool)>> {
    let mut out = Vec::new();
    for (r, intent) in paid {
        let rider = s
            .riders
            .get(*r)
            .ok_or_else(|| LoadError::Books(format!("no rider {r}")))?;
        let status = wait_credited(api, &rider.token, intent).await?;
        out.push((*r, intent.clone(), status == TopupStatus::Credited));
    }
    Ok(out)
}

/// The backend's ledger audit (operator token with the `read` scope).
pub(super) async fn audit(api: &Api, token: &str) -> Option<AuditReport> {
    api.call(false, ADMIN_AUDIT.path, Some(token), None::<&()>)
        .await
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn clean() -> AuditReport {
        AuditReport {
            accounts: 2,
            ledger_entries: 3,
            taps: 2,
            ledger_total: 0,
            balances_total: 0,
            taps_without_charge: 0,
            taps_negative_charge: 0,
            orphan_fare_entries: 0,
            intents_credited_twice: 0,
            cert_totals_mismatched: 0,
            ok: true,
        }
    }

    fn books(fares: &[(u32, u64)], topups: &[(&str, u64)]) -> RiderBooks {
        RiderBooks {
            fares: fares.iter().copied().collect(),
            topups: topups.iter().map(|(k, n)| ((*k).to_string(), *n)).collect(),
            ledger_sum: 100,
            balance: 100,
        }
    }

    fn expected() -> Expected {
        Expected {
            taps: [(0, 1), (0, 2), (1, 1)].into_iter().collect(),
            topups: vec![(0, "a".into(), true), (1, "b".into(), true)],
            resends_reprocessed: 0,
        }
    }

    #[test]
    fn books_that_agree_have_no_problem() {
        let riders = [
            books(&[(1, 1), (2, 1)], &[("a", 1)]),
            books(&[(1, 1)], &[("b", 1)]),
        ];
        assert_eq!(
            check(&expected(), &riders, Some(&clean())),
            Vec::<String>::new()
        );
    }

    #[test]
    fn a_lost_or_doubled_tap_or_top_up_is_named() {
        let riders = [books(&[(1, 2)], &[("a", 2)]), books(&[(1, 1), (9, 1)], &[])];
        let p = check(&expected(), &riders, Some(&clean())).join("\n");
        assert!(
            p.contains("DOUBLED: rider 0's tap (counter 1) was charged 2 times"),
            "{p}"
        );
        assert!(
            p.contains("LOST: rider 0's tap (counter 2) was never charged"),
            "{p}"
        );
        assert!(
            p.contains("rider 1 was charged for a tap never made (counter 9)"),
            "{p}"
        );
        assert!(
            p.contains("DOUBLED: top-up a of rider 0 was credited 2 times"),
            "{p}"
        );
        assert!(
            p.contains("LOST: top-up b of rider 1 is credited but has no ledger entry"),
            "{p}"
        );
    }

    #[test]
    fn a_dirty_audit_a_wrong_balance_and_a_reprocessed_resend_are_problems() {
        let mut riders = vec![
            books(&[(1, 1), (2, 1)], &[("a", 1)]),
            books(&[(1, 1)], &[("b", 1)]),
        ];
        if let Some(r) = riders.get_mut(1) {
            r.balance = 99;
        }
        let mut e = expected();
        e.resends_reprocessed = 1;
        let dirty = AuditReport {
            intents_credited_twice: 1,
            ok: false,
            ..clean()
        };
        let p = check(&e, &riders, Some(&dirty)).join("\n");
        assert!(
            p.contains("rider 1: balance 99 is not the sum of its ledger 100"),
            "{p}"
        );
        assert!(p.contains("processed twice"), "{p}");
        assert!(p.contains("audit is not clean"), "{p}");
        assert!(check(&expected(), &riders, None)
            .join("\n")
            .contains("could not be read"));
    }
}
