//! Against the real backend (in process through `mancard_testkit::online::Env`: sandbox,
//! loopback): config sync with ETag, validator registration, and exactly-once batch upload
//! across a lost response.

use mancard_api::RegisterValidatorRequest;
use mancard_protocol::ValidatorConfig;
use mancard_testkit::online::Env;
use mancard_testkit::validator::{card, certify, timeless_issuer, ISSUER_KEY_ID, LINE};
use mancard_validator::http;
use mancard_validator::{ConfigInstall, TrustAnchor, Validator};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn config_sync_and_exactly_once_upload_with_the_real_backend() {
    let env = Env::start();
    let url = env.url.clone();

    // The trust anchor is provisioned out of band; here: the bundle signer's key as published.
    let bytes = http::fetch_config(&url, None, TIMEOUT).unwrap().unwrap();
    let cfg = ValidatorConfig::decode(&bytes).unwrap();
    let signer = cfg.issuer_key(cfg.body.signer_key_id).unwrap().clone();
    let anchor = TrustAnchor {
        key_id: Some(signer.key_id),
        public_key: signer.public_key,
    };
    let dir = env.path().join("validator");
    let mut v = Validator::init(&dir, &anchor, 77, LINE).unwrap();
    let version = cfg.body.bundle_version;
    assert_eq!(
        v.install_config(&bytes).unwrap(),
        ConfigInstall::Installed { version }
    );
    // Nothing new: 304 Not Modified.
    assert_eq!(
        http::fetch_config(&url, Some(version), TIMEOUT).unwrap(),
        None
    );
    // Registration answers the validator certificate, which installs: it names this
    // validator's id and key and is signed by the issuer key the bundle lists.
    let reg = env
        .engine()
        .register_validator(&RegisterValidatorRequest::new(
            77,
            hex::encode(v.public_key().as_bytes()),
        ))
        .unwrap();
    v.install_certificate(&hex::decode(&reg.certificate).unwrap())
        .unwrap();
    let cert = v.certificate().unwrap();
    assert_eq!(
        (cert.body.validator_id, cert.body.public_key),
        (77, v.public_key())
    );

    // Taps need a certificate the validator accepts; provisioning a wallet through the backend
    // is out of scope here, so a second validator trusting a test issuer journals the taps and
    // uploads its batch (the backend checks the validator's signature, stores the batch by id,
    // and rejects the records at settlement since it never issued those certificates).
    let now = v.now();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let dir2 = env.path().join("validator2");
    let mut v2 = Validator::init(&dir2, &issuer.anchor(), 78, LINE).unwrap();
    v2.install_config(&issuer.bundle(1, now - 60, vec![]).encode())
        .unwrap();
    certify(&issuer, &mut v2, now);
    let mut c = card(&issuer, now);
    assert!(v2.tap_nfc(&mut c).decision.is_accepted());
    assert!(v2
        .verify_qr(&c.pass(150, now, 30_000).to_text())
        .decision
        .is_accepted());
    // Unregistered validator: 403, the batch stays sealed and pending.
    let err = v2
        .upload(|b| http::send_batch(&url, b, TIMEOUT))
        .unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    let sealed = v2.seal().unwrap().unwrap();

    env.engine()
        .register_validator(&RegisterValidatorRequest::new(
            78,
            hex::encode(v2.public_key().as_bytes()),
        ))
        .unwrap();
    // First delivery: processed (records are rejected at settlement: the certificates are not
    // the backend's), but the response is "lost": we do not mark it acknowledged.
    let r1 = http::post(
        &http::join(&url, http::BATCHES_PATH),
        "application/octet-stream",
        &sealed.bytes,
        TIMEOUT,
    )
    .unwrap();
    assert_eq!(r1.status, 200, "{}", String::from_utf8_lossy(&r1.body));
    let t1 = String::from_utf8_lossy(&r1.body).to_string();
    assert!(t1.contains("\"duplicate_batch\":false"), "{t1}");
    drop(v2);
    // Restart; the validator resends the same batch id; the backend answers with the stored
    // result, flagged duplicate: processed exactly once.
    let mut v2 = Validator::open(&dir2).unwrap();
    let mut answers = Vec::new();
    let rep = v2
        .upload(|b| {
            assert_eq!(b.batch_id, sealed.batch_id);
            let r = http::post(
                &http::join(&url, http::BATCHES_PATH),
                "application/octet-stream",
                &b.bytes,
                TIMEOUT,
            )
            .map_err(|e| e.to_string())?;
            answers.push(String::from_utf8_lossy(&r.body).to_string());
            r.ok().map(|_| ()).map_err(|e| e.to_string())
        })
        .unwrap();
    assert_eq!(rep.acked, vec![sealed.batch_id]);
    assert!(
        answers[0].contains("\"duplicate_batch\":true"),
        "{}",
        answers[0]
    );
    assert_eq!(v2.status().unwrap().journal.uploaded, 2);
    drop(v);
    env.shutdown().unwrap();
}

#[test]
fn the_http_client_uses_the_contracts_paths() {
    use mancard_api::endpoints::{Method, VALIDATOR_BATCHES, VALIDATOR_CONFIG};
    assert_eq!(http::CONFIG_PATH, VALIDATOR_CONFIG.path);
    assert_eq!(VALIDATOR_CONFIG.method, Method::Get);
    assert_eq!(http::BATCHES_PATH, VALIDATOR_BATCHES.path);
    assert_eq!(VALIDATOR_BATCHES.method, Method::Post);
}
