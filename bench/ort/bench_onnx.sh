#!/usr/bin/env bash
# cnnc against ONNX Runtime on the same networks: each example network is exported by
# `cnnc export` (seeded weights) and timed in ONNX Runtime (CPU, all graph optimisations,
# intra-op threads = cnnc's --threads) next to `cnnc bench` (its -O2 row on the auto backend),
# at batch 1 and 64, 1 and 2 threads.  The two are interleaved ROUNDS times (default 5), each
# round giving a median of REPEAT runs (default 10; 5 at batch 64); the table shows the median
# of the rounds with their min-max, in ms per batch and images/s.
#   CNNC_ORT_DIR=$HOME/ort bash bench/ort/bench_onnx.sh [BUILD_DIR] [NETWORK...]
# Without CNNC_ORT_DIR (a folder where `npm install --ignore-scripts onnxruntime-node` ran) it
# prints "skipped" and stops.  The machine's load changes the figures: run it on a quiet one.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build}
shift || true
cnnc=$build/cnnc
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(lenet5 resnet20)
rounds=${ROUNDS:-5}
if [ -z "${CNNC_ORT_DIR:-}" ] || [ ! -d "$CNNC_ORT_DIR/node_modules/onnxruntime-node" ]; then
    echo "skipped: set CNNC_ORT_DIR to a folder where 'npm install --ignore-scripts onnxruntime-node' ran"
    exit 0
fi
# OpenMP as a user runs it (libgomp's default wait policy) unless the environment says otherwise
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# "median [min-max]" of the numbers on stdin
stats() { sort -g | awk '{v[NR]=$1} END {printf "%.3f [%.3f-%.3f]", v[int((NR+1)/2)], v[1], v[NR]}'; }
printf '%-10s %5s %7s  %-28s %-28s %8s\n' network batch threads "cnnc -O2 ms (min-max)" "ONNX Runtime ms (min-max)" "ORT/cnnc"
for n in "${nets[@]}"; do
    model=$tmp/$n.onnx
    "$cnnc" export -q "$top/examples/$n.cnn" -o "$model" || exit 1
    for batch in 1 64; do
        repeat=${REPEAT:-$([ $batch = 1 ] && echo 10 || echo 5)}
        for threads in 1 2; do
            : >"$tmp/c" && : >"$tmp/o"
            for r in $(seq "$rounds"); do
                OMP_NUM_THREADS=$threads "$cnnc" bench "$top/examples/$n.cnn" --batch $batch --threads $threads \
                    --repeat "$repeat" --json 2>/dev/null |
                    grep -o '"passes": "-O2", "backend": "auto", "ms": [0-9.]*' | head -1 | awk '{print $NF}' >>"$tmp/c"
                node "$here/ort_bench.js" "$model" --batch $batch --threads $threads --repeat "$repeat" |
                    sed 's/.*"ms":\([0-9.e-]*\).*/\1/' >>"$tmp/o"
            done
            c=$(stats <"$tmp/c") o=$(stats <"$tmp/o")
            ratio=$(awk -v a="${o%% *}" -v b="${c%% *}" 'BEGIN {printf "%.2f", a / b}')
            printf '%-10s %5s %7s  %-28s %-28s %8s\n' "$n" $batch $threads "$c" "$o" "$ratio"
        done
    done
done
