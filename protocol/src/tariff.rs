//! The fare rule, shared as a pure function by validator, backend and wallet.
//!
//! Flat fare per line and fare class; a cheaper transfer onto another line within a window
//! after the previous ride; a daily cap per fare class after which rides cost 0. The fare day
//! is in the city's local time (a fixed UTC offset: Iran is UTC+03:30 with no daylight saving)
//! and starts at a configurable second of the local day (e.g. 04:00), so a late-night ride
//! belongs to the evening's day.

use crate::codec::{inherent_codec, DecodeError, Message, Reader, Writer};
use crate::list::{read_list, write_list, CountWidth, ListElement};
use thiserror::Error;

/// Fare class printed in the certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FareClass {
    Adult = 0,
    Student = 1,
    Senior = 2,
    Free = 3,
}

impl FareClass {
    pub const ALL: [FareClass; 4] = [Self::Adult, Self::Student, Self::Senior, Self::Free];

    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Self::Adult),
            1 => Ok(Self::Student),
            2 => Ok(Self::Senior),
            3 => Ok(Self::Free),
            _ => Err(DecodeError::InvalidValue {
                field: "fare class",
                reason: "unknown fare class",
            }),
        }
    }

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Adult => "adult",
            Self::Student => "student",
            Self::Senior => "senior",
            Self::Free => "free",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s))
    }
}

/// Flat fares of one line, indexed by [`FareClass::index`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineFare {
    pub line_id: u32,
    pub fares: [i64; 4],
}

/// The tariff of a city.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tariff {
    /// Local time offset from UTC in seconds (Urmia: 12_600).
    pub utc_offset_secs: i32,
    /// Second of the local day at which the fare day starts (e.g. 14_400 for 04:00).
    pub day_start_secs: u32,
    /// A ride on another line within this many seconds after the previous ride is a transfer.
    pub transfer_window_secs: u32,
    /// Price of a transfer per fare class (the line fare applies if it is lower).
    pub transfer_fares: [i64; 4],
    /// Most a rider of each class pays in one fare day.
    pub daily_caps: [i64; 4],
    /// Lines sorted by strictly increasing id.
    pub lines: Vec<LineFare>,
}

/// Why a fare could not be computed.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TariffError {
    #[error("line {0} is not in the tariff")]
    UnknownLine(u32),
}

/// What the rider has ridden so far, as far as the party computing the fare knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RideState {
    /// Fare day of `spent_today` (see [`Tariff::fare_day`]).
    pub fare_day: i64,
    /// Rials charged on `fare_day`.
    pub spent_today: i64,
    /// UTC time and line of the previous ride, if any.
    pub last_ride: Option<(i64, u32)>,
}

/// How a fare was reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FareKind {
    Full = 0,
    Transfer = 1,
    /// Lowered (possibly to 0) by the daily cap.
    Capped = 2,
}

impl FareKind {
    pub fn from_u8(v: u8) -> Result<Self, DecodeError> {
        match v {
            0 => Ok(Self::Full),
            1 => Ok(Self::Transfer),
            2 => Ok(Self::Capped),
            _ => Err(DecodeError::InvalidValue {
                field: "fare kind",
                reason: "unknown fare kind",
            }),
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Self::Full => "full fare",
            Self::Transfer => "transfer",
            Self::Capped => "daily cap",
        }
    }
}

/// A computed fare and the rider state after paying it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FareQuote {
    pub amount: i64,
    pub kind: FareKind,
    /// The line's flat fare before transfer and cap.
    pub base: i64,
    pub next: RideState,
}

impl Tariff {
    /// Most lines a tariff may list (decoders refuse more).
    pub const MAX_LINES: usize = 4096;

    /// The fare day (days since 1970-01-01 in local time, shifted by the day start) of a UTC instant.
    pub fn fare_day(&self, utc: i64) -> i64 {
        let local = utc
            .saturating_add(i64::from(self.utc_offset_secs))
            .saturating_sub(i64::from(self.day_start_secs));
        local.div_euclid(86_400)
    }

    /// The first UTC instant of fare day `day` (the inverse of [`Self::fare_day`]).
    pub fn fare_day_start(&self, day: i64) -> i64 {
        day.saturating_mul(86_400)
            .saturating_sub(i64::from(self.utc_offset_secs))
            .saturating_add(i64::from(self.day_start_secs))
    }

    pub fn line(&self, line_id: u32) -> Option<&LineFare> {
        self.lines
            .binary_search_by_key(&line_id, |l| l.line_id)
            .ok()
            .and_then(|i| self.lines.get(i))
    }

