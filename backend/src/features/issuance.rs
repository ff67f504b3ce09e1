//! Issuance: provisioning a device (the account's other devices are revoked) and replenishing
//! its certificate (the next counter range), each certificate with a fresh random pseudonym
//! (nothing on the wire links two certificates of one phone; the backend links them through
//! its certificates table), and the cache of issued certificates settlement verifies against.

use super::sessions::SessionCtx;
use crate::engine::{hex_array, public_key, random, Engine};
use crate::error::{Error, Result, StoreError};
use crate::ids::{AccountId, CertHash, PseudonymBytes};
use crate::settle::CertInfo;
use crate::store::{Account, Device, NewCertificate, Revocation, Writer};
use mancard_api::{CredentialRequest, CredentialResponse, IssuerKeyView, NonceResponse};
use mancard_protocol::provision::{verify_provision, ProvisionPurpose, NONCE_LEN};
use mancard_protocol::{
    CertificateBody, CredentialCertificate, IssuerKey, OfflineAllowance, Pseudonym, PublicKey,
    Signature,
};
use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;

/// A provisioning request whose proof verified.
struct Proven {
    nonce: [u8; NONCE_LEN],
    binding: PublicKey,
    tap: PublicKey,
    purpose: ProvisionPurpose,
    next_counter: u32,
}

fn prove(req: &CredentialRequest, purpose: ProvisionPurpose) -> Result<Proven> {
    let nonce: [u8; NONCE_LEN] = hex_array(&req.nonce, "nonce")?;
    let binding = public_key(&req.binding_public_key, "binding_public_key")?;
    let tap = public_key(&req.tap_public_key, "tap_public_key")?;
    let sig = Signature(hex_array(&req.signature, "signature")?);
    if verify_provision(purpose, &nonce, &binding, &tap, &sig).is_err() {
        return Err(Error::BadProof);
    }
    Ok(Proven {
        nonce,
        binding,
        tap,
        purpose,
        next_counter: req.next_counter.unwrap_or(0),
    })
}

fn key_view(k: IssuerKey) -> IssuerKeyView {
    IssuerKeyView {
        key_id: k.key_id,
        public_key: hex::encode(k.public_key.as_bytes()),
        valid_from: k.valid_from,
        valid_until: k.valid_until,
    }
}

impl Engine {
    /// A single-use nonce for the provisioning transcript.
    pub fn new_nonce(&self, account_id: impl Into<AccountId>) -> Result<NonceResponse> {
        let account_id = account_id.into();
        let nonce: [u8; NONCE_LEN] = random()?;
        let expires_at = self
            .now()
            .saturating_add(self.config().policy.nonce_ttl_secs);
        self.store
            .write(|tx| tx.insert_nonce(&nonce, account_id, expires_at))?;
        Ok(NonceResponse {
            nonce: hex::encode(nonce),
            expires_at,
        })
    }

    /// Provisions a device or replenishes its certificate (in-process callers: tools, tests;
    /// the HTTP edge uses [`Engine::issue_for_session`]).
    pub fn issue(
        &self,
        account_id: impl Into<AccountId>,
        req: &CredentialRequest,
        purpose: ProvisionPurpose,
    ) -> Result<CredentialResponse> {
        self.issue_with(account_id.into(), req, purpose, None)
    }

    /// Provisions or replenishes for a session: a bound session only for its own device's
    /// binding key. On success the session is bound to the device, and provisioning ends every
    /// older session of the account (a lost phone's token stops working; sessions made after
    /// this one are left alone), in the same transaction as the certificate.
    pub fn issue_for_session(
        &self,
        session: &SessionCtx,
        req: &CredentialRequest,
        purpose: ProvisionPurpose,
    ) -> Result<CredentialResponse> {
        Self::check_session_device(session, &req.binding_public_key)?;
        self.issue_with(session.account_id, req, purpose, Some(session))
    }

