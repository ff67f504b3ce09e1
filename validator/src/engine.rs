//! The decision engine: verified config, certificate cache, replay cache and ride states.
//! Pure and in memory: no I/O, no clock (callers pass `now`). [`crate::Validator`] wraps it
//! with the journal, the clock, the key and the card channel.

use crate::cache::{CertCache, ReplayCache};
use crate::decision::Refusal;
use crate::journal::JournaledRide;
use mancard_protocol::{
    authorized_amount, check_validity, verify_config, BoardingPass, CredentialCertificate,
    FareClass, FareQuote, IssuerKey, Pseudonym, PublicKey, RideState, TapAuthorization,
    TapChallenge, TimeRules, ValidatorConfig, VerifiedCertificate, VerifyError,
};
use std::collections::HashMap;
use std::sync::Arc;
use thiserror::Error;

/// Default bound of the certificate cache.
pub const DEFAULT_CERT_CACHE: usize = 8_192;
/// Default bound of the replay cache.
pub const DEFAULT_REPLAY_CACHE: usize = 262_144;
/// Default bound of the per-card ride states.
pub const DEFAULT_RIDE_STATES: usize = 200_000;

/// Why a config bundle was not installed (the previous one stays in force).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    #[error("config bundle cannot be decoded: {0}")]
    Decode(#[from] mancard_protocol::DecodeError),
    #[error("config bundle refused: {0}")]
    Verify(#[from] VerifyError),
}

/// Where the config bundle came from when it was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigInstall {
    Installed {
        version: u64,
    },
    /// The same bundle is already installed.
    Unchanged {
        version: u64,
    },
}

/// A config bundle that passed [`Engine::check_config`], and what installing it would do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckedConfig {
    pub config: ValidatorConfig,
    pub install: ConfigInstall,
}

/// A QR pass that passed [`Engine::check_pass`]: its verified certificate and the fare due.
#[derive(Debug, Clone)]
pub struct PassCheck {
    pub cert: Arc<VerifiedCertificate>,
    pub quote: FareQuote,
}

/// A provisioned issuer public key trusted to sign the first config bundle. Without a key id it
/// matches whatever id the bundle names (the signature is what counts).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrustAnchor {
    pub key_id: Option<u32>,
    pub public_key: PublicKey,
}

impl TrustAnchor {
    /// Parses `HEX` or `KEYID:HEX` (65-byte uncompressed P-256 key), as `mancard inspect` does.
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (id, hexkey) = match text.split_once(':') {
            Some((id, k)) => (
                Some(
                    id.trim()
                        .parse::<u32>()
                        .map_err(|e| format!("bad key id {id:?}: {e}"))?,
                ),
                k.trim(),
            ),
            None => (None, text),
        };
        let bytes = hex::decode(hexkey).map_err(|e| format!("trust anchor is not hex: {e}"))?;
        let public_key =
            PublicKey::from_bytes(&bytes, "trust anchor").map_err(|e| e.to_string())?;
        Ok(Self {
            key_id: id,
            public_key,
        })
    }

    /// The text form `KEYID:HEX` or `HEX`.
    pub fn to_text(&self) -> String {
        match self.key_id {
            Some(id) => format!("{id}:{}", hex::encode(self.public_key.as_bytes())),
            None => hex::encode(self.public_key.as_bytes()),
        }
    }

    fn as_issuer_key(&self, signer_key_id: u32) -> IssuerKey {
        IssuerKey {
            key_id: self.key_id.unwrap_or(signer_key_id),
            public_key: self.public_key,
            valid_from: i64::MIN,
            valid_until: i64::MAX,
        }
    }
}

/// The in-memory decision engine.
#[derive(Debug)]
pub struct Engine {
    anchors: Vec<TrustAnchor>,
    config: Option<ValidatorConfig>,
    certs: CertCache,
    replay: ReplayCache,
    rides: HashMap<Pseudonym, RideState>,
    ride_cap: usize,
    /// A local cap on the bundle's QR clock skew (it can only narrow it).
    skew_cap_secs: Option<u16>,
}