    /// The flat single fare of `class` on `line_id` (before transfer and cap); None for a line
    /// the tariff does not list.
    pub fn single_fare(&self, class: FareClass, line_id: u32) -> Option<i64> {
        self.line(line_id)?.fares.get(class.index()).copied()
    }

    /// The highest fare any ride of `class` can cost (used to bound QR passes).
    pub fn max_fare(&self, class: FareClass) -> i64 {
        self.lines
            .iter()
            .filter_map(|l| l.fares.get(class.index()).copied())
            .max()
            .unwrap_or(0)
    }

    /// The fare of a ride of `class` on `line_id` at UTC `time`, given the rider's state.
    pub fn fare(
        &self,
        class: FareClass,
        line_id: u32,
        time: i64,
        state: &RideState,
    ) -> Result<FareQuote, TariffError> {
        let line = self
            .line(line_id)
            .ok_or(TariffError::UnknownLine(line_id))?;
        let i = class.index();
        let base = line.fares.get(i).copied().unwrap_or(0);
        let day = self.fare_day(time);
        let spent = if state.fare_day == day {
            state.spent_today
        } else {
            0
        };
        let mut kind = FareKind::Full;
        let mut amount = base;
        if let Some((last_time, last_line)) = state.last_ride {
            let dt = time.saturating_sub(last_time);
            if last_line != line_id && (0..=i64::from(self.transfer_window_secs)).contains(&dt) {
                let t = self.transfer_fares.get(i).copied().unwrap_or(base);
                if t < amount {
                    amount = t;
                    kind = FareKind::Transfer;
                }
            }
        }
        let cap = self.daily_caps.get(i).copied().unwrap_or(i64::MAX);
        let room = cap.saturating_sub(spent).max(0);
        if amount > room {
            amount = room;
            kind = FareKind::Capped;
        }
        Ok(FareQuote {
            amount,
            kind,
            base,
            next: RideState {
                fare_day: day,
                spent_today: spent.saturating_add(amount),
                last_ride: Some((time, line_id)),
            },
        })
    }

    /// The demo tariff of Urmia: lines 1 (bus A), 2 (bus B), 10 (metro), fares in rials.
    pub fn urmia_default() -> Self {
        Self {
            utc_offset_secs: 12_600,
            day_start_secs: 4 * 3600,
            transfer_window_secs: 45 * 60,
            transfer_fares: [5_000, 2_500, 2_500, 0],
            daily_caps: [60_000, 30_000, 30_000, 0],
            lines: vec![
                LineFare {
                    line_id: 1,
                    fares: [20_000, 10_000, 10_000, 0],
                },
                LineFare {
                    line_id: 2,
                    fares: [20_000, 10_000, 10_000, 0],
                },
                LineFare {
                    line_id: 10,
                    fares: [30_000, 15_000, 15_000, 0],
                },
            ],
        }
    }
}

impl Message for Tariff {
    const NAME: &'static str = "tariff";
    const TAG: u8 = b'T';
    const VERSION: u8 = 1;

    fn size_hint(&self) -> usize {
        self.lines.len().saturating_mul(36).saturating_add(64)
    }

    fn write_body(&self, w: &mut Writer) {
        w.i32(self.utc_offset_secs)
            .u32(self.day_start_secs)
            .u32(self.transfer_window_secs);
        for v in self.transfer_fares {
            w.i64(v);
        }
        for v in self.daily_caps {
            w.i64(v);
        }
        write_list(w, &self.lines);
    }

    fn read_body(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        let utc_offset_secs = r.i32()?;
        if !(-14 * 3600..=14 * 3600).contains(&utc_offset_secs) {
            return Err(DecodeError::InvalidValue {
                field: "UTC offset",
                reason: "outside ±14 hours",
            });
        }
        let day_start_secs = r.u32()?;
        if day_start_secs >= 86_400 {
            return Err(DecodeError::InvalidValue {
                field: "day start",
                reason: "must be a second of the day (< 86400)",
            });
        }
        let transfer_window_secs = r.u32()?;
        let mut transfer_fares = [0i64; 4];
        for v in transfer_fares.iter_mut() {
            *v = r.amount("transfer fare")?;
        }
        let mut daily_caps = [0i64; 4];
        for v in daily_caps.iter_mut() {
            *v = r.amount("daily cap")?;
        }
        Ok(Self {
            utc_offset_secs,
            day_start_secs,
            transfer_window_secs,
            transfer_fares,
            daily_caps,
            lines: read_list(r)?,
        })
    }
}

inherent_codec!(Tariff);

