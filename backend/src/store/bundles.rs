//! Signed validator config bundles, one row per version.

use super::db::named_params;
use super::{Reader, Writer};
use crate::error::StoreError;

/// A stored config bundle.
#[derive(Debug, Clone)]
pub struct Bundle {
    pub version: u64,
    pub content_hash: Vec<u8>,
    pub encoded: Vec<u8>,
}

/// Whether a config bundle built earlier is still current, in one statement: how many times
/// the deny lists were changed, and the newest stored bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BundleState {
    pub generation: i64,
    /// The newest stored bundle's version and content hash.
    pub latest: Option<(u64, Vec<u8>)>,
}

impl Reader<'_> {
    pub fn bundle_state(&self) -> Result<BundleState, StoreError> {
        self.conn
            .query_opt(
                "SELECT i.generation AS generation, b.version AS version,
                        b.content_hash AS content_hash
                   FROM bundle_inputs i
                   LEFT JOIN (SELECT version, content_hash FROM config_bundles
                               ORDER BY version DESC LIMIT 1) b ON 1 = 1
                  WHERE i.id = 1",
                named_params! {},
                |r| {
                    let version: Option<u64> = r.get("version")?;
                    let hash: Option<Vec<u8>> = r.get("content_hash")?;
                    Ok(BundleState {
                        generation: r.get("generation")?,
                        latest: version.zip(hash),
                    })
                },
            )?
            .ok_or(StoreError::Corrupt("the bundle_inputs row is missing"))
    }

    pub fn latest_bundle(&self) -> Result<Option<Bundle>, StoreError> {
        self.conn.query_opt(
            "SELECT version, content_hash, encoded FROM config_bundles
                 ORDER BY version DESC LIMIT 1",
            named_params! {},
            |r| {
                Ok(Bundle {
                    version: r.get("version")?,
                    content_hash: r.get("content_hash")?,
                    encoded: r.get("encoded")?,
                })
            },
        )
    }
}

