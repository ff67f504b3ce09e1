//! Wallet fixtures: a wallet in a directory over the file keystore, a provisioned
//! certificate with the issuer's config bundle, the phone's clock, and a test [`Reader`]: the
//! validator's side of the v2 NFC exchange (SELECT, AUTHORIZE TAP with a validator-signed
//! challenge and the validator certificate, the re-quote for another fare class, READ
//! CERTIFICATE) against `Wallet::process_apdu`, with its verification.
#![allow(clippy::indexing_slicing)] // fixtures: a slice out of range is a broken test

use crate::issuer::{CertSpec, Issuer};
use crate::scenarios::Res;
use crate::time::T0;
use mancard::{FileKeystore, Wallet, WalletConfig};
use mancard_protocol::{
    AuthorizeResponse, ChallengeBody, CommandApdu, CredentialCertificate, FareClass, ResponseApdu,
    RideState, SelectResponse, SigningKey, StatusWord, TapAuthorization, TapChallenge, Tariff,
    ValidatorCertificate, ValidatorConfig, VerifiedCertificate,
};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The validator id of [`Reader::new`]'s default reader in most tests.
pub const READER_ID: u32 = 7;

/// The file keystore in `dir/keystore` (created on first use).
pub fn keystore(dir: &Path) -> Arc<FileKeystore> {
    try_keystore(dir).unwrap()
}

/// [`keystore`], an error if it cannot be opened or created.
pub fn try_keystore(dir: &Path) -> Res<Arc<FileKeystore>> {
    Ok(Arc::new(FileKeystore::open_or_create(
        dir.join("keystore"),
    )?))
}

/// The production configuration speaking English: the tests that read the wallet's sentences
/// read them in English (the default is Persian; `mancard_l10n` and the wallet's language tests
/// check the other languages).
pub fn english() -> WalletConfig {
    WalletConfig {
        language: mancard::Lang::En,
        ..WalletConfig::default()
    }
}

/// The configuration [`open`] uses: the production one (in English) without the authorization
/// rate limit (tests tap more than six times a minute; the rate limit's own tests open with
/// [`english`]).
pub fn test_config() -> WalletConfig {
    WalletConfig {
        max_authorizations_per_minute: u32::MAX,
        ..english()
    }
}

/// The wallet in `dir/wallet` with [`test_config`].
pub fn open(dir: &Path) -> Wallet {
    open_with(dir, test_config())
}

/// The wallet in `dir/wallet` with `config`.
pub fn open_with(dir: &Path, config: WalletConfig) -> Wallet {
    try_open_with(dir, config).unwrap()
}

/// [`open_with`], an error if the keystore or the wallet cannot be opened.
pub fn try_open_with(dir: &Path, config: WalletConfig) -> Res<Wallet> {
    Ok(Wallet::open(
        dir.join("wallet"),
        try_keystore(dir)?,
        config,
    )?)
}

/// Requests, issues and installs a certificate (at [`T0`]) and the issuer's config bundle
/// (version 1, see [`install_bundle`]); returns the certificate.
pub fn provision(w: &Wallet, issuer: &Issuer, spec: CertSpec) -> CredentialCertificate {
    try_provision_at(w, issuer, spec, T0).unwrap()
}

/// [`provision`] with the certificate installed at `now`.
pub fn provision_at(
    w: &Wallet,
    issuer: &Issuer,
    spec: CertSpec,
    now: i64,
) -> CredentialCertificate {
    try_provision_at(w, issuer, spec, now).unwrap()
}

/// [`provision_at`], an error if the wallet refuses the request, the certificate or the
/// bundle.
pub fn try_provision_at(
    w: &Wallet,
    issuer: &Issuer,
    spec: CertSpec,
    now: i64,
) -> Res<CredentialCertificate> {
    let cert = try_install_certificate_at(w, issuer, spec, now)?;
    if w.config_version().is_none() {
        w.install_config(issuer.bundle(1, T0, Vec::new()).encode())?;
    }
    Ok(cert)
}

/// Requests, issues and installs a certificate at `now` and nothing else (no config bundle:
/// the phone then refuses every reader with 69C1 until it gets one).
pub fn try_install_certificate_at(
    w: &Wallet,
    issuer: &Issuer,
    spec: CertSpec,
    now: i64,
) -> Res<CredentialCertificate> {
    let req = w.prepare_credential_request()?;
    let cert = issuer.issue(&req.tap_public_key, spec);
    w.install_certificate(cert.encode(), vec![issuer.info()], now)?;
    Ok(cert)
}

/// Installs `bundle` (the wallet's `install_config`).
pub fn install_bundle(w: &Wallet, bundle: &ValidatorConfig) {
    w.install_config(bundle.encode()).unwrap();
}

