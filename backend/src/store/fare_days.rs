//! A fare day's rating state, kept with the day (schema version 13): where the last re-rating
//! of an account's fare day ended, so that a ride arriving after it is rated from there
//! rather than from every ride of the day. The database drops a day's state when the rides
//! it covers may have changed (triggers; see `MIGRATION_13`).

use super::db::{col, col_as, ColType, Row, ToValue, Value};
use super::{LastRide, Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, TapRef};
use std::collections::HashMap;

/// Where the rating of a fare day ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DayState {
    /// The last ride the state covers, in rating order (time, then pseudonym and counter):
    /// every ride of the day up to it was rated into it.
    pub through: RideKey,
    /// What the day's charged rides up to `through` cost.
    pub spent: i64,
    /// The day's last transfer origin up to `through`, if it is in the day (an origin of an
    /// earlier day is read afresh: that day may have changed since).
    pub last_ride: Option<LastRide>,
    /// The tariff it was rated under (`Engine::tariff_tag`): another tariff rates from all
    /// the day's rides.
    pub tariff: i64,
}

/// A ride's place in its fare day's rating order (time, then tap: as `day_rides` orders).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct RideKey {
    pub time: i64,
    pub tap: TapRef,
}

fn day_state(r: &Row<'_>) -> Result<((AccountId, i64), DayState), StoreError> {
    let time: Option<i64> = r.get("last_time")?;
    let line: Option<u32> = r.get("last_line")?;
    Ok((
        (r.get("account_id")?, r.get("fare_day")?),
        DayState {
            through: RideKey {
                time: r.get("through")?,
                tap: TapRef {
                    pseudonym: r.get("through_pseudonym")?,
                    counter: r.get("through_counter")?,
                },
            },
            spent: r.get("spent")?,
            last_ride: time
                .zip(line)
                .map(|(time, line_id)| LastRide { time, line_id }),
            tariff: r.get("tariff")?,
        },
    ))
}

impl Reader<'_> {
    /// The kept state of each of `days` that has one, in one statement (a few on SQLite,
    /// [`super::db::Conn::query_rows`]).
    pub fn day_states(
        &self,
        days: &[(AccountId, i64)],
    ) -> Result<HashMap<(AccountId, i64), DayState>, StoreError> {
        let keys: Vec<[Value<'_>; 2]> = days
            .iter()
            .map(|(a, d)| [a.to_value(), d.to_value()])
            .collect();
        let rows = self.conn.query_rows(
            &[ColType::Int, ColType::Int],
            &keys,
            &|from| {
                format!(
                    "SELECT f.account_id AS account_id, f.fare_day AS fare_day,
                            f.through AS through, f.through_pseudonym AS through_pseudonym,
                            f.through_counter AS through_counter, f.spent AS spent,
                            f.last_time AS last_time, f.last_line AS last_line,
                            f.tariff AS tariff
                     FROM {from} JOIN fare_days f ON f.account_id = k.c0 AND f.fare_day = k.c1"
                )
            },
            day_state,
        )?;
        Ok(rows.into_iter().collect())
    }
}

