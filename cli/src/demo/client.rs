//! The wallet's online side: `mancard::online` (the app's code), or, with `--client http`,
//! the demo's own calls of the backend's HTTP API ([`HttpRider`]) driving the same wallet API.
//! Either way the story gets the same answers: what was issued, what a sync did, and the
//! backend's verdict on every tap-log entry.

use super::http_rider::HttpRider;
use super::world::Verdict;
use super::Res;
use mancard::online::OnlineWallet;
use mancard::{HistoryKind, HistoryStatus, Wallet};
use mancard_api::TapStatus;

/// A certificate the backend issued, as the demo tells it.
pub(super) struct Issued {
    pub(super) pseudonym: String,
    pub(super) valid_until: i64,
    pub(super) counter_first: u32,
    pub(super) counter_last: u32,
    pub(super) max_amount: i64,
    pub(super) balance: i64,
}

/// What a wallet sync did.
pub(super) struct Synced {
    pub(super) uploaded: u64,
    pub(super) balance: i64,
    pub(super) fare_corrections: u64,
    pub(super) ledger_entries: u64,
    pub(super) credential_status: String,
    /// The backend's verdict on each uploaded tap-log entry: (log seq, status).
    pub(super) verdicts: Vec<(u64, TapStatus)>,
    /// What the backend charges for each tap and why, as the rider's wallet shows it (its
    /// history), or as the sync answer's verdict feed says (newest per tap) over raw HTTP.
    pub(super) charged: Vec<Verdict>,
}

impl Synced {
    /// How many of the verdicts have `status`.
    pub(super) fn count(&self, status: TapStatus) -> u64 {
        self.verdicts.iter().filter(|(_, s)| *s == status).count() as u64
    }
}

/// A status the wallet stored (`TapSettlement::status`) as the contract's enum.
pub(super) fn tap_status(text: &str) -> Option<TapStatus> {
    [
        TapStatus::Settled,
        TapStatus::Duplicate,
        TapStatus::Fraud,
        TapStatus::Rejected,
        TapStatus::Pending,
        TapStatus::NotCharged,
    ]
    .into_iter()
    .find(|s| s.as_str() == text)
}

/// The wallet's online side.
pub(super) enum Client {
    Online(OnlineWallet),
    Http(HttpRider),
}

impl Client {
    pub(super) fn register(&mut self, rt: &tokio::runtime::Runtime, phone: &str) -> Res<String> {
        match self {
            Self::Online(o) => Ok(o.block_on(o.register(phone.to_string()))??.phone),
            Self::Http(h) => rt.block_on(h.register(phone)),
        }
    }

    pub(super) fn verify(
        &mut self,
        rt: &tokio::runtime::Runtime,
        phone: &str,
        code: &str,
    ) -> Res<i64> {
        match self {
            Self::Online(o) => Ok(o
                .block_on(o.verify(phone.to_string(), code.to_string()))??
                .account_id),
            Self::Http(h) => rt.block_on(h.verify(phone, code)),
        }
    }

    pub(super) fn provision(
        &mut self,
        rt: &tokio::runtime::Runtime,
        replenish: bool,
    ) -> Res<Issued> {
        match self {
            Self::Online(o) => {
                let p = if replenish {
                    o.block_on(o.replenish())??
                } else {
                    o.block_on(o.provision())??
                };
                Ok(Issued {
                    pseudonym: p.pseudonym,
                    valid_until: p.valid_until,
                    counter_first: p.counter_first,
                    counter_last: p.counter_last,
                    max_amount: p.max_amount,
                    balance: p.balance,
                })
            }
            Self::Http(h) => rt.block_on(h.provision(replenish)),
        }
    }

    /// Starts a top-up: (intent id, payment URL).
    pub(super) fn start_top_up(
        &self,
        rt: &tokio::runtime::Runtime,
        amount: i64,
    ) -> Res<(String, String)> {
        match self {
            Self::Online(o) => {
                let i = o.block_on(o.start_top_up(amount))??;
                Ok((i.intent_id, i.payment_url))
            }
            Self::Http(h) => rt.block_on(h.start_top_up(amount)),
        }
    }

    /// Polls a top-up: (status, gateway reference).
    pub(super) fn complete_top_up(
        &self,
        rt: &tokio::runtime::Runtime,
        id: &str,
    ) -> Res<(String, String)> {
        match self {
            Self::Online(o) => {
                let i = o.block_on(o.complete_top_up(id.to_string()))??;
                Ok((
                    i.status.name().to_string(),
                    i.gateway_ref.unwrap_or_default(),
                ))
            }
            Self::Http(h) => rt.block_on(h.complete_top_up(id)),
        }
    }

    /// One sync; the verdicts are the ones this sync brought (the wallet's stored
    /// settlements for the entries it uploaded, or the answer's `taps` over raw HTTP).
    pub(super) fn sync(&mut self, rt: &tokio::runtime::Runtime, wallet: &Wallet) -> Res<Synced> {
        match self {
            Self::Online(o) => {
                let before = wallet.tap_settlements()?.len();
                let s = o.block_on(o.sync())??;
                let verdicts = wallet
                    .tap_settlements()?
                    .into_iter()
                    .skip(before)
                    .map(|t| {
                        tap_status(&t.status)
                            .map(|st| (t.log_seq, st))
                            .ok_or_else(|| format!("sync: unknown tap status `{}`", t.status))
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Synced {
                    uploaded: s.uploaded,
                    balance: s.balance,
                    fare_corrections: s.fare_corrections,
                    ledger_entries: s.ledger_entries,
                    credential_status: s.credential_status,
                    verdicts,
                    charged: history_verdicts(wallet)?,
                })
            }
            Self::Http(h) => rt.block_on(h.sync()),
        }
    }
}

/// What the rider's history says the backend charged for each tap or pass it judged, and why.
pub(super) fn history_verdicts(wallet: &Wallet) -> Res<Vec<Verdict>> {
    let mut out = Vec::new();
    let mut cursor = None;
    loop {
        let page = wallet.history(cursor, 500)?;
        for item in &page.items {
            if !matches!(item.kind, HistoryKind::Tap | HistoryKind::Pass) {
                continue;
            }
            // A pass that expired unscanned shows 0: nothing charged, its reservation released.
            let charged = match item.status {
                HistoryStatus::PassNotUsed => Some(item.charged.unwrap_or(0)),
                _ => item.charged,
            };
            if let (Some(counter), Some(charged)) = (item.counter, charged) {
                out.push(Verdict {
                    counter,
                    status: item.status.code().to_string(),
                    charged,
                    reason: item.reason.clone(),
                });
            }
        }
        match page.next_cursor {
            Some(c) => cursor = Some(c),
            None => break,
        }
    }
    out.sort_by_key(|v| v.counter);
    Ok(out)
}
