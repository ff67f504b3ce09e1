//! The timed phase: goose scenarios over the riders and validators the setup made.
//!
//! - `upload`: a validator taps K riders (each tap signed by the rider's wallet core, as at a
//!   gate), seals the signed batch and uploads it; every `resend_every`-th batch is sent a
//!   second time on purpose, and the backend must answer it as already processed.
//! - `sync`: a rider's wallet uploads its new tap-log entries and reads its ledger.
//! - `topup`: a rider creates a top-up intent (binding-key proof), pays it on the sandbox
//!   gateway (the redirect back to the backend followed) and asks for its status.
//!
//! Taps made at a gate are counted in [`Tally`] whether or not their upload got through: the
//! books at the end ([`super::books`]) flush what is left and want every one charged once.

use super::setup::{parse_nonce, Rider};
use goose::prelude::{GooseMethod, GooseRequest, GooseUser, TransactionError, TransactionResult};
use mancard_api::endpoints::{
    CREATE_TOPUP, CREDENTIAL_NONCE, PROOF_HEADER, TOPUP_STATUS, WALLET_SYNC,
};
use mancard_api::{BatchResponse, NonceResponse, SyncRequest, SyncResponse, TopupIntentResponse};
use mancard_api::{TopupRequest, TopupStatus};
use mancard_validator::{Decision, FnChannel, SealedBatch, Validator};
use std::collections::{BTreeSet, VecDeque};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Where a rider's wallet stands with the backend between syncs.
#[derive(Default)]
pub(super) struct SyncState {
    pub(super) uploaded_through: u64,
    pub(super) cursor: i64,
    pub(super) verdict_cursor: i64,
}

/// What the timed phase did that the books must find.
#[derive(Default)]
pub(super) struct Tally {
    /// (rider, counter) of every tap a validator accepted.
    pub(super) taps: BTreeSet<(usize, u32)>,
    /// Taps a wallet or validator refused (the allowance ran out, …): never charged.
    pub(super) refused_taps: u64,
    /// Batches sent twice on purpose, and those the backend processed again (must be 0).
    pub(super) resends: u64,
    pub(super) resends_reprocessed: u64,
    /// Top-up intents whose payment was submitted: (rider, intent id).
    pub(super) topups: Vec<(usize, String)>,
}

/// Everything the scenarios share.
pub(super) struct State {
    pub(super) validators: Vec<tokio::sync::Mutex<Validator>>,
    /// Per validator, batches its taps were sealed into before the timed phase (`--presealed`):
    /// acknowledged in its journal and kept here until uploaded, so the timed phase spends
    /// the generator's cores on HTTP, not on signing taps.
    pub(super) presealed: Vec<Mutex<VecDeque<SealedBatch>>>,
    /// Taps in batches the backend accepted on their first upload (the ingest rate).
    pub(super) taps_uploaded: AtomicU64,
    pub(super) riders: Vec<Arc<Rider>>,
    /// One NFC field per phone: a wallet answers one reader at a time.
    fields: Vec<Mutex<()>>,
    pub(super) sync: Vec<tokio::sync::Mutex<SyncState>>,
    pub(super) taps_per_batch: usize,
    pub(super) resend_every: u64,
    pub(super) topup_amount: i64,
    pub(super) run_id: String,
    /// The instances' base URLs (behind no load balancer: each request picks one).
    bases: Vec<String>,
    next_base: AtomicU64,
    pub(super) tally: Mutex<Tally>,
    next_validator: AtomicUsize,
    next_rider: AtomicUsize,
    /// Each validator's next rider among its own (`--shared-riders` off).
    next_own_rider: Vec<AtomicUsize>,
    shared_riders: bool,
    uploads: AtomicU64,
    topups: AtomicU64,
    /// For the progress line: requests sent, and those that failed.
    pub(super) requests: AtomicU64,
    pub(super) failed: AtomicU64,
    /// Local steps that failed (a wallet, journal or keystore error), ending their transaction.
    pub(super) local_failures: AtomicU64,
    /// Every 5xx answer by request kind, status and problem code (what to look for in the
    /// backend's log).
    pub(super) server_errors: Mutex<std::collections::BTreeMap<String, u64>>,
}

