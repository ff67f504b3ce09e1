//! Protocol fixtures: fixed test keys, deterministic (RFC 6979) signing and the standard
//! messages (certificates, challenges, authorizations, passes, configs, records, batches) used by
//! the protocol's tests, its test-vector generator and its benches. Test-only: these private keys
//! are public knowledge.

pub use crate::time::{DAY, T0};
use mancard_protocol::crypto::tags;
use mancard_protocol::{
    sha256, BatchBody, BoardingPass, CertificateBody, ConfigBody, CredentialCertificate, FareClass,
    FareKind, IssuerKey, OfflineAllowance, PassBody, Pseudonym, PublicKey, Signature, SigningKey,
    TapAuthorization, TapBatch, TapChallenge, TapProof, TapRecord, Tariff, ValidatorConfig,
    DEFAULT_PASS_LIFETIME_SECS,
};
use p256::ecdsa::signature::Signer as _;

/// A P-256 key whose private scalar is SHA-256("ManCard test vector key: " ‖ name).
pub struct TestKey {
    pub name: &'static str,
    pub scalar: [u8; 32],
    sk: p256::ecdsa::SigningKey,
    pub public: PublicKey,
}

/// DER prefix of a P-256 PKCS#8 v1 document (as ring writes it) up to the 32-byte scalar.
const PKCS8_PREFIX: [u8; 36] = [
    0x30, 0x81, 0x87, 0x02, 0x01, 0x00, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02,
    0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x04, 0x6d, 0x30, 0x6b, 0x02,
    0x01, 0x01, 0x04, 0x20,
];
/// DER between the scalar and the 65-byte public key.
const PKCS8_MIDDLE: [u8; 5] = [0xa1, 0x44, 0x03, 0x42, 0x00];

impl TestKey {
    pub fn new(name: &'static str) -> Self {
        let scalar = sha256(&[b"ManCard test vector key: ", name.as_bytes()]);
        let sk = p256::ecdsa::SigningKey::from_slice(&scalar).expect("scalar in range");
        let point = sk.verifying_key().to_encoded_point(false);
        let public = PublicKey::from_bytes(point.as_bytes(), "test key").expect("valid point");
        Self {
            name,
            scalar,
            sk,
            public,
        }
    }

    /// The key as a PKCS#8 document that ring (and `SigningKey::from_pkcs8`) loads.
    pub fn pkcs8(&self) -> Vec<u8> {
        let mut v = PKCS8_PREFIX.to_vec();
        v.extend_from_slice(&self.scalar);
        v.extend_from_slice(&PKCS8_MIDDLE);
        v.extend_from_slice(self.public.as_bytes());
        v
    }

    /// The same key as a library (ring, randomized) signing key.
    pub fn ring(&self) -> SigningKey {
        SigningKey::from_pkcs8(&self.pkcs8()).expect("ring loads the PKCS#8")
    }

    /// Deterministic ECDSA P-256/SHA-256 (RFC 6979) over `tag ‖ msg`, fixed r ‖ s.
    pub fn sign(&self, tag: &[u8], msg: &[u8]) -> Signature {
        let mut m = tag.to_vec();
        m.extend_from_slice(msg);
        let sig: p256::ecdsa::Signature = self.sk.sign(&m);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Signature(out)
    }
}

/// Every fixed key of the vectors.
pub struct Keys {
    /// Issuer key id 1: signs certificates and config bundles.
    pub issuer1: TestKey,
    /// Issuer key id 2: rotated in later (its window starts at T0 - 2 days).
    pub issuer2: TestKey,
    /// Issuer key id 3: not in any config (unknown issuer).
    pub issuer3: TestKey,
    /// An attacker's key that claims to be issuer key 1.
    pub rogue: TestKey,
    /// The wallet's tap key (in the certificates).
    pub tap: TestKey,
    /// Another wallet's tap key (signatures that must not verify).
    pub tap_other: TestKey,
    /// The validator's batch-signing key.
    pub validator: TestKey,
}

impl Keys {
    pub fn new() -> Self {
        Self {
            issuer1: TestKey::new("issuer-1"),
            issuer2: TestKey::new("issuer-2"),
            issuer3: TestKey::new("issuer-3"),
            rogue: TestKey::new("rogue-issuer"),
            tap: TestKey::new("tap"),
            tap_other: TestKey::new("tap-other"),
            validator: TestKey::new("validator-7001"),
        }
    }

