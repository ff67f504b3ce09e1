//! Fraud cases: opened on signed evidence (kept as bytes), resolved by an operator. While a
//! case of any of its devices is open, the account is frozen.

use super::db::{named_params, Row};
use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{AccountId, DeviceId, PseudonymBytes};
use mancard_api::admin::{
    FraudCaseStatus, FraudResolution, FraudStatusFilter, ResolveFraudRequest,
};
use mancard_api::{FraudCase, FraudKind};

/// A fraud case to open.
#[derive(Debug, Clone)]
pub struct NewFraudCase<'a> {
    pub device_id: DeviceId,
    pub pseudonym: PseudonymBytes,
    pub kind: FraudKind,
    pub counter: Option<u32>,
    pub detail: &'a str,
    pub opened_at: i64,
    /// The signed messages that prove it (`features::fraud::evidence_bytes`).
    pub evidence: Vec<u8>,
}

const CASE_COLS: &str = "f.id, d.account_id, f.device_id, f.pseudonym, f.kind, f.counter,
    f.detail, f.opened_at, f.resolved_at, f.resolved_by, f.resolution, f.resolution_note";

fn case_row(r: &Row<'_>) -> Result<FraudCase, StoreError> {
    let p: PseudonymBytes = r.get("pseudonym")?;
    let resolution = match r.get::<Option<String>>("resolution")? {
        Some(_) => Some(parsed(r, "resolution", FraudResolution::parse)?),
        None => None,
    };
    let resolved_at: Option<i64> = r.get("resolved_at")?;
    Ok(FraudCase {
        id: r.get("id")?,
        account_id: r.get("account_id")?,
        device_id: r.get("device_id")?,
        pseudonym: p.to_hex(),
        kind: parsed(r, "kind", FraudKind::parse)?,
        counter: r.get("counter")?,
        detail: r.get("detail")?,
        opened_at: r.get("opened_at")?,
        status: match resolved_at {
            Some(_) => FraudCaseStatus::Resolved,
            None => FraudCaseStatus::Open,
        },
        resolution,
        resolved_at,
        resolved_by: r.get("resolved_by")?,
        note: r.get("resolution_note")?,
    })
}

impl Reader<'_> {
    /// Every case, oldest first.
    pub fn fraud_cases(&self) -> Result<Vec<FraudCase>, StoreError> {
        self.fraud_cases_with(FraudStatusFilter::All)
    }

    /// The cases with a status, oldest first.
    pub fn fraud_cases_with(
        &self,
        filter: FraudStatusFilter,
    ) -> Result<Vec<FraudCase>, StoreError> {
        let cond = match filter {
            FraudStatusFilter::Open => "WHERE f.resolved_at IS NULL",
            FraudStatusFilter::Resolved => "WHERE f.resolved_at IS NOT NULL",
            FraudStatusFilter::All => "",
        };
        self.conn.query_vec(
            &format!(
                "SELECT {CASE_COLS} FROM fraud_cases f JOIN devices d ON d.id = f.device_id
                 {cond} ORDER BY f.id"
            ),
            named_params! {},
            case_row,
        )
    }

    /// The case already opened against `device` for `kind` on `counter`, open or resolved,
    /// if any (the oldest). The fraud event is the device, the kind and the counter: never
    /// the evidence's bytes, whose signatures a phone's key can sign afresh at will.
    pub fn fraud_case_on(
        &self,
        device: DeviceId,
        kind: FraudKind,
        counter: u32,
    ) -> Result<Option<i64>, StoreError> {
        self.conn.query_opt(
            "SELECT id FROM fraud_cases
             WHERE device_id = :device AND kind = :kind AND counter = :counter
             ORDER BY id LIMIT 1",
            named_params! {":device": device, ":kind": kind.as_str(), ":counter": counter},
            |r| r.get("id"),
        )
    }

    /// One case.
    pub fn fraud_case(&self, id: i64) -> Result<Option<FraudCase>, StoreError> {
        self.conn.query_opt(
            &format!(
                "SELECT {CASE_COLS} FROM fraud_cases f JOIN devices d ON d.id = f.device_id
                 WHERE f.id = :id"
            ),
            named_params! {":id": id},
            case_row,
        )
    }

    /// A case's evidence bytes (empty for a case opened before evidence was kept); `None`:
    /// no such case.
    pub fn fraud_evidence(&self, id: i64) -> Result<Option<Vec<u8>>, StoreError> {
        let found: Option<Option<Vec<u8>>> = self.conn.query_opt(
            "SELECT evidence FROM fraud_cases WHERE id = :id",
            named_params! {":id": id},
            |r| r.get("evidence"),
        )?;
        Ok(found.map(Option::unwrap_or_default))
    }

    /// Whether a case of any device of the account is open.
    pub fn account_has_open_case(&self, account_id: AccountId) -> Result<bool, StoreError> {
        self.conn.query_one(
            "SELECT EXISTS (SELECT 1 FROM fraud_cases f JOIN devices d ON d.id = f.device_id
             WHERE d.account_id = :account AND f.resolved_at IS NULL) AS e",
            named_params! {":account": account_id},
            |r| r.get("e"),
        )
    }

    /// Whether a case of the device other than `except` keeps it revoked: open, or confirmed.
    pub fn device_has_standing_case(
        &self,
        device_id: DeviceId,
        except: i64,
    ) -> Result<bool, StoreError> {
        self.conn.query_one(
            "SELECT EXISTS (SELECT 1 FROM fraud_cases
             WHERE device_id = :device AND id <> :except
               AND (resolved_at IS NULL OR resolution = 'confirmed')) AS e",
            named_params! {":device": device_id, ":except": except},
            |r| r.get("e"),
        )
    }
}

