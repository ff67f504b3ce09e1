//! Protocol v2's rows about passes, certificates and validators: a photographed pass with
//! its signature flipped, a re-encoded certificate signature, a pass signed to live for
//! hours, a dishonest validator, a stolen validator, and following a phone by its pseudonym.

use super::super::output::money;
use super::super::Res;
use super::common::{accepted, decision, record, refused, tap_said, upload_said};
use super::readers::{quote, Rogue};
use super::reel::{Reel, V7, V8};
use super::{Attack, Play};
use mancard_api::endpoints::ADMIN_DENY_VALIDATOR;
use mancard_api::{DenyValidatorRequest, DenyValidatorResponse, TapStatus};
use mancard_protocol::{
    BoardingPass, FareKind, PassBody, Signature, Signed, StatusWord, TapProof, TapRecord,
};
use std::collections::BTreeSet;

pub(super) const FLIPPED_S_PASS: (&str, &str, &str, Play) = (
    "flipped_s_pass",
    "A photographed QR pass with its signature's s replaced by n − s",
    "threat model v2",
    flipped_s_pass,
);

fn flipped_s_pass(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let d = reel.rider("Dara", 100_000, false)?;
    let cases = reel.cases()?;
    d.follow(&reel.engine)?;
    let (text, pass) = d.pass()?;
    let copy = Signed {
        body: pass.body.clone(),
        signature: Signature(pass.signature.malleated()),
    };
    a.did(
        "someone photographs Dara's pass, replaces its signature (r, s) by (r, n − s) — still \
         valid on the curve — and shows the copy on bus 2 to frame her",
    );
    let on8 = reel.scan(&copy.to_text(), V8)?;
    a.said("validator 8 (the copy)", decision(&on8));
    a.expect(
        "the copy is refused: non_canonical_signature",
        refused(&on8) == Some("non_canonical_signature"),
    );
    a.expect(
        "the copy is the same pass (its id hashes what the phone signed)",
        TapProof::Qr { pass: copy.clone() }.id() == TapProof::Qr { pass: pass.clone() }.id(),
    );
    let on7 = reel.scan(&text, V7)?;
    a.said("validator 7 (Dara's own pass)", decision(&on7));
    let up = reel.upload(V7.0)?;
    let up8 = reel.upload(V8.0)?;
    a.said(
        "backend (validators 7 and 8)",
        format!("{}; {}", upload_said(&up), upload_said(&up8)),
    );
    let fare = accepted(&on7).map(|x| x.1).unwrap_or(-1);
    let charged = reel.charged(d.account_id)?;
    a.expect(
        format!("her ride is charged once ({})", money(fare)),
        charged == fare && up8.report.records == 0,
    );
    a.expect("no fraud case", reel.cases()? == cases);
    a.charged(charged, "her one ride");
    Ok(())
}

pub(super) const REENCODED_CERTIFICATE: (&str, &str, &str, Play) = (
    "reencoded_certificate",
    "Free rides with a re-encoded certificate signature",
    "threat model v2",
    reencoded_certificate,
);

fn reencoded_certificate(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let m = reel.rider("Milad", 100_000, true)?;
    m.follow(&reel.engine)?;
    let (_, genuine) = m.pass()?;
    let key = m.leaked_tap_key()?;
    let cert = genuine.body.certificate.clone();
    let twin = Signed {
        body: cert.body.clone(),
        signature: Signature(cert.signature.malleated()),
    };
    let forged = PassBody {
        certificate: twin.clone(),
        counter: genuine.body.counter + 1,
        issued_at: reel.engine.now(),
        prev: TapProof::Qr {
            pass: genuine.clone(),
        }
        .id(),
        ..genuine.body.clone()
    }
    .sign(&key)?;
    a.did(
        "Milad's rooted phone re-encodes his certificate's issuer signature as (r, n − s), \
         hoping for a \"new\" certificate with fresh counters, and signs a pass with it",
    );
    let o = reel.scan(&forged.to_text(), V7)?;
    a.said("validator 7", decision(&o));
    a.expect(
        "the re-encoded certificate is refused: non_canonical_signature",
        refused(&o) == Some("non_canonical_signature"),
    );
    a.expect(
        "and it is the same certificate anyway: its id hashes the body, never the signature",
        twin.id() == cert.id(),
    );
    a.charged(reel.charged(m.account_id)?, "nothing");
    Ok(())
}

pub(super) const PASS_TOO_LONG: (&str, &str, &str, Play) = (
    "pass_too_long",
    "A pass signed to live for hours",
    "threat model v2",
    pass_too_long,
);

