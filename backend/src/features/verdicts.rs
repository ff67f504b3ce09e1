//! What a settlement run finishes after its taps are stored: each affected fare day is re-rated
//! (only charged rides cost anything: a pass no validator scanned and a torn tap whose gate
//! stayed closed cost 0 and are no transfer origin), and every tap whose status or charge
//! changed gets a verdict in the feed the rider's wallet reads. Also the two kinds of
//! validator evidence that change a tap already stored: a torn challenge (the gate did not
//! open) and a second validator's report of one pass (an abuse event).

use crate::engine::Engine;
use crate::error::{Result, StoreError};
use crate::ids::{AccountId, TapRef};
use crate::settle::rate;
use crate::store::{
    DayRides, DayState, FareEntry, LastRide, NewAbuse, NewVerdict, OriginWindow, Revocation, Ride,
    RideKey, TapRow, TapState, VerdictBasis, Writer,
};
use mancard_api::{FraudKind, LedgerKind, TapResult, VerdictStatus};
use mancard_protocol::{FareKind, RideState, TornRecord};
use std::collections::{BTreeMap, HashMap};

/// What one settlement run has to finish after its taps are stored.
#[derive(Default)]
pub(crate) struct Settling {
    pub(crate) results: Vec<TapResult>,
    /// (account, fare day) → its earliest changed ride, in rating order.
    pub(crate) groups: BTreeMap<(AccountId, i64), RideKey>,
    /// (account, fare day) → the time of its latest changed ride (a ride late in the evening
    /// may be the next fare day's transfer origin).
    pub(crate) latest: BTreeMap<(AccountId, i64), i64>,
    /// Results whose fare is filled after rating: result index and tap.
    pub(crate) pending: Vec<(usize, TapRef)>,
    /// Taps whose verdict may have changed, with the reason to show if it is not the tap's
    /// own.
    pub(crate) changed: BTreeMap<TapRef, Option<&'static str>>,
    /// Why each re-rated ride costs what it does.
    pub(crate) kinds: HashMap<TapRef, FareKind>,
}

impl Settling {
    /// Marks a ride (`time`, `tap`) of an account's fare day as changed (added, or a column
    /// rating reads changed): the day is re-rated from it. `charged`: the ride is or was
    /// charged, so it may be (or have been) a transfer origin of the next fare day (a pass
    /// never scanned, or a tap whose gate stayed closed, never is).
    pub(crate) fn touch(&mut self, ride: (AccountId, i64, i64, TapRef), charged: bool) {
        let (account, fare_day, time, tap) = ride;
        let key = RideKey { time, tap };
        let e = self.groups.entry((account, fare_day)).or_insert(key);
        *e = (*e).min(key);
        if charged {
            let l = self.latest.entry((account, fare_day)).or_insert(time);
            *l = (*l).max(time);
        }
    }

    /// The next fare day of each touched day whose latest changed ride is within the transfer
    /// window of that day's start: the ride may be (or have been) the next day's transfer
    /// origin, so that day is re-rated from its first ride. Without this a late report of
    /// the evening before left the next morning's first ride at the fare it was charged, and
    /// the charge depended on the order the buses came back online.
    ///
    /// A window longer than a day reaches the days after the next one too (through an empty
    /// day), up to [`MAX_ORIGIN_DAYS`] of them.
    fn touch_next_days(&mut self, tariff: &mancard_protocol::Tariff) {
        let window = i64::from(tariff.transfer_window_secs);
        let first = RideKey {
            time: i64::MIN,
            tap: TapRef {
                pseudonym: crate::ids::PseudonymBytes([0; 16]),
                counter: 0,
            },
        };
        for ((account, day), latest) in std::mem::take(&mut self.latest) {
            let last = tariff
                .fare_day(latest.saturating_add(window))
                .min(day.saturating_add(MAX_ORIGIN_DAYS));
            let mut next = day.saturating_add(1);
            while next <= last {
                self.groups.insert((account, next), first);
                next = next.saturating_add(1);
            }
        }
    }

