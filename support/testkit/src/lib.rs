//! # mancard-testkit: every fixture, once
//!
//! Fixtures are made by code, never by hand, and live here only: the crates' integration
//! tests (`tests/it/` of each crate), the criterion benches and `mancard bench` all build
//! their worlds from these modules, so a scenario measured by a benchmark is the scenario the
//! tests check. Nothing here is shipped to a phone: the wallet, validator and backend crates
//! take this crate as a dev-dependency only; the CLI links it for `mancard bench` (so it is in
//! the desktop `mancard` binary, never in the phone's library or a validator's).
//!
//! A fixture may `unwrap`: a fixture that cannot be built is a broken test, not a runtime
//! error, and a panic with its message is the clearest report. Library code of the product
//! crates never may.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod backend;
pub mod issuer;
pub mod online;
pub mod proof;
pub mod protocol;
pub mod proxy;
pub mod scenarios;
pub mod time;
pub mod tls;
pub mod validator;
pub mod wallet;

pub use issuer::{CertSpec, Issuer};
pub use time::T0;
