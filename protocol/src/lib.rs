//! # mancard-protocol
//!
//! The ManCard wire protocol, shared by the wallet (phone), the validator (bus/gate) and the
//! backend (issuer): message types with deterministic, versioned binary encodings, ECDSA P-256
//! signatures with per-structure domain separation, ISO 7816-4 APDUs, the tariff rule, and
//! verification. No I/O. Byte layouts are documented in `docs/protocol.md`.
//!
//! Every decoder is strict: it rejects truncation, trailing bytes, unknown versions, out-of-range
//! values and invalid curve points with a typed [`DecodeError`], and never panics.
//!
//! How a message is built, once for all of them:
//! - [`Message`] (`codec.rs`): tag, version, name and body read/write; the header check,
//!   whole-input decode and trailing-byte check are its provided methods.
//! - [`Signed`] (`signed.rs`): "body ‖ signature" for the certificate, tap batch, config bundle
//!   and boarding pass; signing and the signature check are written there only.
//! - [`list::ListElement`] (`list.rs`): count-prefixed lists (issuer keys, deny list, batch
//!   records, tariff lines) declare their count width, maximum and order once.
//! - [`Rials`] (`money.rs`): the one money type and its one display,
//!   `20,000 rials (2,000 toman)`.

pub mod apdu;
pub mod base45;
pub mod batch;
pub mod cert;
pub mod codec;
pub mod config;
pub mod crypto;
pub mod inspect;
pub mod list;
pub mod log;
pub mod money;
pub mod pass;
pub mod provision;
pub mod signed;
pub mod tap;
pub mod tariff;
pub mod validator_cert;
pub mod verify;

pub use apdu::{
    AuthorizeCommand, AuthorizeResponse, CommandApdu, ResponseApdu, SelectResponse, StatusWord,
    MANCARD_AID,
};
pub use batch::{BatchBody, TapBatch, TapProof, TapRecord, TornRecord};
pub use cert::{CertificateBody, CredentialCertificate, OfflineAllowance, Pseudonym};
pub use codec::{DecodeError, Message};
pub use config::{ConfigBody, DeniedValidator, IssuerKey, TimeRules, ValidatorConfig};
pub use crypto::{sha256, KeyError, PublicKey, Signature, SignatureError, SigningKey};
pub use log::{
    chain_start, prove_fork, verify_chain, ChainError, ChainHead, Fork, NotAFork, WalletLogEntry,
};
pub use money::Rials;
pub use pass::{BoardingPass, PassBody, PASS_TEXT_PREFIX};
pub use signed::{Signed, SignedBody};
pub use tap::{ChallengeBody, TapAuthorization, TapChallenge};
pub use tariff::{FareClass, FareKind, FareQuote, LineFare, RideState, Tariff, TariffError};
pub use validator_cert::{ValidatorCertBody, ValidatorCertificate};
pub use verify::{
    authorized_amount, check_pass_time, check_validator_standing, check_validity,
    verify_boarding_pass, verify_certificate_signature, verify_challenge, verify_config,
    verify_nfc_tap, verify_validator_certificate, VerifiedCertificate, VerifyError,
};

/// The protocol version this crate speaks: every message header carries it, and decoders
/// refuse any other (v1 included) with [`DecodeError::UnknownVersion`].
pub const PROTOCOL_VERSION: u8 = 2;

/// Default lifetime of a QR boarding pass, seconds.
pub const DEFAULT_PASS_LIFETIME_SECS: u16 = 60;
/// Default clock skew a QR reader tolerates on either side of a pass window, seconds (the
/// signed config bundle's [`TimeRules`] is what verifiers use).
pub const DEFAULT_PASS_SKEW_SECS: i64 = 30;
/// Most AUTHORIZE TAPs a phone answers in a minute (a rogue reader cannot drain it faster).
pub const MAX_AUTHORIZATIONS_PER_MINUTE: u32 = 6;
