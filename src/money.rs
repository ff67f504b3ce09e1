//! Money display for the app and the CLI: thin forms of the protocol's one money type,
//! [`mancard_protocol::Rials`]. Amounts are integer rials (i64); riders think in toman
//! (1 toman = 10 rials), so both are shown where a person reads.

use mancard_protocol::Rials;

/// Rials to whole toman, truncated toward zero.
pub fn toman(rials: i64) -> i64 {
    Rials(rials).toman()
}

/// "20,000 rials".
pub fn format_rials(rials: i64) -> String {
    Rials(rials).rials_text()
}

/// "2,000 toman" (with one decimal when the amount is not a whole number of toman).
pub fn format_toman(rials: i64) -> String {
    Rials(rials).toman_text()
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