    fn issue_with(
        &self,
        account_id: AccountId,
        req: &CredentialRequest,
        purpose: ProvisionPurpose,
        session: Option<&SessionCtx>,
    ) -> Result<CredentialResponse> {
        let proven = prove(req, purpose)?;
        let now = self.now();
        let new_pseudonym = PseudonymBytes(random()?);
        let (resp, info) = self.store.write(|tx| -> Result<_> {
            let (out, fresh) = self.issue_in(tx, account_id, &proven, new_pseudonym, now)?;
            // A retry (its nonce possibly spent, the body possibly replayed by someone else
            // from another session of the account) changes no session: the first, fresh
            // issuance bound its session and ended the older ones in its own transaction.
            if let Some(s) = session.filter(|_| fresh) {
                tx.bind_session(&s.token_hash, out.1.device_id, proven.binding.as_bytes())?;
                if purpose == ProvisionPurpose::Provision {
                    let ended = tx.end_other_sessions(account_id, &s.token_hash)?;
                    if ended > 0 {
                        let account = account_id.0;
                        tx.after_commit(move || {
                            tracing::info!(
                                account_id = account,
                                ended,
                                "provisioning ended the account's other sessions"
                            );
                        });
                    }
                }
            }
            Ok(out)
        })?;
        tracing::info!(
            account_id = account_id.0,
            purpose = purpose.name(),
            counter_first = resp.counter_first,
            max_amount = resp.max_amount,
            "certificate issued"
        );
        self.certs
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(info.hash, Arc::new(info));
        Ok(resp)
    }

    /// Issuance in the caller's transaction: a retried request's certificate again (`false`:
    /// nothing new), or a new one (`true`).
    fn issue_in(
        &self,
        tx: &Writer<'_>,
        account_id: AccountId,
        proven: &Proven,
        new_pseudonym: PseudonymBytes,
        now: i64,
    ) -> Result<((CredentialResponse, CertInfo), bool)> {
        let account = tx.account(account_id)?.ok_or(Error::UnknownAccount)?;
        // A retry of a request whose answer was lost (the same tap key, with the same or a
        // fresh nonce) gets the same certificate back: nothing new is issued.
        if let Some(again) = self.issued_before(tx, &account, proven, now)? {
            return Ok((again, false));
        }
        if !tx.take_nonce(&proven.nonce, account_id, now)? {
            return Err(Error::InvalidNonce);
        }
        if self.account_frozen(tx, account_id)? {
            return Err(Error::AccountFrozen);
        }
        let (device, revoked) = self.device_for(tx, &account, proven, new_pseudonym, now)?;
        let max = self.config().policy.max_certificates_per_day;
        if tx.certificates_issued_since(account_id, now.saturating_sub(24 * 3600))? >= max {
            return Err(Error::IssuanceRateLimited { max });
        }
        let (mut resp, info) =
            self.certify(tx, &account, &device, proven, (new_pseudonym, revoked), now)?;
        // In this transaction: the bundle names the pseudonyms it revoked.
        resp.config_bundle = self.bundle_hex_in(tx, now)?;
        Ok(((resp, info), true))
    }

    /// The answer to a request for a tap key that was certified before for this account's
    /// device with the same binding key, if that certificate is still the device's newest and
    /// the device is not revoked (a lost answer, retried).
    fn issued_before(
        &self,
        tx: &Writer<'_>,
        account: &Account,
        proven: &Proven,
        now: i64,
    ) -> Result<Option<(CredentialResponse, CertInfo)>> {
        let Some(row) = tx.certificate_by_tap_key(proven.tap.as_bytes())? else {
            return Ok(None);
        };
        let Some(device) = tx.device_by_binding_key(proven.binding.as_bytes())? else {
            return Ok(None);
        };
        if device.id != row.device_id || device.account_id != account.id {
            return Err(Error::BindingKeyInUse);
        }
        if let Some(reason) = tx.revocation(device.id)? {
            return Err(Error::CredentialRevoked { reason });
        }
        let newest = tx.latest_certificate(device.id)?;
        if newest.as_ref().map(|c| c.hash) != Some(row.hash) || row.superseded_at.is_some() {
            return Ok(None);
        }
        // A retry long after (the certificate expired or is about to): a new certificate.
        let policy = &self.config().policy;
        if row.valid_until.saturating_sub(now) < policy.replenish_before_expiry_secs {
            return Ok(None);
        }
        let cert = CredentialCertificate::decode(&row.encoded)
            .map_err(|_| StoreError::Corrupt("stored certificate"))?;
        let balance = tx.balance(account.id)?;
        let mut resp = self.credential_response(&cert, &row.encoded, (balance, now), Vec::new());
        resp.config_bundle = self.bundle_hex_in(tx, now)?;
        let account_id = account.id.0;
        tx.after_commit(move || {
            tracing::info!(account_id, "credential request retried: same certificate");
        });
        let info = CertInfo {
            cert,
            hash: row.hash,
            device_id: device.id,
            account_id: account.id,
        };
        Ok(Some((resp, info)))
    }

