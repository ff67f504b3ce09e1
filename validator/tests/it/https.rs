//! `https://` in the validator's HTTP client: a TLS fake backend (std TcpListener + rustls
//! ServerConnection, `mancard_testkit::validator::acceptor`) whose certificate is issued by a
//! CA the test generates with rcgen. With the CA as an extra root, config fetch and batch
//! upload work; without it, or for a wrong host name, the connection fails with a typed error
//! before any request is sent and nothing is marked uploaded; the handshake is bounded by the
//! timeout.

use mancard_testkit::tls::TestCa;
use mancard_testkit::validator::acceptor::Acceptor;
use mancard_testkit::validator::{
    card, certify, timeless_issuer, ISSUER_KEY_ID, LINE, VALIDATOR_ID,
};
use mancard_testkit::Issuer;
use mancard_validator::http::{self, Client, HttpError};
use mancard_validator::Validator;
use std::io::Write;
use std::net::TcpListener;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A TLS fake backend serving bundle v1 of `issuer`, checking the validator's signature.
fn tls_backend(ca: &TestCa, names: &[&str], issuer: &Issuer, v: &Validator) -> Acceptor {
    let a = Acceptor::start_tls(ca.server_config(names));
    assert!(a.url.starts_with("https://127.0.0.1:"));
    let now = chrono::Utc::now().timestamp();
    *a.config.lock().unwrap() = issuer.bundle(1, now - 60, vec![]).encode();
    *a.validator_key.lock().unwrap() = Some(v.public_key());
    a
}

/// A validator (real clock, on disk) with one accepted tap waiting for upload.
fn validator_with_a_tap(dir: &std::path::Path, issuer: &Issuer) -> Validator {
    let now = chrono::Utc::now().timestamp();
    let mut v = Validator::init(dir, &issuer.anchor(), VALIDATOR_ID, LINE).unwrap();
    v.install_config(&issuer.bundle(1, now - 60, vec![]).encode())
        .unwrap();
    certify(issuer, &mut v, now);
    let mut c = card(issuer, now);
    assert!(v.tap_nfc(&mut c).decision.is_accepted());
    v
}

/// Uploads with `client`, returning the typed error of the failed send (if any).
fn upload_with(
    v: &mut Validator,
    client: &Client,
    url: &str,
) -> (
    Result<mancard_validator::UploadReport, mancard_validator::ValidatorError>,
    Option<HttpError>,
) {
    let mut typed = None;
    let r = v.upload(|b| {
        client.send_batch(url, b).map_err(|e| {
            let text = e.to_string();
            typed = Some(e);
            text
        })
    });
    (r, typed)
}

#[test]
fn https_fetch_and_upload_work_with_the_pilot_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_with_a_tap(&tmp.path().join("v"), &issuer);
    let ca = TestCa::new("ManCard pilot CA");
    let backend = tls_backend(&ca, &["127.0.0.1", "localhost"], &issuer, &v);
    // The CA as the CLI gets it: a PEM file (`--ca-pem FILE`).
    let pem_file = tmp.path().join("pilot-ca.pem");
    std::fs::write(&pem_file, &ca.pem).unwrap();
    let client = Client::with_extra_ca_pem_file(TIMEOUT, &pem_file).unwrap();

    let served = backend.config.lock().unwrap().clone();
    assert_eq!(
        client.fetch_config(&backend.url, None).unwrap(),
        Some(served)
    );
    // By host name too (the certificate names localhost as well).
    let by_name = backend.url.replace("127.0.0.1", "localhost");
    assert!(client.fetch_config(&by_name, None).unwrap().is_some());
    // A server that closes without close_notify: still fine (the response has a length).
    backend.close_notify.store(false, Ordering::Relaxed);
    assert!(client.fetch_config(&backend.url, None).unwrap().is_some());
    backend.close_notify.store(true, Ordering::Relaxed);
    assert_eq!(backend.state.lock().unwrap().config_gets, 3);

    let sealed = v.seal().unwrap().unwrap();
    let (r, typed) = upload_with(&mut v, &client, &backend.url);
    assert!(typed.is_none(), "{typed:?}");
    let rep = r.unwrap();
    assert_eq!(rep.acked, vec![sealed.batch_id]);
    assert!(rep.complete);
    let st = v.status().unwrap().journal;
    assert_eq!((st.uploaded, st.pending_batches), (1, 0));
    let s = backend.state.lock().unwrap();
    assert_eq!(s.posts, vec![sealed.batch_id]);
    assert_eq!((s.taps.len(), s.bad_signatures), (1, 0));
    assert!(backend.failed_handshakes.lock().unwrap().is_empty());
}

