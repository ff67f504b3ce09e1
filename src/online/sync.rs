//! Sync: uploads the tap log a page at a time, applies each answer (the verdicts, the ledger,
//! the balance) while the next page is in flight, recovers entries the wallet lost, learns the
//! server clock, the tariff, the config bundle and revocation, and replenishes when due.

use super::flows::{server_err, unhex, Inner};
use super::http::{CallError, NO_BODY};
use super::{OnlineError, SyncReport};
use crate::error::WalletError;
use crate::sync_store::{PageOutcome, ServerLedgerRow, Settlement, SyncPage, Verdict};
use crate::util::now_utc;
use mancard_api::endpoints;
use mancard_api::{
    CredentialState, LogResponse, ProblemCode, SyncRequest, SyncResponse, TapVerdict,
};
use std::sync::Arc;

/// Tap-log entries per sync request (the backend takes at most 1000).
const SYNC_BATCH: u32 = 1000;
/// Verdicts the backend returns at most per answer: a full page means there may be more.
const VERDICT_PAGE: usize = 500;
/// Upper bound of sync round trips in one `sync` call (a runaway guard).
const MAX_SYNC_ROUNDS: u32 = 10_000;

/// Server − device clock, from the server time of an answer and the device clock before and
/// after the request (the midpoint). `None` when out of bounds (|offset| > `max`) or when the
/// round trip took over 30 s (too imprecise).
pub(crate) fn clock_offset(
    server_time: i64,
    sent_at: i64,
    received_at: i64,
    max: i64,
) -> Option<i64> {
    let rtt = received_at.saturating_sub(sent_at);
    if !(0..=30).contains(&rtt) {
        return None;
    }
    let offset = server_time.saturating_sub(sent_at.saturating_add(rtt / 2));
    (offset.abs() <= max.max(0)).then_some(offset)
}

type PendingApply = tokio::task::JoinHandle<Result<PageOutcome, WalletError>>;

/// Where a running sync stands.
struct SyncLoop {
    recover_tried_at: Option<u64>,
    /// Next entry to upload.
    from: u64,
    /// Backend ledger cursor.
    cursor: i64,
    /// The id of the last verdict received.
    verdict_cursor: i64,
    /// The application of the last answer, running.
    pending: Option<PendingApply>,
}

/// The last answer of a sync and the device clock around its request.
struct LastAnswer {
    resp: SyncResponse,
    sent: i64,
    received: i64,
}

fn empty_report(clock_offset_secs: i64) -> SyncReport {
    SyncReport {
        server_time: 0,
        balance: 0,
        uploaded: 0,
        settled: 0,
        fare_corrections: 0,
        rejected: 0,
        recovered: 0,
        ledger_entries: 0,
        fare_adjustments: 0,
        pending_taps: 0,
        credential_status: "none".into(),
        credential_reason: None,
        revoked: false,
        replenished: false,
        replenish_error: None,
        clock_offset_secs,
        clock_offset_applied: false,
    }
}

/// The entry a `chain_gap` answer asks the upload to start from.
fn chain_gap_from(e: &CallError) -> Option<u64> {
    match e {
        CallError::Problem { problem, .. } => problem
            .doc
            .detail
            .rsplit("upload from entry ")
            .next()
            .and_then(|s| s.trim().trim_end_matches('.').parse::<u64>().ok()),
        _ => None,
    }
}

/// A verdict of the feed as the wallet stores it; None (and a warning) for one it cannot
/// store (a pseudonym that is not 16 bytes of hex, a negative charge): a backend bug, and the
/// cursor moves past it all the same.
fn verdict_of(v: &TapVerdict) -> Option<Verdict> {
    let pseudonym = hex::decode(&v.pseudonym)
        .ok()
        .and_then(|b| <[u8; 16]>::try_from(b).ok());
    let (Some(pseudonym), true) = (pseudonym, v.charged >= 0) else {
        tracing::warn!("verdict {} not stored: {v:?}", v.id);
        return None;
    };
    Some(Verdict {
        id: v.id,
        pseudonym,
        counter: v.counter,
        status: v.status,
        charged: v.charged,
        reason: v.reason.clone(),
        time: v.time,
        line_id: v.line_id,
        created_at: v.created_at,
    })
}