fn pass_too_long(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let m = reel.rider("Mina", 100_000, true)?;
    m.follow(&reel.engine)?;
    let (_, genuine) = m.pass()?;
    let key = m.leaked_tap_key()?;
    let long: BoardingPass = PassBody {
        counter: genuine.body.counter + 1,
        issued_at: reel.engine.now(),
        lifetime_secs: 18 * 3600,
        prev: TapProof::Qr {
            pass: genuine.clone(),
        }
        .id(),
        ..genuine.body.clone()
    }
    .sign(&key)?;
    a.did("Mina's rooted phone signs a pass valid for 18 hours, to share its picture all day");
    let o = reel.scan(&long.to_text(), V7)?;
    a.said("validator 7", decision(&o));
    a.expect(
        "refused: pass_too_long (the signed bundle allows 60 s)",
        refused(&o) == Some("pass_too_long"),
    );
    a.charged(reel.charged(m.account_id)?, "nothing");
    Ok(())
}

/// Validator 20: certified by the operator for line 1 only, and dishonest.
const DISHONEST: u32 = 20;

pub(super) const DISHONEST_VALIDATOR: (&str, &str, &str, Play) = (
    "dishonest_validator",
    "A dishonest validator charges more than signed, and off its lines",
    "threat model v2",
    dishonest_validator,
);

fn dishonest_validator(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let h = reel.rider("Hadi", 100_000, false)?;
    h.follow(&reel.engine)?;
    let v = Rogue::registered(reel, DISHONEST, vec![1])?;
    let t = v
        .tap(&h.wallet, &quote(1, None, None))?
        .map_err(|s| format!("Hadi's phone refused validator 20: {s:?}"))?;
    let signed = t.authorization.amount;
    let more = v.record(&t, &h.cert.pseudonym, 1, 50_000)?;
    let (_, pass) = h.pass()?;
    let off_line = TapRecord {
        validator_id: DISHONEST,
        line_id: 2,
        time: pass.body.issued_at + 5,
        pseudonym: pass.body.certificate.body.pseudonym,
        counter: pass.body.counter,
        fare: 20_000,
        fare_kind: FareKind::Full,
        proof: TapProof::Qr { pass },
    };
    a.did(format!(
        "validator 20 (certified for line 1) gets Hadi's phone to sign {} on line 1 and uploads \
         it as 50,000; it also uploads his QR pass as a ride on line 2",
        money(signed)
    ));
    let answer = v.upload(reel, vec![more, off_line])?;
    let said: Vec<String> = answer.records.iter().map(tap_said).collect();
    a.said("backend (validator 20's batch)", said.join("; "));
    let first = answer.records.first();
    let second = answer.records.get(1);
    a.expect(
        format!(
            "the backend never charges more than the phone signed ({}): the inflated record is \
             refused (record_mismatch) or charged at most that",
            money(signed)
        ),
        first.is_some_and(|r| match r.status {
            TapStatus::Rejected => r.reason.as_deref() == Some("record_mismatch"),
            TapStatus::Settled => r.fare.is_some_and(|f| f <= signed),
            _ => false,
        }),
    );
    a.expect(
        "the ride off its lines is rejected: line_not_allowed",
        second.is_some_and(|r| {
            r.status == TapStatus::Rejected && r.reason.as_deref() == Some("line_not_allowed")
        }),
    );
    let rep = h.sync()?;
    a.said(
        "Hadi's app (sync)",
        format!(
            "{} entries uploaded, {} settled; balance {}",
            rep.uploaded,
            rep.settled,
            money(rep.balance)
        ),
    );
    let charged = reel.charged(h.account_id)?;
    a.expect(
        format!(
            "the ride he took is charged what his phone signed ({}), and the pass no honest \
             validator scanned is not charged",
            money(signed)
        ),
        charged == signed,
    );
    a.charged(charged, "the fare the phone signed, on its own report");
    Ok(())
}

pub(super) const STOLEN_VALIDATOR: (&str, &str, &str, Play) = (
    "stolen_validator",
    "A stolen validator, denied by the operator",
    "threat model v2",
    stolen_validator,
);

/// Validator 22: stolen from a depot.
const STOLEN: u32 = 22;

