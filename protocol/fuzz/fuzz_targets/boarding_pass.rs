#![no_main]
//! BoardingPass::decode never panics; whatever it accepts re-encodes to the same bytes.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = BoardingPass::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        let _ = m.in_window(m.body.issued_at, 30);
        assert_eq!(BoardingPass::from_text(&m.to_text()).as_ref(), Ok(&m));
    }
});
