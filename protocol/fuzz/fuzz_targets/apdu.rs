#![no_main]
//! Command and response APDU parsers never panic; what they accept re-encodes identically.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::{CommandApdu, ResponseApdu, StatusWord};

fuzz_target!(|data: &[u8]| {
    if let Ok(c) = CommandApdu::parse(data) {
        assert!(c.data.len() <= 255);
        assert_eq!(
            c.encode().ok().as_deref(),
            Some(data),
            "non-canonical command accepted"
        );
    }
    match ResponseApdu::parse(data) {
        Ok(r) => {
            assert_eq!(r.encode(), data);
            assert_eq!(StatusWord::from_code(r.sw.code()), r.sw);
        }
        Err(_) => assert!(data.len() < 2),
    }
});
