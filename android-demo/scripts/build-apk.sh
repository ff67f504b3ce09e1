#!/usr/bin/env bash
# Builds the APK on a machine with the Android SDK (platform 35, build-tools), the NDK and Gradle
# 8 — none of which the project's CI machine can download (Google's repositories are out of its
# reach). What CI does instead: compiles the same sources and resources with Maven and aapt and
# runs every screen and the HCE service under Robolectric against the host build of the core
# (bindings/test-bindings.sh).
#
#   ANDROID_HOME=... ANDROID_NDK_HOME=... android-demo/scripts/build-apk.sh [debug|release]
set -euo pipefail
cd "$(dirname "$0")/.."
variant=${1:-debug}
: "${ANDROID_HOME:?set ANDROID_HOME to the Android SDK}"
: "${ANDROID_NDK_HOME:?set ANDROID_NDK_HOME to the NDK}"
command -v cargo-ndk >/dev/null || cargo install cargo-ndk --locked
for t in aarch64-linux-android armv7-linux-androideabi x86_64-linux-android; do
  rustup target add "$t" >/dev/null
done
# The phone's library: default features only (no file keystore, no test hooks), 16 KB pages.
(cd .. && RUSTFLAGS="-C link-arg=-Wl,-z,max-page-size=16384" \
  cargo ndk -t arm64-v8a -t armeabi-v7a -t x86_64 --platform 26 -o android-demo/jniLibs \
  build -p mancard --lib --release)
# The committed bindings must match that library (bindings/generate.sh regenerates them).
if [ "$variant" = release ]; then
  gradle --no-daemon assembleRelease
else
  gradle --no-daemon assembleDebug
fi
ls -l build/outputs/apk/*/*.apk