    /// Re-rates every touched fare day, emits the verdicts and fills in the results' fares.
    /// Each step reads and writes all of its rows in a few statements.
    pub(crate) fn finish(
        mut self,
        engine: &Engine,
        tx: &Writer<'_>,
        now: i64,
    ) -> Result<Vec<TapResult>> {
        tx.flush()?;
        let (fares, entries) = self.rate_days(engine, tx, now)?;
        if tx.insert_fare_entries(&entries)? != entries.len() {
            // Another writer re-rated a ride from the same state first: a retry sees its
            // entry (503 + Retry-After, never a 500).
            return Err(StoreError::Conflict("a ride was re-rated by another writer").into());
        }
        let pending = std::mem::take(&mut self.pending);
        let unrated: Vec<TapRef> = pending
            .iter()
            .map(|(_, tap)| *tap)
            .filter(|tap| !fares.contains_key(tap))
            .collect();
        let charged = tx.tap_charges(&unrated)?;
        for (i, tap) in pending {
            let fare = fares.get(&tap).or_else(|| charged.get(&tap));
            if let Some(r) = self.results.get_mut(i) {
                r.fare = Some(fare.copied().unwrap_or(0));
            }
        }
        let changed = std::mem::take(&mut self.changed);
        let taps: Vec<TapRef> = changed.keys().copied().collect();
        let bases = tx.verdict_bases(&taps)?;
        let verdicts: Vec<Verdict> = changed
            .into_iter()
            .filter_map(|(tap, why)| {
                next_verdict(bases.get(&tap)?, tap, why, self.kinds.get(&tap).copied())
            })
            .collect();
        let rows: Vec<NewVerdict<'_>> = verdicts
            .iter()
            .map(|(tap, row, status, charged, reason)| NewVerdict {
                account_id: row.account_id,
                device_id: row.device_id,
                pseudonym: tap.pseudonym,
                counter: tap.counter,
                status: *status,
                charged: *charged,
                reason: reason.as_deref(),
                time: row.time,
                line_id: row.line_id,
                created_at: now,
            })
            .collect();
        tx.insert_verdicts(&rows)?;
        Ok(self.results)
    }

    /// Re-rates every touched fare day, from its kept state where that stands for the rides
    /// before the first one changed, and keeps each day's new state: the fares of the rides
    /// rated and the ledger entries to append.
    fn rate_days(
        &mut self,
        engine: &Engine,
        tx: &Writer<'_>,
        now: i64,
    ) -> Result<(HashMap<TapRef, i64>, Vec<FareEntry>)> {
        self.touch_next_days(&engine.config().tariff);
        let groups = std::mem::take(&mut self.groups);
        let days: Vec<(AccountId, i64)> = groups.keys().copied().collect();
        // A day's kept state stands for its rides up to `through` when it was rated under
        // this tariff and every ride this write changed comes after it. The database drops it
        // when another writer changes one of those rides or adds one among them.
        let tariff = engine.tariff_tag();
        let kept = tx.day_states(&days)?;
        let usable = |day: &(AccountId, i64), from: &RideKey| {
            kept.get(day)
                .filter(|k| k.tariff == tariff && k.through < *from)
                .copied()
        };
        let reads: Vec<DayRides> = groups
            .iter()
            .map(|(day, from)| DayRides {
                day: *day,
                from: from.time,
                after: usable(day, from).map(|k| k.through),
            })
            .collect();
        let mut rides = tx.day_rides(&reads)?;
        let unknown_origin: Vec<(AccountId, i64)> = groups
            .iter()
            .filter(|(day, from)| usable(day, from).and_then(|k| k.last_ride).is_none())
            .map(|(day, _)| *day)
            .collect();
        let last = transfer_origins(tx, &engine.config().tariff, &unknown_origin)?;
        let mut fares: HashMap<TapRef, i64> = HashMap::new();
        let mut entries = Vec::new();
        let mut states = Vec::with_capacity(groups.len());
        for (day, from) in groups {
            let day_rides = rides.remove(&day).unwrap_or_default();
            let k = usable(&day, &from);
            let start = Start {
                spent: k.map_or(0, |k| k.spent),
                last_ride: k
                    .and_then(|k| k.last_ride)
                    .or_else(|| last.get(&day).copied()),
                through: k.map(|k| k.through),
                tariff,
            };
            let rated = engine.rerate(self, (day, from.time), day_rides, start, now);
            fares.extend(rated.fares);
            entries.extend(rated.entries);
            states.extend(rated.state.map(|st| (day, st)));
        }
        tx.put_day_states(&states)?;
        Ok((fares, entries))
    }
}

