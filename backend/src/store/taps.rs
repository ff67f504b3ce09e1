//! Settled taps: one row per (pseudonym, counter) (a pseudonym names one certificate), each
//! with its identity (the hash of what the phone signed), and the rides of a fare day for
//! rating.

use super::ids::fare_class;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, CertHash, DeviceId, PseudonymBytes};
use mancard_protocol::FareClass;
use rusqlite::{named_params, OptionalExtension};

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
    /// Sum of the (negative) ledger amounts of this ride, negated.
    pub charged: i64,
    /// Number of ledger entries of this ride.
    pub entries: i64,
}

/// The last ride with a known line before a fare day (the transfer origin).
#[derive(Debug, Clone, Copy)]
pub struct LastRide {
    pub time: i64,
    pub line_id: u32,
}

impl Reader<'_> {
    pub fn tap(&self, p: &PseudonymBytes, counter: u32) -> Result<Option<TapRow>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT tap_id, account_id, device_id, time, fare_day, line_id, proof FROM taps
                 WHERE pseudonym = :p AND counter = :counter",
            )?
            .query_row(named_params! {":p": p, ":counter": counter}, |r| {
                Ok(TapRow {
                    tap_id: r.get("tap_id")?,
                    account_id: r.get("account_id")?,
                    device_id: r.get("device_id")?,
                    time: r.get("time")?,
                    fare_day: r.get("fare_day")?,
                    line_id: r.get("line_id")?,
                    proof: r.get("proof")?,
                })
            })
            .optional()?)
    }

    /// The highest counter settled for a device (under any of its certificates).
    pub fn max_counter(&self, device_id: DeviceId) -> Result<Option<u32>, StoreError> {
        Ok(self
            .conn
            .prepare_cached("SELECT MAX(counter) AS m FROM taps WHERE device_id = :device")?
            .query_row(named_params! {":device": device_id}, |r| r.get("m"))?)
    }

    /// An account's rides on one fare day in time order, with what each has been charged; the
    /// charge is read only for rides at or after `from_time` (0 and 0 entries before it).
    pub fn day_rides(
        &self,
        account_id: AccountId,
        fare_day: i64,
        from_time: i64,
    ) -> Result<Vec<Ride>, StoreError> {
        let mut st = self.conn.prepare_cached(
            "SELECT t.pseudonym, t.counter, t.time, t.line_id, t.fare_class, t.authorized,
                    CASE WHEN t.time >= :from THEN
                        COALESCE((SELECT -SUM(l.amount) FROM ledger l
                                  WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter), 0)
                    ELSE 0 END AS charged,
                    CASE WHEN t.time >= :from THEN
                        (SELECT COUNT(*) FROM ledger l
                         WHERE l.pseudonym = t.pseudonym AND l.counter = t.counter)
                    ELSE 0 END AS entries
             FROM taps t WHERE t.account_id = :account AND t.fare_day = :day
             ORDER BY t.time, t.pseudonym, t.counter",
        )?;
        let rows = st.query_map(
            named_params! {":account": account_id, ":day": fare_day, ":from": from_time},
            |r| {
                Ok(Ride {
                    pseudonym: r.get("pseudonym")?,
                    counter: r.get("counter")?,
                    time: r.get("time")?,
                    line_id: r.get("line_id")?,
                    fare_class: fare_class(r, "fare_class")?,
                    authorized: r.get("authorized")?,
                    charged: r.get("charged")?,
                    entries: r.get("entries")?,
                })
            },
        )?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// Time and line of the account's last ride with a known line before fare day `fare_day`.
    pub fn last_ride_before_day(
        &self,
        account_id: AccountId,
        fare_day: i64,
    ) -> Result<Option<LastRide>, StoreError> {
        Ok(self
            .conn
            .prepare_cached(
                "SELECT time, line_id FROM taps
                 WHERE account_id = :account AND fare_day < :day AND line_id IS NOT NULL
                 ORDER BY fare_day DESC, time DESC LIMIT 1",
            )?
            .query_row(
                named_params! {":account": account_id, ":day": fare_day},
                |r| {
                    Ok(LastRide {
                        time: r.get("time")?,
                        line_id: r.get("line_id")?,
                    })
                },
            )
            .optional()?)
    }
}

impl Writer<'_> {
    pub fn insert_tap(&self, t: &NewTap<'_>) -> Result<(), StoreError> {
        self.tx
            .prepare_cached(
                "INSERT INTO taps (pseudonym, counter, account_id, device_id, cert_hash,
                    fare_class, time, fare_day, line_id, authorized, proof, source, reported_at,
                    tap_id)
                 VALUES (:p, :counter, :account, :device, :cert, :class, :time, :day, :line,
                    :authorized, :proof, :source, :reported_at, :tap_id)",
            )?
            .execute(named_params! {
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
            })?;
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
        self.tx.execute(
            "UPDATE taps SET line_id = :line
             WHERE pseudonym = :p AND counter = :counter AND line_id IS NULL",
            named_params! {":p": p, ":counter": counter, ":line": line},
        )?;
        Ok(())
    }
}
