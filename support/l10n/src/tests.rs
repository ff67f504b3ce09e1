use super::*;
use std::collections::BTreeSet;

const NOON_1_FARVARDIN_1405: i64 = 1_774_083_600; // 2026-03-21T09:00:00Z = 12:30 in Tehran

#[test]
fn languages_are_chosen_by_tag_and_unknown_ones_are_refused() {
    for (tag, lang) in [
        ("fa", Lang::Fa),
        ("fa-IR", Lang::Fa),
        ("fa_IR", Lang::Fa),
        ("azb", Lang::Azb),
        ("azb-IR", Lang::Azb),
        ("az-Arab", Lang::Azb),
        ("az-IR", Lang::Azb),
        ("en", Lang::En),
        ("en-GB", Lang::En),
        ("EN-us", Lang::En),
    ] {
        assert_eq!(Lang::from_tag(tag), Ok(lang), "{tag}");
    }
    for tag in [
        "",
        "de",
        "az",
        "az-Latn-AZ",
        "fa IR",
        "f",
        "💥",
        &"x".repeat(100),
    ] {
        let e = Lang::from_tag(tag).unwrap_err();
        assert!(e.to_string().contains("fa (Persian)"), "{e}");
        assert!(e.tag.chars().count() <= 32);
        assert_eq!(Lang::negotiate(tag), Lang::Fa, "the default for {tag:?}");
    }
    assert_eq!(Lang::default(), Lang::Fa);
    assert!(Lang::Fa.is_rtl() && Lang::Azb.is_rtl() && !Lang::En.is_rtl());
}

#[test]
fn every_catalog_parses_and_has_the_same_messages() {
    let (en, errors) = message_ids(Lang::En);
    assert_eq!(errors, 0, "en.ftl has syntax errors");
    let en_set: BTreeSet<_> = en.iter().cloned().collect();
    assert_eq!(en_set.len(), en.len(), "a duplicate id in en.ftl");
    assert!(en.len() > 100);
    for lang in [Lang::Fa, Lang::Azb] {
        let (ids, errors) = message_ids(lang);
        assert_eq!(errors, 0, "{lang}.ftl has syntax errors");
        let set: BTreeSet<_> = ids.iter().cloned().collect();
        assert_eq!(set.len(), ids.len(), "a duplicate id in {lang}.ftl");
        let missing: Vec<_> = en_set.difference(&set).collect();
        let extra: Vec<_> = set.difference(&en_set).collect();
        assert!(missing.is_empty(), "{lang}.ftl lacks {missing:?}");
        assert!(
            extra.is_empty(),
            "{lang}.ftl has ids en.ftl lacks: {extra:?}"
        );
    }
}

/// Every message of the right-to-left catalogs is in Arabic script: the only Latin words are
/// the names ManCard, QR and NFC (a message left in English would be caught here).
#[test]
fn persian_and_azerbaijani_messages_have_no_english_words() {
    for lang in [Lang::Fa, Lang::Azb] {
        let (ids, _) = message_ids(lang);
        for id in ids {
            let args = sample_args();
            let s = text_checked(lang, &id, &args).unwrap_or_else(|e| panic!("{e}"));
            let mut rest = s.clone();
            for name in ["ManCard", "QR", "NFC"] {
                rest = rest.replace(name, "");
            }
            assert!(
                !rest.chars().any(|c| c.is_ascii_alphabetic()),
                "{lang} {id}: {s:?} has Latin letters"
            );
            assert!(
                !rest.chars().any(|c| c.is_ascii_digit()),
                "{lang} {id}: {s:?} has Latin digits"
            );
        }
    }
}

