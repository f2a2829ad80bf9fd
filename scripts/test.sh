#!/usr/bin/env bash
# The whole test suite: set up, build (optimised, with assertions), run every Criterion suite;
# then the same suites under AddressSanitizer and UndefinedBehaviorSanitizer, and in a build
# without oneDNN (the slowest cases trimmed by CNN_TEST_QUICK in both); the Python module's
# pytest tests against the plain build; and scripts/test-install.sh (install into a temporary
# prefix, embed it).  Ends with one line: "tests: N passed, M failed".
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

# the Python module (python/cnnc) against the plain build, with Debian's python3 and pytest
junit=$PWD/build-test/pytest.xml
rm -f "$junit"
CNNC_LIB=$PWD/build-test/libcnn.so.0 CNNC_BIN=$PWD/build-test/cnnc PYTHONPATH=$PWD/python \
    /usr/bin/python3 -m pytest -q -p no:cacheprovider --junitxml="$junit" python/tests
prc=$?
[ $prc = 0 ] || status=1
read -r p4 f4 < <(/usr/bin/python3 - "$junit" "$prc" <<'PY'
import sys, xml.etree.ElementTree as ET
try:
    r = ET.parse(sys.argv[1]).getroot()
    s = r if r.tag == "testsuite" else r.find("testsuite")
    n, bad = int(s.get("tests")), sum(int(s.get(k, 0)) for k in ("failures", "errors", "skipped"))
except Exception:
    n = bad = 0
rc = int(sys.argv[2])
if rc != 0 and bad == 0:
    bad = 1  # pytest failed without a failing test: no tests collected (5), usage or internal error
print(n - min(bad, n), bad)
PY
)

# install into a temporary prefix; C programs and Python embed it (its own summary line)
bash scripts/test-install.sh | tee build-test/install.log
[ "${PIPESTATUS[0]}" = 0 ] || status=1
read -r p5 f5 < <(sed -n 's/^install: \([0-9]*\) passed, \([0-9]*\) failed$/\1 \2/p' build-test/install.log | tail -1)
[ -n "${p5:-}" ] || { p5=0 f5=1; }

echo "suites: plain build $p1 passed, $f1 failed; sanitizer build $p2 passed, $f2 failed;" \
     "without oneDNN $p3 passed, $f3 failed; python $p4 passed, $f4 failed; install $p5 passed, $f5 failed"
echo "tests: $((p1 + p2 + p3 + p4 + p5)) passed, $((f1 + f2 + f3 + f4 + f5)) failed"
exit $status
