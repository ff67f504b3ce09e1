//! A stand-in issuer for trying the validator CLI without the backend:
//! writes `issuer.pub` (trust anchor `KEYID:HEX`), `bundle.bin` (signed config bundle) and,
//! with `--wallet DIR`, provisions a wallet (file keystore in DIR/keystore, wallet in
//! DIR/wallet) with a certificate from this issuer.
//!
//! With `--validator-key HEX --validator-id N` it also writes `validator.cert`, the validator
//! certificate to install with `mancard validator install-certificate`.
//!
//! `cargo run -p mancard-validator --example demo_issuer -- OUT_DIR [--wallet DIR] [--deny-wallet]
//! [--validator-key HEX --validator-id N]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard::{FileKeystore, Wallet, WalletConfig};
use mancard_protocol::{FareClass, Pseudonym, PublicKey, SigningKey};
use mancard_testkit::{CertSpec, Issuer};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The command line.
struct Args {
    out: PathBuf,
    wallet_dir: Option<PathBuf>,
    deny_wallet: bool,
    validator: Option<(PublicKey, u32)>,
}

fn parse_args() -> Args {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(
        args.first()
            .expect("usage: demo_issuer OUT_DIR [--wallet DIR]"),
    );
    let wallet_dir = args
        .iter()
        .position(|a| a == "--wallet")
        .and_then(|i| args.get(i + 1))
        .map(PathBuf::from);
    let deny_wallet = args.iter().any(|a| a == "--deny-wallet");
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
    };
    let validator = value("--validator-key").map(|k| {
        let key = PublicKey::from_bytes(&hex::decode(k.trim()).unwrap(), "validator key").unwrap();
        let id = value("--validator-id")
            .expect("--validator-key needs --validator-id")
            .parse()
            .unwrap();
        (key, id)
    });
    Args {
        out,
        wallet_dir,
        deny_wallet,
        validator,
    }
}

/// The issuer key kept in `out/issuer.pk8` (made on first use), id 1, valid a year either
/// side of `now`.
fn load_or_create_issuer(out: &Path, now: i64) -> Issuer {
    let key_path = out.join("issuer.pk8");
    let key = if key_path.exists() {
        SigningKey::from_pkcs8(&std::fs::read(&key_path).unwrap()).unwrap()
    } else {
        let (k, pkcs8) = SigningKey::generate().unwrap();
        std::fs::write(&key_path, &pkcs8[..]).unwrap();
        k
    };
    Issuer {
        key,
        key_id: 1,
        valid_from: now - 365 * 86_400,
        valid_until: now + 365 * 86_400,
    }
}

/// Opens (creating) the wallet in `dir` and installs a certificate from `issuer`; returns the
/// wallet and its pseudonym.
fn provision_wallet(dir: &Path, issuer: &Issuer, now: i64) -> (Wallet, Pseudonym) {
    let ks = Arc::new(FileKeystore::open_or_create(dir.join("keystore")).unwrap());
    let w = Wallet::open(dir.join("wallet"), ks, WalletConfig::default()).unwrap();
    let req = w.prepare_credential_request().unwrap();
    let cert = issuer.issue(
        &req.tap_public_key,
        CertSpec {
            valid_from: now - 3600,
            valid_until: now + 7 * 86_400,
            class: FareClass::Adult,
            first: req.next_counter,
            last: req.next_counter + 49,
            max_amount: 300_000,
        },
    );
    w.install_certificate(cert.encode(), vec![issuer.info()], now)
        .unwrap();
    (w, cert.body.pseudonym)
}

fn main() {
    let args = parse_args();
    std::fs::create_dir_all(&args.out).unwrap();
    let now = chrono::Utc::now().timestamp();
    let issuer = load_or_create_issuer(&args.out, now);
    std::fs::write(
        args.out.join("issuer.pub"),
        format!(
            "{}:{}\n",
            issuer.key_id,
            hex::encode(issuer.key.public_key().as_bytes())
        ),
    )
    .unwrap();
    let mut deny = vec![];
    let mut wallet = None;
    if let Some(dir) = &args.wallet_dir {
        let (w, pseudonym) = provision_wallet(dir, &issuer, now);
        println!("wallet in {} has card {pseudonym}", dir.display());
        if args.deny_wallet {
            deny.push(pseudonym);
        }
        wallet = Some(w);
    }
    let version = u64::try_from(now).unwrap();
    let bundle = issuer.bundle(version, now, deny);
    std::fs::write(args.out.join("bundle.bin"), bundle.encode()).unwrap();
    if let Some(w) = &wallet {
        // The phone answers only readers whose certificates this bundle's issuer keys sign.
        w.install_config(bundle.encode()).unwrap();
    }
    if let Some((key, id)) = &args.validator {
        let cert = issuer.validator_cert_with(*id, key, Vec::new(), now - 3600, now + 365 * 86_400);
        let path = args.out.join("validator.cert");
        std::fs::write(&path, hex::encode(cert.encode())).unwrap();
        println!(
            "wrote {}: mancard validator --data-dir V install-certificate --certificate \"$(cat {})\"",
            path.display(),
            path.display()
        );
    }
    println!(
        "wrote {}/issuer.pub and {}/bundle.bin (version {version})",
        args.out.display(),
        args.out.display()
    );
}
