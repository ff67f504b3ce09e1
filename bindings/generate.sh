#!/usr/bin/env bash
# Regenerates the Kotlin, Swift and Python bindings from the built library (uniffi library
# mode: the metadata is read from target/debug/libmancard.so, names from ../uniffi.toml).
#
#   bindings/generate.sh            # build, then write into bindings/{kotlin,swift,python}
#   bindings/generate.sh OUT_DIR    # write into OUT_DIR/{kotlin,swift,python} (freshness check)
#   SKIP_BUILD=1 bindings/generate.sh ...   # use the library as it is
set -euo pipefail
cd "$(dirname "$0")/.."
out="${1:-bindings}"
lib=target/debug/libmancard.so

if [ "${SKIP_BUILD:-0}" != 1 ]; then
  cargo build --quiet -p mancard -p uniffi-bindgen
fi
[ -f "$lib" ] || { echo "generate.sh: $lib is missing (cargo build -p mancard)" >&2; exit 1; }

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
