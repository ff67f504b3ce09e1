//! Who may call `/v1/admin/*`: named operators, each with scopes and the SHA-256 digest of a
//! high-entropy bearer token (the token itself is never configured, stored or logged), and
//! the limits of the two-person rule on manual adjustments.
//!
//! The configuration file (JSON; `mancard backend serve --operators FILE`):
//!
//! ```json
//! {
//!   "second_approval_above": 10000000,
//!   "single_approval_daily_limit": 50000000,
//!   "operators": [
//!     { "name": "sara", "scopes": ["read", "adjust"], "token_sha256": "<64 hex digits>" },
//!     { "name": "reza", "scopes": ["read", "adjust", "fraud"], "token_sha256": "<64 hex>" }
//!   ]
//! }
//! ```
//!
//! `mancard backend operator-token --name sara --scope read --scope adjust` makes a token and
//! prints it once, with the entry to paste into the file.

use mancard_api::Scope;
use serde::Deserialize;
use std::collections::BTreeSet;
use std::path::Path;

/// An adjustment of more than this many rials (either sign) needs a second operator's
/// approval, by default (1,000,000 toman).
pub const DEFAULT_SECOND_APPROVAL_ABOVE: i64 = 10_000_000;
/// What one operator may adjust alone in 24 hours (sum of absolute amounts), by default:
/// beyond it every adjustment needs a second operator, so splitting a large one into small
/// ones does not avoid the approval.
pub const DEFAULT_SINGLE_APPROVAL_DAILY_LIMIT: i64 = 50_000_000;
/// The shortest token accepted when a token (not its digest) is given: 128 bits of hex.
pub const MIN_TOKEN_LEN: usize = 32;
/// Longest operator name, bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why an operator configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum OperatorsError {
    #[error("cannot read the operators file {path}: {cause}")]
    Read { path: String, cause: String },
    #[error("the operators file is not valid: {0}")]
    Parse(String),
    #[error("{0}")]
    Invalid(String),
}

/// The SHA-256 digest of an operator token (what the configuration holds).
pub fn token_digest(token: &str) -> [u8; 32] {
    mancard_protocol::sha256(&[token.trim().as_bytes()])
}

/// A new operator token: 32 random bytes, hex, after the `mco_` prefix (so a leaked one is
/// recognizable by secret scanners).
pub fn new_token() -> Result<String, OperatorsError> {
    let bytes = crate::engine::random::<32>()
        .map_err(|_| OperatorsError::Invalid("the random number generator failed".into()))?;
    Ok(format!("mco_{}", hex::encode(bytes)))
}

/// One named operator.
#[derive(Clone, PartialEq, Eq)]
pub struct Operator {
    name: String,
    scopes: BTreeSet<Scope>,
    digest: [u8; 32],
}

impl std::fmt::Debug for Operator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Operator")
            .field("name", &self.name)
            .field("scopes", &self.scopes)
            .finish_non_exhaustive()
    }
}

impl Operator {
    /// An operator from its name, scopes and token digest.
    pub fn new(
        name: &str,
        scopes: &[Scope],
        token_sha256: [u8; 32],
    ) -> Result<Self, OperatorsError> {
        let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '@');
        if name.is_empty() || name.len() > MAX_NAME_LEN || !name.chars().all(ok_char) {
            return Err(OperatorsError::Invalid(format!(
                "operator name {name:?}: 1 to {MAX_NAME_LEN} of a-z, A-Z, 0-9, - _ . @"
            )));
        }
        if scopes.is_empty() {
            return Err(OperatorsError::Invalid(format!(
                "operator {name} has no scope"
            )));
        }
        Ok(Self {
            name: name.to_string(),
            scopes: scopes.iter().copied().collect(),
            digest: token_sha256,
        })
    }

    /// An operator from its token (tests and tools; the server's file holds digests).
    pub fn with_token(name: &str, scopes: &[Scope], token: &str) -> Result<Self, OperatorsError> {
        if token.trim().len() < MIN_TOKEN_LEN {
            return Err(OperatorsError::Invalid(format!(
                "operator {name}'s token is shorter than {MIN_TOKEN_LEN} characters"
            )));
        }
        Self::new(name, scopes, token_digest(token))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn scopes(&self) -> impl Iterator<Item = Scope> + '_ {
        self.scopes.iter().copied()
    }

    /// Whether one of `any_of` is among the operator's scopes.
    pub fn allows(&self, any_of: &[Scope]) -> bool {
        any_of.iter().any(|s| self.scopes.contains(s))
    }
}

/// The configured operators and the two-person rule's limits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operators {
    operators: Vec<Operator>,
    /// See [`DEFAULT_SECOND_APPROVAL_ABOVE`].
    pub second_approval_above: i64,
    /// See [`DEFAULT_SINGLE_APPROVAL_DAILY_LIMIT`].
    pub single_approval_daily_limit: i64,
}

