#![no_main]
//! WalletLogEntry::decode never panics; whatever it accepts re-encodes to the same bytes, and
//! chain and fork checks over it never panic.

use libfuzzer_sys::fuzz_target;
use mancard_protocol::*;

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = WalletLogEntry::decode(data) {
        assert_eq!(m.encode(), data, "non-canonical encoding accepted");
        assert_eq!(m.amount, m.proof.amount());
        assert_eq!(m.hash(), m.proof.id());
        let head = ChainHead {
            next_seq: m.seq,
            ..ChainHead::default()
        };
        let _ = verify_chain(std::slice::from_ref(&m), head);
        if let TapProof::Qr { pass } = &m.proof {
            let cert = pass.body.certificate.clone();
            let _ = prove_fork(&cert, &m.proof, &m.proof);
        }
    }
});
