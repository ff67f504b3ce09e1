//! TLS: the wallet talks to the backend through a TLS-terminating proxy whose certificate is
//! issued by a CA the test generates (rcgen). Trusted when the CA is given as an extra root;
//! refused (Offline, nothing changed) when it is not.

use mancard::{now_utc, OnlineError, OnlineOptions, OnlineWallet};
use mancard_testkit::online::*;
use mancard_testkit::proxy::*;
use std::sync::Arc;

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
    assert!(env.engine().sandbox_otp(PHONE, None).is_err());

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
    let mut v = Validator::new(&env, 31);
    crate::support::clocked_taps(&w, &mut v, 2, now_utc(), 600);
    let r = o.block_on(o.sync()).unwrap().unwrap();
    assert_eq!(r.settled, 2);
    assert_converged(&env, &w, account);
}
