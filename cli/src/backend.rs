//! `mancard backend`: built by its own issue; until then it says so.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct BackendArgs {
    /// Arguments (this command is not built yet).
    rest: Vec<String>,
}

pub fn run(_args: BackendArgs) -> CliResult {
    Err("`mancard backend` is not available in this build yet".into())
}
