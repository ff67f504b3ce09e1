//! Money: integer rials, with checked arithmetic and one way to show an amount.
//!
//! Every amount on the wire and in every ledger is a whole number of rials (`i64`). Riders
//! think in toman (1 toman = 10 rials), so where a person reads an amount both are shown:
//! [`Rials`]'s `Display` writes `20,000 rials (2,000 toman)`.

use std::fmt;

/// An amount of money in rials.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Rials(pub i64);

impl Rials {
    pub const ZERO: Rials = Rials(0);

    /// The amount in rials.
    pub fn get(self) -> i64 {
        self.0
    }

    /// Whole toman, truncated toward zero.
    pub fn toman(self) -> i64 {
        self.0 / 10
    }

    pub fn checked_add(self, other: Rials) -> Option<Rials> {
        self.0.checked_add(other.0).map(Rials)
    }

    pub fn checked_sub(self, other: Rials) -> Option<Rials> {
        self.0.checked_sub(other.0).map(Rials)
    }

    /// `20,000 rials`.
    pub fn rials_text(self) -> String {
        format!("{} rials", grouped(self.0 < 0, self.0.unsigned_abs()))
    }

    /// `2,000 toman`, or `2.5 toman` when the amount is not a whole number of toman.
    pub fn toman_text(self) -> String {
        let abs = self.0.unsigned_abs();
        let whole = grouped(self.0 < 0, abs / 10);
        match abs % 10 {
            0 => format!("{whole} toman"),
            d => format!("{whole}.{d} toman"),
        }
    }
}

impl From<i64> for Rials {
    fn from(v: i64) -> Self {
        Rials(v)
    }
}

/// `20,000 rials (2,000 toman)`: the rials, then the whole toman (truncated toward zero).
impl fmt::Display for Rials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let toman = self.toman();
        write!(
            f,
            "{} rials ({} toman)",
            grouped(self.0 < 0, self.0.unsigned_abs()),
            grouped(toman < 0, toman.unsigned_abs())
        )
    }
}

/// `n` with a comma between each group of three digits, after a `-` if `negative`.
fn grouped(negative: bool, n: u64) -> String {
    let digits = n.to_string();
    let len = digits.len();
    let mut out = String::with_capacity(len + len / 3 + 1);
    if negative {
        out.push('-');
    }
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (len - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_rials_then_toman() {
        assert_eq!(Rials(20_000).to_string(), "20,000 rials (2,000 toman)");
        assert_eq!(Rials(0).to_string(), "0 rials (0 toman)");
        assert_eq!(
            Rials(1_234_567).to_string(),
            "1,234,567 rials (123,456 toman)"
        );
        assert_eq!(Rials(500).to_string(), "500 rials (50 toman)");
        assert_eq!(Rials(-5).to_string(), "-5 rials (0 toman)");
        assert_eq!(Rials(-20_000).to_string(), "-20,000 rials (-2,000 toman)");
    }

    #[test]
    fn parts() {
        assert_eq!(Rials(20_000).rials_text(), "20,000 rials");
        assert_eq!(Rials(0).rials_text(), "0 rials");
        assert_eq!(Rials(-1_234_567).rials_text(), "-1,234,567 rials");
        assert_eq!(
            Rials(i64::MIN).rials_text(),
            "-9,223,372,036,854,775,808 rials"
        );
        assert_eq!(Rials(20_000).toman_text(), "2,000 toman");
        assert_eq!(Rials(25).toman_text(), "2.5 toman");
        assert_eq!(Rials(-5).toman_text(), "-0.5 toman");
        assert_eq!(Rials(20_005).toman(), 2_000);
    }

    #[test]
    fn checked_arithmetic() {
        assert_eq!(Rials(5).checked_add(Rials(7)), Some(Rials(12)));
        assert_eq!(Rials(5).checked_sub(Rials(7)), Some(Rials(-2)));
        assert_eq!(Rials(i64::MAX).checked_add(Rials(1)), None);
        assert_eq!(Rials(i64::MIN).checked_sub(Rials(1)), None);
    }
}