impl Writer<'_> {
    pub fn insert_bundle(
        &self,
        version: u64,
        content_hash: &[u8; 32],
        encoded: &[u8],
        now: i64,
    ) -> Result<(), StoreError> {
        let v = i64::try_from(version).map_err(|_| StoreError::Corrupt("bundle version"))?;
        self.tx.execute(
            "INSERT INTO config_bundles (version, content_hash, encoded, issued_at)
             VALUES (:version, :hash, :encoded, :now)",
            named_params! {
                ":version": v,
                ":hash": &content_hash[..],
                ":encoded": encoded,
                ":now": now,
            },
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::error::StoreError;
    use crate::ids::{CertHash, DeviceId, PseudonymBytes};
    use crate::store::tests::{raw, sqlite_and_postgres};
    use crate::store::{NewCertificate, NewValidator, Revocation, Store};

    /// Whoever writes what the deny lists read, the database bumps the bundle generation
    /// (schema version 12), once a change: raw statements as an older build would write them
    /// (no bump of their own) and the store's methods alike. At every step the generation
    /// moves if the deny lists did, and as often as the step says; a statement that changes
    /// nothing listed bumps nothing. Fails with the bumps in the methods only (the raw writes
    /// leave the generation where it was, so instances keep serving a bundle without the
    /// revocation).
    #[test]
    fn a_deny_list_change_by_any_writer_bumps_the_bundle_generation() {
        let dir = tempfile::tempdir().unwrap();
        let stores = sqlite_and_postgres(dir.path());
        for store in &stores {
            let (revoked, other) = deny_list_inputs(store);
            let mut g = Generations {
                store,
                expected: store.read(|tx| tx.bundle_state()).unwrap().generation,
            };
            revocation_steps(&mut g, revoked);
            certificate_steps(&mut g, revoked, other);
            validator_steps(&mut g);
            if store.dialect() == crate::store::db::Dialect::Postgres {
                g.step("revocations truncated", 1, |s| {
                    raw(s, "TRUNCATE revocations")
                });
            }
        }
    }

    /// The bundle generation, step by step.
    struct Generations<'s> {
        store: &'s Store,
        expected: i64,
    }

    /// What the deny lists hold now (at time 5): pseudonyms and validators.
    type Lists = (Vec<PseudonymBytes>, Vec<u32>);

    impl Generations<'_> {
        fn lists(&self) -> Lists {
            self.store
                .read(|tx| Ok::<_, StoreError>((tx.deny_list(5)?, tx.denied_validators()?)))
                .unwrap()
        }

        /// Runs `f`, which must bump the generation `bumps` times, and at least once if the
        /// deny lists changed.
        fn step(&mut self, what: &str, bumps: i64, f: impl FnOnce(&Store)) {
            let before = self.lists();
            f(self.store);
            self.expected += bumps;
            let got = self.store.read(|tx| tx.bundle_state()).unwrap().generation;
            let dialect = self.store.dialect();
            assert_eq!(got, self.expected, "{dialect:?}: {what}");
            if self.lists() != before {
                assert!(bumps > 0, "{dialect:?}: {what} changed the deny lists");
            }
        }
    }

    fn certificate(device_id: DeviceId, i: u8) -> NewCertificate<'static> {
        NewCertificate {
            hash: CertHash([i; 32]),
            pseudonym: PseudonymBytes([i; 16]),
            device_id,
            encoded: b"cert",
            counter_first: 0,
            counter_last: 100,
            valid_until: 1_000,
            issued_at: 1,
            tap_key: &[],
        }
    }

    /// An account with two devices: the first (to be revoked) with certificates 1 to 3,
    /// the other with certificate 4; and validator 5.
    fn deny_list_inputs(store: &Store) -> (DeviceId, DeviceId) {
        store
            .write(|tx| -> Result<_, StoreError> {
                let a = tx.create_account("+989120000000", 1)?;
                let d = tx.insert_device(a, b"binding", &PseudonymBytes([1; 16]), 1)?;
                let e = tx.insert_device(a, b"other", &PseudonymBytes([4; 16]), 1)?;
                for i in 1..=3u8 {
                    tx.insert_certificate(&certificate(d, i))?;
                }
                tx.insert_certificate(&certificate(e, 4))?;
                tx.upsert_validator(&NewValidator {
                    id: 5,
                    public_key: b"key",
                    operator_id: 1,
                    certificate: b"",
                    registered_at: 1,
                })?;
                Ok((d, e))
            })
            .unwrap()
    }

    fn revocation_steps(g: &mut Generations<'_>, device: DeviceId) {
        g.step("a revocation inserted", 1, |s| {
            raw(
                s,
                "INSERT INTO revocations (pseudonym, device_id, reason, revoked_at)
                 SELECT pseudonym, id, 'lost', 5 FROM devices
                  WHERE id = (SELECT MIN(id) FROM devices)",
            );
        });
        g.step("a revocation already there", 0, |s| {
            s.write(|tx| tx.revoke(device, Revocation::SharedPass, 6))
                .unwrap();
        });
        g.step("a revocation changed", 1, |s| {
            raw(s, "UPDATE revocations SET revoked_at = 6");
        });
        g.step("a revocation lifted", 1, |s| {
            raw(s, "DELETE FROM revocations")
        });
        g.step("a revocation through the store, bumped once", 1, |s| {
            s.write(|tx| tx.revoke(device, Revocation::SharedPass, 7))
                .unwrap();
        });
    }

    /// The `i`th certificate left, in pseudonym order (no blob literal: the two databases
    /// spell them differently).
    fn cert(i: u8) -> String {
        format!(
            "hash = (SELECT hash FROM certificates ORDER BY pseudonym LIMIT 1 OFFSET {})",
            i - 1
        )
    }

    fn certificate_steps(g: &mut Generations<'_>, revoked: DeviceId, other: DeviceId) {
        let supersede = format!(
            "UPDATE certificates SET superseded_at = 9 WHERE {}",
            cert(1)
        );
        g.step("a certificate superseded", 1, |s| raw(s, &supersede));
        g.step("the same supersession again", 0, |s| raw(s, &supersede));
        g.step("a column the lists do not read", 0, |s| {
            raw(s, "UPDATE certificates SET counter_last = counter_last + 1");
        });
        g.step("a listed certificate's expiry", 1, |s| {
            let sql = format!("UPDATE certificates SET valid_until = 2 WHERE {}", cert(2));
            raw(s, &sql);
        });
        g.step("an unlisted certificate's expiry", 0, |s| {
            let sql = format!("UPDATE certificates SET valid_until = 2 WHERE {}", cert(4));
            raw(s, &sql);
        });
        g.step("a superseded certificate deleted", 1, |s| {
            raw(s, &format!("DELETE FROM certificates WHERE {}", cert(1)));
        });
        g.step("a replenishment through the store", 1, |s| {
            // certificate 3 supersedes 2 (certificate 1 is gone, so it is now the first)
            let n = s
                .write(|tx| tx.supersede_others(revoked, &CertHash([3; 32]), 1))
                .unwrap();
            assert_eq!(n, 1);
        });
        g.step("a certificate of a revoked device added", 1, |s| {
            s.write(|tx| tx.insert_certificate(&certificate(revoked, 5)))
                .unwrap();
        });
        g.step("two certificates of a revoked device deleted", 2, |s| {
            raw(
                s,
                "DELETE FROM certificates WHERE superseded_at IS NULL AND device_id =
                      (SELECT MIN(device_id) FROM revocations)",
            );
        });
        // always: a revocation of its device may commit beside it, unseen by the trigger
        g.step("an unlisted certificate added", 1, |s| {
            s.write(|tx| tx.insert_certificate(&certificate(other, 6)))
                .unwrap();
        });
        g.step("an unlisted certificate deleted", 0, |s| {
            raw(
                s,
                "DELETE FROM certificates WHERE device_id NOT IN
                      (SELECT device_id FROM revocations)",
            );
        });
    }

    fn validator_steps(g: &mut Generations<'_>) {
        g.step("a validator denied", 1, |s| {
            raw(s, "UPDATE validators SET denied_at = 11 WHERE id = 5");
        });
        g.step("a denial repeated through the store", 0, |s| {
            assert_eq!(s.write(|tx| tx.deny_validator(5, 12)).unwrap(), Some(11));
        });
        g.step("a denial cleared", 1, |s| {
            raw(s, "UPDATE validators SET denied_at = NULL WHERE id = 5");
        });
        g.step("a denial through the store", 1, |s| {
            s.write(|tx| tx.deny_validator(5, 13)).unwrap();
        });
        g.step("a denied validator renumbered", 1, |s| {
            raw(s, "UPDATE validators SET id = 6 WHERE id = 5");
        });
        g.step("a validator added denied", 1, |s| {
            raw(
                s,
                "INSERT INTO validators (id, public_key, registered_at, denied_at)
                 SELECT 7, public_key, 1, 14 FROM validators WHERE id = 6",
            );
        });
        g.step("a denied validator deleted", 1, |s| {
            raw(s, "DELETE FROM validators WHERE id = 7");
        });
    }
}