/// The transfer origin of each fare day of `days` from the days before it: the last charged
/// ride, in rating order, with a line the tariff knows, among those within the transfer window
/// of the day's start (rating a day in order skips the same rides; an earlier one gives no
/// transfer).
fn transfer_origins(
    tx: &Writer<'_>,
    tariff: &mancard_protocol::Tariff,
    days: &[(AccountId, i64)],
) -> Result<HashMap<(AccountId, i64), LastRide>> {
    let window = i64::from(tariff.transfer_window_secs);
    let windows: Vec<OriginWindow> = days
        .iter()
        .map(|&(account, day)| {
            let since = tariff.fare_day_start(day).saturating_sub(window);
            OriginWindow {
                account,
                day,
                since_day: tariff.fare_day(since),
                since,
            }
        })
        .collect();
    Ok(tx
        .rides_before(&windows)?
        .into_iter()
        .filter_map(|(day, rides)| {
            let (key, line_id) = rides
                .into_iter()
                .filter(|(_, line)| tariff.line(*line).is_some())
                .max_by_key(|(key, _)| *key)?;
            Some((
                day,
                LastRide {
                    time: key.time,
                    line_id,
                },
            ))
        })
        .collect())
}

/// The verdict status of a stored tap.
fn verdict_status(row: &TapRow) -> VerdictStatus {
    match row.state {
        TapState::Pending => VerdictStatus::Pending,
        TapState::NotCharged => VerdictStatus::NotCharged,
        TapState::Charged => {
            if row
                .state_reason
                .as_deref()
                .and_then(FraudKind::parse)
                .is_some()
            {
                VerdictStatus::Fraud
            } else {
                VerdictStatus::Charged
            }
        }
    }
}

/// A verdict to append: the tap, its stored row, status, charge and reason.
type Verdict = (TapRef, TapRow, VerdictStatus, i64, Option<String>);

/// A tap's next verdict from its basis (stored row, charge, newest verdict): status, charge
/// and reason; `None` if it says what the newest one says.
fn next_verdict(
    (row, charged, last): &VerdictBasis,
    tap: TapRef,
    why: Option<&'static str>,
    kind: Option<FareKind>,
) -> Option<Verdict> {
    let status = verdict_status(row);
    let rating = match kind {
        Some(FareKind::Transfer) => Some("transfer"),
        Some(FareKind::Capped) => Some("daily_cap"),
        _ => None,
    };
    let reason = why
        .map(str::to_string)
        .or(row.state_reason.clone())
        .or(rating.map(str::to_string));
    let same = last
        .as_ref()
        .is_some_and(|(s, c, r)| s == status.as_str() && c == charged && *r == reason);
    if same {
        return None;
    }
    Some((tap, row.clone(), status, *charged, reason))
}

/// The most fare days after a changed ride that are re-rated for their transfer origin (a
/// transfer window of more than a day reaches past the next one; no transit tariff's window
/// is a month).
const MAX_ORIGIN_DAYS: i64 = 31;

/// How rides are rated (`rate`, `Engine::rerate`): bumped by a change to either, so a fare day's
/// state kept by an older build is not used.
const RATING_VERSION: u32 = 1;

/// What re-rating one fare day gives: the fares of its rides from the earliest that changed,
/// the ledger entries that bring their charges to those fares, and the state to keep with
/// the day (none when it read no ride).
pub(crate) struct Rated {
    pub(crate) fares: HashMap<TapRef, i64>,
    pub(crate) entries: Vec<FareEntry>,
    pub(crate) state: Option<DayState>,
}

/// Where re-rating a fare day starts: what the day's rides before the first one read cost,
/// the transfer origin then, and the last of those rides (none: the day's rides are all
/// read).
pub(crate) struct Start {
    pub(crate) spent: i64,
    pub(crate) last_ride: Option<LastRide>,
    pub(crate) through: Option<RideKey>,
    /// [`Engine::tariff_tag`], computed once per write.
    pub(crate) tariff: i64,
}

