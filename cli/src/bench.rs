//! `mancard bench`: built by the main-job issue.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct BenchArgs {}

pub fn run(_args: BenchArgs) -> CliResult {
    Err("`mancard bench` is not available in this build yet".into())
}
