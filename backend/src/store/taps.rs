//! Settled taps: one row per (pseudonym, counter) (a pseudonym names one certificate), each
//! with its identity (the hash of what the phone signed), and the rides of a fare day for
//! rating.

use super::db::{
    bad_value, chunks, named_params, ColType, Dialect, Row, RowParams, ToValue, Value,
};
use super::ids::fare_class;
use super::{Reader, RideKey, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes, TapRef};
use mancard_protocol::FareClass;
use std::collections::HashMap;

/// A settled tap.
#[derive(Debug, Clone)]
pub struct TapRow {
    /// `TapProof::id` (none for a tap settled before protocol v2).
    pub tap_id: Option<[u8; 32]>,
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub time: i64,
    pub fare_day: i64,
    pub line_id: Option<u32>,
    pub proof: Vec<u8>,
    pub state: TapState,
    /// Why it is in that state (`pass_not_scanned`, `torn_gate_closed`, `shared_pass`, the
    /// fraud kind of a fraud tap).
    pub state_reason: Option<String>,
    /// The first validator that reported it (none: only the wallet has, or a validator before
    /// settlement v2).
    pub validator_id: Option<u32>,
    pub source: TapSource,
    pub authorized: i64,
}

/// Whether a stored tap is charged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapState {
    /// Charged (rated with the account's other rides of its fare day).
    Charged,
    /// A pass only the wallet reported: not charged unless a validator reports it.
    Pending,
    /// A tap whose validator reported its challenge torn (the gate stayed closed).
    NotCharged,
}

impl TapState {
    /// The stored text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Charged => "charged",
            Self::Pending => "pending",
            Self::NotCharged => "not_charged",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Self::Charged, Self::Pending, Self::NotCharged]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

fn tap_state(r: &Row<'_>) -> Result<TapState, StoreError> {
    let text: String = r.get("state")?;
    TapState::parse(&text).ok_or_else(|| bad_value("state", "unknown tap state"))
}

fn tap_source(r: &Row<'_>) -> Result<TapSource, StoreError> {
    let text: String = r.get("source")?;
    Ok(if text == TapSource::Validator.as_str() {
        TapSource::Validator
    } else {
        TapSource::Wallet
    })
}

/// A new tap to store.
#[derive(Debug, Clone)]
pub struct NewTap<'a> {
    /// `TapProof::id`: the tap's identity.
    pub tap_id: [u8; 32],
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
    pub account_id: AccountId,
    pub device_id: DeviceId,
    pub cert_hash: CertHash,
    pub fare_class: FareClass,
    pub time: i64,
    pub fare_day: i64,
    pub line_id: Option<u32>,
    pub authorized: i64,
    pub proof: &'a [u8],
    /// Who reported it first.
    pub source: TapSource,
    /// The validator that reported it (a validator report).
    pub validator_id: Option<u32>,
    /// The id of its challenge (NFC).
    pub challenge_id: Option<[u8; 32]>,
    pub state: TapState,
    pub state_reason: Option<&'a str>,
    pub reported_at: i64,
}

/// Who reported a tap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TapSource {
    /// The rider's wallet, in a sync.
    Wallet,
    /// A validator, in a signed batch.
    Validator,
}

impl TapSource {
    /// The stored (and shown) text.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Wallet => "wallet",
            Self::Validator => "validator",
        }
    }
}

/// A ride of one fare day with what has been charged for it so far.
#[derive(Debug, Clone)]
pub struct Ride {
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
    pub time: i64,
    pub line_id: Option<u32>,
    pub fare_class: FareClass,
    pub authorized: i64,
    /// Only a charged ride is rated; the others cost 0 and are no transfer origin.
    pub state: TapState,
    /// Sum of the (negative) ledger amounts of this ride, negated.
    pub charged: i64,
    /// The id of this ride's newest ledger entry (0: none). A fare adjustment's key names
    /// the entry it follows, never a count of entries: two writers that both read the same
    /// newest entry make the same key, and the second one's insert finds it taken.
    pub last_entry: i64,
}

/// Which rides of a fare day [`Reader::day_rides`] reads.
#[derive(Debug, Clone, Copy)]
pub struct DayRides {
    /// (account, fare day).
    pub day: (AccountId, i64),
    /// The earliest ride time whose charge is read.
    pub from: i64,
    /// Only rides after this one in rating order are read (none: all of them).
    pub after: Option<super::RideKey>,
}