/// The cursors an answer moves to: (next entry to upload, ledger cursor, verdict cursor).
struct Cursors {
    next_from: u64,
    ledger: i64,
    verdicts: i64,
}

/// One sync answer as the wallet stores it.
fn page_of(resp: &SyncResponse, c: &Cursors) -> SyncPage {
    let next_from = c.next_from;
    let settlements = resp
        .taps
        .iter()
        .map(|t| Settlement {
            seq: t.seq,
            status: t.status,
            fare: t.fare,
            reason: t.reason.clone(),
            detail: t.detail.clone(),
        })
        .collect();
    let ledger = resp
        .ledger
        .iter()
        .map(|l| ServerLedgerRow {
            id: l.id,
            kind: l.kind,
            amount: l.amount,
            idempotency_key: l.idempotency_key.clone(),
            pseudonym: l.pseudonym.clone(),
            counter: l.counter,
            intent_id: l.intent_id.clone(),
            note: l.note.clone(),
            created_at: l.created_at,
        })
        .collect();
    SyncPage {
        settlements,
        ledger,
        verdicts: resp.verdicts.iter().filter_map(verdict_of).collect(),
        upload_from: next_from,
        ledger_cursor: c.ledger,
        verdict_cursor: c.verdicts,
        balance: resp.balance,
        confirmed_through: next_from.checked_sub(1),
        server_time: resp.server_time,
    }
}

impl Inner {
    /// Stores the server clock offset if it is within bounds; returns (offset, applied).
    fn learn_clock(&self, server_time: i64, sent_at: i64, received_at: i64) -> (i64, bool) {
        let Some(offset) = clock_offset(
            server_time,
            sent_at,
            received_at,
            self.opts.max_clock_offset_secs,
        ) else {
            tracing::warn!(
                "server clock {server_time} vs device {sent_at}..{received_at}: offset not applied"
            );
            return (self.wallet.server_time_offset(), false);
        };
        match self.wallet.set_server_time_offset(offset) {
            Ok(()) => (offset, true),
            Err(e) => {
                tracing::warn!("could not store the clock offset: {e}");
                (self.wallet.server_time_offset(), false)
            }
        }
    }

    pub(crate) async fn sync(&self) -> Result<SyncReport, OnlineError> {
        let _g = self.sync_lock.lock().await;
        let mut report = empty_report(self.wallet.server_time_offset());
        let Some((pseudonym, locally_revoked)) = self.wallet.current_pseudonym() else {
            let sent = now_utc();
            let a = self.account().await?;
            let (off, applied) = self.learn_clock(a.server_time, sent, now_utc());
            self.wallet.set_balance_only(a.balance, a.server_time)?;
            report.server_time = a.server_time;
            report.balance = a.balance;
            report.clock_offset_secs = off;
            report.clock_offset_applied = applied;
            return Ok(report);
        };
        let mut st = SyncLoop {
            recover_tried_at: None,
            from: 0,
            cursor: 0,
            verdict_cursor: self.wallet.verdict_cursor()?,
            pending: None,
        };
        (st.from, st.cursor) = self.wallet.sync_cursors()?;
        let result = self.rounds(&mut st, &mut report, &pseudonym).await;
        // Whatever happened, the answers received are applied before returning.
        let settled = Self::settle(&mut st.pending, &mut report).await;
        let last = result?;
        settled?;
        self.conclude(&mut report, last, locally_revoked).await?;
        Ok(report)
    }

