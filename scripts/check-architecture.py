#!/usr/bin/env python3
"""Checks the rules of ARCHITECTURE.md that a machine can check, and fails (exit 1) naming
every breach:

1. crate edges point down: each workspace crate depends (normal dependencies) only on the
   crates its layer allows; dev-dependencies may also name mancard-testkit;
2. each crate has exactly one module that speaks SQL (files that use rusqlite);
3. HTTP status codes are chosen only at the backend's HTTP edge;
4. no production Rust file over 700 lines; no `too_many_arguments` allows; no glob imports
   in library code (tests and generated bindings are exempt).

Function length (80 lines) is clippy's `too_many_lines`, denied in the workspace lints.
"""
import json
import pathlib
import re
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

# crate -> the workspace crates it may depend on (normal dependencies).
ALLOWED = {
    "mancard-protocol": set(),
    "mancard-api": set(),
    "mancard-sql": set(),
    "mancard-l10n": set(),
    "mancard": {"mancard-protocol", "mancard-api", "mancard-sql", "mancard-l10n"},
    "mancard-validator": {"mancard-protocol", "mancard-sql", "mancard-l10n"},
    "mancard-backend": {"mancard-protocol", "mancard-api", "mancard-sql"},
    "mancard-testkit": {"mancard-protocol", "mancard-api", "mancard", "mancard-validator",
                        "mancard-backend"},
    "mancard-cli": {"mancard-protocol", "mancard-api", "mancard", "mancard-validator",
                    "mancard-backend", "mancard-testkit", "mancard-l10n"},
    "uniffi-bindgen": set(),
}

# crate directory -> the one place (prefix) allowed to use rusqlite in its src/.
SQL_HOME = {
    "src": "src/store/",
    "backend/src": "backend/src/store/",
    "validator/src": "validator/src/journal",
    "support/sql/src": "support/sql/src/",
    "cli/src": None,  # the CLI speaks to the crates' APIs, never to their tables
}

# What "speaking SQL" looks like: a statement in a string literal, or a rusqlite call that
# runs one. Naming `rusqlite::Error` (an error's source) is not speaking SQL.
SQL_TEXT = re.compile(
    r'"\s*(SELECT\s+[\w.*()]+[\s,]|INSERT\s+(OR\s+\w+\s+)?INTO\b|UPDATE\s+\w+\s+SET\b'
    r'|DELETE\s+FROM\b|CREATE\s+(TABLE|INDEX|UNIQUE|VIEW|TRIGGER)\b|PRAGMA\s+\w'
    r'|ALTER\s+TABLE\b|DROP\s+(TABLE|INDEX)\b)'
    r'|\.(query_row|query_map|execute_batch|prepare_cached|pragma_update|pragma_query_value'
    r'|transaction_with_behavior|query_and_then)\(')

HTTP_EDGE = "backend/src/http/"
MAX_FILE_LINES = 700
LIBRARY_DIRS = ["src", "protocol/src", "api/src", "support/sql/src", "support/l10n/src",
                "validator/src",
                "backend/src", "cli/src"]


def fail(errors, msg):
    errors.append(msg)


def check_edges(errors):
    meta = json.loads(subprocess.run(
        ["cargo", "metadata", "--format-version", "1", "--no-deps", "--offline"],
        cwd=ROOT, check=True, capture_output=True, text=True).stdout)
    names = {p["name"] for p in meta["packages"]}
    for p in meta["packages"]:
        name = p["name"]
        if name not in ALLOWED:
            fail(errors, f"{name}: a workspace crate ARCHITECTURE.md does not place "
                         f"(add it to the crate graph and to this check)")
            continue
        for d in p["dependencies"]:
            dep = d["name"]
            if dep not in names:
                continue
            if d["kind"] == "dev":
                continue  # tests may use any crate, including mancard-testkit
            if dep not in ALLOWED[name]:
                fail(errors, f"{name} depends on {dep}: that edge does not point down "
                             f"(allowed: {sorted(ALLOWED[name]) or 'none'})")


def rust_files(d):
    """Library sources below `d`: unit-test files (`tests.rs`, `tests/`) are left out."""
    base = ROOT / d
    if not base.is_dir():
        return []
    return sorted(f for f in base.rglob("*.rs")
                  if f.name != "tests.rs" and "tests" not in f.relative_to(base).parts[:-1])


def check_sql(errors):
    for crate_dir, home in SQL_HOME.items():
        for f in rust_files(crate_dir):
            rel = f.relative_to(ROOT).as_posix()
            text = f.read_text(encoding="utf-8")
            prod = text.split("#[cfg(test)]", 1)[0]
            m = SQL_TEXT.search(prod)
            if m and (home is None or not rel.startswith(home)):
                line = prod.count("\n", 0, m.start()) + 1
                where = f"outside {home}" if home else "in a crate that must not"
                fail(errors, f"{rel}:{line}: speaks SQL {where}")


def check_http_edge(errors):
    for f in rust_files("backend/src"):
        rel = f.relative_to(ROOT).as_posix()
        if rel.startswith(HTTP_EDGE) or rel == "backend/src/server.rs":
            continue
        if re.search(r"\bStatusCode\b", f.read_text(encoding="utf-8")):
            fail(errors, f"{rel}: picks an HTTP status outside {HTTP_EDGE}")


# A `use` item (`pub`, `pub(crate)`, `pub(in path)` included), possibly spanning lines, and
# a glob anywhere in its tree: `a::*`, `a::{b, *}`, `a::{*}`, `a::{b::{c, *}}`.
USE_ITEM = re.compile(r"^[ \t]*(?:pub(?:\([^)]*\))?\s+)?use\s+(?P<tree>[^;]*);", re.M)
GLOB = re.compile(r"(?:^|::|\{|,)\s*\*")


def check_files(errors):
    for d in LIBRARY_DIRS:
        for f in rust_files(d):
            rel = f.relative_to(ROOT).as_posix()
            text = f.read_text(encoding="utf-8")
            n = text.count("\n")
            if n > MAX_FILE_LINES:
                fail(errors, f"{rel}: {n} lines (limit {MAX_FILE_LINES})")
            if "too_many_arguments" in text:
                fail(errors, f"{rel}: allows clippy::too_many_arguments")
            # production code only: stop at the unit-test module
            prod = text.split("#[cfg(test)]", 1)[0]
            for m in USE_ITEM.finditer(prod):
                if GLOB.search(m.group("tree")):
                    line = prod.count("\n", 0, m.start()) + 1
                    item = " ".join(m.group(0).split())
                    fail(errors, f"{rel}:{line}: glob import `{item}`")


def main():
    errors = []
    check_edges(errors)
    check_sql(errors)
    check_http_edge(errors)
    check_files(errors)
    if errors:
        print("architecture check: %d breach(es)" % len(errors))
        for e in errors:
            print("  " + e)
        return 1
    print("architecture check: the crate graph, SQL homes, HTTP edge and file limits hold")
    return 0


if __name__ == "__main__":
    sys.exit(main())