impl State {
    pub(super) fn new(
        validators: Vec<Validator>,
        riders: Vec<Arc<Rider>>,
        (taps_per_batch, resend_every, topup_amount): (usize, u64, i64),
        shared_riders: bool,
        run_id: String,
        bases: Vec<String>,
    ) -> Self {
        Self {
            bases,
            next_base: AtomicU64::new(0),
            fields: riders.iter().map(|_| Mutex::new(())).collect(),
            presealed: validators.iter().map(|_| Mutex::default()).collect(),
            next_own_rider: validators.iter().map(|_| AtomicUsize::new(0)).collect(),
            shared_riders,
            taps_uploaded: AtomicU64::new(0),
            sync: riders.iter().map(|_| Default::default()).collect(),
            validators: validators
                .into_iter()
                .map(tokio::sync::Mutex::new)
                .collect(),
            riders,
            taps_per_batch,
            resend_every,
            topup_amount,
            run_id,
            tally: Mutex::new(Tally::default()),
            next_validator: AtomicUsize::new(0),
            next_rider: AtomicUsize::new(0),
            uploads: AtomicU64::new(0),
            topups: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            local_failures: AtomicU64::new(0),
            server_errors: Mutex::default(),
        }
    }

    /// A scrambled instance index for the next request (`None` with no instance).
    fn pick(&self) -> Option<usize> {
        let n = u64::try_from(self.bases.len()).ok().filter(|n| *n > 0)?;
        // splitmix64 of a counter: every instance gets its share, in no fixed pattern
        let mut z = self
            .next_base
            .fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        usize::try_from((z ^ (z >> 31)) % n).ok()
    }

    /// `path` on instance `at` (wrapping), as an absolute URL.
    fn url(&self, at: usize, path: &str) -> String {
        let base = at
            .checked_rem(self.bases.len())
            .and_then(|i| self.bases.get(i))
            .map_or("", String::as_str);
        format!("{base}{path}")
    }

    /// `path` on a randomly picked instance.
    fn any(&self, path: &str) -> String {
        self.url(self.pick().unwrap_or(0), path)
    }

    fn rider(&self, n: usize) -> Option<(usize, &Arc<Rider>)> {
        let i = n.checked_rem(self.riders.len())?;
        self.riders.get(i).map(|r| (i, r))
    }

    /// The next rider to tap at validator `vi`: the next of its own riders (every V-th, from
    /// the `vi`-th), or of all of them with `--shared-riders` or fewer riders than validators.
    fn rider_at(&self, vi: usize) -> Option<(usize, &Arc<Rider>)> {
        let (v, r) = (self.validators.len(), self.riders.len());
        let own = self
            .next_own_rider
            .get(vi)
            .filter(|_| !self.shared_riders && r >= v);
        let Some(cursor) = own else {
            return self.rider(self.next_rider.fetch_add(1, Ordering::Relaxed));
        };
        self.rider(own_rider(vi, v, r, cursor.fetch_add(1, Ordering::Relaxed))?)
    }

    fn tally(&self, f: impl FnOnce(&mut Tally)) {
        if let Ok(mut t) = self.tally.lock() {
            f(&mut t);
        }
    }

    /// K taps at validator `vi` (`v`) by its next riders, tallied: the taps accepted.
    fn tap_batch(&self, vi: usize, v: &mut Validator) -> Option<usize> {
        let (mut accepted, mut refused) = (Vec::new(), 0u64);
        for _ in 0..self.taps_per_batch {
            let (i, rider) = self.rider_at(vi)?;
            match self.tap(v, i, rider) {
                Some(counter) => accepted.push((i, counter)),
                None => refused = refused.saturating_add(1),
            }
        }
        let n = accepted.len();
        self.tally(|t| {
            t.taps.extend(accepted.iter().copied());
            t.refused_taps = t.refused_taps.saturating_add(refused);
        });
        Some(n)
    }

