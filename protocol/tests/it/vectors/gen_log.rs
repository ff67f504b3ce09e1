//! tap_record.json, torn_record.json, tap_batch.json and wallet_log.json (entries, chains, fork
//! proofs).

use super::*;

pub(super) fn record_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap records (type 'R', version 2): what a validator journals and uploads, with the \
         phone's proof (kind 1 = NFC: the validator-signed challenge and the authorization, which \
         names the certificate by id; kind 2 = QR: the whole pass). tap_id: the tap's identity, \
         SHA-256(TAP-ID tag || kind || the bytes the tap key signed): never a signature, so a \
         re-encoded signature is the same tap.",
    );
    let rs = chained_records(k, 2);
    let (nfc, qr) = (&rs[0], &rs[1]);
    let b = nfc.encode();
    f.push(
        Vector::new(
            "nfc",
            "tap_record",
            "an NFC tap: counter 1000, 20000 rials full fare on line 1 (first link of the chain)",
        )
        .hex(&b)
        .ok(record_json(nfc))
        .set("tap_id", json!(hx(&nfc.proof.id()))),
    );
    f.push(
        Vector::new(
            "qr",
            "tap_record",
            "a QR tap: counter 1001, 5000 rials transfer on line 2 (prev = the NFC tap's id)",
        )
        .hex(&qr.encode())
        .ok(record_json(qr))
        .set("tap_id", json!(hx(&qr.proof.id()))),
    );
    let mut high = nfc.clone();
    if let TapProof::Nfc { authorization, .. } = &mut high.proof {
        authorization.signature = flip_s(&authorization.signature);
    }
    f.push(
        Vector::new(
            "nfc-high-s-same-tap-id",
            "tap_record",
            "the NFC record with the authorization's s flipped: decodes, and is the same tap \
             (same tap_id); verifiers refuse its signature as non-canonical",
        )
        .hex(&high.encode())
        .ok(record_json(&high))
        .set("tap_id", json!(hx(&nfc.proof.id()))),
    );
    framing(&mut f, "tap_record", &b);
    f.push(v1_message("tap_record", "NFC tap record", v1::RECORD));
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "tap_record", desc).hex(&bytes).fails(err)
    };
    f.push(bad(
        "counter-differs-from-proof",
        "record counter (offset 34) = 1001, proof says 1000",
        patched(&b, 34, &1001u32.to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "negative-fare",
        "fare (offset 38) = -1",
        patched(&b, 38, &(-1i64).to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "unknown-fare-kind",
        "fare kind (offset 46) = 3",
        patched(&b, 46, &[3]),
        "InvalidValue",
    ));
    f.push(bad(
        "unknown-proof-kind",
        "proof kind (offset 47) = 3",
        patched(&b, 47, &[3]),
        "InvalidValue",
    ));
    f.push(bad(
        "proof-challenge-wrong-type",
        "the NFC proof's challenge tag (offset 48) = 'X'",
        patched(&b, 48, b"X"),
        "WrongType",
    ));
    f.push(bad(
        "proof-challenge-v1",
        "the NFC proof's challenge version (offset 49) = 1",
        patched(&b, 49, &[1]),
        "UnknownVersion",
    ));
    f
}

/// A torn record of validator 7001: the challenge `name` sent at `time`, given up on 2 s later.
fn torn(k: &Keys, name: &str, time: i64) -> TornRecord {
    TornRecord {
        time: time + 2,
        challenge: challenge(k, name, time, 1, 20_000),
    }
}

pub(super) fn torn_file(k: &Keys) -> File {
    let mut f = File::new(
        "Torn records (type 'N', version 2): a challenge validator 7001 sent in an AUTHORIZE TAP \
         that got no valid answer and was not recovered within its torn window, and the \
         validator's time when it gave up. Inside a signed batch: evidence that the gate did not \
         open for that challenge. challenge_id: SHA-256(CHALLENGE-ID tag || the challenge's \
         body), never its signature.",
    );
    let t = torn(k, "torn-1", T0);
    let b = t.encode();
    f.push(
        Vector::new(
            "valid",
            "torn_record",
            "the challenge of a tap on line 1 for 20000 rials at T0, given up on at T0 + 2",
        )
        .hex(&b)
        .ok(torn_json(&t))
        .set("challenge_id", json!(hx(&t.challenge_id()))),
    );
    let mut high = t.clone();
    high.challenge.signature = flip_s(&high.challenge.signature);
    f.push(
        Vector::new(
            "high-s-same-challenge-id",
            "torn_record",
            "the challenge's validator signature with s flipped: decodes, and names the same \
             challenge (same challenge_id)",
        )
        .hex(&high.encode())
        .ok(torn_json(&high))
        .set("challenge_id", json!(hx(&t.challenge_id()))),
    );
    framing(&mut f, "torn_record", &b);
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "torn_record", desc)
            .hex(&bytes)
            .fails(err)
    };
    f.push(bad(
        "challenge-wrong-type",
        "the challenge's tag (offset 10) = 'R'",
        patched(&b, 10, b"R"),
        "WrongType",
    ));
    f.push(bad(
        "challenge-v1",
        "the challenge's version (offset 11) = 1",
        patched(&b, 11, &[1]),
        "UnknownVersion",
    ));
    f.push(bad(
        "challenge-negative-fare",
        "the challenge's fare (offset 58) = -1",
        patched(&b, 58, &(-1i64).to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "challenge-truncated",
        "the record without the challenge's signature",
        b[..b.len() - 64].to_vec(),
        "Truncated",
    ));
    f
}

