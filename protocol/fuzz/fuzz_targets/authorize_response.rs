#![no_main]
//! AuthorizeResponse::decode (an authorization, or a certificate to requote) never panics;
//! whatever it accepts re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = AuthorizeResponse::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        match &m {
            AuthorizeResponse::Authorized(_) => assert_eq!(data.len(), TapAuthorization::LEN),
            AuthorizeResponse::Requote(c) => {
                assert_eq!(data.len(), CredentialCertificate::LEN);
                let _ = c.id();
            }
        }
    }
    if let Ok(r) = ResponseApdu::parse(data) {
        let _ = AuthorizeResponse::decode(&r.data);
    }
});
