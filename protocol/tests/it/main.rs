//! The protocol crate's integration tests, one binary. Fixtures (fixed keys, deterministic
//! signatures, certificates, challenges, passes, batches, configs) come from
//! `mancard_testkit::protocol`.
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]

mod decoders_prop;
mod sizes;
mod vectors;