    /// Before the timed phase: `batches` batches of K taps at validator `vi`, sealed and
    /// acknowledged in its journal, kept for the upload scenario (blocking: call from a
    /// blocking thread).
    pub(super) fn preseal(&self, vi: usize, batches: usize) -> Result<(), String> {
        let slot = self.validators.get(vi).ok_or("no such validator")?;
        let queue = self.presealed.get(vi).ok_or("no such validator")?;
        let mut v = slot.blocking_lock();
        for _ in 0..batches {
            self.tap_batch(vi, &mut v).ok_or("no rider")?;
            let Some(batch) = v.seal().map_err(|e| format!("seal a batch: {e}"))? else {
                continue;
            };
            let now = v.now();
            v.journal()
                .ack_batch(&batch.batch_id, now)
                .map_err(|e| format!("acknowledge a batch: {e}"))?;
            queue
                .lock()
                .map_err(|_| "the batch queue was poisoned")?
                .push_back(batch);
        }
        Ok(())
    }

    /// One tap of rider `i` at validator `v`: its counter if accepted.
    fn tap(&self, v: &mut Validator, i: usize, rider: &Rider) -> Option<u32> {
        let _field = self.fields.get(i)?.lock().ok()?;
        let wallet = Arc::clone(&rider.wallet);
        let mut ch = FnChannel::new(move |apdu| wallet.process_apdu(apdu));
        let outcome = v.tap_nfc(&mut ch);
        rider.wallet.deactivated();
        match outcome.decision {
            Decision::Accepted(a) => Some(a.counter),
            Decision::Refused(_) => None,
        }
    }
}

/// Unwraps a local step (wallet, journal, keystore) of a transaction, or counts its failure
/// (shown in the report) and ends the transaction: goose has no error of its own for it.
macro_rules! local {
    ($s:expr, $what:expr, $e:expr) => {
        local!($s, $what, $e, ())
    };
    ($s:expr, $what:expr, $e:expr, $out:expr) => {
        match $e {
            Ok(v) => v,
            Err(e) => {
                $s.local_failures.fetch_add(1, Ordering::Relaxed);
                tracing::warn!("load: {}: {e}", $what);
                return Ok($out);
            }
        }
    };
}

/// Sends one request through goose (timed and counted under `name`): the status and body,
/// or `None` when no answer came.
async fn send(
    s: &State,
    user: &mut GooseUser,
    (method, path, name): (GooseMethod, &str, &str),
    shape: impl FnOnce(reqwest::RequestBuilder) -> reqwest::RequestBuilder,
) -> Result<Option<(u16, Vec<u8>)>, Box<TransactionError>> {
    let rb = shape(user.get_request_builder(&method, path)?);
    let req = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .set_request_builder(rb)
        .build();
    let answer = user.request(req).await?;
    s.requests.fetch_add(1, Ordering::Relaxed);
    let got = match answer.response {
        Ok(r) => {
            let status = r.status().as_u16();
            let body = r.bytes().await.map(|b| b.to_vec()).unwrap_or_default();
            Some((status, body))
        }
        Err(_) => None,
    };
    if !matches!(got, Some((200..=299, _))) {
        s.failed.fetch_add(1, Ordering::Relaxed);
    }
    if let Some((status @ 500..=599, body)) = &got {
        let code = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
            .unwrap_or_else(|| "no problem document".into());
        if let Ok(mut m) = s.server_errors.lock() {
            let n = m.entry(format!("{name}: {status} {code}")).or_insert(0);
            *n = n.saturating_add(1);
        }
    }
    Ok(got)
}

/// The JSON of a 2xx answer, or `None`.
fn ok_json<T: serde::de::DeserializeOwned>(got: Option<(u16, Vec<u8>)>) -> Option<T> {
    match got {
        Some((200..=299, body)) => serde_json::from_slice(&body).ok(),
        _ => None,
    }
}

