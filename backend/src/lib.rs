//! # mancard-backend
//!
//! The ManCard issuer as an HTTP server: phone-number accounts, credential issuance and
//! replenishment, top-up through a (sandbox) Shaparak-style payment gateway, wallet sync,
//! validator config bundles and batch upload, settlement with the shared tariff, fraud
//! detection, and an append-only ledger. Endpoints are listed in `docs/api.md` and served as
//! OpenAPI at `/openapi.json`; storage and settlement design in `docs/adr/0003-backend-*.md`.
//!
//! ## Where is…
//!
//! - the issuer's operations: [`features`], one module per feature (accounts, issuance,
//!   top-up, the sandbox gateway, settlement, wallet sync, validators, keys, audit), each an
//!   `impl` block over the shared state in [`engine`];
//! - the checks of a tap's evidence and the fare rule (pure, parallel): [`settle`];
//! - SQL: only in [`store`], one file per aggregate, read through a `Reader`, written through
//!   a `Writer`; the schema and its migrations in `store/schema.rs`;
//! - HTTP: [`http`], one router per resource; status codes and problem codes are chosen only
//!   in `http/problem.rs`, from the domain [`Error`] (which knows no HTTP);
//! - the JSON contract: the `mancard_api` crate (types, statuses, problem codes, endpoints);
//! - issuer keys (a 0600 file next to the database): [`keys`].
//!
//! ```no_run
//! # async fn demo() -> Result<(), mancard_backend::ServerError> {
//! let handle = mancard_backend::Backend::start(
//!     mancard_backend::BackendConfig::sandbox("/tmp/mancard.sqlite"),
//! ).await?;
//! println!("listening on {}", handle.url());
//! handle.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod config;
pub mod edge;
pub mod engine;
pub mod error;
pub mod features;
pub mod gateway_sandbox;
pub mod http;
pub mod ids;
pub mod keys;
pub mod operators;
pub mod providers;
pub mod server;
pub mod settle;
pub mod store;

pub use config::{BackendConfig, DatabaseUrl, Policy, DEFAULT_COUNTERS_PER_CERT};
pub use edge::{EdgeLimits, Rate};
pub use engine::Engine;
pub use error::{Error, Result, StoreError};
pub use features::accounts::normalize_phone;
pub use features::sessions::{ProvenRequest, SessionCtx};
pub use features::validators::SignedBundle;
pub use ids::{AccountId, BatchId, CertHash, DeviceId, PseudonymBytes, TapRef};
pub use server::{shutdown_signal, Backend, BackendHandle, ServerError};
pub use store::db::statements_on_this_thread;
pub use store::{Purged, SessionRow};
