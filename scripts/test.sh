#!/usr/bin/env bash
# The whole test suite: set up, build (release with assertions), run every Criterion suite;
# then the same suites under AddressSanitizer and UndefinedBehaviorSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
jobs=$(nproc)
[ -d build-test ] || meson setup build-test --buildtype=debugoptimized
ninja -C build-test -j "$jobs"
meson test -C build-test --print-errorlogs --num-processes 1
[ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false
ninja -C build-asan -j "$jobs"
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
    CNN_TEST_QUICK=1 meson test -C build-asan --print-errorlogs --num-processes 1
