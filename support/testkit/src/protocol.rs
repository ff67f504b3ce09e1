//! Protocol fixtures: fixed test keys, deterministic (RFC 6979, low-S) signing and the standard
//! messages (certificates, validator certificates, challenges, authorizations, passes, configs,
//! records, batches, wallet log chains) used by the protocol's tests, its test-vector generator
//! and its benches. Test-only: these private keys are public knowledge.

pub use crate::time::{DAY, T0};
use mancard_protocol::crypto::tags;
use mancard_protocol::{
    chain_start, sha256, BatchBody, BoardingPass, CertificateBody, ChallengeBody, ConfigBody,
    CredentialCertificate, DeniedValidator, FareClass, FareKind, IssuerKey, OfflineAllowance,
    PassBody, Pseudonym, PublicKey, Signature, Signed, SignedBody, SigningKey, TapAuthorization,
    TapBatch, TapChallenge, TapProof, TapRecord, Tariff, TimeRules, ValidatorCertBody,
    ValidatorCertificate, ValidatorConfig, WalletLogEntry, DEFAULT_PASS_LIFETIME_SECS,
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

    /// Deterministic ECDSA P-256/SHA-256 (RFC 6979) over `tag ‖ msg`, fixed r ‖ s, in its
    /// canonical low-S form (as every ManCard signer emits).
    pub fn sign(&self, tag: &[u8], msg: &[u8]) -> Signature {
        let mut m = tag.to_vec();
        m.extend_from_slice(msg);
        let sig: p256::ecdsa::Signature = self.sk.sign(&m);
        let mut out = [0u8; 64];
        out.copy_from_slice(&sig.to_bytes());
        Signature(out).to_low_s()
    }

    /// Signs `body` exactly as [`Signed::sign`] does (the body's `prepare`, then its domain tag
    /// and encoding), deterministically.
    pub fn sign_body<B: SignedBody>(&self, body: B) -> Signed<B> {
        let body = body.prepare().expect("the fixture body can be signed");
        let signature = self.sign(B::DOMAIN, &body.encode());
        Signed { body, signature }
    }
}

/// The malleated twin (r, n − s) of a signature: the curve check accepts it, every ManCard
/// verifier refuses it as non-canonical.
pub fn flip_s(sig: &Signature) -> Signature {
    Signature(sig.malleated())
}

/// A copy of a signed message with its signature's s replaced by n − s.
pub fn with_flipped_s<B: Clone>(m: &Signed<B>) -> Signed<B> {
    Signed {
        body: m.body.clone(),
        signature: flip_s(&m.signature),
    }
}