/// The phone's clock as the tap path reads it: the device clock corrected by the server
/// offset, UTC seconds.
pub fn phone_time(w: &Wallet) -> i64 {
    mancard::now_utc().saturating_add(w.server_time_offset())
}

/// Sets the phone's (server-corrected) clock to read `t` now, through the server time offset:
/// the tap window is checked against it. Note that `boarding_pass(now)` and `status(now)` add
/// the offset to the `now` they are given.
pub fn set_clock(w: &Wallet, t: i64) {
    w.set_server_time_offset(t.saturating_sub(mancard::now_utc()))
        .unwrap();
}

/// The device-clock time at which the phone's corrected clock reads `t` (what to pass as
/// `now` to `status`, `boarding_pass`... after [`set_clock`]).
pub fn device_time(w: &Wallet, t: i64) -> i64 {
    t.saturating_sub(w.server_time_offset())
}

/// One command APDU through the wallet's HCE entry point.
pub fn send(w: &Wallet, cmd: &CommandApdu) -> ResponseApdu {
    try_send(w, cmd).unwrap()
}

/// [`send`], an error if the command cannot be encoded or the answer parsed.
pub fn try_send(w: &Wallet, cmd: &CommandApdu) -> Res<ResponseApdu> {
    Ok(ResponseApdu::parse(&w.process_apdu(cmd.encode()?))?)
}

/// SELECT: the session value the phone answered (panics on a refusal).
pub fn select(w: &Wallet) -> [u8; 16] {
    let r = send(w, &CommandApdu::select_mancard());
    assert_eq!(r.sw, StatusWord::Ok, "SELECT refused");
    SelectResponse::decode(&r.data).unwrap().session
}

/// What a reader quotes for one tap. `Quote::default()`: line 1 at the phone's clock, the
/// tariff's full adult fare, the validator certificate inline, no READ CERTIFICATE.
#[derive(Debug, Clone, Copy)]
pub struct Quote {
    /// The validator's clock; `None`: the phone's clock ([`phone_time`]).
    pub time: Option<i64>,
    pub line_id: u32,
    /// The fare asked for any class; `None`: the reader's tariff's full fare for the class.
    pub fare: Option<i64>,
    /// The class of the first challenge (a phone of another class answers with a re-quote).
    pub class: FareClass,
    /// AUTHORIZE TAP with the validator certificate (P1 = 01) or by cached id (P1 = 00).
    pub cert_inline: bool,
    /// READ CERTIFICATE after the authorization (unless a re-quote already gave it).
    pub read_certificate: bool,
}

impl Default for Quote {
    fn default() -> Self {
        Self {
            time: None,
            line_id: 1,
            fare: None,
            class: FareClass::Adult,
            cert_inline: true,
            read_certificate: false,
        }
    }
}

impl Quote {
    /// A fare of `fare` rials at the validator time `time`.
    pub fn fare_at(fare: i64, time: i64) -> Self {
        Self {
            time: Some(time),
            fare: Some(fare),
            ..Self::default()
        }
    }
}

/// A tap the phone authorized.
#[derive(Debug, Clone)]
pub struct Tapped {
    /// The challenge the phone signed.
    pub challenge: TapChallenge,
    pub authorization: TapAuthorization,
    /// The phone's certificate, when it was read (re-quote or READ CERTIFICATE).
    pub certificate: Option<CredentialCertificate>,
    /// Command/response pairs exchanged, SELECT included.
    pub pairs: u32,
}

/// Nonces unique in the process.
static NONCE: AtomicU64 = AtomicU64::new(1);

/// A test reader: a validator key, its issuer-signed validator certificate and the tariff it
/// quotes from, driving the v2 reader flow against `process_apdu`.
pub struct Reader {
    pub validator_id: u32,
    pub key: SigningKey,
    pub cert: ValidatorCertificate,
    pub tariff: Tariff,
}

impl Reader {
    /// Validator `validator_id` with a fresh key and `issuer`'s certificate for it (any line,
    /// valid a year either side of [`T0`]), quoting the Urmia tariff.
    pub fn new(issuer: &Issuer, validator_id: u32) -> Self {
        let key = SigningKey::generate().unwrap().0;
        let cert = issuer.validator_cert(validator_id, &key.public_key());
        Self::with_certificate(key, cert)
    }

    /// A reader with this key and certificate (which may be expired, denied, forged...).
    pub fn with_certificate(key: SigningKey, cert: ValidatorCertificate) -> Self {
        Self {
            validator_id: cert.body.validator_id,
            key,
            cert,
            tariff: Tariff::urmia_default(),
        }
    }

