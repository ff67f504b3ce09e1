//! TLS: the wallet talks to the backend through a TLS-terminating proxy whose certificate is
//! issued by a CA the test generates (rcgen). Trusted when the CA is given as an extra root;
//! refused (Offline, nothing changed) when it is not.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod online_common;
use mancard::{now_utc, OnlineError, OnlineOptions, OnlineWallet};
use online_common::*;
use std::sync::Arc;
use tokio_rustls::rustls;

/// Starts a TLS proxy in front of the backend; returns (https URL, CA PEM).
fn tls_proxy(env: &Env) -> (String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "ManCard test CA");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let srv_key = rcgen::KeyPair::generate().unwrap();
    let srv_params =
        rcgen::CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
            .unwrap();
    let srv_cert = srv_params.signed_by(&srv_key, &issuer).unwrap();

    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(
            vec![srv_cert.der().clone()],
            rustls::pki_types::PrivateKeyDer::Pkcs8(srv_key.serialize_der().into()),
        )
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let backend = env.addr();
    let listener = env
        .rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    env.rt.spawn(async move {
        while let Ok((tcp, _)) = listener.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let Ok(mut up) = tokio::net::TcpStream::connect(backend).await else {
                    return;
                };
                let _ = tokio::io::copy_bidirectional(&mut tls, &mut up).await;
            });
        }
    });
    (format!("https://127.0.0.1:{port}"), ca_cert.pem())
}

#[test]
fn the_wallet_trusts_a_given_root_ca_and_only_that() {
    let env = Env::start();
    let (url, ca_pem) = tls_proxy(&env);
    let root = data_dir(env.path(), "phone");
    let w = open_wallet(&root);

    // webpki roots only: the test CA is unknown → Offline (no request reached the backend)
    let plain = OnlineWallet::new(Arc::clone(&w), url.clone(), fast_options()).unwrap();
    let r = plain.block_on(plain.register(PHONE.into())).unwrap();
    assert!(matches!(r, Err(OnlineError::Offline { .. })), "{r:?}");
    assert!(env.engine().sandbox_otp(PHONE).is_err());

    // a malformed extra CA is refused up front
    let bad = OnlineWallet::new(
        Arc::clone(&w),
        url.clone(),
        OnlineOptions {
            extra_root_ca_pem: Some(
                "-----BEGIN CERTIFICATE-----\nnot base64\n-----END CERTIFICATE-----\n".into(),
            ),
            ..fast_options()
        },
    );
    assert!(
        matches!(bad, Err(OnlineError::Validation { .. })),
        "{bad:?}"
    );

    // with the CA: the whole flow over TLS
    let o = OnlineWallet::new(
        Arc::clone(&w),
        url,
        OnlineOptions {
            extra_root_ca_pem: Some(ca_pem),
            ..fast_options()
        },
    )
    .unwrap();
    let account = login(&env, &o, PHONE);
    o.block_on(o.provision()).unwrap().unwrap();
    top_up(&env, &o, 100_000);
    let mut v = Validator::new(31);
    taps(&w, &mut v, 2, now_utc(), 600);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.settled, 2);
    assert_converged(&env, &w, account);
}
