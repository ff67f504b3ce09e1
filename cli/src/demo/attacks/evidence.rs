//! Issue #13, §1–3: who may say what. A cheaper first report, the allowance across
//! certificates, a provisioning retry, and bytes nobody signed.

use super::super::output::money;
use super::super::parties::fetch_bundle;
use super::super::Res;
use super::common::{accepted, decision, nfc, record, status_of, synced, tap_said, upload_said};
use super::reel::{Reel, V7, V8};
use super::{Attack, Play};
use mancard_api::endpoints::REPLENISH;
use mancard_api::{CredentialResponse, TapStatus};
use mancard_protocol::provision::ProvisionPurpose;
use mancard_protocol::{
    ChallengeBody, Pseudonym, SigningKey, TapAuthorization, TapProof, ValidatorConfig,
    WalletLogEntry,
};

pub(super) const CHEAPER_SELF_REPORT: (&str, &str, &str, Play) = (
    "cheaper_self_report",
    "A cheaper first report: the tampered wallet reports its tap before the bus does",
    "issue #13 §1; threat model v2: an invented challenge",
    cheaper_self_report,
);

fn cheaper_self_report(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let m = reel.rider("Mallory", 100_000, true)?;
    let cases = reel.cases()?;
    let o = reel.tap(&m, V7)?;
    a.did("Mallory's rooted phone taps validator 7 on line 1 (the gate opens)");
    a.said("validator 7", decision(&o));
    let (counter, fare) = accepted(&o).ok_or("validator 7 refused Mallory's tap")?;
    let (cheap, invented) = cheaper_reports(&m.last_entry()?, &m.leaked_tap_key()?)?;
    a.did(
        "her tampered app, with the tap key the rooted keystore leaked, signs the same challenge \
         again at 0 rials and reports it before the bus uploads",
    );
    a.did("then reports a ride on a challenge she made up: validator 7, line 999, fare 0");
    for (entry, what, reason) in [
        (cheap, "0 rials", "challenge_mismatch"),
        (invented, "invented challenge", "unsigned_challenge"),
    ] {
        let v = synced(&m.raw_sync(&reel.backend(), &[entry])?)?;
        let r = v.taps.first();
        a.said(
            format!("backend (tampered sync, {what})"),
            r.map(tap_said).unwrap_or_default(),
        );
        a.expect(
            format!("the {what} report is rejected: {reason}"),
            status_of(r) == (Some(TapStatus::Rejected), Some(reason.into())),
        );
    }
    a.expect(
        "nothing is charged on her reports",
        reel.charged(m.account_id)? == 0,
    );
    let up = reel.upload(V7.0)?;
    a.said("backend (validator 7's batch)", upload_said(&up));
    let rec = record(&up, counter);
    a.expect(
        format!("the genuine record is settled at the fare validator 7 signed ({fare})"),
        rec.map(|r| (r.status, r.fare)) == Some((TapStatus::Settled, Some(fare))),
    );
    let charged = reel.charged(m.account_id)?;
    a.expect("charged once, the full fare", charged == fare);
    a.expect(
        "no fraud case: nobody is blamed for what the rules refused",
        reel.cases()? == cases,
    );
    a.charged(charged, "the fare validator 7 signed, once");
    Ok(())
}

/// The tampered app's two reports of a genuine NFC tap, signed with the leaked tap key: (a)
/// the validator's own challenge authorized at 0 rials, the same counter and link; (b) a
/// challenge it made up (fare 0 on a line nobody runs, signed by a key of its own), next in
/// its chain.
fn cheaper_reports(
    genuine: &WalletLogEntry,
    key: &SigningKey,
) -> Res<(WalletLogEntry, WalletLogEntry)> {
    let (challenge, auth) = nfc(genuine)?;
    let cheap = WalletLogEntry {
        seq: genuine.seq,
        time: genuine.time,
        amount: 0,
        proof: TapProof::Nfc {
            challenge: challenge.clone(),
            authorization: TapAuthorization::sign(
                key,
                &challenge.body,
                &auth.cert_id,
                auth.counter,
                0,
                &auth.prev,
            )?,
        },
    };
    let (rogue, _) = SigningKey::generate()?;
    let made_up = ChallengeBody {
        fare: 0,
        line_id: 999,
        ..challenge.body.clone()
    }
    .sign(&rogue)?;
    let invented = WalletLogEntry {
        seq: genuine.seq + 1,
        time: genuine.time,
        amount: 0,
        proof: TapProof::Nfc {
            authorization: TapAuthorization::sign(
                key,
                &made_up.body,
                &auth.cert_id,
                auth.counter + 1,
                0,
                &cheap.hash(),
            )?,
            challenge: made_up,
        },
    };
    Ok((cheap, invented))
}

