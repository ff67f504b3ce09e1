//! Issue #13, §7–8: a cloned phone caught on its own signatures; the rider's history shows
//! what was really charged for the fraud tap; the case freezes issuance (top-ups still
//! credited) until an operator resolves it over the admin API.

use super::super::client::history_verdicts;
use super::super::output::money;
use super::super::{Res, HTTP_TIMEOUT};
use super::api::Answer;
use super::common::{accepted, decision, record, upload_said, why};
use super::reel::{Reel, V7, V8};
use super::rider::Rider;
use super::{Attack, Play};
use mancard_api::endpoints::{
    ADMIN_FRAUD_CASE, ADMIN_FRAUD_CASES, ADMIN_RESOLVE_FRAUD, CREDENTIAL_NONCE, PROVISION,
    REPLENISH,
};
use mancard_api::{
    CredentialRequest, FraudCase, FraudCaseDetail, FraudResolution, NonceResponse,
    ResolveFraudRequest, ResolveFraudResponse, TapStatus,
};
use mancard_protocol::provision::{sign_provision, ProvisionPurpose};
use mancard_protocol::SigningKey;
use mancard_validator::http;

pub(super) const HISTORY_AND_FREEZE: (&str, &str, &str, Play) = (
    "cloned_phone_history_and_freeze",
    "A cloned phone: history that shows what was charged; fraud freezes issuance",
    "issue #13 §7–8",
    history_and_freeze,
);

fn history_and_freeze(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let k = reel.rider("Kian", 100_000, false)?;
    let cases = reel.cases()?;
    let to = reel.path("kian-clone");
    let (k, clone) = k.clone_phone(&reel.backend(), &to)?;
    a.did("Kian copies his phone's data directory to a second phone (a restored backup)");
    let o1 = reel.tap(&k, V7)?;
    let o2 = reel.tap(&clone, V8)?;
    a.did("both phones ride: his on bus 1, the clone on bus 2 — one counter, two signed taps");
    a.said("validator 7 (his phone)", decision(&o1));
    a.said("validator 8 (the clone)", decision(&o2));
    let (counter, fare) = accepted(&o1).ok_or("validator 7 refused Kian")?;
    let up7 = reel.upload(V7.0)?;
    let up8 = reel.upload(V8.0)?;
    a.said(
        "backend (validator 7, then validator 8)",
        format!("{}; {}", upload_said(&up7), upload_said(&up8)),
    );
    a.expect(
        "the clone's tap is a fraud case on signed evidence (duplicate_counter)",
        record(&up8, counter).is_some_and(|r| r.status == TapStatus::Fraud)
            && reel.cases()? == cases + 1,
    );
    k.sync()?;
    let seen = history_verdicts(&k.wallet)?;
    let mine = seen.iter().find(|v| v.counter == counter);
    a.said(
        "Kian's history",
        mine.map(|v| format!("{} {}{}", v.status, money(v.charged), why(&v.reason)))
            .unwrap_or_else(|| "no verdict".into()),
    );
    a.expect(
        format!(
            "his history shows the fraud tap at what the backend charged ({}), not 0",
            money(fare)
        ),
        mine.is_some_and(|v| v.status == "fraud" && v.charged == fare),
    );
    freeze(reel, a, &k)?;
    let charged = reel.charged(k.account_id)?;
    a.expect(
        "charged once: the clone's ride is evidence, not a second charge",
        charged == fare,
    );
    a.charged(charged, "the one ride the backend stored, once");
    Ok(())
}

