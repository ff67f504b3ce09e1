#![no_main]
//! SelectResponse::decode never panics; whatever it accepts re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = SelectResponse::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert_eq!(
            data.len(),
            SelectResponse::LEN,
            "a session value and nothing else"
        );
    }
});
