//! A rider of the reel: the real wallet core with its online client (the app, as riders use
//! it), and a second session of the same account for the requests a tampered app sends
//! itself. An attacker's phone is rooted: its keystore hands out every secret the wallet
//! seals (the tap keys), the way malware on a rooted phone would.

use super::super::parties::proof_time;
use super::super::{Res, HTTP_TIMEOUT};
use super::api::Api;
use mancard::online::{OnlineOptions, OnlineWallet, ProvisionReport, SyncReport};
use mancard::{FileKeystore, KeystoreError, PlatformKeystore, Wallet, WalletConfig};
use mancard_api::endpoints::{CREATE_SESSION, CREDENTIAL_NONCE, REQUEST_OTP, WALLET_SYNC};
use mancard_api::{
    CredentialRequest, NonceResponse, OtpRequest, OtpResponse, SessionRequest, SessionResponse,
    SyncRequest,
};
use mancard_backend::Engine;
use mancard_protocol::provision::{provision_transcript, ProvisionPurpose};
use mancard_protocol::{BoardingPass, PublicKey, SigningKey, WalletLogEntry};
use mancard_validator::http;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A rooted phone's keystore: a file keystore that remembers what it sealed.
pub(super) struct RootedKeystore {
    inner: FileKeystore,
    sealed: Mutex<Vec<Vec<u8>>>,
}

impl PlatformKeystore for RootedKeystore {
    fn binding_public_key(&self) -> Result<Vec<u8>, KeystoreError> {
        self.inner.binding_public_key()
    }
    fn sign_with_binding_key(&self, message: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        self.inner.sign_with_binding_key(message)
    }
    fn seal(&self, plaintext: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        if let Ok(mut s) = self.sealed.lock() {
            s.push(plaintext.clone());
        }
        self.inner.seal(plaintext)
    }
    fn unseal(&self, sealed: Vec<u8>) -> Result<Vec<u8>, KeystoreError> {
        self.inner.unseal(sealed)
    }
}

impl RootedKeystore {
    /// The newest tap key the wallet sealed (a PKCS#8 P-256 key among the secrets).
    fn tap_key(&self) -> Res<SigningKey> {
        let sealed = self
            .sealed
            .lock()
            .map_err(|_| "the rooted keystore's memory is poisoned")?;
        sealed
            .iter()
            .rev()
            .find_map(|s| SigningKey::from_pkcs8(s).ok())
            .ok_or_else(|| "the wallet sealed no tap key".into())
    }
}

/// A rider: the wallet core, the app's online client, and a raw session.
pub(super) struct Rider {
    pub(super) name: &'static str,
    pub(super) account_id: i64,
    pub(super) wallet: Arc<Wallet>,
    pub(super) app: OnlineWallet,
    /// A second session of the account: what a tampered app sends its own requests with.
    pub(super) token: String,
    /// The certificate the wallet holds now.
    pub(super) cert: ProvisionReport,
    pub(super) phone: String,
    keystore: Arc<dyn PlatformKeystore>,
    rooted: Option<Arc<RootedKeystore>>,
    dir: PathBuf,
}

/// Where a rider comes from: the backend and how to reach it.
pub(super) struct Backend<'a> {
    pub(super) engine: &'a Engine,
    pub(super) url: &'a str,
    pub(super) api: &'a Api,
    pub(super) rt: &'a tokio::runtime::Runtime,
}

