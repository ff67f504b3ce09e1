//! Fraud cases.

use super::ids::parsed;
use super::{Reader, Writer};
use crate::error::StoreError;
use crate::ids::{DeviceId, PseudonymBytes};
use mancard_api::{FraudCase, FraudKind};
use rusqlite::named_params;

/// A fraud case to open.
#[derive(Debug, Clone)]
pub struct NewFraudCase<'a> {
    pub device_id: DeviceId,
    pub pseudonym: PseudonymBytes,
    pub kind: FraudKind,
    pub counter: Option<u32>,
    pub detail: &'a str,
    pub opened_at: i64,
}

impl Reader<'_> {
    /// Every case, oldest first.
    pub fn fraud_cases(&self) -> Result<Vec<FraudCase>, StoreError> {
        let mut st = self.conn.prepare(
            "SELECT id, device_id, pseudonym, kind, counter, detail, opened_at
             FROM fraud_cases ORDER BY id",
        )?;
        let rows = st.query_map([], |r| {
            let p: PseudonymBytes = r.get("pseudonym")?;
            Ok(FraudCase {
                id: r.get("id")?,
                device_id: r.get("device_id")?,
                pseudonym: p.to_hex(),
                kind: parsed(r, "kind", FraudKind::parse)?,
                counter: r.get("counter")?,
                detail: r.get("detail")?,
                opened_at: r.get("opened_at")?,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }
}

impl Writer<'_> {
    /// Opens a case; returns its id.
    pub fn insert_fraud_case(&self, c: &NewFraudCase<'_>) -> Result<i64, StoreError> {
        self.tx.execute(
            "INSERT INTO fraud_cases (device_id, pseudonym, kind, counter, detail, opened_at)
             VALUES (:device, :p, :kind, :counter, :detail, :now)",
            named_params! {
                ":device": c.device_id,
                ":p": c.pseudonym,
                ":kind": c.kind.as_str(),
                ":counter": c.counter,
                ":detail": c.detail,
                ":now": c.opened_at,
            },
        )?;
        Ok(self.tx.last_insert_rowid())
    }
}