    pub fn all(&self) -> [&TestKey; 7] {
        [
            &self.issuer1,
            &self.issuer2,
            &self.issuer3,
            &self.rogue,
            &self.tap,
            &self.tap_other,
            &self.validator,
        ]
    }
}

impl Default for Keys {
    fn default() -> Self {
        Self::new()
    }
}

/// The first 16 bytes of SHA-256(`label` ‖ `name`).
fn derived16(label: &[u8], name: &str) -> [u8; 16] {
    let h = sha256(&[label, name.as_bytes()]);
    *h.first_chunk::<16>().unwrap()
}

/// A pseudonym derived from a name.
pub fn pseudonym(name: &str) -> Pseudonym {
    Pseudonym(derived16(b"ManCard test pseudonym: ", name))
}

/// A 16-byte nonce (or batch id) derived from a name.
pub fn nonce(name: &str) -> [u8; 16] {
    derived16(b"ManCard test nonce: ", name)
}

pub const VALIDATOR_ID: u32 = 7001;
pub const COUNTER_FIRST: u32 = 1000;
pub const COUNTER_LAST: u32 = 1099;
pub const ALLOWANCE: i64 = 500_000;

pub fn issuer_key(id: u32, key: &TestKey, from: i64, until: i64) -> IssuerKey {
    IssuerKey {
        key_id: id,
        public_key: key.public,
        valid_from: from,
        valid_until: until,
    }
}

/// The issuer keys validators trust: key 1 for a year around T0, key 2 from T0 - 2 days.
pub fn issuer_keys(k: &Keys) -> Vec<IssuerKey> {
    vec![
        issuer_key(1, &k.issuer1, T0 - 365 * DAY, T0 + 365 * DAY),
        issuer_key(2, &k.issuer2, T0 - 2 * DAY, T0 + 730 * DAY),
    ]
}

/// A certificate body: valid T0 - 1 day ..= T0 + 6 days, adult, counters 1000..=1099, 500 000 rials.
pub fn cert_body(issuer_key_id: u32, rider: &str, tap: &TestKey) -> CertificateBody {
    CertificateBody {
        issuer_key_id,
        pseudonym: pseudonym(rider),
        tap_public_key: tap.public,
        valid_from: T0 - DAY,
        valid_until: T0 + 6 * DAY,
        fare_class: FareClass::Adult,
        allowance: OfflineAllowance {
            counter_first: COUNTER_FIRST,
            counter_last: COUNTER_LAST,
            max_amount: ALLOWANCE,
        },
    }
}

pub fn sign_cert(body: CertificateBody, issuer: &TestKey) -> CredentialCertificate {
    let signature = issuer.sign(tags::CERTIFICATE, &body.encode());
    CredentialCertificate { body, signature }
}

/// The standard certificate: issuer 1, rider "rider-1", the tap key.
pub fn std_cert(k: &Keys) -> CredentialCertificate {
    sign_cert(cert_body(1, "rider-1", &k.tap), &k.issuer1)
}

pub fn challenge(nonce_name: &str, time: i64, line_id: u32, fare: i64) -> TapChallenge {
    TapChallenge {
        validator_id: VALIDATOR_ID,
        nonce: nonce(nonce_name),
        validator_time: time,
        line_id,
        fare,
    }
}

/// The standard challenge: line 1 at T0 for the adult fare of 20 000 rials.
pub fn std_challenge() -> TapChallenge {
    challenge("tap-1", T0, 1, 20_000)
}

/// A tap authorization signed deterministically, exactly as `TapAuthorization::sign` signs.
pub fn authorize(
    key: &TestKey,
    challenge: &TapChallenge,
    cert_hash: &[u8; 32],
    counter: u32,
    amount: i64,
) -> TapAuthorization {
    let mut a = TapAuthorization {
        counter,
        amount,
        digest: challenge.digest(cert_hash),
        signature: Signature([0; 64]),
    };
    a.signature = key.sign(tags::TAP, &a.signed_bytes());
    a
}

