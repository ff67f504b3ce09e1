//! Numbers, amounts and dates for a language, through ICU4X's compiled CLDR data: no
//! hand-written digit tables or calendar arithmetic.

use crate::catalog::{text, Arg};
use crate::lang::PerLang;
use crate::Lang;
use fixed_decimal::Decimal;
use icu_calendar::cal::Persian;
use icu_calendar::Iso;
use icu_datetime::fieldsets::{YMD, YMDT};
use icu_datetime::options::TimePrecision;
use icu_datetime::FixedCalendarDateTimeFormatter;
use icu_decimal::DecimalFormatter;
use icu_time::zone::UtcOffset;
use icu_time::{DateTime, ZonedDateTime};

/// Formatters are made once per language (compiled data: no I/O, no allocation of data).
struct Formatters {
    decimal: Option<DecimalFormatter>,
    date: Option<FixedCalendarDateTimeFormatter<Persian, YMD>>,
    date_time: Option<FixedCalendarDateTimeFormatter<Persian, YMDT>>,
}

fn formatters(lang: Lang) -> &'static Formatters {
    static FORMATTERS: PerLang<Formatters> = PerLang::new();
    FORMATTERS.get(lang, || {
        let locale = lang.icu_locale();
        Formatters {
            decimal: DecimalFormatter::try_new((&locale).into(), Default::default()).ok(),
            date: FixedCalendarDateTimeFormatter::try_new((&locale).into(), YMD::medium()).ok(),
            date_time: FixedCalendarDateTimeFormatter::try_new(
                (&locale).into(),
                YMDT::medium().with_time_precision(TimePrecision::Minute),
            )
            .ok(),
        }
    })
}

fn format_decimal(lang: Lang, d: &Decimal) -> String {
    match &formatters(lang).decimal {
        Some(f) => f.format(d).to_string(),
        None => d.to_string(),
    }
}

/// An integer with the language's digits and grouping: `۱۲٬۳۴۵` (fa, azb), `12,345` (en).
pub fn format_int(lang: Lang, n: i64) -> String {
    format_decimal(lang, &Decimal::from(n))
}

/// Rials as toman (1 toman = 10 rials), with one decimal when it is not a whole number of
/// toman: `۲٬۰۰۰` or `۲٫۵`.
pub(crate) fn toman_number(lang: Lang, rials: i64) -> String {
    let mut d = Decimal::from(rials);
    d.multiply_pow10(-1);
    d.absolute.trim_end();
    format_decimal(lang, &d)
}

/// An amount as the rider reads it, in toman with the language's digits and grouping, from
/// the catalog's `amount` message: `۲٬۰۰۰ تومان` (fa), `2,000 toman (20,000 rials)` (en).
pub fn format_amount(lang: Lang, rials: i64) -> String {
    text(lang, "amount", &amount_args(rials))
}

/// The arguments of the `amount` and `validator-amount` messages.
pub(crate) fn amount_args(rials: i64) -> [(&'static str, Arg); 2] {
    [("toman", Arg::Toman(rials)), ("rials", Arg::Int(rials))]
}

/// The latest instant formatted as a date (9999-12-31T23:59:59Z); later (or negative) times
/// are shown as seconds.
const LAST_DATE: i64 = 253_402_300_799;

/// `utc` (Unix seconds) as a local date and time at `offset_secs` east of UTC, in the
/// Persian (Solar Hijri) calendar. `None` outside year 1970..9999 or for an offset beyond
/// ±18 h.
fn local(utc: i64, offset_secs: i32) -> Option<DateTime<Persian>> {
    if !(0..=LAST_DATE).contains(&utc) {
        return None;
    }
    let offset = UtcOffset::try_from_seconds(offset_secs).ok()?;
    let zoned = ZonedDateTime::<Iso, UtcOffset>::from_epoch_milliseconds_and_utc_offset(
        utc.checked_mul(1000)?,
        offset,
    );
    Some(DateTime {
        date: zoned.date.to_calendar(Persian),
        time: zoned.time,
    })
}

/// The Solar Hijri (year, month 1–12, day) of `utc` at `offset_secs` east of UTC.
pub fn persian_date(utc: i64, offset_secs: i32) -> Option<(i32, u8, u8)> {
    let d = local(utc, offset_secs)?.date;
    Some((
        d.era_year().extended_year,
        d.month().ordinal,
        d.day_of_month().0,
    ))
}

/// A date in the Solar Hijri calendar: `۱ فروردین ۱۴۰۵` (fa, azb), `Farvardin 1, 1405 AP` (en).
pub fn format_date(lang: Lang, utc: i64, offset_secs: i32) -> String {
    match (local(utc, offset_secs), &formatters(lang).date) {
        (Some(t), Some(f)) => f.format(&t.date).to_string(),
        _ => format_int(lang, utc),
    }
}

/// A date and time to the minute in the Solar Hijri calendar:
/// `۱ فروردین ۱۴۰۵، ۱۷:۳۵` (fa, azb), `Farvardin 1, 1405 AP, 5:35 PM` (en).
pub fn format_date_time(lang: Lang, utc: i64, offset_secs: i32) -> String {
    match (local(utc, offset_secs), &formatters(lang).date_time) {
        (Some(t), Some(f)) => f.format(&t).to_string(),
        _ => format_int(lang, utc),
    }
}