    /// The challenge body this reader would sign for `session` (a fresh nonce).
    pub fn body(
        &self,
        session: [u8; 16],
        time: i64,
        line_id: u32,
        fare: i64,
        fare_class: FareClass,
    ) -> ChallengeBody {
        let n = NONCE.fetch_add(1, Ordering::Relaxed);
        let mut nonce = [0u8; 16];
        nonce[..4].copy_from_slice(&self.validator_id.to_be_bytes());
        nonce[4..12].copy_from_slice(&n.to_be_bytes());
        ChallengeBody {
            validator_id: self.validator_id,
            nonce,
            session,
            validator_time: time,
            line_id,
            fare,
            fare_class,
        }
    }

    /// [`Reader::body`] signed with the validator key.
    pub fn challenge(
        &self,
        session: [u8; 16],
        time: i64,
        line_id: u32,
        fare: i64,
        fare_class: FareClass,
    ) -> TapChallenge {
        self.body(session, time, line_id, fare, fare_class)
            .sign(&self.key)
            .unwrap()
    }

    /// AUTHORIZE TAP for `challenge`, the certificate inline or not.
    pub fn authorize(&self, w: &Wallet, challenge: &TapChallenge, inline: bool) -> ResponseApdu {
        send(
            w,
            &CommandApdu::authorize_tap(challenge, inline.then_some(&self.cert)),
        )
    }

    fn fare(&self, q: &Quote, class: FareClass, time: i64) -> Res<i64> {
        match q.fare {
            Some(f) => Ok(f),
            None => Ok(self
                .tariff
                .fare(class, q.line_id, time, &RideState::default())
                .map_err(|e| format!("tariff: {e}"))?
                .amount),
        }
    }

    /// One tap with the default [`Quote`].
    pub fn tap(&self, w: &Wallet) -> Result<Tapped, StatusWord> {
        self.tap_with(w, &Quote::default())
    }

    /// One tap as quoted; `Err(sw)`: the status word that ended it.
    pub fn tap_with(&self, w: &Wallet, q: &Quote) -> Result<Tapped, StatusWord> {
        self.try_tap_with(w, q).unwrap()
    }

    /// The v2 reader flow: SELECT; AUTHORIZE TAP with a challenge for the quoted class (the
    /// certificate inline or not); on a re-quote, a new challenge for the certificate's class
    /// (P1 = 00: the phone has the certificate now); READ CERTIFICATE if asked; field off.
    /// `Ok(Err(sw))` is the status word that ended it; an error is an APDU that cannot be
    /// encoded or an answer that cannot be parsed.
    pub fn try_tap_with(&self, w: &Wallet, q: &Quote) -> Res<Result<Tapped, StatusWord>> {
        let out = self.exchange(w, q);
        w.deactivated();
        out
    }

    fn exchange(&self, w: &Wallet, q: &Quote) -> Res<Result<Tapped, StatusWord>> {
        let sel = try_send(w, &CommandApdu::select_mancard())?;
        if sel.sw != StatusWord::Ok {
            return Ok(Err(sel.sw));
        }
        let session = SelectResponse::decode(&sel.data)?.session;
        let time = q.time.unwrap_or_else(|| phone_time(w));
        let (mut class, mut inline, mut pairs) = (q.class, q.cert_inline, 1);
        let mut certificate = None;
        for _ in 0..2 {
            let ch = self.challenge(session, time, q.line_id, self.fare(q, class, time)?, class);
            let r = try_send(
                w,
                &CommandApdu::authorize_tap(&ch, inline.then_some(&self.cert)),
            )?;
            pairs += 1;
            if r.sw != StatusWord::Ok {
                return Ok(Err(r.sw));
            }
            match AuthorizeResponse::decode(&r.data)? {
                AuthorizeResponse::Requote(c) => {
                    class = c.body.fare_class;
                    certificate = Some(c);
                    inline = false;
                }
                AuthorizeResponse::Authorized(authorization) => {
                    if q.read_certificate && certificate.is_none() {
                        let rc = try_send(w, &CommandApdu::read_certificate())?;
                        pairs += 1;
                        if rc.sw != StatusWord::Ok {
                            return Ok(Err(rc.sw));
                        }
                        certificate = Some(CredentialCertificate::decode(&rc.data)?);
                    }
                    return Ok(Ok(Tapped {
                        challenge: ch,
                        authorization,
                        certificate,
                        pairs,
                    }));
                }
            }
        }
        Err("the phone asked for a re-quote twice".into())
    }
}

/// The validator's verification of a tap (the phone's signature, the certificate's issuer
/// signature, counters, amount and validity; the challenge's own signature is the reader's).
pub fn verify(
    issuer: &Issuer,
    cert: &CredentialCertificate,
    ch: &TapChallenge,
    a: &TapAuthorization,
) {
    let vc = VerifiedCertificate::new(cert.clone(), &[issuer.issuer_key()]).unwrap();
    vc.verify_tap(ch, a).unwrap();
}
