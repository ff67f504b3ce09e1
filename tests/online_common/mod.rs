//! Kept only for `benches/sync.rs`, which includes this file by path: the online fixtures now
//! live in `mancard-testkit` (`online`, `proxy`). Remove once the bench imports them itself.

pub use mancard_testkit::online::*;