/// `upload`: a batch presealed before the timed phase if one is left, else K taps at one
/// validator sealed now; uploaded (some twice on purpose).
pub(super) async fn upload(s: Arc<State>, user: &mut GooseUser) -> TransactionResult {
    let n = s.next_validator.fetch_add(1, Ordering::Relaxed);
    let Some(vi) = n.checked_rem(s.validators.len()) else {
        return Ok(());
    };
    let (Some(slot), Some(queue)) = (s.validators.get(vi), s.presealed.get(vi)) else {
        return Ok(());
    };
    let pre = queue.lock().ok().and_then(|mut q| q.pop_front());
    let (batch, mut live) = match pre {
        Some(b) => (b, None),
        None => {
            let mut v = slot.lock().await;
            if s.tap_batch(vi, &mut v).is_none() {
                return Ok(());
            }
            let Some(batch) = local!(s, "seal a batch", v.seal()) else {
                return Ok(());
            };
            (batch, Some(v))
        }
    };
    let path = mancard_api::endpoints::VALIDATOR_BATCHES.path;
    // a random instance; a batch sent again goes to another one
    let at = s.pick().unwrap_or(0);
    let (url, again_url) = (s.url(at, path), s.url(at.saturating_add(1), path));
    let post = |rb: reqwest::RequestBuilder| {
        rb.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
            .body(batch.bytes.clone())
    };
    let got = send(&s, user, (GooseMethod::Post, &url, "upload"), post).await?;
    let Some(first) = ok_json::<BatchResponse>(got) else {
        // a live batch stays pending in the journal, a presealed one goes back to its queue:
        // sent again next time, or at the end
        if live.is_none() {
            if let Ok(mut q) = queue.lock() {
                q.push_front(batch);
            }
        }
        return Ok(());
    };
    if !first.duplicate_batch {
        let records = u64::try_from(batch.records).unwrap_or(0);
        s.taps_uploaded.fetch_add(records, Ordering::Relaxed);
    }
    if let Some(v) = live.as_mut() {
        let now = v.now();
        local!(
            s,
            "acknowledge a batch",
            v.journal().ack_batch(&batch.batch_id, now)
        );
    }
    drop(live);
    let every = s.resend_every.max(1);
    if s.uploads.fetch_add(1, Ordering::Relaxed) % every == every.saturating_sub(1) {
        let got = send(
            &s,
            user,
            (GooseMethod::Post, &again_url, "upload (resend)"),
            post,
        )
        .await?;
        if let Some(again) = ok_json::<BatchResponse>(got) {
            let reprocessed = !again.duplicate_batch || again.batch_id != first.batch_id;
            s.tally(|t| {
                t.resends = t.resends.saturating_add(1);
                t.resends_reprocessed =
                    t.resends_reprocessed.saturating_add(u64::from(reprocessed));
            });
        }
    }
    Ok(())
}

/// `sync`: one rider's wallet uploads its new tap-log entries and reads its ledger.
pub(super) async fn sync(s: Arc<State>, user: &mut GooseUser) -> TransactionResult {
    let Some((i, rider)) = s.rider(s.next_rider.fetch_add(1, Ordering::Relaxed)) else {
        return Ok(());
    };
    let Some(slot) = s.sync.get(i) else {
        return Ok(());
    };
    let mut st = slot.lock().await;
    let entries = local!(
        s,
        "read the tap log",
        rider.wallet.tap_log(st.uploaded_through, 500)
    );
    let body = SyncRequest {
        pseudonym: rider.pseudonym.clone(),
        cursor: st.cursor,
        entries: entries.iter().map(hex::encode).collect(),
        verdict_cursor: st.verdict_cursor,
    };
    let token = rider.token.clone();
    let got = send(
        &s,
        user,
        (GooseMethod::Post, &s.any(WALLET_SYNC.path), "sync"),
        |rb| rb.bearer_auth(token).json(&body),
    )
    .await?;
    if let Some(v) = ok_json::<SyncResponse>(got) {
        st.uploaded_through = st
            .uploaded_through
            .saturating_add(u64::try_from(entries.len()).unwrap_or(0));
        st.cursor = v.cursor;
        st.verdict_cursor = v.verdict_cursor;
    }
    Ok(())
}

