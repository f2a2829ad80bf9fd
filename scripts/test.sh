#!/usr/bin/env bash
# The whole test suite: set up, build (optimised, with assertions), run every Criterion suite;
# then the same suites under AddressSanitizer and UndefinedBehaviorSanitizer, and in a build
# without oneDNN (the slowest cases trimmed by CNN_TEST_QUICK in both).  Ends with one line:
# "tests: N passed, M failed".
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh || exit 1
# the stages include one way only (ops <- lang <- compiler <- runtime)
bash scripts/include-graph.sh || exit 1
jobs=$(nproc)
status=0

# prints "passed failed" over the Criterion tests of a build folder's last meson test run
count() {
    python3 - "$1/meson-logs/testlog.json" <<'PY'
import json, re, sys
ok = bad = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    m = re.search(r"Tested: (\d+) \| Passing: (\d+) \| Failing: (\d+) \| Crashing: (\d+)", r.get("stdout", "") + r.get("stderr", ""))
    if m:
        ok += int(m.group(2))
        bad += int(m.group(3)) + int(m.group(4))
    if r.get("result") not in ("OK", "SKIP", "EXPECTEDFAIL") and not (m and int(m.group(3)) + int(m.group(4))):
        bad += 1  # a suite that failed without a failing test (crash, timeout, sanitizer)
print(ok, bad)
PY
}

[ -d build-test ] || meson setup build-test --buildtype=debugoptimized || exit 1
ninja -C build-test -j "$jobs" || exit 1
meson test -C build-test --print-errorlogs --num-processes 1 || status=1
read -r p1 f1 < <(count build-test)

[ -d build-asan ] || meson setup build-asan --buildtype=debug -Db_sanitize=address,undefined -Db_lundef=false || exit 1
ninja -C build-asan -j "$jobs" || exit 1
ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 LSAN_OPTIONS=suppressions=$PWD/tests/lsan.supp \
    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 CNN_TEST_QUICK=1 \
    meson test -C build-asan --print-errorlogs --num-processes 1 || status=1
read -r p2 f2 < <(count build-asan)

# the configuration without oneDNN (native and reference kernels only) must build and pass too
[ -d build-nodnn ] || meson setup build-nodnn --buildtype=debugoptimized -Donednn=disabled || exit 1
ninja -C build-nodnn -j "$jobs" || exit 1
CNN_TEST_QUICK=1 meson test -C build-nodnn --print-errorlogs --num-processes 1 || status=1
read -r p3 f3 < <(count build-nodnn)

echo "suites: plain build $p1 passed, $f1 failed; sanitizer build $p2 passed, $f2 failed;" \
     "without oneDNN $p3 passed, $f3 failed"
echo "tests: $((p1 + p2 + p3)) passed, $((f1 + f2 + f3)) failed"
exit $status
