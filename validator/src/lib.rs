//! # mancard-validator
//!
//! The reference software of the ManCard validator (the device on the bus or gate): decides in
//! microseconds with public keys only, works offline for days, loses no tap.
//!
//! - [`Engine`]: verified config bundle, certificate cache, replay cache, ride states, fares.
//! - [`Validator`]: the device: engine + SQLite [`Journal`] + its P-256 key, its issuer-signed
//!   validator certificate ([`Validator::install_certificate`]) + clock; mutually
//!   authenticated NFC taps over a [`CardChannel`] ([`Validator::tap_nfc`], in `nfc.rs`), QR
//!   passes under the bundle's time rules ([`Validator::verify_qr`]), signed exactly-once
//!   uploads ([`Validator::upload`]). A tap whose answer was lost is journaled as torn: the
//!   reader repeats its challenge to the next cards within the torn window (the phone that
//!   signed it answers the same authorization: one tap, one counter), and uploads it as a
//!   `TornRecord` (the gate did not open) once the window has passed.
//! - Readers: [`FnChannel`] (in-process), [`pcsc_reader::PcscReader`] (PC/SC via pcscd),
//!   and the card side [`vpcd::VpcdCard`] (a card emulator over vsmartcard's vpcd).
//! - [`http`]: a minimal HTTP/1.1 client (`http://` and `https://` with rustls) for
//!   `sync-config` and `upload`.

pub mod cache;
pub mod certificate;
pub mod channel;
pub mod decision;
pub mod device;
pub mod engine;
pub mod http;
pub mod journal;
mod nfc;
pub mod pcsc_reader;
pub mod vpcd;

pub use certificate::CertificateError;
pub use channel::{CardChannel, ChannelError, FnChannel};
pub use decision::{money, Acceptance, Decision, Medium, Refusal, TapOutcome};
pub use device::{system_clock, Clock, UploadReport, Validator, ValidatorError, ValidatorStatus};
pub use engine::{CheckedConfig, ConfigError, ConfigInstall, Engine, PassCheck, TrustAnchor};
pub use journal::{
    Journal, JournalCounts, JournalError, JournaledRide, RecentDecision, SealedBatch, TornTap,
    DEFAULT_TORN_WINDOW_SECS,
};
pub use nfc::MAX_TORN_REPEATS;
