//! Identifiers and digests of the backend's records, as types: an account id cannot be passed
//! where a device id is meant, and a certificate hash is not any 32 bytes. The store maps them
//! to and from SQLite columns (`store::ids`).

use std::fmt;

/// An account (`accounts.id`); the wire's `account_id`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct AccountId(pub i64);

/// A wallet installation (`devices.id`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DeviceId(pub i64);

/// The id of an issued certificate (`CredentialCertificate::id`, a hash of its body: a
/// re-encoded signature names the same certificate).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CertHash(pub [u8; 32]);

/// A validator's tap batch id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BatchId(pub [u8; 16]);

/// A card pseudonym's 16 bytes (fresh in every certificate; the backend links a device's
/// pseudonyms through its certificates).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PseudonymBytes(pub [u8; 16]);

/// One tap: a card pseudonym and the counter it signed (each pair is settled once).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TapRef {
    pub pseudonym: PseudonymBytes,
    pub counter: u32,
}

impl From<i64> for AccountId {
    fn from(v: i64) -> Self {
        Self(v)
    }
}

impl fmt::Display for AccountId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl PseudonymBytes {
    /// Lowercase hex, as the wire carries it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl fmt::Display for PseudonymBytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl CertHash {
    /// Lowercase hex, as the wire carries it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}

impl BatchId {
    /// Lowercase hex, as the wire carries it.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }
}
