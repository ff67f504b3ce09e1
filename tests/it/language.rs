//! The wallet speaks the rider's language: Persian by default, South Azerbaijani and English
//! on request, with the same codes in every record; amounts in toman with Persian digits and
//! dates in the Solar Hijri calendar.

use mancard::{CredentialState, HistoryKind, HistoryStatus, Lang, WalletConfig};
use mancard_protocol::StatusWord;
use mancard_testkit::wallet::*;
use mancard_testkit::{CertSpec, Issuer, T0};

fn has_latin_digits(s: &str) -> bool {
    s.chars().any(|c| c.is_ascii_digit())
}

#[test]
fn status_and_history_are_persian_by_default_and_follow_the_language_setting() {
    let d = tempfile::tempdir().unwrap();
    let w = open_with(
        d.path(),
        WalletConfig {
            max_authorizations_per_minute: u32::MAX,
            ..WalletConfig::default()
        },
    );
    assert_eq!(w.language(), Lang::Fa, "Persian is the default");
    let st = w.status(mancard::now_utc()).unwrap();
    assert_eq!(st.state, CredentialState::NoCredential);
    assert_eq!(st.summary, "هنوز بلیتی روی این گوشی نیست");
    assert_eq!(st.state_text, "هنوز کارتی ندارید");

    // a reader refused before any bundle: a refusal row, worded from its status word
    let issuer = Issuer::new(1);
    let reader = Reader::new(&issuer, 66);
    assert_eq!(reader.tap(&w).unwrap_err(), StatusWord::ReaderUnknown);

    provision(&w, &issuer, CertSpec::default());
    install_bundle(&w, &issuer.bundle(1, T0, Vec::new()));
    set_clock(&w, T0);
    let tapped = reader.tap_with(&w, &Quote::fare_at(20_000, T0)).unwrap();
    assert_eq!(tapped.challenge.body.fare, 20_000);

    let st = w.status(mancard::now_utc()).unwrap();
    assert_eq!(st.state_text, "فعال");
    assert!(st.summary.contains(" سفر / "), "{}", st.summary);
    assert!(
        st.summary.contains("تومان اعتبار آفلاین تا "),
        "{}",
        st.summary
    );
    assert!(!has_latin_digits(&st.summary), "{}", st.summary);
    let until_fa = mancard_l10n::format_date_time(
        Lang::Fa,
        st.valid_until.unwrap(),
        mancard_l10n::IRAN_UTC_OFFSET_SECS,
    );
    assert!(
        st.summary.ends_with(&until_fa),
        "{} / {until_fa}",
        st.summary
    );

    let h = w.history(None, 10).unwrap();
    let tap = h.items.iter().find(|i| i.kind == HistoryKind::Tap).unwrap();
    assert_eq!(tap.status, HistoryStatus::NotSettled);
    assert_eq!(tap.status_text, "هنوز تسویه نشده");
    let refusal = h
        .items
        .iter()
        .find(|i| i.kind == HistoryKind::Refusal)
        .unwrap();
    assert_eq!(refusal.status_text, "رد شد");
    assert_eq!(
        refusal.detail,
        "گوشی نپذیرفت: این گوشی به کارت‌خوان اعتماد ندارد"
    );
    assert_eq!(
        refusal.status_word,
        Some(0x69C1),
        "codes do not change with the language"
    );

    // South Azerbaijani, then English: the same rows, other words
    w.set_language(Lang::Azb);
    let st = w.status(mancard::now_utc()).unwrap();
    assert!(st.summary.contains("تومن آفلاین اعتبار"), "{}", st.summary);
    assert_eq!(st.state_text, "فعال");
    w.set_language(Lang::En);
    let st = w.status(mancard::now_utc()).unwrap();
    assert_eq!(st.state_text, "Active");
    assert!(
        st.summary.contains(" available offline until "),
        "{}",
        st.summary
    );
    assert!(
        st.summary.contains(" AP, "),
        "a Solar Hijri date: {}",
        st.summary
    );
    let h = w.history(None, 10).unwrap();
    let tap = h.items.iter().find(|i| i.kind == HistoryKind::Tap).unwrap();
    assert_eq!(tap.status_text, "not settled yet");
    assert_eq!(
        (tap.status, tap.amount),
        (HistoryStatus::NotSettled, 20_000)
    );
}