/// The tariff's lines: sorted by strictly increasing line id.
impl ListElement for LineFare {
    const COUNT_WIDTH: CountWidth = CountWidth::U16;
    const MAX: usize = Tariff::MAX_LINES;
    const COUNT_FIELD: &'static str = "line count";
    const LIST_FIELD: &'static str = "tariff line list";
    const MIN_LEN: usize = 4 + 4 * 8;

    fn write_element(&self, w: &mut Writer) {
        w.u32(self.line_id);
        for v in self.fares {
            w.i64(v);
        }
    }

    fn read_element(r: &mut Reader<'_>, prev: Option<&Self>) -> Result<Self, DecodeError> {
        let line_id = r.u32()?;
        if prev.is_some_and(|p| p.line_id >= line_id) {
            return Err(DecodeError::InvalidValue {
                field: "line list",
                reason: "line ids must be strictly increasing",
            });
        }
        let mut fares = [0i64; 4];
        for v in fares.iter_mut() {
            *v = r.amount("line fare")?;
        }
        Ok(Self { line_id, fares })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-11-28 08:00 Iran time = 04:30 UTC
    const T0: i64 = 1_795_840_200;

    #[test]
    fn flat_transfer_and_cap() {
        let t = Tariff::urmia_default();
        let s0 = RideState::default();
        let q1 = t.fare(FareClass::Adult, 1, T0, &s0).unwrap();
        assert_eq!((q1.amount, q1.kind), (20_000, FareKind::Full));
        let q2 = t.fare(FareClass::Adult, 2, T0 + 600, &q1.next).unwrap();
        assert_eq!((q2.amount, q2.kind), (5_000, FareKind::Transfer));
        // same line again within the window is not a transfer
        let q3 = t.fare(FareClass::Adult, 2, T0 + 700, &q2.next).unwrap();
        assert_eq!((q3.amount, q3.kind), (20_000, FareKind::Full));
        let q4 = t.fare(FareClass::Adult, 10, T0 + 7200, &q3.next).unwrap();
        assert_eq!((q4.amount, q4.kind), (15_000, FareKind::Capped));
        assert_eq!(q4.next.spent_today, 60_000);
        let q5 = t.fare(FareClass::Adult, 10, T0 + 9000, &q4.next).unwrap();
        assert_eq!((q5.amount, q5.kind), (0, FareKind::Capped));
        // after the transfer window: full
        let q6 = t.fare(FareClass::Adult, 1, T0 + 3600, &q1.next).unwrap();
        assert_eq!(q6.kind, FareKind::Full);
        assert_eq!(
            t.fare(FareClass::Adult, 99, T0, &s0),
            Err(TariffError::UnknownLine(99))
        );
        assert_eq!(t.fare(FareClass::Free, 10, T0, &s0).unwrap().amount, 0);
    }

    #[test]
    fn fare_day_starts_at_four_local() {
        let t = Tariff::urmia_default();
        // 03:59 local on day D+1 belongs to day D; 04:00 starts D+1.
        let local_midnight_utc = T0 - 8 * 3600; // 00:00 local on the 28th
        let d = t.fare_day(local_midnight_utc + 4 * 3600);
        assert_eq!(t.fare_day(local_midnight_utc + 4 * 3600 - 1), d - 1);
        assert_eq!(t.fare_day(local_midnight_utc + 28 * 3600 - 1), d);
        assert_eq!(t.fare_day_start(d), local_midnight_utc + 4 * 3600);
        assert_eq!(t.fare_day_start(d + 1), local_midnight_utc + 28 * 3600);
        // cap resets on a new fare day
        let mut s = RideState::default();
        for k in 0..5 {
            s = t.fare(FareClass::Adult, 1, T0 + k * 4000, &s).unwrap().next;
        }
        assert_eq!(s.spent_today, 60_000);
        let next_day = t.fare(FareClass::Adult, 1, T0 + 86_400, &s).unwrap();
        assert_eq!(next_day.amount, 20_000);
    }

    #[test]
    fn roundtrip_and_strictness() {
        let t = Tariff::urmia_default();
        let b = t.encode();
        assert_eq!(Tariff::decode(&b).unwrap(), t);
        let mut extra = b.clone();
        extra.push(0);
        assert!(matches!(
            Tariff::decode(&extra),
            Err(DecodeError::TrailingBytes { .. })
        ));
        let mut bad_ver = b.clone();
        bad_ver[1] = 9;
        assert!(matches!(
            Tariff::decode(&bad_ver),
            Err(DecodeError::UnknownVersion { .. })
        ));
    }
}