impl Engine {
    /// An engine that trusts `anchors` (the provisioned issuer keys) to sign its first bundle.
    pub fn new(anchors: Vec<TrustAnchor>) -> Self {
        Self {
            anchors,
            config: None,
            certs: CertCache::new(DEFAULT_CERT_CACHE),
            replay: ReplayCache::new(DEFAULT_REPLAY_CACHE),
            rides: HashMap::new(),
            ride_cap: DEFAULT_RIDE_STATES,
            skew_cap_secs: None,
        }
    }

    /// Narrows the QR clock skew below the bundle's (`None`: the bundle's skew). The signed
    /// bundle's [`TimeRules`] decide the skew and the longest pass lifetime; a validator may
    /// only be stricter than them, never more lenient.
    pub fn set_skew_cap_secs(&mut self, cap: Option<u16>) {
        self.skew_cap_secs = cap;
    }

    /// The time rules QR passes are checked under: the bundle's, with the skew narrowed by
    /// [`Engine::set_skew_cap_secs`]. The defaults before any bundle is installed.
    pub fn time_rules(&self) -> TimeRules {
        let mut rules = self
            .config
            .as_ref()
            .map(|c| c.body.time_rules)
            .unwrap_or_default();
        if let Some(cap) = self.skew_cap_secs {
            rules.clock_skew_secs = rules.clock_skew_secs.min(cap);
        }
        rules
    }

    /// True if the installed bundle lists `validator_id` on its validator deny list.
    pub fn is_validator_denied(&self, validator_id: u32) -> bool {
        self.config
            .as_ref()
            .is_some_and(|c| c.is_validator_denied(validator_id))
    }

    pub fn with_capacities(mut self, certs: usize, replay: usize, rides: usize) -> Self {
        self.certs = CertCache::new(certs);
        self.replay = ReplayCache::new(replay);
        self.ride_cap = rides.max(1);
        self
    }

    pub fn config(&self) -> Option<&ValidatorConfig> {
        self.config.as_ref()
    }

    /// The keys a new bundle must be signed with: the issuer keys of the installed bundle
    /// (so the issuer can rotate), or the provisioned trust anchors before the first bundle.
    pub fn trusted_keys(&self, signer_key_id: u32) -> Vec<IssuerKey> {
        match &self.config {
            Some(c) => c.body.issuer_keys.clone(),
            None => self
                .anchors
                .iter()
                .map(|a| a.as_issuer_key(signer_key_id))
                .collect(),
        }
    }

    /// The keys a validator certificate may be signed with: the provisioned trust anchors and
    /// the installed bundle's issuer keys.
    pub fn certificate_keys(&self, issuer_key_id: u32) -> Vec<IssuerKey> {
        let mut keys: Vec<IssuerKey> = self
            .anchors
            .iter()
            .map(|a| a.as_issuer_key(issuer_key_id))
            .collect();
        if let Some(c) = &self.config {
            keys.extend(c.body.issuer_keys.iter().cloned());
        }
        keys
    }

    /// Checks a bundle (signature by a trusted key, newer version) without installing it.
    pub fn check_config(&self, bytes: &[u8]) -> Result<CheckedConfig, ConfigError> {
        let cfg = ValidatorConfig::decode(bytes)?;
        if let Some(cur) = &self.config {
            if cur.body.bundle_version == cfg.body.bundle_version && *cur == cfg {
                return Ok(CheckedConfig {
                    config: cfg,
                    install: ConfigInstall::Unchanged {
                        version: cur.body.bundle_version,
                    },
                });
            }
        }
        let installed = self.config.as_ref().map(|c| c.body.bundle_version);
        verify_config(&cfg, &self.trusted_keys(cfg.body.signer_key_id), installed)?;
        let version = cfg.body.bundle_version;
        Ok(CheckedConfig {
            config: cfg,
            install: ConfigInstall::Installed { version },
        })
    }

    /// Installs a bundle already checked by [`Engine::check_config`]. Certificates verified
    /// under the previous issuer keys are forgotten.
    pub fn set_config(&mut self, cfg: ValidatorConfig) {
        self.certs.clear();
        self.config = Some(cfg);
    }

    /// The installed config or [`Refusal::NotConfigured`].
    pub fn require_config(&self) -> Result<&ValidatorConfig, Refusal> {
        self.config.as_ref().ok_or(Refusal::NotConfigured)
    }

    pub fn cached_cert(&mut self, hash: &[u8; 32]) -> Option<Arc<VerifiedCertificate>> {
        self.certs.get(hash)
    }