pub(super) fn batch_file(k: &Keys) -> File {
    let mut f = File::new(
        "Tap batches (type 'B', version 2) signed by the validator key: tap records, then torn \
         records (challenges the gate did not open for). verify: the batch signature (low-S \
         only) under validator_public_key.",
    );
    let mut batch = batch_of(k, 2);
    batch.body.torn = vec![torn(k, "torn-1", T0), torn(k, "torn-2", T0 + 60)];
    let batch = make_batch(batch.body, &k.validator);
    let b = batch.encode();
    let vk = |key: &TestKey| json!({"validator_public_key": hx(key.public.as_bytes())});
    let case = |name: &str, desc: &str, x: &TapBatch, key: &TestKey, expect: &str| {
        Vector::new(name, "tap_batch", desc)
            .hex(&x.encode())
            .ok(batch_json(x))
            .verify(vk(key), expect)
    };
    f.push(case(
        "valid",
        "validator 7001: one NFC and one QR record, two torn records",
        &batch,
        &k.validator,
        "ok",
    ));
    f.push(case(
        "wrong-validator-key",
        "checked with another validator's key",
        &batch,
        &k.validator_other,
        "BadSignature",
    ));
    f.push(case(
        "high-s",
        "the valid batch with s replaced by n - s",
        &with_flipped_s(&batch),
        &k.validator,
        "NonCanonicalSignature",
    ));
    let mut tampered = batch.clone();
    tampered.body.records[0].fare = 2_000;
    f.push(case(
        "bad-signature-tampered-fare",
        "the first record's fare lowered after signing",
        &tampered,
        &k.validator,
        "BadSignature",
    ));
    let mut untorn = batch.clone();
    untorn.body.torn.pop();
    f.push(case(
        "bad-signature-torn-record-removed",
        "the second torn record dropped after signing",
        &untorn,
        &k.validator,
        "BadSignature",
    ));
    let empty = make_batch(
        BatchBody {
            validator_id: VALIDATOR_ID,
            batch_id: nonce("empty-batch"),
            created_at: T0,
            records: vec![],
            torn: vec![],
        },
        &k.validator,
    );
    f.push(case(
        "valid-empty",
        "no records, no torn records",
        &empty,
        &k.validator,
        "ok",
    ));
    framing(&mut f, "tap_batch", &b);
    f.push(v1_message("tap_batch", "batch", v1::BATCH));
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "tap_batch", desc).hex(&bytes).fails(err)
    };
    f.push(bad(
        "too-many-records",
        "record count (offset 30) = 10001 > 10000",
        patched(&b, 30, &10_001u16.to_be_bytes()),
        "LengthOutOfRange",
    ));
    let len0 = u16::from_be_bytes([b[32], b[33]]);
    f.push(bad(
        "record-length-short",
        "first record's length prefix (offset 32) one less than the record",
        patched(&b, 32, &(len0 - 1).to_be_bytes()),
        "Truncated",
    ));
    f.push(bad(
        "record-length-long",
        "first record's length prefix (offset 32) one more than the record",
        patched(&b, 32, &(len0 + 1).to_be_bytes()),
        "TrailingBytes",
    ));
    // The torn list starts after the records: its count, then each record framed by its length.
    let torn_at = 32
        + batch
            .body
            .records
            .iter()
            .map(|r| 2 + r.encode().len())
            .sum::<usize>();
    f.push(bad(
        "too-many-torn-records",
        &format!("torn record count (offset {torn_at}) = 1001 > 1000"),
        patched(&b, torn_at, &1_001u16.to_be_bytes()),
        "LengthOutOfRange",
    ));
    f.push(bad(
        "torn-record-length-short",
        &format!(
            "first torn record's length prefix (offset {}) one less than the record",
            torn_at + 2
        ),
        patched(&b, torn_at + 2, &(TornRecord::LEN as u16 - 1).to_be_bytes()),
        "Truncated",
    ));
    f.push(bad(
        "torn-record-wrong-type",
        &format!(
            "first torn record's type tag (offset {}) = 'R'",
            torn_at + 4
        ),
        patched(&b, torn_at + 4, b"R"),
        "WrongType",
    ));
    f.push(bad(
        "torn-list-missing",
        "the batch body ends after its records (the torn count is missing)",
        b[..torn_at].to_vec(),
        "Truncated",
    ));
    f
}

