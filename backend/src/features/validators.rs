//! Validators: registration of their keys (each answered with an issuer-signed validator
//! certificate), the validator deny list, and the signed config bundle validators and wallets
//! download (issuer keys, both deny lists, time rules, tariff), re-signed whenever its content
//! changes.

use crate::engine::{public_key, Engine};
use crate::error::{Error, Result};
use crate::ids::PseudonymBytes;
use crate::settle::ValidatorInfo;
use crate::store::{NewValidator, Writer};
use mancard_api::{
    DenyValidatorRequest, DenyValidatorResponse, RegisterValidatorRequest,
    RegisterValidatorResponse,
};
use mancard_protocol::{
    sha256, ConfigBody, DeniedValidator, IssuerKey, Pseudonym, PublicKey, TimeRules,
    ValidatorCertBody, ValidatorCertificate,
};
use std::collections::{BTreeSet, HashMap};

/// What a bundle says, but its version and issue time.
struct BundleContent<'a> {
    signer_key_id: u32,
    listed: &'a [IssuerKey],
    deny: &'a [PseudonymBytes],
    denied_validators: &'a [u32],
    time_rules: TimeRules,
    tariff: &'a [u8],
}

impl BundleContent<'_> {
    /// The hash that decides whether a new version must be signed.
    fn hash(&self) -> [u8; 32] {
        let mut c = Vec::with_capacity(
            64 + self.listed.len() * 90 + self.deny.len() * 16 + self.tariff.len(),
        );
        c.extend_from_slice(&self.signer_key_id.to_be_bytes());
        for k in self.listed {
            c.extend_from_slice(&k.key_id.to_be_bytes());
            c.extend_from_slice(k.public_key.as_bytes());
            c.extend_from_slice(&k.valid_from.to_be_bytes());
            c.extend_from_slice(&k.valid_until.to_be_bytes());
        }
        c.extend_from_slice(&(self.deny.len() as u64).to_be_bytes());
        for p in self.deny {
            c.extend_from_slice(&p.0);
        }
        c.extend_from_slice(&(self.denied_validators.len() as u64).to_be_bytes());
        for v in self.denied_validators {
            c.extend_from_slice(&v.to_be_bytes());
        }
        let t = self.time_rules;
        for v in [
            t.max_pass_lifetime_secs,
            t.clock_skew_secs,
            t.tap_window_secs,
        ] {
            c.extend_from_slice(&v.to_be_bytes());
        }
        c.extend_from_slice(self.tariff);
        sha256(&[b"MANCARD-BUNDLE-CONTENT-v2\0", &c])
    }
}

/// A signed validator config bundle.
#[derive(Debug, Clone)]
pub struct SignedBundle {
    /// `bundle_version`, also the HTTP ETag.
    pub version: u64,
    /// The `ValidatorConfig` encoding.
    pub encoded: Vec<u8>,
}

/// The window in which this instance serves a config bundle it built without reading the deny
/// lists again, while they were not changed: what time alone changes (a certificate expiring
/// off the deny list, a retired issuer key's listing ending) shows in the next window.
const BUNDLE_REFRESH_SECS: i64 = 60;

/// What a config bundle was built from, besides the deny lists: equal keys, equal bundles.
#[derive(Debug, Clone, PartialEq)]
struct BundleKey {
    /// [`crate::store::BundleState::generation`]: bumped by the database's triggers (schema
    /// version 12) whenever what the deny lists read changes (revocations, listed
    /// certificates, validators' denials), whichever build wrote it.
    generation: i64,
    signer_key_id: u32,
    listed: Vec<IssuerKey>,
    time_rules: TimeRules,
    /// The [`BUNDLE_REFRESH_SECS`] window of the build.
    window: i64,
}

/// The config bundle this instance last built or found current, with its [`BundleKey`]: a
/// wallet sync or a validator's config fetch then costs one statement
/// ([`crate::store::Reader::bundle_state`]) instead of reading every certificate and
/// revocation. Set only once the transaction that built it has committed.
#[derive(Debug, Default)]
pub(crate) struct BundleMemo(std::sync::Mutex<Option<Remembered>>);

/// A bundle, its content hash and what it was built from.
#[derive(Debug)]
struct Remembered {
    key: BundleKey,
    content_hash: [u8; 32],
    bundle: SignedBundle,
}