    pub fn cert_cache_len(&self) -> usize {
        self.certs.len()
    }

    /// Verifies a certificate's issuer signature and caches it.
    pub fn admit_cert(
        &mut self,
        cert: CredentialCertificate,
    ) -> Result<Arc<VerifiedCertificate>, Refusal> {
        let hash = cert.id();
        if let Some(vc) = self.certs.get(&hash) {
            return Ok(vc);
        }
        let cfg = self.require_config()?;
        let vc =
            VerifiedCertificate::new(cert, &cfg.body.issuer_keys).map_err(Refusal::from_verify)?;
        Ok(self.certs.insert(vc))
    }

    pub fn ride_state(&self, p: &Pseudonym) -> RideState {
        self.rides.get(p).copied().unwrap_or_default()
    }

    /// Everything checked before a challenge is sent: deny list, validity at `now`, the fare on
    /// `line_id` for this card, and that the certificate's allowance can pay it at all.
    pub fn quote(
        &self,
        vc: &VerifiedCertificate,
        line_id: u32,
        now: i64,
    ) -> Result<FareQuote, Refusal> {
        let cfg = self.require_config()?;
        let body = &vc.cert.body;
        if cfg.is_denied(&body.pseudonym) {
            return Err(Refusal::Blocked);
        }
        check_validity(&vc.cert, now).map_err(Refusal::from_verify)?;
        let quote = cfg
            .body
            .tariff
            .fare(
                body.fare_class,
                line_id,
                now,
                &self.ride_state(&body.pseudonym),
            )
            .map_err(|_| Refusal::LineNotInTariff(line_id))?;
        if quote.amount > body.allowance.max_amount {
            return Err(Refusal::InsufficientAllowance {
                fare: quote.amount,
                available: Some(body.allowance.max_amount),
            });
        }
        Ok(quote)
    }

    /// A certificate a phone presented (READ CERTIFICATE, or its answer to a challenge quoted
    /// for another class): issuer signature (cached), deny list and validity at `now`.
    pub fn admit_checked(
        &mut self,
        cert: CredentialCertificate,
        now: i64,
    ) -> Result<Arc<VerifiedCertificate>, Refusal> {
        let vc = self.admit_cert(cert)?;
        let cfg = self.require_config()?;
        if cfg.is_denied(&vc.cert.body.pseudonym) {
            return Err(Refusal::Blocked);
        }
        check_validity(&vc.cert, now).map_err(Refusal::from_verify)?;
        Ok(vc)
    }

    /// The full fare of `class` on `line_id` (no transfer, no cap): what a challenge asks the
    /// phone to authorize before the validator knows the rider.
    pub fn full_fare(&self, class: FareClass, line_id: u32, now: i64) -> Result<i64, Refusal> {
        let cfg = self.require_config()?;
        cfg.body
            .tariff
            .fare(class, line_id, now, &RideState::default())
            .map(|q| q.amount)
            .map_err(|_| Refusal::LineNotInTariff(line_id))
    }

    /// Checks the phone's answer to `challenge`: amount, binding, class, counter, signature
    /// (canonical), replay.
    pub fn check_authorization(
        &self,
        vc: &VerifiedCertificate,
        challenge: &TapChallenge,
        auth: &TapAuthorization,
    ) -> Result<(), Refusal> {
        // What the phone must have signed: the fare asked, or (a challenge quoted for another
        // class) its own class's fare of the line, never more than asked.
        let expected = self.config.as_ref().and_then(|c| {
            authorized_amount(&challenge.body, vc.cert.body.fare_class, &c.body.tariff)
        });
        if expected != Some(auth.amount) {
            return Err(Refusal::AmountMismatch {
                asked: expected.unwrap_or(challenge.body.fare),
                signed: auth.amount,
            });
        }
        vc.verify_tap(challenge, auth)
            .map_err(Refusal::from_verify)?;
        if self.replay.contains(&vc.cert.body.pseudonym, auth.counter) {
            return Err(Refusal::AlreadyUsed {
                counter: auth.counter,
            });
        }
        Ok(())
    }

