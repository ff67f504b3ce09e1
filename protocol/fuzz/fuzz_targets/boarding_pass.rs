#![no_main]
//! BoardingPass::decode never panics; whatever it accepts re-encodes to the same bytes, its text
//! form round-trips, and the time checks under the default rules never panic.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = BoardingPass::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert_eq!(m.body.fare_class, m.body.certificate.body.fare_class);
        let _ = m.in_window(m.body.issued_at, 30);
        let _ = check_pass_time(&m, m.body.issued_at, &TimeRules::default());
        assert_eq!(BoardingPass::from_text(&m.to_text()).as_ref(), Ok(&m));
        let _ = TapProof::Qr { pass: m }.id();
    }
});
