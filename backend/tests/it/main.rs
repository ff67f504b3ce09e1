//! The backend's integration tests, one binary: a real backend over HTTP on a loopback port
//! with a real SQLite file, driven by the harness in `mancard_testkit::backend`.
// Test functions may be long: the 80-line rule is for library code (ARCHITECTURE.md).
#![allow(clippy::too_many_lines)]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod concurrency;
mod edge;
mod flows;
mod fraud;
mod gateway;
mod instances;
mod openapi;
mod operators;
mod plans;
mod protocol_v2;
mod rating;
mod sessions;
mod settlement_v2;
