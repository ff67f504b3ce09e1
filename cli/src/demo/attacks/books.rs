//! The reel's books: after every attack, the backend's audit (balances are the sums of their
//! ledgers, every charged tap has its fare, no certificate's running total drifts), every
//! validator journal uploaded, and every rial the backend charged explained by an attack.

use super::super::output::money;
use super::super::Res;
use super::reel::Reel;
use super::Attack;
use serde_json::json;

/// The problems found (none: the books agree), printed as the reel's last step.
pub(super) fn check(reel: &mut Reel, played: &[Attack], as_json: bool) -> Res<Vec<String>> {
    let mut problems = Vec::new();
    let audit = reel
        .engine
        .audit()
        .map_err(|e| format!("backend audit: {e}"))?;
    if !audit.ok {
        problems.push(format!("backend audit failed: {audit:?}"));
    }
    let mut journaled = 0i64;
    let mut ids = Vec::new();
    for v in reel.validators() {
        let st = v.status()?;
        journaled += st.journal.accepted_total;
        ids.push(v.validator_id().to_string());
        let left = st.journal.unsealed + st.journal.in_pending_batches;
        if left != 0 {
            problems.push(format!(
                "validator {}: {left} tap(s) never reached the backend",
                v.validator_id()
            ));
        }
    }
    let mut backend = 0;
    for (name, account) in reel.accounts.clone() {
        backend += reel
            .charged(account)
            .map_err(|e| format!("{name}'s account: {e}"))?;
    }
    let told: i64 = played.iter().map(|a| a.charged).sum();
    if told != backend {
        problems.push(format!(
            "the backend charged {} in all, the attacks account for {}",
            money(backend),
            money(told)
        ));
    }
    let lines = [
        format!(
            "backend audit {} ({} accounts, {} ledger entries, {} taps; balances total {} = \
             ledger total {})",
            if audit.ok { "ok" } else { "FAILED" },
            audit.accounts,
            audit.ledger_entries,
            audit.taps,
            money(audit.balances_total),
            money(audit.ledger_total)
        ),
        format!(
            "validators {}: {journaled} ride(s) journaled, {}",
            ids.join(", "),
            if problems.iter().any(|p| p.starts_with("validator")) {
                "some not uploaded"
            } else {
                "all uploaded"
            }
        ),
        format!(
            "charged in the reel: {} — exactly what the attacks say they cost ({})",
            money(backend),
            money(told)
        ),
    ];
    if as_json {
        println!(
            "{}",
            json!({"event": "books", "audit_ok": audit.ok, "ledger_entries": audit.ledger_entries,
                   "taps": audit.taps, "journaled": journaled, "charged": backend,
                   "attacks_charged": told, "books_agree": problems.is_empty(),
                   "problems": problems})
        );
    } else {
        println!("\nThe books");
        for l in &lines {
            println!("    {l}");
        }
    }
    Ok(problems)
}