    /// The device a request is for: the existing one of its binding key, or (provisioning) a
    /// new one that replaces the account's other devices, whose live pseudonyms are returned.
    fn device_for(
        &self,
        tx: &Writer<'_>,
        account: &Account,
        proven: &Proven,
        new_pseudonym: PseudonymBytes,
        now: i64,
    ) -> Result<(Device, Vec<String>)> {
        let binding = proven.binding.as_bytes();
        match (proven.purpose, tx.device_by_binding_key(binding)?) {
            (_, Some(d)) if d.account_id != account.id => Err(Error::BindingKeyInUse),
            (_, Some(d)) => match tx.revocation(d.id)? {
                Some(reason) => Err(Error::CredentialRevoked { reason }),
                None => Ok((d, Vec::new())),
            },
            (ProvisionPurpose::Replenish, None) => Err(Error::UnknownBindingKey),
            (ProvisionPurpose::Provision, None) => {
                let mut revoked = Vec::new();
                for old in tx.active_devices(account.id)? {
                    tx.revoke(old.id, Revocation::ReplacedByNewDevice, now)?;
                    revoked.extend(tx.live_pseudonyms(old.id, now)?.iter().map(|p| p.to_hex()));
                }
                let id = tx.insert_device(account.id, binding, &new_pseudonym, now)?;
                if !revoked.is_empty() {
                    let (account, device, revoked) = (account.id.0, id.0, revoked.len());
                    tx.after_commit(move || {
                        tracing::info!(
                            account_id = account,
                            device_id = device,
                            revoked,
                            "new device replaces the old one"
                        );
                    });
                }
                let device = Device {
                    id,
                    account_id: account.id,
                    binding_key: binding.to_vec(),
                    pseudonym: new_pseudonym,
                    created_at: now,
                };
                Ok((device, revoked))
            }
        }
    }

    /// Signs and stores the device's next certificate under its fresh `pseudonym`; `revoked`
    /// are the pseudonyms this request revoked. The response's config bundle is filled in by
    /// the caller.
    fn certify(
        &self,
        tx: &Writer<'_>,
        account: &Account,
        device: &Device,
        proven: &Proven,
        (pseudonym, revoked): (PseudonymBytes, Vec<String>),
        now: i64,
    ) -> Result<(CredentialResponse, CertInfo)> {
        let policy = &self.config().policy;
        let (counter_first, counter_last) = self.counter_range(tx, device, proven.next_counter)?;
        let balance = tx.balance(account.id)?;
        let max_amount = balance.clamp(0, policy.max_offline_amount.max(0));
        let keys = self.keyring();
        let signer = keys.current()?;
        let body = CertificateBody {
            issuer_key_id: signer.key_id,
            pseudonym: Pseudonym(pseudonym.0),
            tap_public_key: proven.tap,
            valid_from: now.saturating_sub(policy.cert_backdate_secs),
            valid_until: now.saturating_add(policy.cert_lifetime_secs.max(1)),
            fare_class: account.fare_class,
            allowance: OfflineAllowance {
                counter_first,
                counter_last,
                max_amount,
            },
        };
        let cert = body.sign(&signer.key).map_err(Error::internal)?;
        drop(keys);
        let encoded = cert.encode();
        let hash = CertHash(cert.id());
        tx.insert_certificate(&NewCertificate {
            hash,
            pseudonym,
            device_id: device.id,
            encoded: &encoded,
            counter_first,
            counter_last,
            valid_until: cert.body.valid_until,
            issued_at: now,
            tap_key: proven.tap.as_bytes(),
        })?;
        // The device's older certificates are superseded: their pseudonyms go on the deny
        // list until they expire, so the unspent allowance of the account's live certificates
        // is this one's, which the confirmed balance bounds.
        let superseded = tx.supersede_others(device.id, &hash, now)?;
        if superseded > 0 {
            let device_id = device.id.0;
            tx.after_commit(move || {
                tracing::info!(device_id, superseded, "older certificates superseded");
            });
        }
        let resp = self.credential_response(&cert, &encoded, (balance, now), revoked);
        let info = CertInfo {
            cert,
            hash,
            device_id: device.id,
            account_id: account.id,
        };
        Ok((resp, info))
    }

