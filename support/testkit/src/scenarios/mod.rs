//! # Named scenarios: every benchmark's world and step, once
//!
//! Each scenario is a setup (a constructor that builds its world from the other fixtures)
//! and a step (`run_once`) that does the measured thing once and checks it went right: a
//! refused tap, an unsettled record or a failed sync is an error, never a silent fast path.
//! The criterion benches (`benches/`, `validator/benches/`, `backend/benches/`) and
//! `mancard bench` all call these, so the figure in the table and the criterion figure
//! measure the same thing. Peers (the physical floor a scenario is compared with: a raw
//! ring sign or verify, a raw SQLite insert) are in [`peers`], measured beside it.
//!
//! | scenario | setup | step |
//! |---|---|---|
//! | [`WalletTap`] | a provisioned wallet (optionally with taps of history) | SELECT + AUTHORIZE TAP through `process_apdu` |
//! | [`ValidatorDecision`] | a validator with a cached certificate and a 100,000-card deny list | the cached NFC decision |
//! | [`SettlementIngest`] | a backend with riders and signed validator batches | ingest one batch, every record settled |
//! | [`SyncBackend`] / [`SyncRound`] | a backend on loopback; per round a fresh wallet with N pending taps | one `sync()` |
//! | [`PassScenario`] | a provisioned wallet | `boarding_pass` with the SVG and PNG the app gets |
//! | [`PcscTap`] | a wallet on vpcd, a validator on the PC/SC reader | a whole tap through pcscd |
//!
//! Every step returns [`Res`]: the benches turn an error into a failed run.

mod pass;
mod pcsc;
pub mod peers;
mod settlement;
mod sync;
mod validator;
mod wallet;

pub use pass::{PassScenario, PassShown, PASS_PNG_MODULE_PX};
pub use pcsc::PcscTap;
pub use settlement::{PreparedBatch, SettlementIngest};
pub use sync::{SyncBackend, SyncRound};
pub use validator::{deny_list, ValidatorDecision};
pub use wallet::{open_wallet, provisioned_wallet, WalletTap};

/// A scenario's result: any error, with a message that says which step failed.
pub type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;