    /// Uploads page after page until the backend has everything and nothing more is to learn.
    async fn rounds(
        &self,
        st: &mut SyncLoop,
        report: &mut SyncReport,
        pseudonym: &str,
    ) -> Result<LastAnswer, OnlineError> {
        let mut rounds = 0u32;
        loop {
            rounds += 1;
            if rounds > MAX_SYNC_ROUNDS {
                return Err(server_err("sync did not converge"));
            }
            let from = st.from;
            let (body, n) = self.sync_body(pseudonym, from, st)?;
            let sent = now_utc();
            let t_req = std::time::Instant::now();
            let ep = endpoints::WALLET_SYNC;
            let first = self
                .authed::<SyncResponse, _>(ep, ep.path, Some(&body))
                .await;
            drop(body);
            let resp = match first {
                Ok(r) => r,
                Err(e) if e.code() == Some(ProblemCode::ChainGap) => {
                    // The backend has fewer entries than we thought: upload from its head.
                    match chain_gap_from(&e) {
                        Some(x) if x < from => {
                            Self::settle(&mut st.pending, report).await?;
                            self.wallet.set_upload_from(x)?;
                            st.from = x;
                            continue;
                        }
                        _ => return Err(e.into()),
                    }
                }
                Err(e) => return Err(e.into()),
            };
            let received = now_utc();
            tracing::debug!(
                "sync page from entry {from}: {n} entries, answered in {:?}",
                t_req.elapsed()
            );
            let (more, resp) = self.take_page(st, report, pseudonym, resp, n).await?;
            if !more {
                return Ok(LastAnswer {
                    resp,
                    sent,
                    received,
                });
            }
        }
    }

