//! The fixed instants every fixture dates itself from.

/// 2026-11-28 08:00 Iran time (04:30 UTC), UTC seconds.
pub const T0: i64 = 1_795_840_200;

/// One day, seconds.
pub const DAY: i64 = 86_400;