/// A log entry at `seq` (a minute apart from T0) for `proof`.
fn entry(seq: u64, proof: TapProof) -> WalletLogEntry {
    WalletLogEntry {
        seq,
        time: T0 + seq as i64 * 60,
        amount: proof.amount(),
        proof,
    }
}

/// An NFC proof of 20 000 rials on line 1 under `cert`, signed by `key`.
fn nfc_under(
    k: &Keys,
    key: &TestKey,
    cert: &CredentialCertificate,
    name: &str,
    counter: u32,
    prev: &[u8; 32],
) -> TapProof {
    let ch = challenge(k, name, T0, 1, 20_000);
    let authorization = authorize(key, &ch.body, &cert.id(), counter, 20_000, prev);
    TapProof::Nfc {
        challenge: ch,
        authorization,
    }
}

fn head_json(h: &ChainHead) -> Value {
    json!({
        "next_seq": h.next_seq,
        "last": h.last.map(|(c, l)| json!({"cert_id": hx(&c), "link": hx(&l)})),
        "last_counter": h.last_counter,
    })
}

/// The replenished certificate: the same tap key, a fresh pseudonym, the next counter range.
fn renewed_cert(k: &Keys) -> CredentialCertificate {
    let mut body = cert_body(1, "rider-1-renewed", &k.tap);
    body.allowance.counter_first = 1100;
    body.allowance.counter_last = 1199;
    sign_cert(body, &k.issuer1)
}

