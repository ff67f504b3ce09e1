#!/usr/bin/env bash
# Regenerates the Kotlin, Swift and Python bindings from the built library (uniffi library
# mode: the metadata is read from the library, names from ../uniffi.toml).
#
#   bindings/generate.sh            # build the phone's library, then write into bindings/
#   bindings/generate.sh OUT_DIR    # write into OUT_DIR/{kotlin,swift,python} (freshness check)
#   SKIP_BUILD=1 bindings/generate.sh ...   # use the library as it is
#   LIB=path/libmancard.so ...              # generate from that library (default target/debug)
#   ALLOW_FILE_KEYSTORE=1 ...               # the binding tests' own build (see below)
#
# The committed bindings are the phone's API: they come from `cargo build -p mancard --lib`,
# built on its own with the default features. Built together with the CLI (a plain `cargo
# build` of the workspace), cargo unifies the CLI's `file-keystore` feature into the library,
# and `open_file_keystore` (keys in plain files, integrity only: docs/keys.md) would reach the
# apps: this script refuses such a library unless ALLOW_FILE_KEYSTORE=1.
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bindings}"
lib="${LIB:-target/debug/libmancard.so}"

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --quiet -p mancard --lib
  cargo build --quiet -p uniffi-bindgen
fi
[ -f "$lib" ] || { echo "generate.sh: $lib is missing (cargo build -p mancard --lib)" >&2; exit 1; }
if [ "${ALLOW_FILE_KEYSTORE:-0}" != 1 ] && grep -qa 'uniffi_mancard_fn_func_open_file_keystore' "$lib"; then
  echo "generate.sh: $lib exports open_file_keystore (built with the file-keystore feature," \
    "e.g. together with the CLI); build the phone's library alone: cargo build -p mancard --lib" >&2
  exit 1
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
for lang in kotlin swift python; do
  target/debug/uniffi-bindgen generate --library "$lib" --language "$lang" \
    --out-dir "$tmp/$lang" --no-format >/dev/null
done

# Only the generated files are replaced: tests and scripts next to them are left alone.
mkdir -p "$out/kotlin/ir/mancard/core" "$out/swift" "$out/python"
cp "$tmp/kotlin/ir/mancard/core/mancard.kt" "$out/kotlin/ir/mancard/core/mancard.kt"
cp "$tmp/swift/ManCardCore.swift" "$tmp/swift/ManCardCoreFFI.h" \
  "$tmp/swift/ManCardCoreFFI.modulemap" "$out/swift/"
cp "$tmp/python/mancard.py" "$out/python/mancard.py"
echo "bindings written to $out/{kotlin,swift,python}"