    /// What the last answer says beyond the pages: the balance, the clock, the tariff, the
    /// credential's state (revoked, or a replenishment due).
    async fn conclude(
        &self,
        report: &mut SyncReport,
        last: LastAnswer,
        locally_revoked: bool,
    ) -> Result<(), OnlineError> {
        let LastAnswer {
            resp,
            sent,
            received,
        } = last;
        report.server_time = resp.server_time;
        report.balance = resp.balance;
        report.credential_status = resp.credential.status.as_str().to_string();
        report.credential_reason = resp.credential.reason.clone();
        let (off, applied) = self.learn_clock(resp.server_time, sent, received);
        report.clock_offset_secs = off;
        report.clock_offset_applied = applied;
        if !resp.tariff.is_empty() {
            match unhex(&resp.tariff, "tariff").map(|t| self.wallet.set_tariff(t)) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => tracing::warn!("the backend's tariff was not installed: {e}"),
                Err(e) => tracing::warn!("{e}"),
            }
        }
        self.install_bundle(&resp.config_bundle);
        if resp.credential.status == CredentialState::Revoked {
            if !locally_revoked {
                let reason = resp
                    .credential
                    .reason
                    .clone()
                    .unwrap_or_else(|| "revoked by the issuer".into());
                match self.wallet.mark_revoked(reason, now_utc()) {
                    Ok(()) | Err(WalletError::NoCredential) => {}
                    Err(e) => return Err(e.into()),
                }
                report.revoked = true;
            }
        } else if self.opts.replenish_on_sync
            && (resp.credential.status == CredentialState::ReplenishDue
                || self.replenish_wanted()?)
        {
            match self.provision(true).await {
                Ok(_) => report.replenished = true,
                Err(e) => report.replenish_error = Some(e.to_string()),
            }
        }
        report.pending_taps = self.wallet.ledger()?.pending_taps;
        Ok(())
    }

    /// One sync request: up to `SYNC_BATCH` log entries from `from`, and the cursors.
    fn sync_body(
        &self,
        pseudonym: &str,
        from: u64,
        st: &SyncLoop,
    ) -> Result<(SyncRequest, u64), OnlineError> {
        let entries = self.wallet.tap_log(from, SYNC_BATCH)?;
        let n = entries.len() as u64;
        let entries = entries.iter().map(hex::encode).collect();
        Ok((
            SyncRequest {
                pseudonym: pseudonym.to_string(),
                cursor: st.cursor,
                entries,
                verdict_cursor: st.verdict_cursor,
            },
            n,
        ))
    }

    /// Takes one sync answer for the `n` entries from `st.from`: queues its application (after
    /// the previous one's), advances the cursors, recovers lost entries if the backend has
    /// more than the wallet. Returns whether another round is needed, and the answer.
    async fn take_page(
        &self,
        st: &mut SyncLoop,
        report: &mut SyncReport,
        pseudonym: &str,
        resp: SyncResponse,
        n: u64,
    ) -> Result<(bool, SyncResponse), OnlineError> {
        report.uploaded = report.uploaded.saturating_add(n);
        let next_from = st.from.saturating_add(n);
        let cursors = Cursors {
            next_from,
            ledger: resp.cursor.max(st.cursor),
            verdicts: resp.verdict_cursor.max(st.verdict_cursor),
        };
        let page = page_of(&resp, &cursors);
        // The answer of page k is applied on a blocking thread while page k + 1 is in flight
        // (the backend is the bottleneck). Applications stay in order and each one is
        // idempotent, so a crash between them only means a re-upload.
        Self::settle(&mut st.pending, report).await?;
        let wallet = Arc::clone(&self.wallet);
        st.pending = Some(tokio::task::spawn_blocking(move || {
            wallet.apply_sync_page(&page, now_utc())
        }));
        st.from = next_from;
        st.cursor = cursors.ledger;
        st.verdict_cursor = cursors.verdicts;

        // Entries the backend has and this wallet lost (power loss): learn them back, then
        // upload them again (byte-identical, so idempotent) to get their verdicts.
        let log_len = self.wallet.log_len();
        let mut recovered_now = 0;
        if resp.chain.next_seq > log_len && st.recover_tried_at != Some(log_len) {
            st.recover_tried_at = Some(log_len);
            Self::settle(&mut st.pending, report).await?;
            recovered_now = self.recover(pseudonym, log_len).await?;
            report.recovered = report.recovered.saturating_add(recovered_now);
        }
        // A full page of verdicts: there may be more (paged on like the ledger).
        let more = resp.more
            || n == u64::from(SYNC_BATCH)
            || recovered_now > 0
            || resp.verdicts.len() >= VERDICT_PAGE;
        Ok((more, resp))
    }

    /// Waits for the application of the previous page and adds it to the report.
    async fn settle(
        pending: &mut Option<PendingApply>,
        report: &mut SyncReport,
    ) -> Result<(), OnlineError> {
        let Some(h) = pending.take() else {
            return Ok(());
        };
        let out = h
            .await
            .map_err(|e| WalletError::internal(format!("applying a sync answer: {e}")))??;
        report.settled = report.settled.saturating_add(out.settled);
        report.fare_corrections = report.fare_corrections.saturating_add(out.corrections);
        report.rejected = report.rejected.saturating_add(out.rejected);
        report.ledger_entries = report.ledger_entries.saturating_add(out.new_ledger);
        report.fare_adjustments = report.fare_adjustments.saturating_add(out.rerated);
        if out.verdicts > 0 {
            tracing::debug!("{} new tap verdicts stored", out.verdicts);
        }
        Ok(())
    }

    /// Fetches the entries from `from_seq` the backend stored and appends those that continue
    /// this wallet's chain.
    async fn recover(&self, pseudonym: &str, from_seq: u64) -> Result<u64, OnlineError> {
        let ep = endpoints::WALLET_LOG;
        let path = format!("{}?pseudonym={pseudonym}&from_seq={from_seq}", ep.path);
        let r: LogResponse = self.authed(ep, &path, NO_BODY).await?;
        let mut entries = Vec::with_capacity(r.entries.len());
        for item in r.entries {
            entries.push((item.seq, unhex(&item.entry, "log entry")?));
        }
        Ok(self.wallet.append_recovered(&entries, now_utc())?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_offset_is_bounded() {
        let day = 86_400;
        assert_eq!(clock_offset(1_000, 1_000, 1_000, 2 * day), Some(0));
        assert_eq!(
            clock_offset(1_000 + day, 1_000, 1_002, 2 * day),
            Some(day - 1)
        );
        assert_eq!(clock_offset(1_000 - day, 1_000, 1_000, 2 * day), Some(-day));
        assert_eq!(clock_offset(1_000 + 3 * day, 1_000, 1_000, 2 * day), None);
        assert_eq!(clock_offset(1_000, 1_000, 1_100, 2 * day), None); // slow round trip
        assert_eq!(clock_offset(1_000, 1_000, 900, 2 * day), None); // clock went back
        assert_eq!(clock_offset(i64::MAX, i64::MIN, i64::MIN, 2 * day), None);
    }
}