pub(super) fn log_file(k: &Keys) -> File {
    let mut f = File::new(
        "Wallet log entries (type 'L', version 2) and the signed tap chain. An entry's link is \
         its proof's tap id; every proof signs prev = the link of the wallet's previous proof \
         under the same certificate, or chain_start(cert_id) = SHA-256(CHAIN-START tag || \
         cert_id) for the first under a certificate. wallet_log_chain: verify_chain(entries, \
         head) -> the new head or an error. fork_proof: prove_fork(certificate, a, b) on the two \
         entries' proofs -> SamePredecessor, SameCounter, or why not (SameTap, Unrelated, \
         OtherCertificate, BadSignature, NonCanonicalSignature).",
    );
    let es = log_chain(k, 3);
    let descs = [
        "entry 0: NFC tap, counter 1000, prev = the certificate's chain start",
        "entry 1: QR pass, counter 1001, prev = entry 0's link",
        "entry 2: NFC tap, counter 1002, prev = entry 1's link",
    ];
    for (e, d) in es.iter().zip(descs) {
        f.push(
            Vector::new(&format!("entry-{}", e.seq), "wallet_log_entry", d)
                .hex(&e.encode())
                .ok(log_json(e))
                .set("link", json!(hx(&e.hash()))),
        );
    }
    let b = es[0].encode();
    framing(&mut f, "wallet_log_entry", &b);
    f.push(v1_message("wallet_log_entry", "log entry", v1::LOG_ENTRY));
    let bad = |name: &str, desc: &str, bytes: Vec<u8>, err: &str| {
        Vector::new(name, "wallet_log_entry", desc)
            .hex(&bytes)
            .fails(err)
    };
    f.push(bad(
        "negative-amount",
        "amount (offset 18) = -1",
        patched(&b, 18, &(-1i64).to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "amount-differs-from-proof",
        "amount (offset 18) = 19999, the proof signs 20000",
        patched(&b, 18, &19_999i64.to_be_bytes()),
        "InvalidValue",
    ));
    f.push(bad(
        "unknown-proof-kind",
        "proof kind (offset 26) = 0",
        patched(&b, 26, &[0]),
        "InvalidValue",
    ));
    chains(&mut f, k, &es);
    forks(&mut f, k, &es);
    f
}

fn chains(f: &mut File, k: &Keys, es: &[WalletLogEntry]) {
    let cert = std_cert(k);
    let id = cert.id();
    let chain =
        |name: &str, desc: &str, entries: &[&WalletLogEntry], head: ChainHead, expect: Value| {
            Vector::new(name, "wallet_log_chain", desc)
                .set(
                    "entries",
                    json!(entries.iter().map(|e| hx(&e.encode())).collect::<Vec<_>>()),
                )
                .set("head", head_json(&head))
                .set("expect", expect)
        };
    let ok = |h: ChainHead| json!({"ok": head_json(&h)});
    let all: Vec<&WalletLogEntry> = es.iter().collect();
    let after = |e: &WalletLogEntry| ChainHead {
        next_seq: e.seq + 1,
        last: Some((e.proof.cert_id(), e.hash())),
        last_counter: Some(e.counter()),
    };
    f.push(chain(
        "chain-from-start",
        "entries 0..=2 from an empty head",
        &all,
        ChainHead::default(),
        ok(after(&es[2])),
    ));
    f.push(chain(
        "chain-resumed",
        "entries 1..=2 after a sync that ended at entry 0",
        &all[1..],
        after(&es[0]),
        ok(after(&es[2])),
    ));
    f.push(chain(
        "chain-gap",
        "entry 1 missing",
        &[all[0], all[2]],
        ChainHead::default(),
        json!("SequenceGap"),
    ));
    let restart = entry(
        1,
        nfc_under(k, &k.tap, &cert, "restart", 1001, &chain_start(&id)),
    );
    f.push(chain(
        "chain-broken-link",
        "entry 1 signs the chain start again instead of entry 0's link (a restored backup)",
        &[all[0], &restart],
        ChainHead::default(),
        json!("BrokenLink"),
    ));
    f.push(chain(
        "chain-counter-reused",
        "entries 1..=2 after a sync whose last counter was 1001 (counter reuse)",
        &all[1..],
        ChainHead {
            last_counter: Some(1001),
            ..after(&es[0])
        },
        json!("CounterNotIncreasing"),
    ));
    let renewed = renewed_cert(k);
    let rid = renewed.id();
    let fresh = entry(
        2,
        nfc_under(k, &k.tap, &renewed, "renewed", 1100, &chain_start(&rid)),
    );
    f.push(chain(
        "chain-new-certificate",
        "entries 0..=1, then the first tap under a replenished certificate: it restarts at the \
         new certificate's chain start (nothing links two certificates)",
        &[all[0], all[1], &fresh],
        ChainHead::default(),
        ok(after(&fresh)),
    ));
    let linked = entry(
        2,
        nfc_under(k, &k.tap, &renewed, "renewed", 1100, &es[1].hash()),
    );
    f.push(chain(
        "chain-new-certificate-linked",
        "the first tap under the replenished certificate continues the old certificate's link",
        &[all[0], all[1], &linked],
        ChainHead::default(),
        json!("BrokenLink"),
    ));
}

fn forks(f: &mut File, k: &Keys, es: &[WalletLogEntry]) {
    let cert = std_cert(k);
    let fork = |name: &str,
                desc: &str,
                c: &CredentialCertificate,
                a: &WalletLogEntry,
                b: &WalletLogEntry,
                expect: &str| {
        Vector::new(name, "fork_proof", desc)
            .set("certificate", json!(hx(&c.encode())))
            .set("a", json!(hx(&a.encode())))
            .set("b", json!(hx(&b.encode())))
            .set("expect", json!(expect))
    };
    let clone = entry(1, nfc_under(k, &k.tap, &cert, "clone", 1002, &es[0].hash()));
    f.push(fork(
        "fork-same-predecessor",
        "entry 1 and a clone's tap (counter 1002) both continue entry 0: a cloned or restored \
         wallet, proved by the two tap-key signatures alone",
        &cert,
        &es[1],
        &clone,
        "SamePredecessor",
    ));
    let rollback = entry(
        2,
        nfc_under(k, &k.tap, &cert, "rollback", 1002, &chain_start(&cert.id())),
    );
    f.push(fork(
        "fork-same-counter",
        "entry 2 and another signed tap of counter 1002 on another link",
        &cert,
        &es[2],
        &rollback,
        "SameCounter",
    ));
    let mut again = es[1].clone();
    again.seq = 7;
    again.time += 3600;
    f.push(fork(
        "not-a-fork-same-tap",
        "entry 1 twice (logged under other sequence numbers and times): one signed tap",
        &cert,
        &es[1],
        &again,
        "SameTap",
    ));
    let mut twin = es[2].clone();
    if let TapProof::Nfc { authorization, .. } = &mut twin.proof {
        authorization.signature = flip_s(&authorization.signature);
    }
    f.push(fork(
        "not-a-fork-high-s",
        "entry 2 and its copy with s flipped: the copy's signature is refused as non-canonical",
        &cert,
        &es[2],
        &twin,
        "NonCanonicalSignature",
    ));
    let forged = entry(
        1,
        nfc_under(k, &k.tap_other, &cert, "forged", 1002, &es[0].hash()),
    );
    f.push(fork(
        "not-a-fork-forged",
        "a tap continuing entry 0 signed by a key that is not the certificate's",
        &cert,
        &es[1],
        &forged,
        "BadSignature",
    ));
    f.push(fork(
        "not-a-fork-unrelated",
        "entries 0 and 2: different links, different counters",
        &cert,
        &es[0],
        &es[2],
        "Unrelated",
    ));
    f.push(fork(
        "not-a-fork-other-certificate",
        "two taps of the chain checked against another certificate",
        &renewed_cert(k),
        &es[1],
        &clone,
        "OtherCertificate",
    ));
}
