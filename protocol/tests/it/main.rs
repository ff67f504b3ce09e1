//! The protocol crate's integration tests, one binary. Fixtures (fixed keys, deterministic
//! signatures, certificates, validator certificates, challenges, passes, batches, configs, log
//! chains) come from `mancard_testkit::protocol`.
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]

mod attacks;
mod bit_flips;
mod decoders_prop;
mod messages;
mod sizes;
mod torn;
mod vectors;
mod wycheproof_ecdsa;