/// The case freezes the account: no certificate for his phone or a new one, top-ups still
/// credited; the operator resolves it and issuance works again.
fn freeze(reel: &mut Reel, a: &mut Attack, k: &Rider) -> Res<()> {
    let b = reel.backend();
    let req = k.credential_request(&b, ProvisionPurpose::Replenish)?;
    let replenish = b
        .api
        .post(b.rt, REPLENISH.path, Some(&k.token), Some(&req))?;
    let other = new_phone(reel, &k.token)?;
    a.did("Kian asks for a new certificate, then provisions a new phone");
    a.said(
        "backend",
        format!(
            "replenish: {}; a new phone: {}",
            replenish.said(),
            other.said()
        ),
    );
    a.expect(
        "both refused while the case is open: 403 account_frozen",
        [&replenish, &other]
            .iter()
            .all(|x| x.status == 403 && x.code() == "account_frozen"),
    );
    let before = reel.balance(k.account_id)?;
    let i = k.app.block_on(k.app.start_top_up(50_000))??;
    http::post(
        &i.payment_url,
        "application/x-www-form-urlencoded",
        b"",
        HTTP_TIMEOUT,
    )
    .map_err(|e| format!("sandbox gateway: {e}"))?;
    let done = k.app.block_on(k.app.complete_top_up(i.intent_id))??;
    let after = reel.balance(k.account_id)?;
    a.said(
        "backend (top-up)",
        format!(
            "{}: balance {} → {}",
            done.status.name(),
            money(before),
            money(after)
        ),
    );
    a.expect("a top-up is still credited", after == before + 50_000);
    let resolved = operator(reel, a, k.account_id)?;
    let again = new_phone(reel, &k.token)?;
    a.said("backend (a new phone, after the resolution)", again.said());
    a.expect(
        "once resolved, the account may provision a new phone",
        resolved && again.status == 200,
    );
    Ok(())
}

/// A new phone of the account asks for its first certificate (fresh binding and tap keys).
fn new_phone(reel: &Reel, token: &str) -> Res<Answer> {
    let b = reel.backend();
    let n: NonceResponse = b
        .api
        .post::<()>(b.rt, CREDENTIAL_NONCE.path, Some(token), None)?
        .parse()?;
    let nonce: [u8; 32] = hex::decode(&n.nonce)?
        .try_into()
        .map_err(|_| "the nonce is not 32 bytes")?;
    let (binding, _) = SigningKey::generate()?;
    let (tap, _) = SigningKey::generate()?;
    let sig = sign_provision(
        &binding,
        ProvisionPurpose::Provision,
        &nonce,
        &tap.public_key(),
    )?;
    let req = CredentialRequest {
        nonce: n.nonce,
        binding_public_key: hex::encode(binding.public_key().as_bytes()),
        tap_public_key: hex::encode(tap.public_key().as_bytes()),
        signature: hex::encode(sig.as_bytes()),
        next_counter: None,
    };
    b.api.post(b.rt, PROVISION.path, Some(token), Some(&req))
}

/// The operator lists the open cases, reads the account's case with its evidence, and
/// confirms it (the device stays revoked; the account is no longer frozen).
fn operator(reel: &Reel, a: &mut Attack, account_id: i64) -> Res<bool> {
    let b = reel.backend();
    let admin = Some(reel.admin.as_str());
    let open: Vec<FraudCase> = b.api.get(b.rt, ADMIN_FRAUD_CASES.path, admin)?.parse()?;
    let case = open
        .iter()
        .find(|c| c.account_id == account_id)
        .ok_or("the operator finds no open case for the account")?;
    let detail: FraudCaseDetail = b
        .api
        .get(
            b.rt,
            &ADMIN_FRAUD_CASE.path_with(&case.id.to_string()),
            admin,
        )?
        .parse()?;
    let req = ResolveFraudRequest {
        resolution: FraudResolution::Confirmed,
        note: "a restored backup used on a second phone".into(),
        operator: "reel".into(),
    };
    let r: ResolveFraudResponse = b
        .api
        .post(
            b.rt,
            &ADMIN_RESOLVE_FRAUD.path_with(&case.id.to_string()),
            admin,
            Some(&req),
        )?
        .parse()?;
    let parts: Vec<&str> = detail
        .evidence_summary
        .iter()
        .filter_map(|l| l.strip_prefix("  part "))
        .filter_map(|l| l.split_once(": ").map(|(_, kind)| kind))
        .collect();
    let verified = detail
        .evidence_summary
        .iter()
        .filter(|l| l.contains("verifies under certificate"))
        .count();
    a.said(
        "operator (admin API)",
        format!(
            "case {} {} on counter {}: {} evidence bytes, {} part(s) ({}), {verified} tap \
             signature(s) verified; confirmed: account frozen {}, device revoked {}",
            case.id,
            case.kind.as_str(),
            case.counter.map(|c| c.to_string()).unwrap_or_default(),
            detail.evidence.len() / 2,
            parts.len(),
            parts.join(", "),
            r.account_frozen,
            r.device_revoked
        ),
    );
    a.expect(
        "the case keeps its evidence: the two taps, both signed by his tap key",
        parts.len() == 2 && verified == 2,
    );
    Ok(!r.account_frozen)
}
