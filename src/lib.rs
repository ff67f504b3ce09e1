//! # mancard: the wallet core
//!
//! The Rust core that runs inside the rider's Android/iOS app: sealed keys, the credential
//! store, NFC host card emulation, QR boarding passes and an offline ledger. Everything works
//! offline; network sync and the uniffi FFI are layered on top later. The public API uses owned
//! types (`Vec<u8>`, `String`) and one small error enum, [`WalletError`].
//!
//! - [`Wallet`]: opens one wallet (a data directory with `wallet.sqlite3` and `counters.bin`).
//! - [`Wallet::process_apdu`]: the HCE entry point, a total function (any bytes → a response).
//!   Protocol v2: SELECT reveals only a random session value; the phone signs only for a reader
//!   that proved itself (an issuer-signed validator certificate, a challenge signed for this
//!   session, a sane clock and fare, a rate limit), on the signed tap chain.
//! - [`Wallet::install_config`]: the issuer-signed config bundle (issuer keys, validator deny
//!   list, time rules, tariff) the tap path judges readers by.
//! - [`Wallet::boarding_pass`]: a signed QR pass with its renderings.
//! - [`PlatformKeystore`]: the phone's key storage. `FileKeystore`, keys in plain files for the
//!   desktop and tests (integrity only, docs/keys.md), exists only with the `file-keystore`
//!   cargo feature, which no phone build enables.
//!
//! Storage and counter durability are explained in `docs/adr/0002-wallet-storage-and-counters.md`.
//! Secrets (tap key, sealing key) are never logged, printed or returned.

mod authorize;
mod bundle;
mod counters;
mod error;
mod ffi;
#[cfg(feature = "file-keystore")]
mod file_keystore;
mod files;
mod hce;
mod keystore;
mod lifecycle;
mod maintenance;
pub mod money;
pub mod online;
mod pass;
pub mod qr;
mod readers;
mod store;
mod sync_store;
pub mod text;
mod types;
mod util;
mod views;
mod wallet;

pub use error::WalletError;
#[cfg(feature = "file-keystore")]
pub use file_keystore::FileKeystore;
pub use keystore::{KeystoreError, PlatformKeystore};
pub use mancard_l10n::Lang;
pub use online::SessionEntry;
pub use online::{
    AccountInfo, CodeSent, OnlineError, OnlineOptions, OnlineState, OnlineWallet, ProvisionReport,
    SessionInfo, SyncReport, TopUpIntent, TopUpStatus,
};
pub use qr::QrMatrix;
pub use store::schema::SCHEMA_VERSION;
pub use sync_store::TapSettlement;
pub use types::{
    BoardingPassQr, CredentialRequest, CredentialState, HistoryItem, HistoryKind, HistoryPage,
    HistoryStatus, IssuerKeyInfo, LedgerView, WalletConfig, WalletStats, WalletStatus,
};
pub use util::now_utc;
pub use wallet::{format_local_time, Wallet, COUNTER_FILE, DB_FILE};

/// Compile-time check that the wallet can be shared between the HCE, UI and sync threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wallet>();
    assert_send_sync::<std::sync::Arc<dyn PlatformKeystore>>();
};

uniffi::setup_scaffolding!();
