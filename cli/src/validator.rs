//! `mancard validator`: built by its own issue; until then it says so.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct ValidatorArgs {
    /// Arguments (this command is not built yet).
    rest: Vec<String>,
}

pub fn run(_args: ValidatorArgs) -> CliResult {
    Err("`mancard validator` is not available in this build yet".into())
}