impl Rider {
    /// A rider named `name` with phone `phone`: the app installed, registered with the
    /// sandbox code, provisioned, topped up with `top_up` rials through the sandbox gateway
    /// (and replenished to that allowance), and logged in a second time for raw requests.
    pub(super) fn join(
        b: &Backend<'_>,
        dir: &Path,
        (name, phone): (&'static str, &str),
        top_up: i64,
        rooted: bool,
    ) -> Res<Self> {
        let soft = FileKeystore::open_or_create(dir.join("keystore"))
            .map_err(|e| format!("keystore: {e}"))?;
        let (ks, rooted): (Arc<dyn PlatformKeystore>, _) = if rooted {
            let r = Arc::new(RootedKeystore {
                inner: soft,
                sealed: Mutex::new(Vec::new()),
            });
            (r.clone(), Some(r))
        } else {
            (Arc::new(soft), None)
        };
        let wallet = Arc::new(
            Wallet::open(dir.join("wallet"), Arc::clone(&ks), WalletConfig::default())
                .map_err(|e| format!("{name}'s wallet: {e}"))?,
        );
        let app = OnlineWallet::new(Arc::clone(&wallet), b.url.to_string(), options())
            .map_err(|e| format!("{name}'s app: {e}"))?;
        app.block_on(app.register(phone.to_string()))??;
        let code = b
            .engine
            .sandbox_otp(phone, None)
            .map_err(|e| format!("OTP: {e}"))?;
        let account_id = app
            .block_on(app.verify(phone.to_string(), code.code))??
            .account_id;
        let mut cert = app.block_on(app.provision())??;
        if top_up > 0 {
            let i = app.block_on(app.start_top_up(top_up))??;
            http::post(
                &i.payment_url,
                "application/x-www-form-urlencoded",
                b"",
                HTTP_TIMEOUT,
            )
            .map_err(|e| format!("sandbox gateway: {e}"))?;
            app.block_on(app.complete_top_up(i.intent_id))??;
            cert = app.block_on(app.replenish())??;
        }
        let token = login(b, phone)?;
        Ok(Self {
            name,
            account_id,
            wallet,
            app,
            token,
            cert,
            phone: phone.to_string(),
            keystore: ks,
            rooted,
            dir: dir.to_path_buf(),
        })
    }

    /// The phone's data directory copied to `to` (a backup restored on a second phone, or a
    /// cloned phone): two phones with one credential, one tap key and one counter. The phone
    /// is closed while it is copied, and both are opened again, still logged in.
    pub(super) fn clone_phone(self, b: &Backend<'_>, to: &Path) -> Res<(Self, Self)> {
        let Self {
            name,
            account_id,
            wallet,
            app,
            token,
            cert,
            phone,
            keystore,
            rooted: _,
            dir,
        } = self;
        drop(app);
        drop(keystore);
        if Arc::strong_count(&wallet) != 1 {
            return Err(format!("{name}'s wallet is still open elsewhere").into());
        }
        drop(wallet);
        copy_dir(&dir, to)?;
        let open = |d: &Path| -> Res<Self> {
            let ks: Arc<dyn PlatformKeystore> = Arc::new(
                FileKeystore::open_or_create(d.join("keystore"))
                    .map_err(|e| format!("keystore: {e}"))?,
            );
            let wallet = Arc::new(Wallet::open(
                d.join("wallet"),
                Arc::clone(&ks),
                WalletConfig::default(),
            )?);
            let app = OnlineWallet::new(Arc::clone(&wallet), b.url.to_string(), options())?;
            Ok(Self {
                name,
                account_id,
                wallet,
                app,
                token: token.clone(),
                cert: cert.clone(),
                phone: phone.clone(),
                keystore: ks,
                rooted: None,
                dir: d.to_path_buf(),
            })
        };
        Ok((open(&dir)?, open(to)?))
    }

    /// The phone's clock follows the backend's (as a sync sets it).
    pub(super) fn follow(&self, engine: &Engine) -> Res<()> {
        self.wallet
            .set_server_time_offset(engine.now() - chrono::Utc::now().timestamp())?;
        Ok(())
    }

    /// The app syncs (tap log up; verdicts, ledger and bundle down).
    pub(super) fn sync(&self) -> Res<SyncReport> {
        Ok(self.app.block_on(self.app.sync())??)
    }

    /// The app asks for a new certificate (replenish).
    pub(super) fn replenish(&mut self) -> Res<ProvisionReport> {
        let r = self.app.block_on(self.app.replenish())??;
        self.cert = r.clone();
        Ok(r)
    }

    /// The request the app would send for a certificate of the wallet's pending tap key (one
    /// is made if none is waiting), with a fresh nonce, signed by the binding key.
    pub(super) fn credential_request(
        &self,
        b: &Backend<'_>,
        purpose: ProvisionPurpose,
    ) -> Res<CredentialRequest> {
        let req = self.wallet.prepare_credential_request()?;
        let n: NonceResponse = b
            .api
            .post::<()>(b.rt, CREDENTIAL_NONCE.path, Some(&self.token), None)?
            .parse()?;
        let nonce: [u8; 32] = hex::decode(&n.nonce)?
            .try_into()
            .map_err(|_| "the nonce is not 32 bytes")?;
        let transcript = provision_transcript(
            purpose,
            &nonce,
            &PublicKey::from_bytes(&req.binding_public_key, "binding key")?,
            &PublicKey::from_bytes(&req.tap_public_key, "tap key")?,
        );
        let sig = self
            .keystore
            .sign_with_binding_key(transcript)
            .map_err(|e| format!("binding key: {e}"))?;
        Ok(CredentialRequest {
            nonce: n.nonce,
            binding_public_key: hex::encode(&req.binding_public_key),
            tap_public_key: hex::encode(&req.tap_public_key),
            signature: hex::encode(sig),
            next_counter: Some(req.next_counter),
        })
    }

    /// The wallet's signed tap log, decoded.
    pub(super) fn log(&self) -> Res<Vec<WalletLogEntry>> {
        self.wallet
            .tap_log(0, 10_000)?
            .iter()
            .map(|raw| WalletLogEntry::decode(raw).map_err(|e| format!("tap log: {e}").into()))
            .collect()
    }

    /// The newest entry of the tap log.
    pub(super) fn last_entry(&self) -> Res<WalletLogEntry> {
        self.log()?
            .pop()
            .ok_or_else(|| format!("{}'s tap log is empty", self.name).into())
    }

    /// A boarding pass the app shows now (the phone's corrected clock).
    pub(super) fn pass(&self) -> Res<(String, BoardingPass)> {
        let shown = self.wallet.boarding_pass(chrono::Utc::now().timestamp())?;
        let pass =
            BoardingPass::from_text(&shown.text).map_err(|e| format!("the app's own pass: {e}"))?;
        Ok((shown.text, pass))
    }

    /// The tap key a rooted phone's keystore saw sealed.
    pub(super) fn leaked_tap_key(&self) -> Res<SigningKey> {
        self.rooted
            .as_ref()
            .ok_or_else(|| format!("{}'s phone is not rooted", self.name))?
            .tap_key()
    }

    /// A tampered app's sync: `entries` sent as the wallet's log, raw, after the rides they
    /// report (the backend's clock is past them).
    pub(super) fn raw_sync(
        &self,
        b: &Backend<'_>,
        entries: &[WalletLogEntry],
    ) -> Res<super::api::Answer> {
        let latest = entries.iter().map(|e| proof_time(&e.proof)).max();
        if let Some(t) = latest {
            super::super::parties::clock_to(b.engine, t + 1)?;
        }
        let body = SyncRequest {
            pseudonym: self.cert.pseudonym.clone(),
            cursor: 0,
            entries: entries.iter().map(|e| hex::encode(e.encode())).collect(),
            verdict_cursor: 0,
        };
        b.api
            .post(b.rt, WALLET_SYNC.path, Some(&self.token), Some(&body))
    }
}

/// The app's online options: one attempt, no replenishment behind the reel's back.
fn options() -> OnlineOptions {
    OnlineOptions {
        max_attempts: 1,
        replenish_on_sync: false,
        worker_threads: 1,
        ..OnlineOptions::default()
    }
}

/// Copies a directory tree.
fn copy_dir(from: &Path, to: &Path) -> Res<()> {
    std::fs::create_dir_all(to).map_err(|e| format!("{}: {e}", to.display()))?;
    for entry in std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))? {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let target = to.join(entry.file_name());
        if entry.path().is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), &target)
                .map_err(|e| format!("{}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}

/// Logs `phone` in over raw HTTP (a sandbox code): a session token.
fn login(b: &Backend<'_>, phone: &str) -> Res<String> {
    let otp = OtpRequest {
        phone: phone.to_string(),
    };
    let sent: OtpResponse = b
        .api
        .post(b.rt, REQUEST_OTP.path, None, Some(&otp))?
        .parse()?;
    let code = b
        .engine
        .sandbox_otp(phone, Some(&sent.request_id))
        .map_err(|e| format!("OTP: {e}"))?;
    let s: SessionResponse = b
        .api
        .post(
            b.rt,
            CREATE_SESSION.path,
            None,
            Some(&SessionRequest {
                phone: phone.to_string(),
                code: code.code,
                request_id: sent.request_id,
            }),
        )?
        .parse()?;
    Ok(s.token)
}
