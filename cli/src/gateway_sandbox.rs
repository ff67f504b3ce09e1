//! `mancard gateway-sandbox serve --listen ADDR`: the sandbox payment gateway as its own
//! process, speaking the Shaparak-style HTTP protocol the backend's gateway client speaks
//! (token, payment page, callback, verify, settle, reverse), with failure switches set by
//! `--fail` (every payment) or over its admin endpoint:
//!
//! ```text
//! POST /admin/faults   {"token": "<payment token, or absent for all>",
//!                       "faults": {"verify_timeout": true, "settle_fails": true, …}}
//! GET  /admin/payments/{token}      the gateway's record of a payment
//! POST /admin/clock    {"advance_secs": 900}
//! ```
//!
//! Switches: verify-timeout, verify-answer-lost, settle-fails, reversed, callback-never-comes,
//! amount-mismatch, merchant-mismatch, duplicate-ref. The first line on stdout is
//! `mancard gateway-sandbox listening on <url>` (the demo reads the port from it).

use crate::CliResult;
use clap::{Args, Subcommand};
use mancard_backend::gateway_sandbox::{start, Faults, SandboxGatewayConfig};
use std::io::Write;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Args)]
pub struct GatewaySandboxArgs {
    #[command(subcommand)]
    command: GatewaySandboxCommand,
}

#[derive(Subcommand)]
enum GatewaySandboxCommand {
    /// Serve the sandbox payment gateway until SIGTERM or ctrl-c.
    Serve {
        /// Listen address (port 0: an ephemeral port, printed on the first line).
        #[arg(long, default_value = "127.0.0.1:8090")]
        listen: SocketAddr,
        /// Base URL put in payment links (default http://<bound address>).
        #[arg(long)]
        public_url: Option<String>,
        /// Failure switches on for every payment, comma-separated (see the module doc).
        #[arg(long, default_value = "")]
        fail: String,
        /// How long a call that "never answers" hangs, seconds.
        #[arg(long, default_value_t = 120)]
        hang_secs: u64,
    },
}

pub fn run(args: GatewaySandboxArgs) -> CliResult {
    match args.command {
        GatewaySandboxCommand::Serve {
            listen,
            public_url,
            fail,
            hang_secs,
        } => {
            let faults = Faults::parse_list(&fail)?;
            let _ = tracing_subscriber::fmt()
                .with_env_filter(
                    tracing_subscriber::EnvFilter::try_from_default_env()
                        .unwrap_or_else(|_| "info".into()),
                )
                .with_writer(std::io::stderr)
                .try_init();
            let rt = tokio::runtime::Builder::new_multi_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let h = start(SandboxGatewayConfig {
                    listen,
                    public_url,
                    faults,
                    hang: Duration::from_secs(hang_secs),
                })
                .await?;
                let mut out = std::io::stdout();
                writeln!(out, "mancard gateway-sandbox listening on {}", h.url())?;
                out.flush()?;
                mancard_backend::shutdown_signal().await;
                h.stop();
                Ok::<_, Box<dyn std::error::Error>>(())
            })?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
