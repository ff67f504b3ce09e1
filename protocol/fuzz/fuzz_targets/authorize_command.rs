#![no_main]
//! The AUTHORIZE TAP command as a phone reads it: the whole APDU, then its data for P1; and the
//! data alone under the first byte as P1. Never panics; what parses re-encodes to the same data
//! and always fits a short APDU.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fn check(p1: u8, data: &[u8]) {
    if let Ok(c) = AuthorizeCommand::parse(p1, data) {
        let again = CommandApdu::authorize_tap(&c.challenge, c.validator_cert.as_ref());
        assert_eq!(again.data, data, "non-canonical command data accepted");
        assert!(
            again.encode().is_ok(),
            "an accepted command must fit a short APDU"
        );
        let _ = c.challenge.body.digest();
        if let Some(v) = &c.validator_cert {
            let _ = verify_challenge(&c.challenge, v);
        }
    }
}

fuzz_target!(|data: &[u8]| {
    if let Ok(apdu) = CommandApdu::parse(data) {
        check(apdu.p1, &apdu.data);
    }
    if let Some((p1, rest)) = data.split_first() {
        check(*p1, rest);
    }
});