impl DayRides {
    /// The day's key as bound on both databases: `from`, the account, the fare day, and
    /// `after` as (time, pseudonym, counter) for a row comparison; for all rides, a key
    /// before any (no ride has an empty pseudonym).
    fn key(&self) -> [Value<'_>; 6] {
        let (time, pseudonym, counter) = self.after.as_ref().map_or((i64::MIN, &[][..], 0), |k| {
            (k.time, &k.tap.pseudonym.0[..], i64::from(k.tap.counter))
        });
        [
            self.from.to_value(),
            self.day.0.to_value(),
            self.day.1.to_value(),
            Value::Int(time),
            Value::Blob(pseudonym),
            Value::Int(counter),
        ]
    }
}

/// The columns [`day_ride`] reads, of the `taps` table named `t`: what each ride has been
/// charged and its newest ledger entry are read only where `t.time >= $from`.
macro_rules! ride_columns {
    ($from:literal) => {
        concat!(
            "t.account_id, t.fare_day, t.pseudonym, t.counter, t.time,
                t.line_id, t.fare_class, t.authorized, t.state,
                CASE WHEN t.time >= ",
            $from,
            " THEN
                    CAST(COALESCE((SELECT -SUM(l.amount) FROM ledger l
                              WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter), 0)
                         AS BIGINT)
                ELSE 0 END AS charged,
                CASE WHEN t.time >= ",
            $from,
            " THEN
                    COALESCE((SELECT MAX(l.id) FROM ledger l
                              WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter), 0)
                ELSE 0 END AS last_entry"
        )
    };
}

/// The last ride with a known line before a fare day (the transfer origin).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LastRide {
    pub time: i64,
    pub line_id: u32,
}

/// The columns [`tap_row`] reads, of the `taps` table named `$t` in the query.
macro_rules! tap_columns {
    ($t:literal) => {
        concat!(
            $t,
            ".tap_id AS tap_id, ",
            $t,
            ".account_id AS account_id, ",
            $t,
            ".device_id AS device_id, ",
            $t,
            ".time AS time, ",
            $t,
            ".fare_day AS fare_day, ",
            $t,
            ".line_id AS line_id, ",
            $t,
            ".proof AS proof, ",
            $t,
            ".state AS state, ",
            $t,
            ".state_reason AS state_reason, ",
            $t,
            ".validator_id AS validator_id, ",
            $t,
            ".source AS source, ",
            $t,
            ".authorized AS authorized"
        )
    };
}
pub(super) use tap_columns;

/// `(pseudonym = :a AND counter = :b) OR …` over `taps`, with the two columns named as
/// given (e.g. `("t.pseudonym", "t.counter")`).
fn taps_where<'v>(params: &mut RowParams<'v>, columns: (&str, &str), taps: &'v [TapRef]) -> String {
    params.pairs_where(
        columns,
        taps.iter()
            .map(|t| (t.pseudonym.to_value(), t.counter.to_value())),
    )
}

/// A stored tap from a row holding [`tap_columns`].
pub(super) fn tap_row(r: &Row<'_>) -> Result<TapRow, StoreError> {
    Ok(TapRow {
        tap_id: r.get("tap_id")?,
        account_id: r.get("account_id")?,
        device_id: r.get("device_id")?,
        time: r.get("time")?,
        fare_day: r.get("fare_day")?,
        line_id: r.get("line_id")?,
        proof: r.get("proof")?,
        state: tap_state(r)?,
        state_reason: r.get("state_reason")?,
        validator_id: r.get("validator_id")?,
        source: tap_source(r)?,
        authorized: r.get("authorized")?,
    })
}

/// A ride of [`Reader::day_rides`] with its (account, fare day).
type DayRide = ((AccountId, i64), Ride);

/// One row of [`Reader::day_rides`]: its day and the ride.
fn day_ride(r: &Row<'_>) -> Result<DayRide, StoreError> {
    let day: (AccountId, i64) = (r.get("account_id")?, r.get("fare_day")?);
    let ride = Ride {
        pseudonym: r.get("pseudonym")?,
        counter: r.get("counter")?,
        time: r.get("time")?,
        line_id: r.get("line_id")?,
        fare_class: fare_class(r, "fare_class")?,
        authorized: r.get("authorized")?,
        state: tap_state(r)?,
        charged: r.get("charged")?,
        last_entry: r.get("last_entry")?,
    };
    Ok((day, ride))
}

