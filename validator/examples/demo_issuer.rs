//! A stand-in issuer for trying the validator CLI without the backend:
//! writes `issuer.pub` (trust anchor `KEYID:HEX`), `bundle.bin` (signed config bundle) and,
//! with `--wallet DIR`, provisions a wallet (software keystore in DIR/keystore, wallet in
//! DIR/wallet) with a certificate from this issuer.
//!
//! `cargo run -p mancard-validator --example demo_issuer -- OUT_DIR [--wallet DIR] [--deny-wallet]`
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use mancard::{IssuerKeyInfo, SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::{
    CertificateBody, ConfigBody, FareClass, IssuerKey, OfflineAllowance, Pseudonym, PublicKey,
    SigningKey, Tariff,
};
use std::path::PathBuf;
use std::sync::Arc;

fn main() {
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
    std::fs::create_dir_all(&out).unwrap();
    let key_path = out.join("issuer.pk8");
    let issuer = if key_path.exists() {
        SigningKey::from_pkcs8(&std::fs::read(&key_path).unwrap()).unwrap()
    } else {
        let (k, pkcs8) = SigningKey::generate().unwrap();
        std::fs::write(&key_path, &pkcs8[..]).unwrap();
        k
    };
    let key_id = 1;
    let now = chrono::Utc::now().timestamp();
    std::fs::write(
        out.join("issuer.pub"),
        format!("{key_id}:{}\n", hex::encode(issuer.public_key().as_bytes())),
    )
    .unwrap();
    let ik = IssuerKey {
        key_id,
        public_key: issuer.public_key(),
        valid_from: now - 365 * 86_400,
        valid_until: now + 365 * 86_400,
    };
    let mut deny = vec![];
    if let Some(dir) = &wallet_dir {
        let ks = Arc::new(SoftwareKeystore::open_or_create(dir.join("keystore")).unwrap());
        let w = Wallet::open(dir.join("wallet"), ks, WalletConfig::default()).unwrap();
        let req = w.prepare_credential_request().unwrap();
        let pseudonym = Pseudonym::random().unwrap();
        let cert = CertificateBody {
            issuer_key_id: key_id,
            pseudonym,
            tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap key").unwrap(),
            valid_from: now - 3600,
            valid_until: now + 7 * 86_400,
            fare_class: FareClass::Adult,
            allowance: OfflineAllowance {
                counter_first: req.next_counter,
                counter_last: req.next_counter + 49,
                max_amount: 300_000,
            },
        }
        .sign(&issuer)
        .unwrap();
        w.install_certificate(
            cert.encode(),
            vec![IssuerKeyInfo {
                key_id,
                public_key: issuer.public_key().as_bytes().to_vec(),
                valid_from: ik.valid_from,
                valid_until: ik.valid_until,
            }],
            now,
        )
        .unwrap();
        println!("wallet in {} has card {pseudonym}", dir.display());
        if deny_wallet {
            deny.push(pseudonym);
        }
    }
    let version = u64::try_from(now).unwrap();
    let bundle = ConfigBody {
        bundle_version: version,
        issued_at: now,
        signer_key_id: key_id,
        issuer_keys: vec![ik],
        deny_list: deny,
        tariff: Tariff::urmia_default(),
    }
    .sign(&issuer)
    .unwrap();
    std::fs::write(out.join("bundle.bin"), bundle.encode()).unwrap();
    println!(
        "wrote {}/issuer.pub and {}/bundle.bin (version {version})",
        out.display(),
        out.display()
    );
}
