//! The validator's integration tests, one binary: a module per concern, fixtures from
//! `mancard_testkit::validator`.
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod attacks;
mod backend_e2e;
mod https;
mod journal_upload;
mod passes;
mod pcsc_e2e;
mod reader_auth;
mod scenarios;
mod torn;
mod vpcd_framing;
mod wallet_e2e;
