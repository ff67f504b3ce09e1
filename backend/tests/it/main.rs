//! The backend's integration tests, one binary: a real backend over HTTP on a loopback port
//! with a real SQLite file, driven by the harness in `mancard_testkit::backend`.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod concurrency;
mod flows;