    /// The NFC decision once the phone has authorized `challenge` (what the benchmark
    /// measures with a cached certificate): cache lookup by the authorization's certificate
    /// id, deny list, validity, the rider's fare (transfer, cap) no more than the signed
    /// amount, the tap signature and the replay check. Returns the fare to charge.
    pub fn decide_nfc(
        &mut self,
        line_id: u32,
        challenge: &TapChallenge,
        auth: &TapAuthorization,
    ) -> Result<FareQuote, Refusal> {
        let vc = self
            .cached_cert(&auth.cert_id)
            .ok_or_else(|| Refusal::Malformed("certificate not cached".into()))?;
        self.decide_with(&vc, line_id, challenge, auth)
    }

    /// [`Engine::decide_nfc`] with the phone's verified certificate in hand.
    pub fn decide_with(
        &self,
        vc: &VerifiedCertificate,
        line_id: u32,
        challenge: &TapChallenge,
        auth: &TapAuthorization,
    ) -> Result<FareQuote, Refusal> {
        self.check_authorization(vc, challenge, auth)?;
        let quote = self.quote(vc, line_id, challenge.body.validator_time)?;
        if quote.amount > auth.amount {
            return Err(Refusal::AmountMismatch {
                asked: quote.amount,
                signed: auth.amount,
            });
        }
        Ok(quote)
    }

    /// Checks a QR pass at `now` on `line_id`: certificate (cached or verified), deny list,
    /// validity, the bundle's time rules (longest lifetime, skew), counter, tap signature,
    /// fare ≤ pass maximum, replay.
    pub fn check_pass(
        &mut self,
        pass: &BoardingPass,
        line_id: u32,
        now: i64,
    ) -> Result<PassCheck, Refusal> {
        let vc = self.admit_cert(pass.body.certificate.clone())?;
        let quote = self.quote(&vc, line_id, now)?;
        vc.verify_pass(pass, now, &self.time_rules())
            .map_err(Refusal::from_verify)?;
        if quote.amount > pass.body.max_amount {
            return Err(Refusal::InsufficientAllowance {
                fare: quote.amount,
                available: Some(pass.body.max_amount),
            });
        }
        if self
            .replay
            .contains(&vc.cert.body.pseudonym, pass.body.counter)
        {
            return Err(Refusal::AlreadyUsed {
                counter: pass.body.counter,
            });
        }
        Ok(PassCheck { cert: vc, quote })
    }

    /// Records an accepted ride (after it is journaled): replay cache and ride state.
    pub fn record_ride(&mut self, p: Pseudonym, counter: u32, time: i64, next: RideState) {
        self.replay.insert(p, counter, time);
        if self.rides.len() >= self.ride_cap && !self.rides.contains_key(&p) {
            self.prune_rides(time);
        }
        self.rides.insert(p, next);
    }

    /// Rebuilds state from a journaled ride (at open): replay entry and ride state.
    pub fn replay_ride(&mut self, ride: &JournaledRide) {
        let JournaledRide {
            time,
            line_id,
            pseudonym: p,
            counter,
            fare,
        } = *ride;
        self.replay.insert(p, counter, time);
        let day = self
            .config
            .as_ref()
            .map(|c| c.body.tariff.fare_day(time))
            .unwrap_or_else(|| time.div_euclid(86_400));
        let st = self.rides.entry(p).or_default();
        if st.fare_day == day && st.last_ride.is_some() {
            st.spent_today = st.spent_today.saturating_add(fare);
        } else {
            st.fare_day = day;
            st.spent_today = fare;
        }
        st.last_ride = Some((time, line_id));
    }

    /// Drops ride states whose last ride is more than a day old; if still full, drops half.
    fn prune_rides(&mut self, now: i64) {
        self.rides.retain(|_, s| match s.last_ride {
            Some((t, _)) => now.saturating_sub(t) < 86_400,
            None => false,
        });
        if self.rides.len() >= self.ride_cap {
            let mut times: Vec<i64> = self
                .rides
                .values()
                .map(|s| s.last_ride.map(|(t, _)| t).unwrap_or(i64::MIN))
                .collect();
            let mid = times.len() / 2;
            if let Some((_, cut, _)) = (mid > 0).then(|| times.select_nth_unstable(mid)) {
                let cut = *cut;
                self.rides
                    .retain(|_, s| s.last_ride.map(|(t, _)| t).unwrap_or(i64::MIN) >= cut);
            }
        }
    }

    pub fn replay_len(&self) -> usize {
        self.replay.len()
    }
}