impl BundleMemo {
    /// The remembered bundle if it was built from `key` and is still the newest stored one
    /// (`latest`: its version and content hash; another instance built none since).
    fn get(&self, key: &BundleKey, latest: Option<&(u64, Vec<u8>)>) -> Option<SignedBundle> {
        let memo = self.0.lock().unwrap_or_else(|p| p.into_inner());
        memo.as_ref()
            .filter(|m| {
                &m.key == key
                    && latest.is_some_and(|(v, h)| {
                        *v == m.bundle.version && h.as_slice() == m.content_hash.as_slice()
                    })
            })
            .map(|m| m.bundle.clone())
    }

    fn set(&self, remembered: Remembered) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = Some(remembered);
    }
}

/// UTC seconds as a validator certificate carries them.
fn cert_time(t: i64) -> Result<u32> {
    u32::try_from(t)
        .map_err(|_| Error::internal(format!("time {t} does not fit a validator certificate")))
}

impl Engine {
    /// Registers (or re-keys) a validator and issues its certificate: signed by the current
    /// issuer key, operator 1 unless told, the lines asked for (none: any), valid from now for
    /// the policy's validator certificate lifetime.
    pub fn register_validator(
        &self,
        req: &RegisterValidatorRequest,
    ) -> Result<RegisterValidatorResponse> {
        let key = public_key(&req.public_key, "public_key")?;
        let mut lines = req.lines.clone();
        lines.sort_unstable();
        lines.dedup();
        if lines.len() > ValidatorCertBody::MAX_LINES {
            return Err(Error::InvalidLines {
                max: ValidatorCertBody::MAX_LINES,
            });
        }
        let now = self.now();
        let lifetime = self.config().policy.validator_cert_lifetime_secs.max(1);
        let operator_id = req.operator_id.unwrap_or(1);
        let cert = {
            let keys = self.keyring();
            let signer = keys.current()?;
            ValidatorCertBody {
                issuer_key_id: signer.key_id,
                validator_id: req.validator_id,
                operator_id,
                public_key: key,
                // Back-dated like credential certificates: a phone whose clock runs a little
                // behind must not refuse a validator registered a moment ago.
                valid_from: cert_time(now.saturating_sub(self.config().policy.cert_backdate_secs))?,
                valid_until: cert_time(now.saturating_add(lifetime)).unwrap_or(u32::MAX),
                lines,
            }
            .sign(&signer.key)
            .map_err(Error::internal)?
        };
        let encoded = cert.encode();
        self.store.write(|tx| {
            tx.upsert_validator(&NewValidator {
                id: req.validator_id,
                public_key: key.as_bytes(),
                operator_id,
                certificate: &encoded,
                registered_at: now,
            })
        })?;
        tracing::info!(
            validator = req.validator_id,
            operator = operator_id,
            "validator registered; certificate issued"
        );
        let b = &cert.body;
        Ok(RegisterValidatorResponse {
            validator_id: req.validator_id,
            registered_at: now,
            certificate: hex::encode(&encoded),
            operator_id,
            lines: b.lines.clone(),
            valid_from: i64::from(b.valid_from),
            valid_until: i64::from(b.valid_until),
        })
    }

    /// Puts a registered validator on the validator deny list: the next config bundle names
    /// it, and challenges it signs from now on are not charged.
    pub fn deny_validator(&self, req: &DenyValidatorRequest) -> Result<DenyValidatorResponse> {
        let now = self.now();
        let id = req.validator_id;
        let denied_at = self
            .store
            .write(|tx| tx.deny_validator(id, now))?
            .ok_or(Error::NoSuchValidator(id))?;
        tracing::warn!(validator = id, "validator denied");
        Ok(DenyValidatorResponse {
            validator_id: id,
            denied_at,
        })
    }

    /// The registered validators among `ids`, as settlement checks their challenges.
    pub(crate) fn validator_infos(
        &self,
        ids: BTreeSet<u32>,
    ) -> Result<HashMap<u32, ValidatorInfo>> {
        self.store.read(|tx| {
            let mut out = HashMap::with_capacity(ids.len());
            for id in ids {
                let Some(row) = tx.validator(id)? else {
                    continue;
                };
                let Ok(key) = PublicKey::from_bytes(&row.public_key, "validator key") else {
                    continue;
                };
                let cert = row
                    .certificate
                    .as_deref()
                    .and_then(|c| ValidatorCertificate::decode(c).ok());
                out.insert(
                    id,
                    ValidatorInfo {
                        key,
                        cert,
                        denied_at: row.denied_at,
                    },
                );
            }
            Ok(out)
        })
    }