/// A boarding pass signed deterministically, exactly as `PassBody::sign` signs.
pub fn make_pass(
    key: &TestKey,
    certificate: CredentialCertificate,
    counter: u32,
    issued_at: i64,
    lifetime_secs: u16,
    max_amount: i64,
) -> BoardingPass {
    let mut p = BoardingPass {
        body: PassBody {
            certificate,
            counter,
            issued_at,
            lifetime_secs,
            max_amount,
        },
        signature: Signature([0; 64]),
    };
    p.signature = key.sign(tags::PASS, &p.signed_bytes());
    p
}

/// Re-signs `p` (after its body was changed) with `key`.
pub fn resign_pass(key: &TestKey, mut p: BoardingPass) -> BoardingPass {
    p.signature = key.sign(tags::PASS, &p.signed_bytes());
    p
}

pub fn std_pass(k: &Keys) -> BoardingPass {
    make_pass(
        &k.tap,
        std_cert(k),
        1001,
        T0,
        DEFAULT_PASS_LIFETIME_SECS,
        30_000,
    )
}

/// A config bundle, canonicalized and signed deterministically as `ConfigBody::sign` does.
pub fn make_config(body: ConfigBody, signer: &TestKey) -> ValidatorConfig {
    let mut c = ValidatorConfig {
        body: body.canonicalize(),
        signature: Signature([0; 64]),
    };
    c.signature = signer.sign(tags::CONFIG, &c.signed_bytes());
    c
}

pub fn std_config_body(k: &Keys) -> ConfigBody {
    ConfigBody {
        bundle_version: 42,
        issued_at: T0 - 3600,
        signer_key_id: 1,
        issuer_keys: issuer_keys(k),
        deny_list: vec![pseudonym("stolen-phone"), pseudonym("cloned-card")],
        tariff: Tariff::urmia_default(),
    }
}

/// The standard bundle: keys 1 and 2, two denied cards, the Urmia tariff, signed by key 1.
pub fn std_config(k: &Keys) -> ValidatorConfig {
    make_config(std_config_body(k), &k.issuer1)
}

pub fn make_batch(body: BatchBody, key: &TestKey) -> TapBatch {
    let mut b = TapBatch {
        body,
        signature: Signature([0; 64]),
    };
    b.signature = key.sign(tags::BATCH, &b.signed_bytes());
    b
}

pub fn nfc_record(k: &Keys, counter: u32, nonce_name: &str, time: i64) -> TapRecord {
    let cert = std_cert(k);
    let ch = challenge(nonce_name, time, 1, 20_000);
    let auth = authorize(&k.tap, &ch, &cert.hash(), counter, 20_000);
    TapRecord {
        validator_id: VALIDATOR_ID,
        line_id: 1,
        time,
        pseudonym: cert.body.pseudonym,
        counter,
        fare: 20_000,
        fare_kind: FareKind::Full,
        proof: TapProof::Nfc {
            challenge: ch,
            authorization: auth,
            cert_hash: cert.hash(),
        },
    }
}

pub fn qr_record(k: &Keys, counter: u32, time: i64) -> TapRecord {
    let cert = std_cert(k);
    let pass = make_pass(&k.tap, cert.clone(), counter, time - 5, 60, 30_000);
    TapRecord {
        validator_id: VALIDATOR_ID,
        line_id: 2,
        time,
        pseudonym: cert.body.pseudonym,
        counter,
        fare: 5_000,
        fare_kind: FareKind::Transfer,
        proof: TapProof::Qr { pass },
    }
}

/// A batch of `n` records (alternating NFC and QR) signed by the validator key.
pub fn batch_of(k: &Keys, n: usize) -> TapBatch {
    let records = (0..n)
        .map(|i| {
            let counter = COUNTER_FIRST + i as u32;
            let time = T0 + i as i64 * 60;
            if i % 2 == 0 {
                nfc_record(k, counter, &format!("batch-{i}"), time)
            } else {
                qr_record(k, counter, time)
            }
        })
        .collect();
    make_batch(
        BatchBody {
            validator_id: VALIDATOR_ID,
            batch_id: nonce("batch-id"),
            created_at: T0 + 3600,
            records,
        },
        &k.validator,
    )
}
