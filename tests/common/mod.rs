//! Shared fixtures for the wallet integration tests: an issuer, a wallet in a temp dir, and a
//! validator-side helper. Fixtures are made by code.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use mancard::{IssuerKeyInfo, SoftwareKeystore, Wallet, WalletConfig};
use mancard_protocol::{
    CertificateBody, CommandApdu, CredentialCertificate, FareClass, IssuerKey, OfflineAllowance,
    Pseudonym, PublicKey, ResponseApdu, SelectResponse, SigningKey, StatusWord, TapAuthorization,
    TapChallenge, VerifiedCertificate,
};
use std::path::Path;
use std::sync::Arc;

/// 2026-11-28 08:00 Iran time.
pub const T0: i64 = 1_795_840_200;

pub struct Issuer {
    pub key: SigningKey,
    pub info: IssuerKeyInfo,
}

impl Issuer {
    pub fn new(key_id: u32) -> Self {
        let (key, _) = SigningKey::generate().unwrap();
        let info = IssuerKeyInfo {
            key_id,
            public_key: key.public_key().as_bytes().to_vec(),
            valid_from: T0 - 365 * 86_400,
            valid_until: T0 + 365 * 86_400,
        };
        Self { key, info }
    }

    pub fn protocol_key(&self) -> IssuerKey {
        IssuerKey {
            key_id: self.info.key_id,
            public_key: self.key.public_key(),
            valid_from: self.info.valid_from,
            valid_until: self.info.valid_until,
        }
    }

    pub fn issue(&self, tap_pk: &[u8], spec: CertSpec) -> CredentialCertificate {
        CertificateBody {
            issuer_key_id: self.info.key_id,
            pseudonym: Pseudonym::random().unwrap(),
            tap_public_key: PublicKey::from_bytes(tap_pk, "tap").unwrap(),
            valid_from: spec.valid_from,
            valid_until: spec.valid_until,
            fare_class: spec.class,
            allowance: OfflineAllowance {
                counter_first: spec.first,
                counter_last: spec.last,
                max_amount: spec.max_amount,
            },
        }
        .sign(&self.key)
        .unwrap()
    }
}

#[derive(Clone, Copy)]
pub struct CertSpec {
    pub valid_from: i64,
    pub valid_until: i64,
    pub class: FareClass,
    pub first: u32,
    pub last: u32,
    pub max_amount: i64,
}

impl Default for CertSpec {
    fn default() -> Self {
        Self {
            valid_from: T0 - 86_400,
            valid_until: T0 + 7 * 86_400,
            class: FareClass::Adult,
            first: 0,
            last: 100_000,
            max_amount: 10_000_000,
        }
    }
}

pub fn keystore(dir: &Path) -> Arc<SoftwareKeystore> {
    Arc::new(SoftwareKeystore::open_or_create(dir.join("keystore")).unwrap())
}

pub fn open(dir: &Path) -> Wallet {
    open_with(dir, WalletConfig::default())
}

pub fn open_with(dir: &Path, config: WalletConfig) -> Wallet {
    Wallet::open(dir.join("wallet"), keystore(dir), config).unwrap()
}

/// Requests, issues and installs a certificate; returns it.
pub fn provision(w: &Wallet, issuer: &Issuer, spec: CertSpec) -> CredentialCertificate {
    let req = w.prepare_credential_request().unwrap();
    let cert = issuer.issue(&req.tap_public_key, spec);
    w.install_certificate(cert.encode(), vec![issuer.info.clone()], T0)
        .unwrap();
    cert
}

pub fn challenge(n: u64, fare: i64, time: i64) -> TapChallenge {
    let mut nonce = [0u8; 16];
    nonce[..8].copy_from_slice(&n.to_be_bytes());
    nonce[8..].copy_from_slice(&(n ^ 0xA5A5_A5A5).to_be_bytes());
    TapChallenge {
        validator_id: 7,
        nonce,
        validator_time: time,
        line_id: 1,
        fare,
    }
}

pub fn send(w: &Wallet, cmd: &CommandApdu) -> ResponseApdu {
    ResponseApdu::parse(&w.process_apdu(cmd.encode().unwrap())).unwrap()
}

/// One NFC exchange as a validator does it: SELECT, READ CERTIFICATE, AUTHORIZE TAP.
pub fn tap(
    w: &Wallet,
    ch: &TapChallenge,
) -> Result<(CredentialCertificate, TapAuthorization), StatusWord> {
    let sel = send(w, &CommandApdu::select_mancard());
    if sel.sw != StatusWord::Ok {
        return Err(sel.sw);
    }
    SelectResponse::decode(&sel.data).unwrap();
    let rc = send(w, &CommandApdu::read_certificate());
    if rc.sw != StatusWord::Ok {
        return Err(rc.sw);
    }
    let cert = CredentialCertificate::decode(&rc.data).unwrap();
    let a = send(w, &CommandApdu::authorize_tap(ch));
    w.deactivated();
    if a.sw != StatusWord::Ok {
        return Err(a.sw);
    }
    Ok((cert, TapAuthorization::decode(&a.data).unwrap()))
}

/// The validator's verification of a tap.
pub fn verify(
    issuer: &Issuer,
    cert: &CredentialCertificate,
    ch: &TapChallenge,
    a: &TapAuthorization,
) {
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.protocol_key()]).unwrap();
    vc.verify_tap(ch, a).unwrap();
}
