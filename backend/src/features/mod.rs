//! The issuer's operations, one module per feature, each an `impl Engine` block over the
//! shared state in [`crate::engine`].

pub mod accounts;
pub mod audit;
pub mod fraud;
pub mod gateway;
pub mod issuance;
pub mod jobs;
pub mod keys;
pub mod operators;
pub mod phone;
pub mod sessions;
pub mod settlement;
pub mod sync;
pub mod topup;
pub mod validators;
pub mod verdicts;