    /// The current signed config bundle. A new version is signed whenever the issuer keys,
    /// either deny list, the time rules or the tariff change.
    pub fn config_bundle(&self) -> Result<SignedBundle> {
        let now = self.now();
        self.store.write(|tx| self.bundle_in(tx, now))
    }

    /// [`Engine::config_bundle`] in a write transaction of the caller's (so that it names what
    /// the transaction revoked).
    ///
    /// The bundle this instance built last is served again while its [`BundleKey`] holds: no
    /// write changed the deny lists since (the database's generation), the newest stored
    /// bundle is still that one (another instance built none since), the issuer keys and time
    /// rules are the same, and it was built in the current [`BUNDLE_REFRESH_SECS`] window.
    pub(crate) fn bundle_in(&self, tx: &Writer<'_>, now: i64) -> Result<SignedBundle> {
        let lifetime = self.config().policy.cert_lifetime_secs;
        let time_rules = self.time_rules();
        let state = tx.bundle_state()?;
        let memo_key = {
            let keys = self.keyring();
            BundleKey {
                generation: state.generation,
                signer_key_id: keys.current()?.key_id,
                listed: keys.listed(now, lifetime),
                time_rules,
                window: now.div_euclid(BUNDLE_REFRESH_SECS),
            }
        };
        if let Some(b) = self.bundle_memo.get(&memo_key, state.latest.as_ref()) {
            return Ok(b);
        }
        let (bundle, content_hash) = self.build_bundle(tx, now)?;
        let memo = self.bundle_memo.clone();
        let remembered = Remembered {
            key: memo_key,
            content_hash,
            bundle: bundle.clone(),
        };
        tx.after_commit(move || memo.set(remembered));
        Ok(bundle)
    }

    /// The bundle of what the deny lists, the issuer keys and the config say at `now`: the
    /// newest stored one if its content is the same, else a new version signed and stored.
    fn build_bundle(&self, tx: &Writer<'_>, now: i64) -> Result<(SignedBundle, [u8; 32])> {
        let lifetime = self.config().policy.cert_lifetime_secs;
        let time_rules = self.time_rules();
        let deny = tx.deny_list(now)?;
        let denied_validators = tx.denied_validators()?;
        let keys = self.keyring();
        let signer = keys.current()?;
        let listed = keys.listed(now, lifetime);
        let tariff = self.config().tariff.encode();
        let content_hash = BundleContent {
            signer_key_id: signer.key_id,
            listed: &listed,
            deny: &deny,
            denied_validators: &denied_validators,
            time_rules,
            tariff: &tariff,
        }
        .hash();
        let latest = tx.latest_bundle()?;
        if let Some(b) = &latest {
            if b.content_hash.as_slice() == content_hash.as_slice() {
                let bundle = SignedBundle {
                    version: b.version,
                    encoded: b.encoded.clone(),
                };
                return Ok((bundle, content_hash));
            }
        }
        let version = latest.map(|b| b.version.saturating_add(1)).unwrap_or(1);
        let body = ConfigBody {
            bundle_version: version,
            issued_at: now,
            signer_key_id: signer.key_id,
            issuer_keys: listed,
            deny_list: deny.into_iter().map(|p| Pseudonym(p.0)).collect(),
            validator_deny_list: denied_validators.into_iter().map(DeniedValidator).collect(),
            time_rules,
            tariff: self.config().tariff.clone(),
        };
        let signed = body.sign(&signer.key).map_err(Error::internal)?;
        drop(keys);
        let encoded = signed.encode();
        tx.insert_bundle(version, &content_hash, &encoded, now)?;
        let deny = signed.body.deny_list.len();
        let denied_validators = signed.body.validator_deny_list.len();
        tx.after_commit(move || {
            tracing::info!(version, deny, denied_validators, "config bundle signed");
        });
        Ok((SignedBundle { version, encoded }, content_hash))
    }

    /// The current config bundle in hex, as the wallet's responses carry it.
    pub(crate) fn bundle_hex_in(&self, tx: &Writer<'_>, now: i64) -> Result<String> {
        Ok(hex::encode(self.bundle_in(tx, now)?.encoded))
    }
}