    /// The answer carrying certificate `cert` (`encoded`) at `now` with the account's
    /// `balance`; `revoked` are the pseudonyms the request revoked. The config bundle is filled
    /// in by the caller, in its transaction.
    fn credential_response(
        &self,
        cert: &CredentialCertificate,
        encoded: &[u8],
        (balance, now): (i64, i64),
        revoked: Vec<String>,
    ) -> CredentialResponse {
        let issuer_keys = self
            .keyring()
            .listed(now, self.config().policy.cert_lifetime_secs)
            .into_iter()
            .map(key_view)
            .collect();
        let b = &cert.body;
        CredentialResponse {
            certificate: hex::encode(encoded),
            certificate_hash: hex::encode(cert.id()),
            pseudonym: hex::encode(b.pseudonym.0),
            issuer_key_id: b.issuer_key_id,
            valid_from: b.valid_from,
            valid_until: b.valid_until,
            counter_first: b.allowance.counter_first,
            counter_last: b.allowance.counter_last,
            max_amount: b.allowance.max_amount,
            fare_class: b.fare_class.name().to_string(),
            balance,
            server_time: now,
            revoked_pseudonyms: revoked,
            issuer_keys,
            tariff: self.tariff_hex(),
            config_bundle: String::new(),
        }
    }

    /// The counters of the device's next certificate: after its last certificate's, not below
    /// what the wallet says it can still use, and a random gap further (so two certificates'
    /// ranges do not continue one another on the wire).
    fn counter_range(
        &self,
        tx: &Writer<'_>,
        device: &Device,
        next_counter: u32,
    ) -> Result<(u32, u32)> {
        let policy = &self.config().policy;
        let gap = match policy.counter_gap_max {
            0 => 0,
            max => u32::from_be_bytes(random()?) % max,
        };
        let first = match tx.latest_certificate(device.id)? {
            Some(c) => c
                .counter_last
                .checked_add(1)
                .ok_or(Error::CountersExhausted)?,
            None => 0,
        }
        .max(next_counter)
        .checked_add(gap)
        .ok_or(Error::CountersExhausted)?;
        let per_cert = policy.counters_per_cert.max(1);
        let last = first
            .checked_add(per_cert.saturating_sub(1))
            .ok_or(Error::CountersExhausted)?;
        Ok((first, last))
    }

    /// Issued certificates by hash (cache, then database).
    pub(crate) fn cert_infos(
        &self,
        hashes: &BTreeSet<CertHash>,
    ) -> Result<HashMap<CertHash, Arc<CertInfo>>> {
        self.cert_infos_via(hashes, None)
    }

    /// [`Self::cert_infos`] inside a transaction: a cache miss reads through `tx`, never
    /// through a second connection (a write that took one more from the pool while holding
    /// its locks could wait on writers that wait on it).
    pub(crate) fn cert_infos_in(
        &self,
        tx: &crate::store::Reader<'_>,
        hashes: &BTreeSet<CertHash>,
    ) -> Result<HashMap<CertHash, Arc<CertInfo>>> {
        self.cert_infos_via(hashes, Some(tx))
    }

    fn cert_infos_via(
        &self,
        hashes: &BTreeSet<CertHash>,
        within: Option<&crate::store::Reader<'_>>,
    ) -> Result<HashMap<CertHash, Arc<CertInfo>>> {
        let mut out = HashMap::with_capacity(hashes.len());
        let mut missing = Vec::new();
        {
            let cache = self.certs.read().unwrap_or_else(|p| p.into_inner());
            for h in hashes {
                match cache.get(h) {
                    Some(c) => {
                        out.insert(*h, Arc::clone(c));
                    }
                    None => missing.push(*h),
                }
            }
        }
        if missing.is_empty() {
            return Ok(out);
        }
        let read = |tx: &crate::store::Reader<'_>| -> Result<Vec<CertInfo>> {
            let mut v = Vec::new();
            for h in &missing {
                if let Some(row) = tx.certificate(h)? {
                    let cert = CredentialCertificate::decode(&row.encoded)
                        .map_err(|_| StoreError::Corrupt("stored certificate"))?;
                    v.push(CertInfo {
                        cert,
                        hash: row.hash,
                        device_id: row.device_id,
                        account_id: row.account_id,
                    });
                }
            }
            Ok(v)
        };
        let found = match within {
            Some(tx) => read(tx)?,
            None => self.store.read(|tx| read(tx))?,
        };
        let mut cache = self.certs.write().unwrap_or_else(|p| p.into_inner());
        for ci in found {
            let a = Arc::new(ci);
            cache.insert(a.hash, Arc::clone(&a));
            out.insert(a.hash, a);
        }
        Ok(out)
    }
}