/// Every fixed key of the vectors.
pub struct Keys {
    /// Issuer key id 1: signs certificates, validator certificates and config bundles.
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
    /// Validator 7001's key: named by its validator certificate, signs its challenges and batches.
    pub validator: TestKey,
    /// Validator 7002's key (another reader: its signature on a 7001 challenge must not verify).
    pub validator_other: TestKey,
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
            validator_other: TestKey::new("validator-7002"),
        }
    }

    pub fn all(&self) -> [&TestKey; 8] {
        [
            &self.issuer1,
            &self.issuer2,
            &self.issuer3,
            &self.rogue,
            &self.tap,
            &self.tap_other,
            &self.validator,
            &self.validator_other,
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

/// The phone's SELECT session value for the tap named `name`.
pub fn session(name: &str) -> [u8; 16] {
    derived16(b"ManCard test session: ", name)
}

pub const VALIDATOR_ID: u32 = 7001;
/// The validator whose key is [`Keys::validator_other`].
pub const OTHER_VALIDATOR_ID: u32 = 7002;
/// The validator on the standard config's validator deny list.
pub const DENIED_VALIDATOR_ID: u32 = 7013;
pub const COUNTER_FIRST: u32 = 1000;
pub const COUNTER_LAST: u32 = 1099;
pub const ALLOWANCE: i64 = 500_000;
/// The standard validator certificate's window: a year either side of [`T0`].
pub const VALIDATOR_VALID_FROM: u32 = (T0 - 365 * DAY) as u32;
pub const VALIDATOR_VALID_UNTIL: u32 = (T0 + 365 * DAY) as u32;

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

// ───────────────────────────── certificates ─────────────────────────────

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
    issuer.sign_body(body)
}

/// The standard certificate: issuer 1, rider "rider-1", the tap key.
pub fn std_cert(k: &Keys) -> CredentialCertificate {
    sign_cert(cert_body(1, "rider-1", &k.tap), &k.issuer1)
}

/// A validator certificate body: operator 1, any line, valid a year either side of T0.
pub fn validator_cert_body(
    issuer_key_id: u32,
    validator_id: u32,
    key: &TestKey,
) -> ValidatorCertBody {
    ValidatorCertBody {
        issuer_key_id,
        validator_id,
        operator_id: 1,
        public_key: key.public,
        valid_from: VALIDATOR_VALID_FROM,
        valid_until: VALIDATOR_VALID_UNTIL,
        lines: Vec::new(),
    }
}

pub fn sign_validator_cert(body: ValidatorCertBody, issuer: &TestKey) -> ValidatorCertificate {
    issuer.sign_body(body)
}

/// The standard validator certificate: issuer 1 over validator 7001's key, any line.
pub fn std_validator_cert(k: &Keys) -> ValidatorCertificate {
    sign_validator_cert(
        validator_cert_body(1, VALIDATOR_ID, &k.validator),
        &k.issuer1,
    )
}

// ───────────────────────────── the NFC tap ─────────────────────────────

/// A challenge body from validator 7001 for an adult, answering the session named `nonce_name`.
pub fn challenge_body(nonce_name: &str, time: i64, line_id: u32, fare: i64) -> ChallengeBody {
    ChallengeBody {
        validator_id: VALIDATOR_ID,
        nonce: nonce(nonce_name),
        session: session(nonce_name),
        validator_time: time,
        line_id,
        fare,
        fare_class: FareClass::Adult,
    }
}

/// Signs a challenge body with a validator key, deterministically.
pub fn sign_challenge(body: ChallengeBody, validator_key: &TestKey) -> TapChallenge {
    validator_key.sign_body(body)
}

/// A challenge from validator 7001 signed with its key.
pub fn challenge(k: &Keys, nonce_name: &str, time: i64, line_id: u32, fare: i64) -> TapChallenge {
    sign_challenge(
        challenge_body(nonce_name, time, line_id, fare),
        &k.validator,
    )
}

/// The standard challenge: line 1 at T0 for the adult fare of 20 000 rials.
pub fn std_challenge(k: &Keys) -> TapChallenge {
    challenge(k, "tap-1", T0, 1, 20_000)
}

/// A tap authorization signed deterministically, exactly as `TapAuthorization::sign` signs.
pub fn authorize(
    key: &TestKey,
    challenge: &ChallengeBody,
    cert_id: &[u8; 32],
    counter: u32,
    amount: i64,
    prev: &[u8; 32],
) -> TapAuthorization {
    let mut a = TapAuthorization {
        counter,
        amount,
        prev: *prev,
        cert_id: *cert_id,
        signature: Signature([0; 64]),
    };
    a.signature = key.sign(tags::TAP, &a.signed_bytes(challenge));
    a
}

/// The standard authorization: the standard certificate's first tap (counter 1000, chain
/// start) answering the standard challenge.
pub fn std_authorization(k: &Keys) -> TapAuthorization {
    let id = std_cert(k).id();
    authorize(
        &k.tap,
        &std_challenge(k).body,
        &id,
        COUNTER_FIRST,
        20_000,
        &chain_start(&id),
    )
}

// ───────────────────────────── the QR pass ─────────────────────────────

/// A pass body: the certificate's class, the first link of its chain.
pub fn pass_body(
    certificate: CredentialCertificate,
    counter: u32,
    issued_at: i64,
    lifetime_secs: u16,
    max_amount: i64,
) -> PassBody {
    let prev = chain_start(&certificate.id());
    PassBody {
        fare_class: certificate.body.fare_class,
        certificate,
        counter,
        issued_at,
        lifetime_secs,
        max_amount,
        prev,
    }
}

/// A pass body signed deterministically, exactly as `PassBody::sign` signs.
pub fn sign_pass(key: &TestKey, body: PassBody) -> BoardingPass {
    key.sign_body(body)
}

/// A boarding pass (first link of its certificate's chain) signed deterministically.
pub fn make_pass(
    key: &TestKey,
    certificate: CredentialCertificate,
    counter: u32,
    issued_at: i64,
    lifetime_secs: u16,
    max_amount: i64,
) -> BoardingPass {
    sign_pass(
        key,
        pass_body(certificate, counter, issued_at, lifetime_secs, max_amount),
    )
}

/// Re-signs `p` (after its body was changed) with `key`.
pub fn resign_pass(key: &TestKey, p: BoardingPass) -> BoardingPass {
    sign_pass(key, p.body)
}

/// The standard pass: counter 1001, issued at T0 for 60 s, at most 30 000 rials.
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

// ───────────────────────────── config bundles ─────────────────────────────

/// A config bundle, canonicalized and signed deterministically as `ConfigBody::sign` does.
pub fn make_config(body: ConfigBody, signer: &TestKey) -> ValidatorConfig {
    signer.sign_body(body)
}

pub fn std_config_body(k: &Keys) -> ConfigBody {
    ConfigBody {
        bundle_version: 42,
        issued_at: T0 - 3600,
        signer_key_id: 1,
        issuer_keys: issuer_keys(k),
        deny_list: vec![pseudonym("stolen-phone"), pseudonym("cloned-card")],
        validator_deny_list: vec![DeniedValidator(DENIED_VALIDATOR_ID)],
        time_rules: TimeRules::default(),
        tariff: Tariff::urmia_default(),
    }
}

/// The standard bundle: keys 1 and 2, two denied cards, validator 7013 denied, the default
/// time rules, the Urmia tariff, signed by key 1.
pub fn std_config(k: &Keys) -> ValidatorConfig {
    make_config(std_config_body(k), &k.issuer1)
}

// ───────────────────────────── records, batches, log chains ─────────────────────────────

pub fn make_batch(body: BatchBody, key: &TestKey) -> TapBatch {
    key.sign_body(body)
}

/// The NFC proof of a tap of 20 000 rials on line 1 with the standard certificate.
pub fn nfc_proof(k: &Keys, counter: u32, nonce_name: &str, time: i64, prev: &[u8; 32]) -> TapProof {
    let ch = challenge(k, nonce_name, time, 1, 20_000);
    let auth = authorize(&k.tap, &ch.body, &std_cert(k).id(), counter, 20_000, prev);
    TapProof::Nfc {
        challenge: ch,
        authorization: auth,
    }
}

/// The QR proof of a pass (at most 30 000 rials) with the standard certificate, issued 5 s
/// before `time`.
pub fn qr_proof(k: &Keys, counter: u32, time: i64, prev: &[u8; 32]) -> TapProof {
    let mut body = pass_body(std_cert(k), counter, time - 5, 60, 30_000);
    body.prev = *prev;
    TapProof::Qr {
        pass: sign_pass(&k.tap, body),
    }
}

pub fn nfc_record(
    k: &Keys,
    counter: u32,
    nonce_name: &str,
    time: i64,
    prev: &[u8; 32],
) -> TapRecord {
    TapRecord {
        validator_id: VALIDATOR_ID,
        line_id: 1,
        time,
        pseudonym: std_cert(k).body.pseudonym,
        counter,
        fare: 20_000,
        fare_kind: FareKind::Full,
        proof: nfc_proof(k, counter, nonce_name, time, prev),
    }
}

pub fn qr_record(k: &Keys, counter: u32, time: i64, prev: &[u8; 32]) -> TapRecord {
    TapRecord {
        validator_id: VALIDATOR_ID,
        line_id: 2,
        time,
        pseudonym: std_cert(k).body.pseudonym,
        counter,
        fare: 5_000,
        fare_kind: FareKind::Transfer,
        proof: qr_proof(k, counter, time, prev),
    }
}

/// `n` records (alternating NFC and QR, a minute apart from T0) of one wallet's chain under the
/// standard certificate: counters from 1000, the first at the chain start, each next one
/// signing the id of the one before.
pub fn chained_records(k: &Keys, n: usize) -> Vec<TapRecord> {
    let mut prev = chain_start(&std_cert(k).id());
    (0..n)
        .map(|i| {
            let counter = COUNTER_FIRST + i as u32;
            let time = T0 + i as i64 * 60;
            let r = if i % 2 == 0 {
                nfc_record(k, counter, &format!("batch-{i}"), time, &prev)
            } else {
                qr_record(k, counter, time, &prev)
            };
            prev = r.proof.id();
            r
        })
        .collect()
}

/// A batch of `n` chained records (see [`chained_records`]) signed by validator 7001's key.
pub fn batch_of(k: &Keys, n: usize) -> TapBatch {
    make_batch(
        BatchBody {
            validator_id: VALIDATOR_ID,
            batch_id: nonce("batch-id"),
            created_at: T0 + 3600,
            records: chained_records(k, n),
            torn: Vec::new(),
        },
        &k.validator,
    )
}

/// The wallet's log of the same `n` taps: sequence from 0, its clock, the proof's amount.
pub fn log_chain(k: &Keys, n: usize) -> Vec<WalletLogEntry> {
    chained_records(k, n)
        .into_iter()
        .enumerate()
        .map(|(i, r)| WalletLogEntry {
            seq: i as u64,
            time: r.time,
            amount: r.proof.amount(),
            proof: r.proof,
        })
        .collect()
}
