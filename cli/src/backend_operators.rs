//! `mancard backend audit-log` and `mancard backend operator-token`: the operator log and the
//! operators' credentials.
//!
//! ```text
//! mancard backend audit-log --db FILE [--expect-head HEX] [--json]
//! mancard backend operator-token --name NAME --scope read|adjust|fraud|keys... [--add-to FILE]
//! ```

use crate::CliResult;
use clap::{Args, ValueEnum};
use mancard_api::Scope;
use mancard_backend::operators::{new_token, token_digest, Operators};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// Print the operator log and check its hash chain (exit 1 if it is broken).
#[derive(Args)]
pub struct AuditLogArgs {
    #[command(flatten)]
    db: super::DbArgs,
    /// A row hash noted earlier (the head printed then): the log must still contain it, or it
    /// was truncated or rewritten.
    #[arg(long)]
    expect_head: Option<String>,
    /// One JSON object per row instead of text.
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum ScopeArg {
    Read,
    Adjust,
    Fraud,
    Keys,
}

impl From<ScopeArg> for Scope {
    fn from(s: ScopeArg) -> Self {
        match s {
            ScopeArg::Read => Scope::Read,
            ScopeArg::Adjust => Scope::Adjust,
            ScopeArg::Fraud => Scope::Fraud,
            ScopeArg::Keys => Scope::Keys,
        }
    }
}

/// Make a new operator token. The token is printed once on stdout and never stored: the
/// operators file keeps its SHA-256 digest.
#[derive(Args)]
pub struct OperatorTokenArgs {
    /// The operator's name (a-z, A-Z, 0-9, - _ . @).
    #[arg(long)]
    name: String,
    /// A scope (repeat): read, adjust, fraud, keys.
    #[arg(long = "scope", value_enum, required = true)]
    scopes: Vec<ScopeArg>,
    /// Add the operator to this operators file (created, owner-only, if missing); without
    /// it the entry to paste is printed on stderr.
    #[arg(long)]
    add_to: Option<PathBuf>,
}

fn time(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0)
        .map(|d| d.format("%Y-%m-%dT%H:%M:%SZ").to_string())
        .unwrap_or_else(|| t.to_string())
}

pub fn audit_log(args: AuditLogArgs) -> CliResult {
    // a database file that does not exist is refused there, not created
    let engine = super::offline_engine(args.db)?;
    let rows = engine.operator_log_rows()?;
    for r in &rows {
        if args.json {
            println!("{}", serde_json::to_string(&r.to_api())?);
        } else {
            println!(
                "{:>6} {} {:<16} {:<22} {:<44} {:>3}  {}",
                r.id,
                time(r.at),
                r.operator.as_deref().unwrap_or("-"),
                r.action,
                r.target,
                r.outcome,
                r.detail
            );
        }
    }
    let check = mancard_backend::features::operators::verify_chain(&rows);
    let head = hex::encode(check.head);
    let mut ok = true;
    match check.broken {
        None => eprintln!("chain ok: {} rows, head {head}", check.rows),
        Some((id, why)) => {
            eprintln!("chain BROKEN at row {id}: {why}");
            ok = false;
        }
    }
    if let Some(anchor) = args.expect_head {
        let anchor = anchor.trim().to_ascii_lowercase();
        if rows.iter().any(|r| hex::encode(&r.hash) == anchor) {
            eprintln!("the anchored row {anchor} is in the log");
        } else {
            eprintln!("the anchored row {anchor} is MISSING: the log was truncated or rewritten");
            ok = false;
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes the operators file owner-only (it decides who may move money).
fn write_private(path: &Path, text: &str) -> Result<(), Box<dyn std::error::Error>> {
    let tmp = path.with_extension("tmp");
    {
        let mut o = std::fs::OpenOptions::new();
        o.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        use std::io::Write;
        let mut f = o.open(&tmp)?;
        f.write_all(text.as_bytes())?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    Ok(())
}

pub fn operator_token(args: OperatorTokenArgs) -> CliResult {
    let scopes: Vec<Scope> = args.scopes.iter().map(|s| Scope::from(*s)).collect();
    let token = new_token()?;
    // the entry must be valid before the token is shown
    let check = mancard_backend::operators::Operator::with_token(&args.name, &scopes, &token)?;
    let entry = serde_json::json!({
        "name": check.name(),
        "scopes": scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
        "token_sha256": hex::encode(token_digest(&token)),
    });
    match &args.add_to {
        Some(path) => {
            let mut file: serde_json::Value = if path.exists() {
                serde_json::from_str(&std::fs::read_to_string(path)?)?
            } else {
                serde_json::json!({ "operators": [] })
            };
            let list = file
                .get_mut("operators")
                .and_then(|v| v.as_array_mut())
                .ok_or("the operators file has no \"operators\" list")?;
            list.push(entry);
            let text = serde_json::to_string_pretty(&file)?;
            Operators::from_json(&text)?; // refuse to write a file the server would refuse
            write_private(path, &text)?;
            eprintln!("operator {} added to {}", args.name, path.display());
        }
        None => eprintln!(
            "add to the \"operators\" list of the operators file:\n{}",
            serde_json::to_string_pretty(&entry)?
        ),
    }
    eprintln!("the token (shown once; give it to the operator, keep no copy):");
    println!("{token}");
    Ok(ExitCode::SUCCESS)
}
