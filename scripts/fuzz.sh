#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/, clang, -Dfuzz=true) and runs each for N seconds, all at
# once (one process per target, at nice 19), then prints a table: target, seconds, executions,
# edges (libFuzzer's "cov"), crashes.  Crash, leak, timeout and out-of-memory inputs are moved to
# fuzz/corpus/TARGET/regressions/ (the replay test, tests/test_fuzz_replay.c, feeds them through
# the readers in every build).  New inputs go to a scratch corpus under the build folder;
# --merge minimises them into fuzz/corpus/TARGET (-merge=1: only inputs that add coverage).
#
#   scripts/fuzz.sh [-t SECONDS] [-b BUILD_DIR] [--merge | --merge-only] [--rss MB] [TARGET ...]
#
# --merge-only merges the scratch corpora of an earlier run without fuzzing.
# Defaults: 60 seconds, build-fuzz, every target listed in fuzz/meson.build, rss limit 2048 MB.
# Each target's -max_len and dictionary come from that list.  Environment: CC (default clang),
# FUZZ_JOBS (targets run at the same time; default all), extra libFuzzer flags in FUZZ_FLAGS.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
secs=60
build=$root/build-fuzz
merge=0
rss=2048
targets=()
while [ $# -gt 0 ]; do
    case $1 in
        -t) secs=$2; shift 2 ;;
        -b) build=$(realpath -m "$2"); shift 2 ;;
        --merge) merge=1; shift ;;
        --merge-only) merge=1; secs=0; shift ;;
        --rss) rss=$2; shift 2 ;;
        -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        -*) echo "fuzz.sh: unknown option $1" >&2; exit 2 ;;
        *) targets+=("$1"); shift ;;
    esac
done

if ! command -v "${CC:-clang}" >/dev/null; then
    echo "fuzz.sh: ${CC:-clang} not found (Debian: apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
if [ ! -f "$build/build.ninja" ]; then
    CC=${CC:-clang} meson setup "$build" "$root" -Dfuzz=true -Donednn=disabled -Dpython=disabled \
        --buildtype=debugoptimized >/dev/null
fi
list=$build/fuzz/targets.txt
[ -f "$list" ] || { echo "fuzz.sh: $list missing (is $build a -Dfuzz=true build?)" >&2; exit 2; }
if [ ${#targets[@]} -eq 0 ]; then
    mapfile -t targets < <(awk '{print $1}' "$list")
fi
exes=()
for t in "${targets[@]}"; do
    grep -q "^$t " "$list" || { echo "fuzz.sh: no target '$t' (see fuzz/meson.build)" >&2; exit 2; }
    exes+=("fuzz/fuzz_$t")
done
ninja -C "$build" -j1 "${exes[@]}" >/dev/null

export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
out=$build/fuzz-runs
mkdir -p "$out"
# Runs one target for $secs seconds in all: libFuzzer stops at its first crash, so it is started
# again (on the grown corpus, the crash saved) until the time is used up.
run_target() {
    local t=$1 maxlen=$2 dict=$3
    local corpus=$root/fuzz/corpus/$t scratch=$out/$t.corpus art=$out/$t.artifacts
    local log=$out/$t.log start=$SECONDS left found=0 now runs=0
    : >"$log"
    while left=$((secs - (SECONDS - start))); [ "$left" -gt 0 ] && [ $runs -lt 100 ]; do
        runs=$((runs + 1))
        local args=(-max_total_time="$left" -max_len="$maxlen" -rss_limit_mb="$rss" -timeout=10
                    -print_final_stats=1 -artifact_prefix="$art/")
        [ "$dict" != "-" ] && args+=(-dict="$root/fuzz/$dict")
        nice -n 19 "$build/fuzz/fuzz_$t" "${args[@]}" ${FUZZ_FLAGS:-} "$scratch" "$corpus" >>"$log" 2>&1 && break
        now=$(grep -c 'Test unit written to' "$log" || true)
        [ "$now" -gt "$found" ] || break  # an error that is not a finding
        found=$now
    done
}

pids=()
[ "$secs" -gt 0 ] && for t in "${targets[@]}"; do
    read -r _ maxlen dict < <(grep "^$t " "$list")
    mkdir -p "$root/fuzz/corpus/$t" "$out/$t.corpus" "$out/$t.artifacts"
    run_target "$t" "$maxlen" "$dict" &
    pids+=($!)
done
status=0
for p in "${pids[@]}"; do wait "$p" || status=1; done

[ "$secs" -gt 0 ] && printf '%-14s %8s %12s %8s %8s\n' target seconds executions edges crashes
[ "$secs" -gt 0 ] && for t in "${targets[@]}"; do
    log=$out/$t.log
    art=$out/$t.artifacts
    # executions summed over the restarts; edges as last reported
    execs=$( (grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" || true) | awk '{s+=$2} END {print s+0}')
    edges=$( (grep -oE 'cov: [0-9]+' "$log" || true) | tail -1 | awk '{print $2}')
    crashes=0
    shopt -s nullglob
    for f in "$art"/crash-* "$art"/leak-* "$art"/timeout-* "$art"/oom-* "$art"/slow-unit-*; do
        case $(basename "$f") in slow-unit-*) rm -f "$f"; continue ;; esac
        mkdir -p "$root/fuzz/corpus/$t/regressions"
        mv "$f" "$root/fuzz/corpus/$t/regressions/"
        crashes=$((crashes + 1))
    done
    shopt -u nullglob
    printf '%-14s %8s %12s %8s %8s\n' "$t" "$secs" "${execs:-0}" "${edges:-?}" "$crashes"
done

if [ $merge = 1 ]; then
    for t in "${targets[@]}"; do
        read -r _ maxlen _ < <(grep "^$t " "$list")
        nice -n 19 "$build/fuzz/fuzz_$t" -merge=1 -max_len="$maxlen" -rss_limit_mb="$rss" \
            "$root/fuzz/corpus/$t" "$out/$t.corpus" >"$out/$t.merge.log" 2>&1 || status=1
        echo "merged $t: $(ls "$root/fuzz/corpus/$t" | wc -l) files, $(du -sh "$root/fuzz/corpus/$t" | cut -f1)"
    done
fi
echo "logs: $out"
exit $status