#[test]
fn https_without_the_ca_fails_as_untrusted_and_nothing_is_marked_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_with_a_tap(&tmp.path().join("v"), &issuer);
    let ca = TestCa::new("ManCard pilot CA");
    let backend = tls_backend(&ca, &["127.0.0.1", "localhost"], &issuer, &v);

    // Mozilla roots only (also what the free functions use).
    let client = Client::new(TIMEOUT).unwrap();
    let e = client.fetch_config(&backend.url, None).unwrap_err();
    assert!(
        matches!(&e, HttpError::UntrustedCertificate { host, .. } if host == "127.0.0.1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("not trusted"), "{e}");
    assert!(matches!(
        http::fetch_config(&backend.url, None, TIMEOUT),
        Err(HttpError::UntrustedCertificate { .. })
    ));
    // Another CA with the same name is not the pilot CA either.
    let impostor =
        Client::with_extra_ca_pem(TIMEOUT, TestCa::new("ManCard pilot CA").pem.as_bytes()).unwrap();
    let e = impostor.fetch_config(&backend.url, None).unwrap_err();
    assert!(matches!(e, HttpError::UntrustedCertificate { .. }), "{e:?}");

    let (r, typed) = upload_with(&mut v, &client, &backend.url);
    let err = r.unwrap_err();
    assert!(
        matches!(typed, Some(HttpError::UntrustedCertificate { .. })),
        "{typed:?}"
    );
    assert!(err.to_string().contains("not trusted"), "{err}");
    // The free function (used by older callers) gives the same text.
    let msg = v
        .upload(|b| http::send_batch(&backend.url, b, TIMEOUT))
        .unwrap_err()
        .to_string();
    assert!(msg.contains("not trusted"), "{msg}");
    // Nothing reached the server, nothing is marked uploaded; the batch stays sealed.
    {
        let s = backend.state.lock().unwrap();
        assert_eq!((s.posts.len(), s.config_gets), (0, 0));
    }
    // The server saw every handshake fail (5 connections; its threads may lag a little).
    let t = Instant::now();
    while backend.failed_handshakes.lock().unwrap().len() < 5 {
        assert!(t.elapsed() < Duration::from_secs(10), "handshakes not seen");
        std::thread::sleep(Duration::from_millis(10));
    }
    let st = v.status().unwrap().journal;
    assert_eq!(
        (st.uploaded, st.pending_batches, st.in_pending_batches),
        (0, 1, 1)
    );

    // With the CA: the same batch (same id) goes through.
    let sealed = v.seal().unwrap().unwrap();
    let with_ca = Client::with_extra_ca_pem(TIMEOUT, ca.pem.as_bytes()).unwrap();
    let rep = upload_with(&mut v, &with_ca, &backend.url).0.unwrap();
    assert_eq!(rep.acked, vec![sealed.batch_id]);
    assert_eq!(v.status().unwrap().journal.uploaded, 1);
}

#[test]
fn https_wrong_host_name_fails_and_nothing_is_marked_uploaded() {
    let tmp = tempfile::tempdir().unwrap();
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let mut v = validator_with_a_tap(&tmp.path().join("v"), &issuer);
    let ca = TestCa::new("ManCard pilot CA");
    // A trusted certificate, but for another host.
    let backend = tls_backend(&ca, &["issuer.example"], &issuer, &v);
    let client = Client::with_extra_ca_pem(TIMEOUT, ca.pem.as_bytes()).unwrap();

    let e = client.fetch_config(&backend.url, None).unwrap_err();
    assert!(
        matches!(&e, HttpError::WrongHostName { host, .. } if host == "127.0.0.1"),
        "{e:?}"
    );
    assert!(e.to_string().contains("not valid for that name"), "{e}");
    let by_name = backend.url.replace("127.0.0.1", "localhost");
    assert!(matches!(
        client.fetch_config(&by_name, None),
        Err(HttpError::WrongHostName { .. })
    ));

    let (r, typed) = upload_with(&mut v, &client, &backend.url);
    assert!(r.is_err());
    assert!(
        matches!(typed, Some(HttpError::WrongHostName { .. })),
        "{typed:?}"
    );
    let s = backend.state.lock().unwrap();
    assert_eq!((s.posts.len(), s.config_gets), (0, 0));
    let st = v.status().unwrap().journal;
    assert_eq!((st.uploaded, st.pending_batches), (0, 1));
}

/// A listener whose connections get `behaviour` (run on its own thread per connection).
fn silent_server(behaviour: fn(std::net::TcpStream)) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("https://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming().flatten() {
            std::thread::spawn(move || behaviour(s));
        }
    });
    url
}

#[test]
fn the_tls_handshake_is_bounded_by_the_timeout() {
    let client = Client::new(Duration::from_millis(400)).unwrap();
    // A server that accepts the connection and never answers the ClientHello.
    let mute = silent_server(|s| {
        std::thread::sleep(Duration::from_secs(20));
        drop(s);
    });
    // A server that drips a never-ending handshake record, one byte every 50 ms: each read
    // succeeds well within the timeout; only the handshake deadline stops it.
    let drip = silent_server(|mut s| {
        let _ = s.write_all(&[0x16, 0x03, 0x03, 0x01, 0x00]);
        for _ in 0..400 {
            std::thread::sleep(Duration::from_millis(50));
            if s.write_all(&[0]).is_err() {
                return;
            }
        }
    });
    for url in [mute, drip] {
        let t = Instant::now();
        let e = client.fetch_config(&url, None).unwrap_err();
        let took = t.elapsed();
        assert!(
            matches!(&e, HttpError::Timeout { phase, .. } if *phase == "TLS handshake"),
            "{url}: {e:?}"
        );
        assert!(
            took >= Duration::from_millis(350) && took < Duration::from_secs(5),
            "{url}: {took:?}"
        );
    }
}

#[test]
fn plain_http_still_works_next_to_https() {
    let issuer = timeless_issuer(ISSUER_KEY_ID);
    let backend = Acceptor::start();
    assert!(backend.url.starts_with("http://"));
    let now = chrono::Utc::now().timestamp();
    *backend.config.lock().unwrap() = issuer.bundle(1, now - 60, vec![]).encode();
    let ca = TestCa::new("ManCard pilot CA");
    let client = Client::with_extra_ca_pem(TIMEOUT, ca.pem.as_bytes()).unwrap();
    assert!(client.fetch_config(&backend.url, None).unwrap().is_some());
    assert!(http::fetch_config(&backend.url, None, TIMEOUT)
        .unwrap()
        .is_some());
}
