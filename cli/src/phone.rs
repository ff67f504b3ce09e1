//! `mancard phone`: presents a wallet as a contactless card on vsmartcard's virtual reader.
//! Built by the validator issue; until then it says so.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct PhoneArgs {
    /// Arguments (this command is not built yet).
    rest: Vec<String>,
}

pub fn run(_args: PhoneArgs) -> CliResult {
    Err("`mancard phone` is not available in this build yet".into())
}
