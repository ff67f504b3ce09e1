//! The rider's words for the wallet's codes, in the wallet's language (`mancard_l10n`'s
//! catalogs): the status line and its problem, revocation reasons, history statuses and the
//! backend's reason codes. The codes are the contract; this module only words them.

use crate::sync_store::RERATED;
use crate::types::{CredentialState, HistoryStatus};
use mancard_api::RevocationReason;
use mancard_l10n::{text, Arg, Lang};

/// The catalog's words for a backend reason code (`transfer`, `torn_gate_closed`, ...); a code
/// this build does not know is shown with its underscores as spaces.
pub(crate) fn reason_text(code: &str, lang: Lang) -> String {
    let id = if code == RERATED {
        "reason-rerated".to_string()
    } else {
        format!("reason-{code}")
    };
    if mancard_l10n::has_message(lang, &id) {
        text(lang, &id, &[])
    } else {
        mancard_l10n::plain(&code.replace('_', " "))
    }
}

/// Why a ticket was revoked, by the backend's revocation code (stored as the credential's
/// reason); a code this build does not know, or a reason written by hand, is shown in words.
pub(crate) fn revocation_why(reason: Option<&str>, lang: Lang) -> String {
    let Some(reason) = reason else {
        return text(lang, "revocation-none", &[]);
    };
    let words = || Arg::Text(reason_text(reason, lang));
    match RevocationReason::parse(reason) {
        Some(RevocationReason::ReplacedByNewDevice) => text(lang, "problem-moved", &[]),
        Some(RevocationReason::SharedPass) => {
            text(lang, "revocation-shared_pass", &[("reason", words())])
        }
        Some(RevocationReason::Fraud(_)) => text(lang, "revocation-fraud", &[("reason", words())]),
        None => reason_text(reason, lang),
    }
}

/// The status problem of a revoked ticket: "this card was moved to another phone" when the
/// account moved it (the lost-phone path: nothing is wrong with this phone, the card is on the
/// other one), else "revoked: why".
pub(crate) fn revoked_problem(reason: Option<&str>, lang: Lang) -> String {
    match reason.and_then(RevocationReason::parse) {
        Some(RevocationReason::ReplacedByNewDevice) => text(lang, "problem-moved", &[]),
        _ => text(
            lang,
            "problem-revoked",
            &[("why", Arg::Text(revocation_why(reason, lang)))],
        ),
    }
}

/// Why a revoked ticket refuses a tap or a pass, for the refusal's record and the error (in
/// English, like every error message and log line): "the ticket has been revoked: this card
/// was moved to another phone".
pub(crate) fn revoked_refusal(reason: Option<&str>) -> String {
    let why = Arg::Text(revocation_why(reason, Lang::En));
    text(Lang::En, "revoked-refusal", &[("why", why)])
}

/// A problem sentence by its catalog code (`not_yet_valid`, `expired`, `exhausted`, ...).
pub(crate) fn problem(code: &str, lang: Lang) -> String {
    text(lang, &format!("problem-{code}"), &[])
}

/// The sentence of a history status: "charged 2,000 toman (20,000 rials)", "not used", ...
pub(crate) fn status_text(
    status: HistoryStatus,
    authorized: i64,
    charged: i64,
    reason: Option<&str>,
    lang: Lang,
) -> String {
    let why = match (status, reason) {
        (_, Some(r)) => reason_text(r, lang),
        (HistoryStatus::Corrected, None) => reason_text(RERATED, lang),
        (_, None) => text(lang, "reason-none", &[]),
    };
    let args = [
        ("amount", Arg::Amount(charged)),
        ("authorized", Arg::Amount(authorized)),
        ("why", Arg::Text(why)),
    ];
    let args: &[(&str, Arg)] = match status {
        // a credit's amount is the row's own
        HistoryStatus::Credited => &[("amount", Arg::Amount(authorized))],
        _ => &args,
    };
    text(lang, &format!("history-{}", status.code()), args)
}

/// The app's label for the credential's state ("Active", "فعال").
pub fn state_text(state: CredentialState, lang: Lang) -> String {
    text(lang, &format!("state-{}", state.code()), &[])
}

/// A credit's detail as stored by the sync ("top-up REF", "adjustment: NOTE") in the rider's
/// words; the reference and the operator's note are kept as they are.
pub(crate) fn credit_detail(stored: &str, lang: Lang) -> String {
    let outside = |s: &str| Arg::Text(mancard_l10n::plain(s));
    if let Some(reference) = stored.strip_prefix("top-up ") {
        text(lang, "detail-top_up", &[("reference", outside(reference))])
    } else if let Some(note) = stored.strip_prefix("adjustment: ") {
        text(lang, "detail-adjustment", &[("note", outside(note))])
    } else {
        mancard_l10n::plain(stored)
    }
}