/// Arguments for every message of every catalog (a message that refers to an argument not
/// here fails `text_checked`).
fn sample_args() -> Vec<(&'static str, Arg)> {
    vec![
        ("toman", Arg::Toman(20_000)),
        ("rials", Arg::Int(20_000)),
        ("fare", Arg::ValidatorAmount(20_000)),
        ("amount", Arg::Amount(20_000)),
        ("authorized", Arg::Amount(25_000)),
        ("kind", Arg::Text(text(Lang::Fa, "fare-kind-full", &[]))),
        ("reason", Arg::Text("دلیل".into())),
        ("line", Arg::Int(7)),
        ("max", Arg::Int(120)),
        ("sw", Arg::Text("۶A۸۴".replace('A', "ـ"))),
        ("sw_text", Arg::Text(String::new())),
        ("rides", Arg::Count(5)),
        (
            "until",
            Arg::DateTime(NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        ),
        ("problem", Arg::Text(String::new())),
        ("why", Arg::Text(String::new())),
        ("reference", Arg::Text(String::new())),
        ("note", Arg::Text(String::new())),
    ]
}

#[test]
fn every_message_formats_without_errors_in_every_language() {
    for lang in Lang::ALL {
        let (ids, _) = message_ids(lang);
        for id in ids {
            text_checked(lang, &id, &sample_args()).unwrap_or_else(|e| panic!("{e}"));
        }
    }
}

#[test]
fn known_dates_in_the_solar_hijri_calendar_and_iran_time() {
    // 1 Farvardin 1405 (Nowruz) is 2026-03-21.
    assert_eq!(
        persian_date(NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        Some((1405, 1, 1))
    );
    assert_eq!(
        format_date(Lang::Fa, NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        "۱ فروردین ۱۴۰۵"
    );
    assert_eq!(
        format_date(Lang::Azb, NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        "۱ فروردین ۱۴۰۵"
    );
    assert_eq!(
        format_date(Lang::En, NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        "Farvardin 1, 1405 AP"
    );
    assert_eq!(
        format_date_time(Lang::Fa, NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS),
        "۱ فروردین ۱۴۰۵، ۱۲:۳۰"
    );
    // 20:59 UTC on 20 March is 00:29 on 1 Farvardin in Tehran, still 29 Esfand 1404 in UTC.
    let before_midnight_utc = 1_774_040_340; // 2026-03-20T20:59:00Z
    assert_eq!(
        persian_date(before_midnight_utc, IRAN_UTC_OFFSET_SECS),
        Some((1405, 1, 1))
    );
    assert_eq!(persian_date(before_midnight_utc, 0), Some((1404, 12, 29)));
    // 2026-12-03 (today in this project's calendar) is 12 Azar 1405.
    assert_eq!(
        persian_date(1_796_300_000, IRAN_UTC_OFFSET_SECS),
        Some((1405, 9, 12))
    );
    // 1 Farvardin 1404 was 2025-03-21; 1403 had 30 days in Esfand (a leap year): 2025-03-20
    // is 30 Esfand 1403.
    assert_eq!(
        persian_date(1_742_538_600, IRAN_UTC_OFFSET_SECS),
        Some((1404, 1, 1))
    );
    assert_eq!(
        persian_date(1_742_452_200, IRAN_UTC_OFFSET_SECS),
        Some((1403, 12, 30))
    );
}

#[test]
fn times_outside_the_calendar_are_numbers_not_panics() {
    for t in [i64::MIN, -1, LAST + 1, i64::MAX] {
        assert!(persian_date(t, IRAN_UTC_OFFSET_SECS).is_none());
        assert!(!format_date_time(Lang::Fa, t, IRAN_UTC_OFFSET_SECS).is_empty());
    }
    assert!(
        persian_date(0, i32::MAX).is_none(),
        "an offset beyond ±18 h"
    );
    assert!(persian_date(LAST, IRAN_UTC_OFFSET_SECS - 3600).is_some());
}
const LAST: i64 = 253_402_300_799;

#[test]
fn numbers_and_amounts_in_the_riders_digits() {
    assert_eq!(format_int(Lang::Fa, 12_345), "۱۲٬۳۴۵");
    assert_eq!(format_int(Lang::Azb, 12_345), "۱۲٬۳۴۵");
    assert_eq!(format_int(Lang::En, 12_345), "12,345");
    assert_eq!(format_int(Lang::Fa, -7), "‎−۷");
    assert_eq!(format_amount(Lang::Fa, 20_000), "۲٬۰۰۰ تومان");
    assert_eq!(format_amount(Lang::Azb, 20_000), "۲٬۰۰۰ تومن");
    assert_eq!(
        format_amount(Lang::En, 20_000),
        "2,000 toman (20,000 rials)"
    );
    assert_eq!(format_amount(Lang::Fa, 25), "۲٫۵ تومان");
    assert_eq!(format_amount(Lang::En, 25), "2.5 toman (25 rials)");
    assert_eq!(format_amount(Lang::Fa, 0), "۰ تومان");
    assert_eq!(
        format_amount(Lang::En, i64::MIN),
        "-922,337,203,685,477,580.8 toman (-9,223,372,036,854,775,808 rials)"
    );
}

#[test]
fn counts_choose_the_plural_and_keep_the_digits() {
    let until = Arg::DateTime(NOON_1_FARVARDIN_1405, IRAN_UTC_OFFSET_SECS);
    let args = |n| {
        vec![
            ("rides", Arg::Count(n)),
            ("amount", Arg::Amount(20_000)),
            ("until", until.clone()),
        ]
    };
    assert_eq!(
        text(Lang::En, "status-usable", &args(1)),
        "1 ride / 2,000 toman (20,000 rials) available offline until Farvardin 1, 1405 AP, 12:30\u{202f}PM"
    );
    assert!(text(Lang::En, "status-usable", &args(5)).starts_with("5 rides / "));
    assert_eq!(
        text(Lang::Fa, "status-usable", &args(5)),
        "۵ سفر / ۲٬۰۰۰ تومان اعتبار آفلاین تا ۱ فروردین ۱۴۰۵، ۱۲:۳۰"
    );
}

#[test]
fn outside_text_loses_the_controls_that_could_reorder_a_sentence() {
    assert_eq!(
        plain("refund \u{202E}000,05\u{202C} ok"),
        "refund 000,05 ok"
    );
    assert_eq!(plain("a\u{2066}b\u{2069}\u{200F}c\u{061C}\n"), "abc");
    assert_eq!(
        plain("کارت‌خوان 9f2c"),
        "کارت‌خوان 9f2c",
        "ZWNJ stays: Persian needs it"
    );
}

#[test]
fn a_missing_message_falls_back_to_english_then_to_its_id() {
    assert_eq!(text(Lang::Fa, "no-such-message", &[]), "no-such-message");
    assert!(text_checked(Lang::Fa, "no-such-message", &[]).is_err());
    assert!(
        text_checked(Lang::En, "history-charged", &[]).is_err(),
        "a missing argument"
    );
    assert!(has_message(Lang::Azb, "refusal-blocked"));
}
