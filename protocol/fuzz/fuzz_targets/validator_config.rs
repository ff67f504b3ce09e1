#![no_main]
//! ValidatorConfig::decode never panics; whatever it accepts re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = ValidatorConfig::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        for p in &m.body.deny_list {
            assert!(m.is_denied(p));
        }
    }
});