impl Reader<'_> {
    pub fn tap(&self, p: &PseudonymBytes, counter: u32) -> Result<Option<TapRow>, StoreError> {
        self.conn.query_opt(
            concat!(
                "SELECT ",
                tap_columns!("t"),
                " FROM taps t WHERE t.pseudonym = :p AND t.counter = :counter"
            ),
            named_params! {":p": p, ":counter": counter},
            tap_row,
        )
    }

    /// Rows of one statement over `taps`, keyed by tap: `select(cond)` is the statement,
    /// `cond` the condition on its pseudonym and counter `columns`; each row names its tap in
    /// the columns `pseudonym` and `counter`. A tap without a row is missing from the map.
    ///
    /// On SQLite a few statements ([`chunks`]) of `(x = ? AND y = ?) OR …`. On PostgreSQL one
    /// statement with the keys bound as two arrays: its text is the same for any number of
    /// taps, and planning it is cheap, where the planner spent half a millisecond on each
    /// 64-pair `OR` (a custom plan every time: a generic one was nine times slower to run;
    /// docs/perf.md §8).
    pub(super) fn by_tap<T>(
        &self,
        taps: &[TapRef],
        columns: (&str, &str),
        select: impl Fn(&str) -> String,
        mut value: impl FnMut(&Row<'_>) -> Result<T, StoreError>,
    ) -> Result<HashMap<TapRef, T>, StoreError> {
        let mut out = HashMap::with_capacity(taps.len());
        let mut row = |r: &Row<'_>| {
            let tap = TapRef {
                pseudonym: r.get("pseudonym")?,
                counter: r.get("counter")?,
            };
            Ok((tap, value(r)?))
        };
        // dialect: PostgreSQL binds the keys as arrays (SQLite has none; its keys go in an
        // `OR` of pairs, below)
        if self.conn.dialect() == Dialect::Postgres {
            let keys: Vec<[Value<'_>; 2]> = taps
                .iter()
                .map(|t| [t.pseudonym.to_value(), t.counter.to_value()])
                .collect();
            let (x, y) = columns;
            out.extend(self.conn.query_rows(
                &[ColType::Blob, ColType::Int],
                &keys,
                &|from| select(&format!("({x}, {y}) IN (SELECT k.c0, k.c1 FROM {from})")),
                &mut row,
            )?);
            return Ok(out);
        }
        for chunk in chunks(taps) {
            let mut params = RowParams::default();
            let cond = taps_where(&mut params, columns, chunk);
            out.extend(
                self.conn
                    .query_vec(&select(&cond), &params.params(), &mut row)?,
            );
        }
        Ok(out)
    }

    /// The stored taps of `taps` (those stored): one statement on PostgreSQL, a few
    /// ([`chunks`]) on SQLite ([`Self::by_tap`]).
    pub fn taps_of(&self, taps: &[TapRef]) -> Result<HashMap<TapRef, TapRow>, StoreError> {
        self.by_tap(
            taps,
            ("t.pseudonym", "t.counter"),
            |cond| {
                format!(
                    concat!(
                        "SELECT t.pseudonym AS pseudonym, t.counter AS counter, ",
                        tap_columns!("t"),
                        " FROM taps t WHERE {}"
                    ),
                    cond
                )
            },
            tap_row,
        )
    }

    /// The highest counter settled for a device (under any of its certificates).
    pub fn max_counter(&self, device_id: DeviceId) -> Result<Option<u32>, StoreError> {
        self.conn.query_one(
            "SELECT MAX(counter) AS m FROM taps WHERE device_id = :device",
            named_params! {":device": device_id},
            |r| r.get("m"),
        )
    }

    /// The rides of each (account, fare day) of `days` after its `after` ride in rating order,
    /// each day's in rating order (time, pseudonym, counter), with what each has been charged
    /// and its newest ledger entry, read only for rides at or after the day's `from` time (0
    /// and 0 before it); one statement on PostgreSQL ([`Self::day_rides_pg`]), a few
    /// ([`chunks`]) on SQLite.
    pub fn day_rides(
        &self,
        days: &[DayRides],
    ) -> Result<HashMap<(AccountId, i64), Vec<Ride>>, StoreError> {
        const ONE_DAY: &str = concat!(
            "SELECT ",
            ride_columns!("?"),
            " FROM taps t WHERE t.account_id = ? AND t.fare_day = ? AND t.time >= ?
               AND (t.time, t.pseudonym, t.counter) > (?, ?, ?)"
        );
        let mut out: HashMap<(AccountId, i64), Vec<Ride>> = HashMap::new();
        // dialect: PostgreSQL binds the days as arrays (SQLite has none)
        if self.conn.dialect() == Dialect::Postgres {
            if !days.is_empty() {
                for (day, ride) in self.day_rides_pg(days)? {
                    out.entry(day).or_default().push(ride);
                }
            }
            return Ok(out);
        }
        for chunk in chunks(days) {
            let mut params = RowParams::default();
            let selects: Vec<String> = chunk
                .iter()
                .map(|d| {
                    let names = params.row(d.key());
                    let mut sql = ONE_DAY.to_string();
                    // `?` in order: from, from, account, day, after's time (twice), pseudonym
                    // and counter
                    for name in [0, 0, 1, 2, 3, 3, 4, 5]
                        .into_iter()
                        .filter_map(|i| names.get(i))
                    {
                        sql = sql.replacen('?', name, 1);
                    }
                    sql
                })
                .collect();
            let rows = self.conn.query_vec(
                &format!(
                    "{} ORDER BY account_id, fare_day, time, pseudonym, counter",
                    selects.join(" UNION ALL ")
                ),
                &params.params(),
                day_ride,
            )?;
            for (day, ride) in rows {
                out.entry(day).or_default().push(ride);
            }
        }
        Ok(out)
    }

    /// [`Self::day_rides`] on PostgreSQL: one statement, the days bound as six arrays
    /// ([`super::db::Conn::query_rows`]): one statement text and a cheap plan for any number
    /// of days, where the `UNION ALL` of one select a day cost the planner more than running it.
    fn day_rides_pg(&self, days: &[DayRides]) -> Result<Vec<DayRide>, StoreError> {
        use ColType::{Blob, Int};
        let keys: Vec<[Value<'_>; 6]> = days.iter().map(DayRides::key).collect();
        // k: the day's key (`DayRides::key`): `from` (c0), account (c1), fare day (c2), and
        // the `after` ride's time (c3), pseudonym (c4) and counter (c5)
        self.conn.query_rows(
            &[Int, Int, Int, Int, Blob, Int],
            &keys,
            &|from| {
                format!(
                    concat!(
                        "SELECT ",
                        ride_columns!("k.c0"),
                        " FROM {} JOIN taps t ON t.account_id = k.c1 AND t.fare_day = k.c2
                           AND t.time >= k.c3 AND (t.time, t.pseudonym, t.counter) > (k.c3, k.c4, k.c5)
                         ORDER BY t.account_id, t.fare_day, t.time, t.pseudonym, t.counter"
                    ),
                    from
                )
            },
            day_ride,
        )
    }

    /// For each [`OriginWindow`]: the account's charged rides with a line in the window (at
    /// or after `since`, of an earlier fare day than `day`), the candidates for the day's
    /// transfer origin: the caller takes the last in rating order whose line its tariff
    /// knows, as rating a day does. An earlier ride is no origin (it is out of the window).
    pub fn rides_before(
        &self,
        days: &[OriginWindow],
    ) -> Result<HashMap<(AccountId, i64), Vec<OriginRide>>, StoreError> {
        let keys: Vec<[Value<'_>; 4]> = days
            .iter()
            .map(|w| {
                [
                    w.account.to_value(),
                    w.day.to_value(),
                    w.since_day.to_value(),
                    w.since.to_value(),
                ]
            })
            .collect();
        let rows = self.conn.query_rows(
            &[ColType::Int; 4],
            &keys,
            &|from| {
                format!(
                    "SELECT k.c0 AS account_id, k.c1 AS fare_day, t.time AS time,
                        t.pseudonym AS pseudonym, t.counter AS counter, t.line_id AS line_id
                     FROM {from}
                     JOIN taps t ON t.account_id = k.c0 AND (t.fare_day, t.time) >= (k.c2, k.c3)
                         AND t.fare_day < k.c1
                     WHERE t.line_id IS NOT NULL AND t.state = 'charged'"
                )
            },
            |r| {
                let day: (AccountId, i64) = (r.get("account_id")?, r.get("fare_day")?);
                let key = RideKey {
                    time: r.get("time")?,
                    tap: TapRef {
                        pseudonym: r.get("pseudonym")?,
                        counter: r.get("counter")?,
                    },
                };
                Ok((day, (key, r.get::<u32>("line_id")?)))
            },
        )?;
        let mut out: HashMap<(AccountId, i64), Vec<OriginRide>> = HashMap::new();
        for (day, ride) in rows {
            out.entry(day).or_default().push(ride);
        }
        Ok(out)
    }
}

/// A candidate transfer origin: the ride's place in rating order, and its line.
pub type OriginRide = (RideKey, u32);

/// Where a fare day's transfer origin can be: an account's rides from `since` (UTC, in fare
/// day `since_day` or later) up to the start of fare day `day`.
#[derive(Debug, Clone, Copy)]
pub struct OriginWindow {
    pub account: AccountId,
    pub day: i64,
    pub since_day: i64,
    pub since: i64,
}

impl Reader<'_> {
    /// The taps (pseudonym, counter) answering a challenge (one, unless several cards signed
    /// it: a torn challenge answered at the gate by another card).
    pub fn taps_by_challenge(
        &self,
        challenge_id: &[u8; 32],
    ) -> Result<Vec<(PseudonymBytes, u32)>, StoreError> {
        self.conn.query_vec(
            "SELECT pseudonym, counter FROM taps WHERE challenge_id = :c",
            named_params! {":c": &challenge_id[..]},
            |r| Ok((r.get("pseudonym")?, r.get("counter")?)),
        )
    }
}

impl Writer<'_> {
    /// Sets a tap's state and its reason.
    pub fn set_tap_state(
        &self,
        p: &PseudonymBytes,
        counter: u32,
        state: TapState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        self.before_tap_write(TapRef {
            pseudonym: *p,
            counter,
        })?;
        self.tx.execute(
            "UPDATE taps SET state = :state, state_reason = :reason
             WHERE pseudonym = :p AND counter = :counter",
            named_params! {":p": p, ":counter": counter, ":state": state.as_str(), ":reason": reason},
        )?;
        Ok(())
    }

    /// Records the first validator that reported a tap only the wallet had reported: kept
    /// and written with the batch's taps when the row was read ahead
    /// ([`Self::keep_tap_validator`]), else at once.
    pub fn set_tap_validator(
        &self,
        p: &PseudonymBytes,
        counter: u32,
        validator_id: u32,
    ) -> Result<(), StoreError> {
        let key = TapRef {
            pseudonym: *p,
            counter,
        };
        if self.keep_tap_validator(key, validator_id) {
            return Ok(());
        }
        self.before_tap_write(key)?;
        self.tx.execute(
            "UPDATE taps SET validator_id = :v
             WHERE pseudonym = :p AND counter = :counter AND validator_id IS NULL",
            named_params! {":p": p, ":counter": counter, ":v": validator_id},
        )?;
        Ok(())
    }

    /// Replaces a stored tap's evidence with another report of the same (pseudonym, counter)
    /// (a validator's record beats a body only the wallet reported).
    pub fn replace_tap(&self, t: &NewTap<'_>) -> Result<(), StoreError> {
        self.before_tap_replace(TapRef {
            pseudonym: t.pseudonym,
            counter: t.counter,
        })?;
        self.write_tap(
            "UPDATE taps SET tap_id = :tap_id, account_id = :account, device_id = :device,
                cert_hash = :cert, fare_class = :class, time = :time, fare_day = :day,
                line_id = :line, authorized = :authorized, proof = :proof,
                source = :source, reported_at = :reported_at, validator_id = :validator,
                challenge_id = :challenge, state = :state, state_reason = :reason
             WHERE pseudonym = :p AND counter = :counter",
            t,
        )
    }

    /// Runs `sql` (an update of one tap row) with every column of `t` bound.
    fn write_tap(&self, sql: &str, t: &NewTap<'_>) -> Result<(), StoreError> {
        self.tx.execute(
            sql,
            named_params! {
            ":tap_id": &t.tap_id[..],
            ":p": t.pseudonym,
            ":counter": t.counter,
            ":account": t.account_id,
            ":device": t.device_id,
            ":cert": t.cert_hash,
            ":class": t.fare_class as u8,
            ":time": t.time,
            ":day": t.fare_day,
            ":line": t.line_id,
            ":authorized": t.authorized,
            ":proof": t.proof,
            ":source": t.source.as_str(),
            ":reported_at": t.reported_at,
            ":validator": t.validator_id,
            ":challenge": t.challenge_id.as_ref().map(|c| &c[..]),
            ":state": t.state.as_str(),
            ":reason": t.state_reason,
            },
        )?;
        Ok(())
    }

    /// Fills in the line of a tap first reported without one (a QR pass known only from the
    /// wallet); the validator's record names it.
    pub fn set_tap_line(
        &self,
        p: &PseudonymBytes,
        counter: u32,
        line: u32,
    ) -> Result<(), StoreError> {
        self.before_tap_write(TapRef {
            pseudonym: *p,
            counter,
        })?;
        self.tx.execute(
            "UPDATE taps SET line_id = :line
             WHERE pseudonym = :p AND counter = :counter AND line_id IS NULL",
            named_params! {":p": p, ":counter": counter, ":line": line},
        )?;
        Ok(())
    }
}
