//! Money display helpers. Amounts are integer rials (i64); riders think in toman (1 toman =
//! 10 rials), so both are shown where a person reads.

/// Rials to whole toman, truncated toward zero.
pub fn toman(rials: i64) -> i64 {
    rials / 10
}

fn group_thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn signed(rials_negative: bool, body: String) -> String {
    if rials_negative {
        format!("-{body}")
    } else {
        body
    }
}

/// "20,000 rials".
pub fn format_rials(rials: i64) -> String {
    signed(
        rials < 0,
        format!("{} rials", group_thousands(rials.unsigned_abs())),
    )
}

/// "2,000 toman" (with one decimal when the amount is not a whole number of toman).
pub fn format_toman(rials: i64) -> String {
    let abs = rials.unsigned_abs();
    let whole = group_thousands(abs / 10);
    let body = match abs % 10 {
        0 => format!("{whole} toman"),
        d => format!("{whole}.{d} toman"),
    };
    signed(rials < 0, body)
}

/// "2,000 toman (20,000 rials)": what the app shows for an amount.
pub fn format_amount(rials: i64) -> String {
    format!("{} ({})", format_toman(rials), format_rials(rials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats() {
        assert_eq!(format_rials(20_000), "20,000 rials");
        assert_eq!(format_rials(0), "0 rials");
        assert_eq!(format_rials(-1_234_567), "-1,234,567 rials");
        assert_eq!(format_toman(20_000), "2,000 toman");
        assert_eq!(format_toman(25), "2.5 toman");
        assert_eq!(format_toman(-5), "-0.5 toman");
        assert_eq!(format_amount(150_000), "15,000 toman (150,000 rials)");
        assert_eq!(toman(20_005), 2_000);
        assert_eq!(format_rials(i64::MIN), "-9,223,372,036,854,775,808 rials");
    }
}