pub(super) const ALLOWANCE_ACROSS_CERTIFICATES: (&str, &str, &str, Play) = (
    "allowance_across_certificates",
    "Allowance per certificate: replenish again and again, provision a second phone",
    "issue #13 §2",
    allowance_across_certificates,
);

fn allowance_across_certificates(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let mut r = reel.rider("Reza", 100_000, false)?;
    let mut issued = vec![(r.cert.pseudonym.clone(), r.cert.max_amount)];
    for _ in 0..5 {
        let c = r.replenish()?;
        issued.push((c.pseudonym, c.max_amount));
    }
    a.did(format!(
        "Reza's app asks for a new certificate five times on a {} balance, keeping the old ones",
        money(reel.balance(r.account_id)?)
    ));
    // codes to one number are paced (a burst of three, then one a minute): the second phone
    // registers a few minutes later
    reel.wait(300)?;
    let second = reel.phone_of("Reza's 2nd phone", &r.phone.clone(), 0, false)?;
    issued.push((second.cert.pseudonym.clone(), second.cert.max_amount));
    a.did("then provisions a second phone on the same account");
    a.said(
        "backend",
        format!(
            "{} certificates issued, allowances {}",
            issued.len(),
            issued
                .iter()
                .map(|(_, m)| money(*m))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    let bundle = ValidatorConfig::decode(&fetch_bundle(&reel.url)?)?;
    let denied = |p: &str| Pseudonym::from_hex(p).is_some_and(|p| bundle.is_denied(&p));
    let live: Vec<&(String, i64)> = issued.iter().filter(|(p, _)| !denied(p)).collect();
    let unspent: i64 = live.iter().map(|(_, m)| m).sum();
    let balance = reel.balance(r.account_id)?;
    reel.refresh_bundles()?;
    let deny = reel.validator(V7.0)?.status()?.deny_list_len;
    a.said(
        "signed config bundle",
        format!(
            "{} of the {} certificates on the deny list (superseded, or a replaced device); \
             validators 7 and 8 install it ({deny} cards denied)",
            issued.len() - live.len(),
            issued.len()
        ),
    );
    a.expect("one certificate of the account is live", live.len() == 1);
    a.expect(
        format!(
            "the live allowance ({}) is at most the balance ({})",
            money(unspent),
            money(balance)
        ),
        unspent <= balance,
    );
    a.charged(reel.charged(r.account_id)?, "nothing: no ride taken");
    Ok(())
}

pub(super) const PROVISIONING_RETRY: (&str, &str, &str, Play) = (
    "provisioning_retry",
    "A provisioning retry after a lost answer",
    "issue #13 §2",
    provisioning_retry,
);

fn provisioning_retry(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let p = reel.rider("Parisa", 100_000, false)?;
    let b = reel.backend();
    let req = p.credential_request(&b, ProvisionPurpose::Replenish)?;
    let post = |req| -> Res<CredentialResponse> {
        b.api
            .post(b.rt, REPLENISH.path, Some(&p.token), Some(&req))?
            .parse()
    };
    let first = post(&req)?;
    a.did("Parisa's app asks for a new certificate; the answer is lost on the way back");
    let again = post(&req)?;
    a.did("the app retries the same request");
    let fresh = p.credential_request(&b, ProvisionPurpose::Replenish)?;
    let third = post(&fresh)?;
    a.did("and once more with a fresh nonce, for the same tap key");
    a.said(
        "backend",
        format!(
            "certificates {}, {}, {} (pseudonyms {}…, {}…, {}…)",
            &first.certificate_hash.get(..12).unwrap_or_default(),
            &again.certificate_hash.get(..12).unwrap_or_default(),
            &third.certificate_hash.get(..12).unwrap_or_default(),
            first.pseudonym.get(..8).unwrap_or_default(),
            again.pseudonym.get(..8).unwrap_or_default(),
            third.pseudonym.get(..8).unwrap_or_default()
        ),
    );
    a.expect(
        "the retry and the fresh-nonce retry get the same certificate back",
        first.certificate == again.certificate && again.certificate == third.certificate,
    );
    super::super::http_rider::install(&p.wallet, &third)?;
    let bundle = ValidatorConfig::decode(&fetch_bundle(&reel.url)?)?;
    let live = Pseudonym::from_hex(&third.pseudonym).is_some_and(|x| !bundle.is_denied(&x));
    let old = Pseudonym::from_hex(&p.cert.pseudonym).is_some_and(|x| bundle.is_denied(&x));
    a.said(
        "wallet",
        format!(
            "installs it: {}",
            p.wallet.status(chrono::Utc::now().timestamp())?.summary
        ),
    );
    a.expect(
        "the certificate is live and the one it replaced is denied: one allowance",
        live && old,
    );
    a.expect(
        format!("its allowance is the balance ({})", money(third.balance)),
        third.max_amount <= third.balance,
    );
    a.charged(reel.charged(p.account_id)?, "nothing: no ride taken");
    Ok(())
}

pub(super) const UNSIGNED_BYTES: (&str, &str, &str, Play) = (
    "unsigned_bytes",
    "Fraud on unsigned bytes: a log entry nobody signed, twice, and another's entry",
    "issue #13 §3; threat model v2: a broken chain claimed with bytes nobody signed",
    unsigned_bytes,
);

fn unsigned_bytes(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let s = reel.rider("Sara", 100_000, false)?;
    let o = reel.tap(&s, V8)?;
    a.said("validator 8 (Sara's genuine tap)", decision(&o));
    let (counter, fare) = accepted(&o).ok_or("validator 8 refused Sara's tap")?;
    let cases = reel.cases()?;
    let genuine = s.last_entry()?;
    let mut said = Vec::new();
    for byte in [40usize, 41] {
        let mut forged = genuine.clone();
        if let TapProof::Nfc { authorization, .. } = &mut forged.proof {
            if let Some(b) = authorization.signature.0.get_mut(byte) {
                *b ^= 1;
            }
        }
        let ans = s.raw_sync(&reel.backend(), &[forged])?;
        said.push(ans.said());
        a.expect(
            format!("the entry with signature byte {byte} flipped is refused: 409 chain_conflict"),
            ans.status == 409 && ans.code() == "chain_conflict",
        );
    }
    a.did(
        "someone uploads Sara's log entry with one byte of its signature flipped, then another \
         byte, under the same sequence number (a \"broken chain\" made of bytes nobody signed)",
    );
    let omar = reel.rider("Omar", 50_000, false)?;
    reel.tap(&omar, V8)?;
    let foreign = omar.last_entry()?;
    let ans = s.raw_sync(&reel.backend(), &[foreign])?;
    a.did("then Omar's genuine entry, as Sara's (another certificate)");
    a.expect(
        "another certificate's entry is refused: 409 chain_conflict",
        ans.status == 409 && ans.code() == "chain_conflict",
    );
    said.push(ans.said());
    a.said("backend", said.join(", "));
    a.expect("no fraud case opened", reel.cases()? == cases);
    let rep = s.sync()?;
    a.said(
        "Sara's app (honest sync)",
        format!(
            "{} entry uploaded, {} settled; credential {}",
            rep.uploaded, rep.settled, rep.credential_status
        ),
    );
    a.expect(
        "Sara's genuine entry is then stored and charged; her card is not revoked",
        rep.settled == 1 && rep.credential_status == "active",
    );
    let up = reel.upload(V8.0)?;
    a.said("backend (validator 8's batch)", upload_said(&up));
    let charged = reel.charged(s.account_id)? + reel.charged(omar.account_id)?;
    a.expect(
        "each genuine ride charged once",
        reel.charged(s.account_id)? == fare && record(&up, counter).is_some(),
    );
    a.charged(charged, "Sara's and Omar's genuine rides, once each");
    Ok(())
}