fn stolen_validator(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let g = reel.rider("Golnar", 100_000, false)?;
    let late = reel.rider("Kaveh", 100_000, false)?;
    let v = Rogue::registered(reel, STOLEN, Vec::new())?;
    let b = reel.backend();
    let denied: DenyValidatorResponse = b
        .api
        .post(
            b.rt,
            ADMIN_DENY_VALIDATOR.path,
            Some(&reel.admin),
            Some(&DenyValidatorRequest {
                validator_id: STOLEN,
            }),
        )?
        .parse()?;
    a.did("validator 22 is stolen from the depot; the operator denies it (admin API)");
    a.said(
        "backend (operator)",
        format!(
            "validator {} denied at {}",
            denied.validator_id, denied.denied_at
        ),
    );
    g.sync()?;
    g.follow(&reel.engine)?;
    let refused_sw = match v.tap(&g.wallet, &quote(1, None, None))? {
        Ok(_) => StatusWord::Ok,
        Err(s) => s,
    };
    late.follow(&reel.engine)?;
    let stale = v
        .tap(&late.wallet, &quote(1, None, None))?
        .map_err(|s| format!("Kaveh's phone refused validator 22: {s:?}"))?;
    a.did(
        "the thief taps Golnar's phone (synced since) and Kaveh's (an older bundle), and uploads \
         what it got",
    );
    a.said(
        "phones",
        format!(
            "Golnar's: {}; Kaveh's (not synced): signed",
            super::common::sw(refused_sw)
        ),
    );
    let answer = v.upload(
        reel,
        vec![v.record(&stale, &late.cert.pseudonym, 1, 20_000)?],
    )?;
    a.said(
        "backend (validator 22's batch)",
        answer
            .records
            .iter()
            .map(tap_said)
            .collect::<Vec<_>>()
            .join("; "),
    );
    a.expect(
        "a phone with the new bundle refuses it: 69C3",
        refused_sw == StatusWord::ReaderDenied,
    );
    a.expect(
        "its challenges signed after the denial are not charged: validator_denied",
        answer.records.first().is_some_and(|r| {
            r.status == TapStatus::Rejected && r.reason.as_deref() == Some("validator_denied")
        }),
    );
    let charged = reel.charged(g.account_id)? + reel.charged(late.account_id)?;
    a.expect("nothing charged", charged == 0);
    a.charged(charged, "nothing");
    Ok(())
}

pub(super) const PSEUDONYMS: (&str, &str, &str, Play) = (
    "following_a_pseudonym",
    "Following a phone across days by its pseudonym",
    "threat model v2",
    pseudonyms,
);

fn pseudonyms(reel: &mut Reel, a: &mut Attack) -> Res<()> {
    let mut p = reel.rider("Pouya", 100_000, false)?;
    let mut certs = vec![p.cert.clone()];
    let o1 = reel.tap(&p, V7)?;
    reel.wait(3600)?;
    certs.push(p.replenish()?);
    let o2 = reel.tap(&p, V7)?;
    certs.push(p.replenish()?);
    a.did(
        "validator 7's operator logs what each tap shows, to follow Pouya from one \
         certificate to the next",
    );
    a.said(
        "validator 7",
        format!("{}; {}", decision(&o1), decision(&o2)),
    );
    let rides = reel.validator(V7.0)?.journal().rides()?;
    let (c1, c2) = (accepted(&o1).map(|x| x.0), accepted(&o2).map(|x| x.0));
    let seen: Vec<String> = rides
        .iter()
        .filter(|r| Some(r.counter) == c1 || Some(r.counter) == c2)
        .map(|r| hex::encode(r.pseudonym.0))
        .collect();
    a.said(
        "validator 7's journal",
        format!("pseudonyms {}", seen.join(", ")),
    );
    let distinct = |v: Vec<&str>| v.iter().collect::<BTreeSet<_>>().len() == v.len();
    a.expect(
        "the two rides show two unrelated pseudonyms",
        seen.len() == 2 && distinct(seen.iter().map(String::as_str).collect()),
    );
    a.expect(
        "every certificate has its own pseudonym and id",
        distinct(certs.iter().map(|c| c.pseudonym.as_str()).collect())
            && distinct(certs.iter().map(|c| c.certificate_hash.as_str()).collect()),
    );
    let mut ranges: Vec<(u32, u32)> = certs
        .iter()
        .map(|c| (c.counter_first, c.counter_last))
        .collect();
    ranges.sort_unstable();
    a.said(
        "backend",
        format!(
            "{} certificates, counters {}",
            certs.len(),
            ranges
                .iter()
                .map(|(f, l)| format!("{f}..={l}"))
                .collect::<Vec<_>>()
                .join(", ")
        ),
    );
    a.expect(
        "counter ranges never continue one another (a random gap between them)",
        ranges.windows(2).all(|w| match w {
            [x, y] => y.0 > x.1.saturating_add(1),
            _ => true,
        }),
    );
    let up = reel.upload(V7.0)?;
    let both = [c1, c2]
        .iter()
        .all(|c| c.is_some_and(|c| record(&up, c).is_some()));
    a.said("backend (validator 7's batch)", upload_said(&up));
    a.expect(
        "both rides are charged (the backend links them internally)",
        both,
    );
    a.charged(reel.charged(p.account_id)?, "his two rides, once each");
    Ok(())
}
