//! ManCard's rider-facing text.
//!
//! Stable codes are the contract (the validator's refusal reasons, the wallet's states and
//! history statuses, the backend's reason codes); the words come from one message catalog per
//! language (`catalogs/*.ftl`, Project Fluent), and numbers, amounts and dates are formatted
//! for the language by ICU4X: Persian digits and grouping, toman, the Solar Hijri calendar in
//! the city's time (Iran: UTC+03:30). Persian (`fa`) is the default; South Azerbaijani (`azb`,
//! Arabic script) and English (`en`) are the others. CLDR has no `azb` data, so `azb` text
//! takes Persian digits, month names and date patterns, which is what its readers in Iran use.
//!
//! Nothing here panics or fails on a missing message: a message missing in a catalog falls
//! back to English and then to its id (the tests keep every catalog complete).

mod catalog;
mod format;
mod lang;

pub use catalog::{has_message, message_ids, text, text_checked, Arg};
pub use format::{format_amount, format_date, format_date_time, format_int, persian_date};
pub use lang::{Lang, UnknownLanguage};

/// Text from outside the catalogs (an operator's note, a payment reference, a reason code this
/// build does not know) without the Unicode controls that could reorder the sentence around it
/// (bidi embeddings, overrides and isolates, the directional marks) or hide characters.
pub fn plain(s: &str) -> String {
    s.chars()
        .filter(|c| {
            !matches!(
                c,
                '\u{061C}' | '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
            ) && !c.is_control()
        })
        .collect()
}

/// Iran's offset from UTC, seconds: fixed at +03:30 since 2022 (no daylight saving).
pub const IRAN_UTC_OFFSET_SECS: i32 = 12_600;

#[cfg(test)]
mod tests;
