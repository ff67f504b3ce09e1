//! The CLI's integration tests, one binary: the built `mancard` run end to end.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod demo;
mod inspect;