/// Why the phone refused a reader, from the status word it answered, for the history.
pub(crate) fn phone_refusal(status_word: u16, lang: Lang) -> String {
    let sw = mancard_protocol::StatusWord::from_code(status_word);
    let why = text(lang, &format!("sw-{}", sw.name()), &[]);
    text(lang, "detail-phone-refused", &[("why", Arg::Text(why))])
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATES: [CredentialState; 8] = [
        CredentialState::NoCredential,
        CredentialState::Active,
        CredentialState::ReplenishDue,
        CredentialState::NotYetValid,
        CredentialState::Expired,
        CredentialState::Revoked,
        CredentialState::Exhausted,
        CredentialState::KeyUnavailable,
    ];
    const STATUSES: [HistoryStatus; 10] = [
        HistoryStatus::NotSettled,
        HistoryStatus::PassShown,
        HistoryStatus::PassNotUsed,
        HistoryStatus::Charged,
        HistoryStatus::Corrected,
        HistoryStatus::NotCharged,
        HistoryStatus::Rejected,
        HistoryStatus::Fraud,
        HistoryStatus::Refused,
        HistoryStatus::Credited,
    ];

    #[test]
    fn every_wallet_code_has_text_in_every_catalog() {
        for lang in Lang::ALL {
            for s in STATES {
                let id = format!("state-{}", s.code());
                assert!(mancard_l10n::has_message(lang, &id), "{lang} {id}");
            }
            for s in STATUSES {
                let id = format!("history-{}", s.code());
                let args = [
                    ("amount", Arg::Amount(1)),
                    ("authorized", Arg::Amount(2)),
                    ("why", Arg::Text("w".into())),
                ];
                mancard_l10n::text_checked(lang, &id, &args).unwrap();
            }
            // every reason code the backend sends in a verdict or a revocation
            for code in [
                "torn_gate_closed",
                "pass_not_scanned",
                "pass_expired_unscanned",
                "shared_pass",
                "from_the_future",
                "over_allowance",
                "duplicate_counter",
                "counter_out_of_range",
                "broken_chain",
                "transfer",
                "daily_cap",
                "replaced_by_new_device",
            ] {
                let id = format!("reason-{code}");
                assert!(mancard_l10n::has_message(lang, &id), "{lang} {id}");
            }
            for p in [
                "not_yet_valid",
                "expired",
                "exhausted",
                "moved",
                "key_unavailable",
            ] {
                assert!(mancard_l10n::has_message(lang, &format!("problem-{p}")));
            }
        }
    }

    #[test]
    fn a_moved_card_is_said_in_the_riders_words() {
        let moved = Some("replaced_by_new_device");
        assert_eq!(
            revoked_problem(moved, Lang::En),
            "this card was moved to another phone"
        );
        assert_eq!(
            revoked_problem(moved, Lang::Fa),
            "این کارت به گوشی دیگری منتقل شده است"
        );
        assert_eq!(
            revoked_refusal(moved),
            "the ticket has been revoked: this card was moved to another phone"
        );
        assert_eq!(revoked_problem(None, Lang::En), "revoked: no reason given");
        assert_eq!(
            revoked_problem(Some("reported_stolen"), Lang::En),
            "revoked: reported stolen"
        );
        assert!(revoked_problem(Some("duplicate_counter"), Lang::En).contains("fraud case"));
        assert!(revoked_problem(Some("duplicate_counter"), Lang::Azb).contains("فیریلداق"));
    }

    #[test]
    fn history_statuses_are_worded_with_the_riders_amounts() {
        let fa = |s, r| status_text(s, 20_000, 15_000, r, Lang::Fa);
        assert_eq!(fa(HistoryStatus::Charged, None), "۱٬۵۰۰ تومان کسر شد");
        assert_eq!(
            fa(HistoryStatus::Corrected, Some("transfer")),
            "به جای ۲٬۰۰۰ تومان، ۱٬۵۰۰ تومان کسر شد: انتقال"
        );
        assert_eq!(
            status_text(HistoryStatus::Corrected, 20_000, 15_000, None, Lang::En),
            "charged 1,500 toman (15,000 rials) instead of 2,000 toman (20,000 rials): re-rated"
        );
        assert_eq!(
            status_text(HistoryStatus::Credited, 500_000, 0, None, Lang::Azb),
            "۵۰٬۰۰۰ تومن علاوه اولوندو"
        );
        assert_eq!(
            status_text(
                HistoryStatus::NotCharged,
                0,
                0,
                Some("torn_gate_closed"),
                Lang::Fa
            ),
            "چیزی کسر نشد: در باز نشد"
        );
        assert_eq!(state_text(CredentialState::Active, Lang::Fa), "فعال");
        assert_eq!(
            phone_refusal(0x69C7, Lang::En),
            "the phone refused: too many taps this minute"
        );
        assert_eq!(credit_detail("top-up 9f2c", Lang::En), "top-up 9f2c");
        assert_eq!(credit_detail("top-up 9f2c", Lang::Fa), "شناسهٔ پرداخت: 9f2c");
        assert_eq!(
            credit_detail("adjustment: refund", Lang::En),
            "adjustment: refund"
        );
        assert_eq!(
            credit_detail("adjustment: refund", Lang::Azb),
            "دوزلیش: refund"
        );
        assert_eq!(credit_detail("something else", Lang::Fa), "something else");
        // an operator's note cannot reorder the rider's sentence
        assert_eq!(
            credit_detail("adjustment: \u{202E}005,1\u{202C}", Lang::Fa),
            "اصلاح: 005,1"
        );
        assert_eq!(reason_text("odd_\u{2067}code", Lang::Fa), "odd code");
    }
}