impl Writer<'_> {
    /// Opens a case; returns its id.
    pub fn insert_fraud_case(&self, c: &NewFraudCase<'_>) -> Result<i64, StoreError> {
        self.tx.query_one(
            "INSERT INTO fraud_cases
                 (device_id, pseudonym, kind, counter, detail, opened_at, evidence)
             VALUES (:device, :p, :kind, :counter, :detail, :now, :evidence) RETURNING id",
            named_params! {
                ":device": c.device_id,
                ":p": c.pseudonym,
                ":kind": c.kind.as_str(),
                ":counter": c.counter,
                ":detail": c.detail,
                ":now": c.opened_at,
                ":evidence": (!c.evidence.is_empty()).then_some(&c.evidence),
            },
            |r| r.get("id"),
        )
    }

    /// Resolves an open case at `at`; false if it was resolved already (nothing changed).
    pub fn resolve_fraud_case(
        &self,
        id: i64,
        r: &ResolveFraudRequest,
        at: i64,
    ) -> Result<bool, StoreError> {
        let n = self.tx.execute(
            "UPDATE fraud_cases SET resolved_at = :at, resolved_by = :by, resolution = :res,
                 resolution_note = :note
             WHERE id = :id AND resolved_at IS NULL",
            named_params! {
                ":id": id,
                ":at": at,
                ":by": r.operator,
                ":res": r.resolution.as_str(),
                ":note": r.note,
            },
        )?;
        Ok(n > 0)
    }

    /// Lifts the revocation a fraud case put on a device (a reason that is a [`FraudKind`]'s
    /// text: its pseudonyms leave the deny list); a revocation for another reason stays. True
    /// if one was lifted.
    pub fn lift_fraud_revocation(&self, device_id: DeviceId) -> Result<bool, StoreError> {
        let reasons: Vec<String> = self.tx.query_vec(
            "SELECT reason FROM revocations WHERE device_id = :device",
            named_params! {":device": device_id},
            |r| r.get("reason"),
        )?;
        let mut lifted = 0;
        for reason in reasons.iter().filter(|r| FraudKind::parse(r).is_some()) {
            lifted += self.tx.execute(
                "DELETE FROM revocations WHERE device_id = :device AND reason = :reason",
                named_params! {":device": device_id, ":reason": reason},
            )?;
        }
        // a lifted revocation renews the bundle: the schema's trigger bumps `bundle_inputs`
        Ok(lifted > 0)
    }
}