impl Engine {
    /// Recomputes the fares of an account's fare day (its `rides`, in time order, from the
    /// state `start`) and makes the ledger entries that bring each ride's charge to its fare
    /// (a ride that is not charged is brought to 0). Rides before `from_time` (the earliest
    /// ride that changed) only advance the rider's state: their fares cannot change. Gives
    /// the fares of the rides from `from_time` on, and the state the day ends in.
    pub(crate) fn rerate(
        &self,
        s: &mut Settling,
        ((account_id, fare_day), from_time): ((AccountId, i64), i64),
        rides: Vec<Ride>,
        start: Start,
        now: i64,
    ) -> Rated {
        let tariff = &self.config().tariff;
        let mut state = RideState {
            fare_day,
            spent_today: start.spent,
            last_ride: start.last_ride.map(|r| (r.time, r.line_id)),
        };
        let through = rides
            .last()
            .map(|r| RideKey {
                time: r.time,
                tap: TapRef {
                    pseudonym: r.pseudonym,
                    counter: r.counter,
                },
            })
            .or(start.through);
        let mut fares = HashMap::with_capacity(rides.len());
        let mut entries = Vec::new();
        let read_any = !rides.is_empty();
        for r in rides {
            let (amount, kind) = if r.state == TapState::Charged {
                let (amount, kind, next) = rate(
                    tariff,
                    r.fare_class,
                    r.line_id,
                    r.time,
                    r.authorized,
                    &state,
                );
                state = next;
                (amount, Some(kind))
            } else {
                (0, None)
            };
            if r.time < from_time {
                continue;
            }
            let tap = TapRef {
                pseudonym: r.pseudonym,
                counter: r.counter,
            };
            fares.insert(tap, amount);
            if let Some(k) = kind {
                s.kinds.insert(tap, k);
            }
            if amount == r.charged && (r.last_entry > 0 || kind.is_none()) {
                continue;
            }
            s.changed.entry(tap).or_insert(None);
            let p = r.pseudonym.to_hex();
            let (kind, key) = if r.last_entry == 0 {
                (LedgerKind::Fare, format!("fare:{p}:{}", r.counter))
            } else {
                (
                    LedgerKind::FareAdjustment,
                    format!("fare-adj:{p}:{}:after:{}", r.counter, r.last_entry),
                )
            };
            entries.push(FareEntry {
                account_id,
                kind,
                amount: r.charged.saturating_sub(amount),
                idempotency_key: key,
                tap,
                created_at: now,
            });
        }
        Rated {
            fares,
            entries,
            // (a state that ended in another fare day, as a tariff whose day starts at
            // another hour leaves, is not kept: it would be resumed as this day's)
            state: through
                .filter(|_| read_any && state.fare_day == fare_day)
                .map(|through| self.day_state(through, &state, start.tariff)),
        }
    }

    /// The state to keep with a fare day whose rating ended at `through` in `state`, under the
    /// tariff tagged `tariff`. An origin of an earlier day is not kept: that day may change
    /// without this one.
    fn day_state(&self, through: RideKey, state: &RideState, tariff: i64) -> DayState {
        DayState {
            through,
            spent: state.spent_today,
            last_ride: state
                .last_ride
                .filter(|(time, _)| self.config().tariff.fare_day(*time) == state.fare_day)
                .map(|(time, line_id)| LastRide { time, line_id }),
            tariff,
        }
    }

    /// A tag of the tariff this instance rates under and of the way it rates (kept with each
    /// fare day's state): a build that rates otherwise bumps [`RATING_VERSION`].
    pub(crate) fn tariff_tag(&self) -> i64 {
        let h = mancard_protocol::sha256(&[
            &RATING_VERSION.to_le_bytes(),
            &self.config().tariff.encode(),
        ]);
        let mut b = [0u8; 8];
        b.copy_from_slice(h.get(..8).unwrap_or(&[0; 8]));
        i64::from_le_bytes(b)
    }

