//! The protocol crate's integration tests, one binary. Fixtures (fixed keys, deterministic
//! signatures, certificates, challenges, passes, batches, configs) come from
//! `mancard_testkit::protocol`.

mod decoders_prop;
mod sizes;
mod vectors;