/// `topup`: nonce, intent (with the binding key's proof), payment, status.
pub(super) async fn topup(s: Arc<State>, user: &mut GooseUser) -> TransactionResult {
    let Some((i, rider)) = s.rider(s.next_rider.fetch_add(1, Ordering::Relaxed)) else {
        return Ok(());
    };
    let Some(intent) = create_intent(&s, user, i, rider).await? else {
        return Ok(());
    };
    s.tally(|t| t.topups.push((i, intent.intent_id.clone())));
    // The rider presses "Pay"; the gateway's redirect back to the backend is followed.
    send(
        &s,
        user,
        (GooseMethod::Post, &intent.payment_url, "topup: pay"),
        |rb| {
            rb.header(
                reqwest::header::CONTENT_TYPE,
                "application/x-www-form-urlencoded",
            )
        },
    )
    .await?;
    let path = s.any(&TOPUP_STATUS.path_with(&intent.intent_id));
    let token = rider.token.clone();
    let got = send(&s, user, (GooseMethod::Get, &path, "topup: status"), |rb| {
        rb.bearer_auth(token)
    })
    .await?;
    if let Some(v) = ok_json::<TopupIntentResponse>(got) {
        if v.status != TopupStatus::Credited {
            tracing::debug!(intent = %v.intent_id, status = v.status.as_str(), "not credited yet");
        }
    }
    Ok(())
}

/// A nonce, then a top-up intent for rider `i` with its binding key's proof: the intent, or
/// `None` when a step failed (counted).
async fn create_intent(
    s: &State,
    user: &mut GooseUser,
    i: usize,
    rider: &Rider,
) -> Result<Option<TopupIntentResponse>, Box<TransactionError>> {
    use mancard::PlatformKeystore as _;
    let n = s.topups.fetch_add(1, Ordering::Relaxed);
    let token = rider.token.clone();
    let got = send(
        s,
        user,
        (
            GooseMethod::Post,
            &s.any(CREDENTIAL_NONCE.path),
            "topup: nonce",
        ),
        |rb| rb.bearer_auth(token),
    )
    .await?;
    let Some(nonce) = ok_json::<NonceResponse>(got).and_then(|n| parse_nonce(&n.nonce).ok()) else {
        return Ok(None);
    };
    let body = serde_json::to_vec(&TopupRequest {
        amount: s.topup_amount,
        idempotency_key: format!("load-{}-{i}-{n}", s.run_id),
    });
    let body = local!(s, "top-up body", body, None);
    let transcript =
        mancard_protocol::provision::request_transcript(&nonce, "POST", CREATE_TOPUP.path, &body);
    let sig = local!(
        s,
        "binding key",
        rider.keystore.sign_with_binding_key(transcript),
        None
    );
    let raw: [u8; 64] = local!(s, "binding key", <[u8; 64]>::try_from(sig.as_slice()), None);
    let proof = mancard_protocol::provision::proof_header(
        &nonce,
        &mancard_protocol::Signature(raw).to_low_s(),
    );
    let token = rider.token.clone();
    let got = send(
        s,
        user,
        (
            GooseMethod::Post,
            &s.any(CREATE_TOPUP.path),
            "topup: create",
        ),
        |rb| {
            rb.bearer_auth(token)
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .header(PROOF_HEADER, proof)
                .body(body)
        },
    )
    .await?;
    Ok(ok_json::<TopupIntentResponse>(got))
}

/// The `k`-th rider (wrapping) of validator `vi`'s own, of `r` riders and `v` validators:
/// riders vi, vi + V, vi + 2V, … below R. `None` when it has none.
fn own_rider(vi: usize, v: usize, r: usize, k: usize) -> Option<usize> {
    let pool = r.saturating_sub(vi).div_ceil(v.max(1));
    let k = k.checked_rem(pool)?;
    Some(vi.saturating_add(k.saturating_mul(v)))
}

#[cfg(test)]
mod tests {
    use super::own_rider;
    use std::collections::BTreeSet;

    /// Validators' own riders are disjoint, cover every rider, and each validator cycles
    /// through exactly its own.
    #[test]
    fn each_validator_has_riders_of_its_own() {
        let (v, r) = (3, 10);
        let mut seen = BTreeSet::new();
        for vi in 0..v {
            let own: BTreeSet<usize> = (0..25).filter_map(|k| own_rider(vi, v, r, k)).collect();
            assert!(own.iter().all(|i| i % v == vi && *i < r), "{vi}: {own:?}");
            assert!(own.is_disjoint(&seen));
            seen.extend(own);
        }
        assert_eq!(seen, (0..r).collect());
        assert_eq!(own_rider(2, 3, 2, 0), None);
    }
}
