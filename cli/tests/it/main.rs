//! The CLI's integration tests, one binary: the built `mancard` run end to end.
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod apdu_session;
mod backend_postgres;
mod demo;
mod demo_attacks;
mod fraud;
mod inspect;
mod load;
mod operators;
mod providers;
mod validator;
mod validator_lang;
mod wallet_files;
