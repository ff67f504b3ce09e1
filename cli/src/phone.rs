//! `mancard phone`: presents a wallet as a contactless card on vsmartcard's virtual reader.
//!
//! The phone connects to vpcd (a TCP client; `Virtual PCD 00 00` listens on 127.0.0.1:35963),
//! answers each C-APDU with the wallet core's `process_apdu`, and calls `deactivated()` when
//! the reader powers the field off or resets it. See `mancard_validator::vpcd`.

use crate::CliResult;
use clap::Args;
use mancard::{FileKeystore, Wallet, WalletConfig};
use mancard_validator::vpcd::{run_card, FnCard, ServeEnd, VpcdCard, DEFAULT_VPCD_ADDR};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

#[derive(Args)]
pub struct PhoneArgs {
    /// The wallet's data directory (as used by `mancard wallet`).
    #[arg(long)]
    data_dir: PathBuf,
    /// vpcd address (reader `Virtual PCD 00 00` is 35963, `00 01` is 35964).
    #[arg(long, default_value = DEFAULT_VPCD_ADDR)]
    vpcd: String,
    /// Lift the phone this many milliseconds after each tap (the field dropped) and present
    /// it again after as long; without it the phone stays on the reader.
    #[arg(long)]
    lift_after_ms: Option<u64>,
    /// Exit after the first tap (the first field drop that followed APDUs).
    #[arg(long)]
    once: bool,
}

/// Opens the wallet in `dir`: the wallet database in `dir` or `dir/wallet`, the software
/// keystore in `dir/keystore` or `dir`. Never creates one.
pub fn open_wallet(dir: &Path) -> Result<Wallet, Box<dyn std::error::Error>> {
    let wallet_dir = [dir.to_path_buf(), dir.join("wallet")]
        .into_iter()
        .find(|d| d.join(mancard::DB_FILE).exists())
        .ok_or_else(|| {
            format!(
                "no wallet in {} (create one with `mancard wallet`)",
                dir.display()
            )
        })?;
    let ks_dir = [
        dir.join("keystore"),
        dir.to_path_buf(),
        wallet_dir.join("keystore"),
    ]
    .into_iter()
    .find(|d| d.join("binding-key.pk8").exists())
    .ok_or_else(|| {
        format!(
            "no keystore in {} or {}/keystore",
            dir.display(),
            dir.display()
        )
    })?;
    let ks = FileKeystore::open(&ks_dir)
        .map_err(|e| format!("cannot open the keystore in {}: {e}", ks_dir.display()))?;
    let w = Wallet::open(&wallet_dir, Arc::new(ks), WalletConfig::default())
        .map_err(|e| format!("cannot open the wallet in {}: {e}", wallet_dir.display()))?;
    Ok(w)
}

pub fn run(args: PhoneArgs) -> CliResult {
    let wallet = Arc::new(open_wallet(&args.data_dir)?);
    if wallet.config_version().is_none() {
        eprintln!(
            "warning: this wallet has no config bundle: it answers no reader (69C1) until it \
             syncs or `mancard wallet install-config`"
        );
    }
    let (w1, w2) = (wallet.clone(), wallet.clone());
    let mut card = FnCard {
        on_apdu: move |apdu: &[u8]| w1.process_apdu(apdu.to_vec()),
        on_deactivated: move || w2.deactivated(),
    };
    let stop = AtomicBool::new(false);
    if args.once {
        let mut conn =
            VpcdCard::connect_retry(&args.vpcd, Duration::from_secs(10)).map_err(|e| {
                format!(
                    "cannot reach vpcd at {}: {e} (scripts/pcsc-up.sh)",
                    args.vpcd
                )
            })?;
        eprintln!("phone presented on vpcd {}: waiting for one tap", args.vpcd);
        let lift = Duration::from_millis(args.lift_after_ms.unwrap_or(50));
        let end = conn.serve(&mut card, &stop, Some(lift))?;
        eprintln!(
            "{} APDU(s) answered ({})",
            conn.stats.apdus,
            match end {
                ServeEnd::Lifted => "tap done",
                ServeEnd::Closed => "vpcd closed",
                ServeEnd::Stopped => "stopped",
            }
        );
        return Ok(if conn.stats.apdus > 0 {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        });
    }
    let lift = args.lift_after_ms.map(Duration::from_millis);
    let stats = run_card(&args.vpcd, &mut card, &stop, lift, |e| eprintln!("{e}"))?;
    eprintln!("{} APDU(s) answered", stats.apdus);
    Ok(ExitCode::SUCCESS)
}