impl Default for Operators {
    fn default() -> Self {
        Self::none()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct FileEntry {
    name: String,
    scopes: Vec<Scope>,
    token_sha256: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    second_approval_above: Option<i64>,
    single_approval_daily_limit: Option<i64>,
    operators: Vec<FileEntry>,
}

impl Operators {
    /// No operator: every admin endpoint answers 403 `admin_disabled`.
    pub fn none() -> Self {
        Self {
            operators: Vec::new(),
            second_approval_above: DEFAULT_SECOND_APPROVAL_ABOVE,
            single_approval_daily_limit: DEFAULT_SINGLE_APPROVAL_DAILY_LIMIT,
        }
    }

    /// These operators, with the default limits; names and tokens must be unique.
    pub fn new(operators: Vec<Operator>) -> Result<Self, OperatorsError> {
        let mut names = BTreeSet::new();
        let mut digests = BTreeSet::new();
        for o in &operators {
            if !names.insert(o.name.as_str()) {
                return Err(OperatorsError::Invalid(format!(
                    "operator {} is configured twice",
                    o.name
                )));
            }
            if !digests.insert(o.digest) {
                return Err(OperatorsError::Invalid(format!(
                    "operator {} shares its token with another operator",
                    o.name
                )));
            }
        }
        Ok(Self {
            operators,
            ..Self::none()
        })
    }

    /// The same operators with other limits (rials, ≥ 0).
    pub fn with_limits(
        mut self,
        second_approval_above: i64,
        single_approval_daily_limit: i64,
    ) -> Result<Self, OperatorsError> {
        if second_approval_above < 0 || single_approval_daily_limit < 0 {
            return Err(OperatorsError::Invalid(
                "the approval limits are rials, 0 or more".into(),
            ));
        }
        self.second_approval_above = second_approval_above;
        self.single_approval_daily_limit = single_approval_daily_limit;
        Ok(self)
    }

    /// Parses the configuration file's text (format in the module docs).
    pub fn from_json(text: &str) -> Result<Self, OperatorsError> {
        let file: File =
            serde_json::from_str(text).map_err(|e| OperatorsError::Parse(e.to_string()))?;
        let mut ops = Vec::with_capacity(file.operators.len());
        for e in file.operators {
            let digest: [u8; 32] = hex::decode(e.token_sha256.trim())
                .ok()
                .and_then(|v| v.try_into().ok())
                .ok_or_else(|| {
                    OperatorsError::Invalid(format!(
                        "operator {}: token_sha256 is 64 hex digits (the SHA-256 of the token)",
                        e.name
                    ))
                })?;
            ops.push(Operator::new(&e.name, &e.scopes, digest)?);
        }
        Self::new(ops)?.with_limits(
            file.second_approval_above
                .unwrap_or(DEFAULT_SECOND_APPROVAL_ABOVE),
            file.single_approval_daily_limit
                .unwrap_or(DEFAULT_SINGLE_APPROVAL_DAILY_LIMIT),
        )
    }

    /// Reads and parses the configuration file. A file that others than its owner may write
    /// is refused: whoever can write it can make themselves an operator.
    pub fn load(path: &Path) -> Result<Self, OperatorsError> {
        let read_err = |e: std::io::Error| OperatorsError::Read {
            path: path.display().to_string(),
            cause: e.to_string(),
        };
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(path)
                .map_err(read_err)?
                .permissions()
                .mode();
            if mode & 0o022 != 0 {
                return Err(OperatorsError::Invalid(format!(
                    "the operators file {} is writable by others than its owner (mode {:o}); \
                     chmod go-w it",
                    path.display(),
                    mode & 0o777
                )));
            }
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::from_json(&text)
    }

    /// Whether no operator is configured.
    pub fn is_empty(&self) -> bool {
        self.operators.is_empty()
    }

    /// The operator whose token this is. Digests are compared, never the token: comparing
    /// digests of 128-bit-or-more secrets leaks nothing useful through timing.
    pub fn authenticate(&self, token: &str) -> Option<&Operator> {
        let digest = token_digest(token);
        self.operators.iter().find(|o| o.digest == digest)
    }

    /// Every operator.
    pub fn iter(&self) -> impl Iterator<Item = &Operator> {
        self.operators.iter()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_file_names_operators_by_digest() {
        let token = "mco_0123456789abcdef0123456789abcdef";
        let text = format!(
            r#"{{"second_approval_above": 5, "operators": [
                {{"name": "sara", "scopes": ["read", "adjust"], "token_sha256": "{}"}}]}}"#,
            hex::encode(token_digest(token))
        );
        let ops = Operators::from_json(&text).unwrap();
        assert_eq!(ops.second_approval_above, 5);
        assert_eq!(
            ops.single_approval_daily_limit,
            DEFAULT_SINGLE_APPROVAL_DAILY_LIMIT
        );
        let sara = ops.authenticate(token).unwrap();
        assert_eq!(sara.name(), "sara");
        assert!(sara.allows(&[Scope::Adjust]) && !sara.allows(&[Scope::Keys]));
        assert!(ops.authenticate("mco_wrong").is_none());
        assert!(!format!("{sara:?}").contains(&hex::encode(token_digest(token))));
    }

    #[test]
    fn bad_files_are_refused_with_a_reason() {
        let d = hex::encode([7u8; 32]);
        for bad in [
            "{".to_string(),
            r#"{"operators": [], "admin_token": "x"}"#.into(),
            format!(
                r#"{{"operators": [{{"name": "a", "scopes": ["root"], "token_sha256": "{d}"}}]}}"#
            ),
            format!(r#"{{"operators": [{{"name": "a", "scopes": [], "token_sha256": "{d}"}}]}}"#),
            format!(
                r#"{{"operators": [{{"name": "a b", "scopes": ["read"], "token_sha256": "{d}"}}]}}"#
            ),
            r#"{"operators": [{"name": "a", "scopes": ["read"], "token_sha256": "abcd"}]}"#.into(),
            format!(
                r#"{{"operators": [{{"name": "a", "scopes": ["read"], "token_sha256": "{d}"}},
                                  {{"name": "b", "scopes": ["read"], "token_sha256": "{d}"}}]}}"#
            ),
            r#"{"second_approval_above": -1, "operators": []}"#.to_string(),
        ] {
            assert!(Operators::from_json(&bad).is_err(), "{bad}");
        }
        assert!(Operator::with_token("a", &[Scope::Read], "short").is_err());
    }
}
