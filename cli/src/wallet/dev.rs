//! `mancard wallet dev-issue`: a certificate and a config bundle from a local debugging issuer
//! (never a real one), for trying the wallet without a backend.

use super::{open, print_status, Done};
use mancard::IssuerKeyInfo;
use mancard_protocol::{
    CertificateBody, ConfigBody, FareClass, IssuerKey, OfflineAllowance, Pseudonym, PublicKey,
    SigningKey, Tariff, TimeRules, ValidatorConfig,
};
use std::path::Path;

/// `dev-issue`: a certificate from the local debugging issuer (never a real one).
pub(super) fn dev_issue(
    dir: &Path,
    class: &str,
    amount: i64,
    counters: u32,
    days: i64,
    now: i64,
) -> Done {
    let w = open(dir)?;
    let class = FareClass::parse(class).ok_or_else(|| format!("unknown fare class {class:?}"))?;
    let issuer = dev_issuer(dir)?;
    let req = w.prepare_credential_request()?;
    let cert = CertificateBody {
        issuer_key_id: 1,
        pseudonym: Pseudonym::random()?,
        tap_public_key: PublicKey::from_bytes(&req.tap_public_key, "tap public key")?,
        valid_from: now - 60,
        valid_until: now + days.max(1) * 86_400,
        fare_class: class,
        allowance: OfflineAllowance {
            counter_first: req.next_counter,
            counter_last: req.next_counter.saturating_add(counters.max(1) - 1),
            max_amount: amount,
        },
    }
    .sign(&issuer)?;
    let key = IssuerKeyInfo {
        key_id: 1,
        public_key: issuer.public_key().as_bytes().to_vec(),
        valid_from: i64::MIN,
        valid_until: i64::MAX,
    };
    w.install_certificate(cert.encode(), vec![key], now)?;
    println!("certificate (hex): {}", hex::encode(cert.encode()));
    let bundle = dev_bundle(&issuer, now)?;
    match w.install_config(bundle.encode()) {
        Ok(()) => println!("config bundle (hex): {}", hex::encode(bundle.encode())),
        Err(e) => println!("warning: the debugging config bundle was not installed: {e}"),
    }
    print_status(&w, now)
}

/// A config bundle signed by the local debugging issuer (key id 1): its key, no deny list,
/// the default time rules and the Urmia tariff; versioned by the clock so a newer one always
/// replaces an older one.
fn dev_bundle(
    issuer: &SigningKey,
    now: i64,
) -> Result<ValidatorConfig, Box<dyn std::error::Error>> {
    Ok(ConfigBody {
        bundle_version: u64::try_from(now).unwrap_or(0),
        issued_at: now,
        signer_key_id: 1,
        issuer_keys: vec![IssuerKey {
            key_id: 1,
            public_key: issuer.public_key(),
            valid_from: i64::MIN,
            valid_until: i64::MAX,
        }],
        deny_list: Vec::new(),
        validator_deny_list: Vec::new(),
        time_rules: TimeRules::default(),
        tariff: Tariff::urmia_default(),
    }
    .sign(issuer)?)
}

/// The local debugging issuer key: created once (mode 0600) in the data directory.
fn dev_issuer(dir: &Path) -> Result<SigningKey, Box<dyn std::error::Error>> {
    let path = dir.join("dev-issuer.pk8");
    if path.exists() {
        return Ok(SigningKey::from_pkcs8(&std::fs::read(&path)?)?);
    }
    let (key, pkcs8) = SigningKey::generate()?;
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    use std::io::Write;
    opts.open(&path)?.write_all(&pkcs8)?;
    std::fs::write(
        dir.join("dev-issuer.pub"),
        format!("1:{}\n", hex::encode(key.public_key().as_bytes())),
    )?;
    Ok(key)
}
