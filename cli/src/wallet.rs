//! `mancard wallet`: built by its own issue; until then it says so.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct WalletArgs {
    /// Arguments (this command is not built yet).
    rest: Vec<String>,
}

pub fn run(_args: WalletArgs) -> CliResult {
    Err("`mancard wallet` is not available in this build yet".into())
}
