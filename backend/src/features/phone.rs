//! Phone numbers: every spelling of one Iranian mobile number is one E.164 string, through
//! the `phonenumber` crate (a port of Google's libphonenumber and its metadata). `09…`,
//! `+98…`, `0098…` and `98…`, with spaces, dashes, dots or brackets, in Latin, Persian
//! (۰–۹) or Arabic-Indic (٠–٩) digits, all become `+989…`. Numbers of other countries,
//! fixed lines and malformed input are refused with a message that says which.

use crate::error::{Error, Result};
use phonenumber::metadata::DATABASE;
use phonenumber::{country, Mode, Type};

/// Longest input read (a phone number in any spelling is far shorter).
const MAX_INPUT_CHARS: usize = 40;

/// Invisible marks a copy-paste from a right-to-left text may carry.
fn is_invisible_mark(c: char) -> bool {
    matches!(
        c,
        '\u{200E}' | '\u{200F}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}' | '\u{FEFF}'
    )
}

/// The input with its digits in ASCII and its separators dropped.
fn ascii_digits(raw: &str) -> Result<String> {
    if raw.chars().count() > MAX_INPUT_CHARS {
        return Err(Error::InvalidPhone(
            "a phone number is at most 40 characters",
        ));
    }
    let mut s = String::with_capacity(raw.len());
    for c in raw.trim().chars() {
        let persian = u32::from(c).wrapping_sub(0x06F0);
        let arabic = u32::from(c).wrapping_sub(0x0660);
        match c {
            '0'..='9' => s.push(c),
            '+' if s.is_empty() => s.push(c),
            _ if persian < 10 => s.push(char::from_digit(persian, 10).unwrap_or('0')),
            _ if arabic < 10 => s.push(char::from_digit(arabic, 10).unwrap_or('0')),
            ' ' | '-' | '.' | '(' | ')' | '\u{00A0}' | '\t' => {}
            _ if is_invisible_mark(c) => {}
            _ => {
                return Err(Error::InvalidPhoneNumber(format!(
                    "a phone number is digits with an optional leading +, spaces and dashes; \
                     {c:?} is none of these"
                )))
            }
        }
    }
    if s.trim_start_matches('+').is_empty() {
        return Err(Error::InvalidPhone("the phone number is empty"));
    }
    Ok(s)
}

/// Normalizes an Iranian mobile number to E.164 (`+989xxxxxxxxx`).
pub fn normalize_phone(raw: &str) -> Result<String> {
    let s = ascii_digits(raw)?;
    // `98912…` (the country code without `+` or `00`): international.
    let s = if s.len() == 12 && s.starts_with("989") {
        format!("+{s}")
    } else {
        s
    };
    let n = phonenumber::parse(Some(country::Id::IR), &s)
        .map_err(|_| Error::InvalidPhone("this is not a phone number"))?;
    if n.code().value() != 98 {
        return Err(Error::InvalidPhone(
            "only Iranian mobile numbers (+98 9xx xxx xxxx or 09xx xxx xxxx) can hold a ManCard",
        ));
    }
    if !n.is_valid() {
        return Err(Error::InvalidPhone(
            "this is not a valid Iranian phone number (a mobile number is 09 and 9 more digits)",
        ));
    }
    if !matches!(
        n.number_type(&DATABASE),
        Type::Mobile | Type::FixedLineOrMobile
    ) {
        return Err(Error::InvalidPhone(
            "this is not a mobile number: the code is sent by SMS (09xx xxx xxxx)",
        ));
    }
    Ok(n.format().mode(Mode::E164).to_string())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_spelling_of_a_mobile_number_is_one() {
        for s in [
            "09121234567",
            "0912 123 4567",
            "0912-123-4567",
            "+989121234567",
            "+98 912 123 4567",
            "00989121234567",
            "989121234567",
            "۰۹۱۲۱۲۳۴۵۶۷",
            "٠٩١٢١٢٣٤٥٦٧",
            "\u{200E}+98 (912) 123-4567",
            " 9121234567 ",
        ] {
            assert_eq!(normalize_phone(s).unwrap(), "+989121234567", "{s:?}");
        }
    }

    #[test]
    fn other_countries_fixed_lines_and_garbage_are_refused() {
        for s in [
            "+14155550100",
            "+447911123456",
            "02188776655",
            "+982188776655",
            "0912123456",
            "091212345678",
            "",
            "+",
            "0912abc4567",
            "09121234567; DROP TABLE",
            "1",
            "+9891212345678901234567890",
        ] {
            assert!(normalize_phone(s).is_err(), "{s:?} accepted");
        }
    }
}