impl Writer<'_> {
    /// Keeps (inserts or replaces) the state of each of `days`, in one statement (a few on
    /// SQLite). A day listed twice is refused before any SQL runs: PostgreSQL would refuse a
    /// second update of one row in a statement, SQLite keep the last.
    pub fn put_day_states(&self, days: &[((AccountId, i64), DayState)]) -> Result<(), StoreError> {
        use ColType::{Blob, Int};
        let unique: std::collections::HashSet<&(AccountId, i64)> =
            days.iter().map(|(d, _)| d).collect();
        if unique.len() != days.len() {
            return Err(StoreError::Corrupt(
                "a fare day's state kept twice in one write",
            ));
        }
        let rows: Vec<[Value<'_>; 9]> = days
            .iter()
            .map(|((a, d), s)| {
                // no origin: -1, never null, so one statement text has one type list
                let (time, line) = s
                    .last_ride
                    .map_or((-1, -1), |r| (r.time, i64::from(r.line_id)));
                [
                    a.to_value(),
                    d.to_value(),
                    s.through.time.to_value(),
                    s.through.tap.pseudonym.to_value(),
                    s.through.tap.counter.to_value(),
                    s.spent.to_value(),
                    Value::Int(time),
                    Value::Int(line),
                    s.tariff.to_value(),
                ]
            })
            .collect();
        let cols = [
            col(Int),
            col(Int),
            col(Int),
            col(Blob),
            col(Int),
            col(Int),
            col_as(Int, "NULLIF(?, -1)"),
            col_as(Int, "NULLIF(?, -1)"),
            col(Int),
        ];
        self.tx.insert_rows(
            (
                "INSERT INTO fare_days (account_id, fare_day, through, through_pseudonym,
                                        through_counter, spent, last_time, last_line, tariff)",
                "ON CONFLICT (account_id, fare_day) DO UPDATE SET
                     through = excluded.through,
                     through_pseudonym = excluded.through_pseudonym,
                     through_counter = excluded.through_counter, spent = excluded.spent,
                     last_time = excluded.last_time, last_line = excluded.last_line,
                     tariff = excluded.tariff",
            ),
            &cols,
            &rows,
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{CertHash, PseudonymBytes};
    use crate::store::tests::{raw, sqlite_and_postgres};
    use crate::store::{NewCertificate, NewTap, Store, TapSource, TapState};

    /// The kept state any test step starts from: rides of day 7 up to time 100.
    const KEPT: DayState = DayState {
        through: RideKey {
            time: 100,
            tap: TapRef {
                pseudonym: PseudonymBytes([1; 16]),
                counter: 5,
            },
        },
        spent: 20_000,
        last_ride: Some(LastRide {
            time: 90,
            line_id: 1,
        }),
        tariff: 5,
    };

    /// An account and a certificate to tap under; returns the account.
    fn rider(store: &Store, i: u8) -> AccountId {
        store
            .write(|tx| -> Result<_, StoreError> {
                let a = tx.create_account(&format!("+98912000000{i}"), 1)?;
                let d = tx.insert_device(a, &[i], &PseudonymBytes([i; 16]), 1)?;
                tx.insert_certificate(&NewCertificate {
                    hash: CertHash([i; 32]),
                    pseudonym: PseudonymBytes([i; 16]),
                    device_id: d,
                    encoded: b"cert",
                    counter_first: 0,
                    counter_last: 100,
                    valid_until: 1_000,
                    issued_at: 1,
                    tap_key: &[],
                })?;
                Ok(a)
            })
            .unwrap()
    }

    /// Stores tap `counter` of rider `i` (account `a`) at `time` on day 7, as settlement does.
    fn tap(store: &Store, (i, a): (u8, AccountId), counter: u32, time: i64) {
        let device = store
            .read(|tx| tx.device_by_pseudonym(&PseudonymBytes([i; 16])))
            .unwrap()
            .unwrap()
            .id;
        store
            .write(|tx| {
                tx.insert_tap(&NewTap {
                    tap_id: [counter as u8; 32],
                    pseudonym: PseudonymBytes([i; 16]),
                    counter,
                    account_id: a,
                    device_id: device,
                    cert_hash: CertHash([i; 32]),
                    fare_class: mancard_protocol::FareClass::Adult,
                    time,
                    fare_day: 7,
                    line_id: Some(1),
                    authorized: 20_000,
                    proof: b"proof",
                    source: TapSource::Validator,
                    validator_id: None,
                    challenge_id: None,
                    state: TapState::Charged,
                    state_reason: None,
                    reported_at: time,
                })
            })
            .unwrap();
    }

    fn kept(store: &Store, a: AccountId) -> Option<DayState> {
        store
            .read(|tx| tx.day_states(&[(a, 7)]))
            .unwrap()
            .remove(&(a, 7))
    }

    fn keep(store: &Store, a: AccountId) {
        store
            .write(|tx| tx.put_day_states(&[((a, 7), KEPT)]))
            .unwrap();
        assert_eq!(kept(store, a), Some(KEPT));
    }

    /// A day listed twice in one write is refused with an error before any SQL runs, on both
    /// databases (PostgreSQL would refuse the statement, SQLite keep the last state), and the
    /// kept state stays as it was.
    #[test]
    fn a_day_kept_twice_in_one_write_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        for store in sqlite_and_postgres(dir.path()) {
            let a = rider(&store, 1);
            keep(&store, a);
            let other = DayState { spent: 1, ..KEPT };
            let e = store
                .write(|tx| tx.put_day_states(&[((a, 7), other), ((a, 7), other)]))
                .unwrap_err();
            assert!(matches!(e, StoreError::Corrupt(_)), "{e}");
            assert_eq!(kept(&store, a), Some(KEPT), "{:?}", store.dialect());
        }
    }

    /// A ride as an older build (or a hand fix) inserts it: `stored_by` unset, a copy of
    /// ride 1 under another counter and time.
    fn older_build_ride(store: &Store, counter: u32, time: i64) {
        raw(
            store,
            &format!(
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source, reported_at)
                 SELECT pseudonym, {counter}, account_id, device_id, cert_hash, fare_class,
                        {time}, fare_day, line_id, authorized, proof, source, reported_at
                   FROM taps WHERE counter = 1"
            ),
        );
    }

    /// Whoever writes the rides a kept state covers, the database drops the state: a ride
    /// added before `through` in rating order (time, pseudonym, counter) by a writer that does
    /// not rate it (an older build), a rated column changed, a ride deleted (or, on
    /// PostgreSQL, the table truncated). A ride added after it, a ride this build adds (it
    /// rates its own: `Settling::finish`), or a column rating does not read leaves it. Fails
    /// without the triggers: the next ride would be rated from a state that misses a ride or
    /// a change.
    #[test]
    fn a_fare_day_s_kept_state_goes_when_a_ride_it_covers_changes() {
        let dir = tempfile::tempdir().unwrap();
        let stores = sqlite_and_postgres(dir.path());
        for store in &stores {
            let d = store.dialect();
            let (a, b) = (rider(store, 1), rider(store, 2));
            keep(store, a);
            tap(store, (1, a), 1, 150);
            assert_eq!(kept(store, a), Some(KEPT), "{d:?}: a ride after it");
            tap(store, (1, a), 2, 40);
            assert_eq!(kept(store, a), Some(KEPT), "{d:?}: a ride this build rates");
            older_build_ride(store, 7, 100);
            assert_eq!(kept(store, a), Some(KEPT), "{d:?}: at its time, after it");
            older_build_ride(store, 4, 100);
            assert_eq!(kept(store, a), None, "{d:?}: at its time, before it");
            keep(store, a);
            older_build_ride(store, 3, 40);
            assert_eq!(kept(store, a), None, "{d:?}: a ride within it");
            keep(store, a);
            raw(store, "UPDATE taps SET validator_id = 3, reported_at = 9");
            assert_eq!(kept(store, a), Some(KEPT), "{d:?}: columns rating ignores");
            for (what, set) in [
                ("state", "state = 'not_charged'"),
                ("line", "line_id = 2"),
                ("amount", "authorized = 1"),
                ("class", "fare_class = 1"),
                ("time", "time = time + 1"),
                ("day", "fare_day = 8"),
            ] {
                keep(store, a);
                raw(store, &format!("UPDATE taps SET {set} WHERE counter = 3"));
                assert_eq!(kept(store, a), None, "{d:?}: a ride's {what} changed");
            }
            raw(store, "UPDATE taps SET fare_day = 7 WHERE counter = 3");
            keep(store, a);
            keep(store, b);
            raw(
                store,
                &format!("UPDATE taps SET account_id = {} WHERE counter = 3", b.0),
            );
            assert_eq!(kept(store, a), None, "{d:?}: a ride moved away");
            assert_eq!(kept(store, b), None, "{d:?}: a ride moved in");
            keep(store, a);
            raw(store, "DELETE FROM taps WHERE counter = 1");
            assert_eq!(kept(store, a), None, "{d:?}: a ride deleted");
            if d == crate::store::db::Dialect::Postgres {
                keep(store, a);
                raw(store, "TRUNCATE taps");
                assert_eq!(kept(store, a), None, "{d:?}: the rides truncated");
            }
        }
    }
}
