#![no_main]
//! Tariff::decode never panics; whatever it accepts re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Tariff::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        for l in &m.lines {
            let _ = m.fare(
                mancard_protocol::FareClass::Adult,
                l.line_id,
                0,
                &Default::default(),
            );
        }
    }
});
