//! The wallet core's integration tests: one binary, a module per concern. Fixtures come from
//! `mancard-testkit` (`wallet` for offline wallets and NFC exchanges, `online` for the
//! in-process backend, `proxy` for the fault-injecting and TLS proxies).
//!
//! `crash` and `online_concurrency` re-run this binary as a child process
//! (`--ignored --exact crash::crash_child` / `online_concurrency::sync_child`).
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod apdu;
mod config;
mod counters;
mod crash;
mod files;
mod history;
mod keys;
mod language;
mod lost_phone;
mod nfc;
mod online_adjustments;
mod online_concurrency;
mod online_faults;
mod online_flows;
mod online_tls;
mod pass;
mod reader;
mod storage;
mod support;
