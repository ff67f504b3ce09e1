#!/usr/bin/env bash
# Builds ManCardCoreFFI.xcframework for iOS (device + simulator) on macOS with Xcode.
# NOT RUN in CI (Linux): see bindings/README.md for what was and was not tested.
#
#   bindings/swift/build-xcframework.sh            # release build
#   PROFILE=debug bindings/swift/build-xcframework.sh
#
# Output: bindings/swift/build/ManCardCoreFFI.xcframework (static libmancard.a + the C header
# and module map). Add it to the app target together with bindings/swift/ManCardCore.swift
# (the generated Swift API; regenerate with bindings/generate.sh).
set -euo pipefail
cd "$(dirname "$0")/../.."
ROOT=$(pwd)
PROFILE="${PROFILE:-release}"
OUT="$ROOT/bindings/swift/build"
DEVICE=aarch64-apple-ios
SIMULATORS=(aarch64-apple-ios-sim x86_64-apple-ios)

[ "$(uname -s)" = Darwin ] || { echo "build-xcframework.sh needs macOS with Xcode" >&2; exit 1; }
command -v xcodebuild >/dev/null || { echo "xcodebuild not found (install Xcode)" >&2; exit 1; }

rustup target add "$DEVICE" "${SIMULATORS[@]}"
cargo_flag=()
[ "$PROFILE" = release ] && cargo_flag=(--release)
export IPHONEOS_DEPLOYMENT_TARGET="${IPHONEOS_DEPLOYMENT_TARGET:-15.0}"
for t in "$DEVICE" "${SIMULATORS[@]}"; do
  echo "building libmancard.a for $t ($PROFILE)"
  cargo build -p mancard --lib "${cargo_flag[@]}" --target "$t"
done

rm -rf "$OUT"
mkdir -p "$OUT/headers" "$OUT/simulator"
# The generated header and module map; Xcode expects the map to be called module.modulemap.
cp bindings/swift/ManCardCoreFFI.h "$OUT/headers/"
cp bindings/swift/ManCardCoreFFI.modulemap "$OUT/headers/module.modulemap"

# One fat library for both simulator architectures (an xcframework slice per platform).
lipo -create \
  "target/aarch64-apple-ios-sim/$PROFILE/libmancard.a" \
  "target/x86_64-apple-ios/$PROFILE/libmancard.a" \
  -output "$OUT/simulator/libmancard.a"

xcodebuild -create-xcframework \
  -library "target/$DEVICE/$PROFILE/libmancard.a" -headers "$OUT/headers" \
  -library "$OUT/simulator/libmancard.a" -headers "$OUT/headers" \
  -output "$OUT/ManCardCoreFFI.xcframework"

echo "built $OUT/ManCardCoreFFI.xcframework"
echo "add it and bindings/swift/ManCardCore.swift to the app target (or a Swift package)"