    /// Records a validator's torn challenges (each already checked to be its own, signed by
    /// its key): evidence that the gate did not open. A tap only the wallet reported for such a
    /// challenge is no longer charged; a validator's record of the same challenge (the phone's
    /// answer reached the gate) always wins. Returns how many were new.
    pub(crate) fn record_torn(
        &self,
        tx: &Writer<'_>,
        s: &mut Settling,
        vid: u32,
        torn: &[TornRecord],
        now: i64,
    ) -> Result<usize> {
        let mut recorded = 0;
        for t in torn {
            let id = t.challenge.id();
            if !tx.insert_torn(&id, vid, t.time, now)? {
                continue;
            }
            recorded += 1;
            for (p, counter) in tx.taps_by_challenge(&id)? {
                let Some(row) = tx.tap(&p, counter)? else {
                    continue;
                };
                if row.validator_id.is_none()
                    && row.source == crate::store::TapSource::Wallet
                    && row.state == TapState::Charged
                {
                    // (a fraud tap keeps its fraud reason: only the charge goes)
                    let why = fraud_reason(&row).unwrap_or(TORN_REASON);
                    tx.set_tap_state(&p, counter, TapState::NotCharged, Some(why))?;
                    let tap = TapRef {
                        pseudonym: p,
                        counter,
                    };
                    s.touch((row.account_id, row.fare_day, row.time, tap), true);
                    s.changed
                        .entry(TapRef {
                            pseudonym: p,
                            counter,
                        })
                        .or_insert(None);
                }
            }
        }
        Ok(recorded)
    }

    /// A second validator reported a pass another one reported first: an abuse event; more
    /// than the policy's number in one fare day revokes the rider's device.
    pub(crate) fn shared_pass(
        &self,
        tx: &Writer<'_>,
        existing: &TapRow,
        tap: TapRef,
        (validator_id, first_validator_id): (u32, u32),
        now: i64,
    ) -> Result<()> {
        let new = tx.insert_abuse(&NewAbuse {
            account_id: existing.account_id,
            device_id: existing.device_id,
            pseudonym: tap.pseudonym,
            counter: tap.counter,
            kind: SHARED_PASS,
            validator_id,
            first_validator_id,
            fare_day: existing.fare_day,
            time: existing.time,
            created_at: now,
        })?;
        if !new {
            return Ok(());
        }
        if existing.state_reason.is_none() {
            tx.set_tap_state(
                &tap.pseudonym,
                tap.counter,
                existing.state,
                Some(SHARED_PASS),
            )?;
        }
        let events = tx.abuse_count(existing.account_id, existing.fare_day)?;
        let (account, device) = (existing.account_id.0, existing.device_id.0);
        tx.after_commit(move || {
            tracing::warn!(
                account_id = account,
                validator_id,
                first_validator_id,
                events,
                "one pass reported by two validators"
            );
        });
        if events > self.config().policy.shared_pass_limit
            && tx.revocation(existing.device_id)?.is_none()
        {
            tx.revoke(existing.device_id, Revocation::SharedPass, now)?;
            tx.after_commit(move || {
                tracing::warn!(
                    account_id = account,
                    device_id = device,
                    "shared passes over the daily limit: device deny-listed"
                );
            });
        }
        Ok(())
    }
}

/// A stored tap's reason if it is a fraud kind (kept when its charge changes; the other
/// reasons say why it is or is not charged, and go with the charge).
pub(crate) fn fraud_reason(row: &TapRow) -> Option<&str> {
    row.state_reason
        .as_deref()
        .filter(|r| FraudKind::parse(r).is_some())
}

/// The reason of a tap whose validator reported its challenge torn.
pub(crate) const TORN_REASON: &str = "torn_gate_closed";
/// The reason of a pass only the wallet reported.
pub(crate) const PASS_NOT_SCANNED: &str = "pass_not_scanned";
/// The reason of a tap only the wallet reported whose challenge the validator recorded as
/// answered by another card (the gate opened for that one).
pub(crate) const OTHER_CARD: &str = "gate_opened_for_another_card";
/// The abuse event of one pass at several validators.
pub(crate) const SHARED_PASS: &str = "shared_pass";
