//! # mancard-backend
//!
//! The ManCard issuer as an HTTP server: phone-number accounts, credential issuance and
//! replenishment, top-up through a (sandbox) Shaparak-style payment gateway, wallet sync,
//! validator config bundles and batch upload, settlement with the shared tariff, fraud
//! detection, and an append-only ledger. Endpoints are listed in `docs/api.md` and served as
//! OpenAPI at `/openapi.json`; storage and settlement design in `docs/adr/0003-backend-*.md`.
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

pub mod api;
pub mod config;
pub mod engine;
pub mod error;
pub mod keys;
pub mod model;
pub mod repo;
pub mod server;
pub mod settle;

pub use config::{BackendConfig, Policy};
pub use engine::Engine;
pub use error::{ApiError, StoreError};
pub use server::{shutdown_signal, Backend, BackendHandle, ServerError};
