//! `mancard inspect`: decode any protocol message and print its fields, like `openssl x509 -text`.

use crate::CliResult;
use clap::Args;
use mancard_protocol::inspect::decode_any;
use mancard_protocol::{IssuerKey, PublicKey};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Args)]
pub struct InspectArgs {
    /// Hex (spaces and colons allowed) or a pass text `MC1:...`; `-` reads standard input.
    input: String,
    /// Issuer public key file: hex of the 65-byte uncompressed key, optionally `KEYID:HEX`.
    /// Verifies the issuer signature of a certificate, pass or config bundle.
    #[arg(long)]
    issuer_key: Option<PathBuf>,
}

pub fn run(args: InspectArgs) -> CliResult {
    let input = if args.input == "-" {
        std::io::read_to_string(std::io::stdin())?
    } else {
        args.input
    };
    let msg = decode_any(&input).map_err(|e| format!("cannot decode input: {e}"))?;
    for line in msg.describe() {
        println!("{line}");
    }
    if let Some(path) = args.issuer_key {
        let text = std::fs::read_to_string(&path)
            .map_err(|e| format!("cannot read issuer key {}: {e}", path.display()))?;
        let key = parse_issuer_key(text.trim(), msg.issuer_key_id())?;
        match msg.verify_issuer(&key) {
            None => {
                println!(
                    "verification: not applicable ({} is not issuer-signed)",
                    msg.kind()
                );
            }
            Some(Ok(())) => println!("verification: OK (issuer key {})", key.key_id),
            Some(Err(e)) => {
                println!("verification: FAILED: {e}");
                return Ok(ExitCode::from(1));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse_issuer_key(
    text: &str,
    message_key_id: Option<u32>,
) -> Result<IssuerKey, Box<dyn std::error::Error>> {
    let (id, hexkey) = match text.split_once(':') {
        Some((id, k)) => (Some(id.trim().parse::<u32>()?), k.trim()),
        None => (None, text),
    };
    let bytes = hex::decode(hexkey).map_err(|e| format!("issuer key is not hex: {e}"))?;
    let public_key = PublicKey::from_bytes(&bytes, "issuer key")?;
    Ok(IssuerKey {
        // Without an id, accept whichever id the message names.
        key_id: id.or(message_key_id).unwrap_or(0),
        public_key,
        valid_from: i64::MIN,
        valid_until: i64::MAX,
    })
}
