//! `mancard demo`: built by the main-job issue.

use crate::CliResult;
use clap::Args;

#[derive(Args)]
pub struct DemoArgs {}

pub fn run(_args: DemoArgs) -> CliResult {
    Err("`mancard demo` is not available in this build yet".into())
}
