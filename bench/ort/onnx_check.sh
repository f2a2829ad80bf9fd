#!/usr/bin/env bash
# The export check: every example network (examples/*.cnn) exported by `cnnc export` (seeded
# weights; as written and with --fold-bn), checked by onnx.checker (Debian's python3-onnx, with
# full shape inference) and run in ONNX Runtime on a random batch, whose outputs must be within
# 1e-4 of `cnnc run`'s.  Then the import fixtures (tests/fixtures/onnx) in ONNX Runtime against
# PyTorch's outputs.  Prints the worst error per network.
#   CNNC_ORT_DIR=$HOME/ort bash bench/ort/onnx_check.sh [BUILD_DIR] [NETWORK...]
# Without CNNC_ORT_DIR (a folder where `npm install --ignore-scripts onnxruntime-node` ran) the
# ONNX Runtime runs are skipped with a message; without python3-onnx the checker is.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
top=$(cd "$here/../.." && pwd)
build=${1:-$top/build}
shift || true
cnnc=$build/cnnc
nets=("$@")
[ ${#nets[@]} -gt 0 ] || nets=(lenet5 signal1d resnet20 vgg_small resnet18 alexnet vgg16)
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
py=/usr/bin/python3
have_checker=0
$py -c 'import onnx' 2>/dev/null && have_checker=1
[ $have_checker = 1 ] || echo "note: python3-onnx is not installed: onnx.checker skipped"
fail=0
for n in "${nets[@]}"; do
    src=$top/examples/$n.cnn
    shape=$("$cnnc" -q "$src" | sed -n 's/^input [^ ]* \[\(.*\)\]/\1/p' | head -1 | tr -d ',')
    "$cnnc" run -q "$src" --batch 1 >/dev/null || { echo "$n: cnnc cannot run it"; fail=1; continue; }
    node "$here/make_input.js" "$tmp/$n.in.npy" 7 2 $shape
    "$cnnc" run -q "$src" -i "$tmp/$n.in.npy" -o "$tmp/$n.cnnc.npy" >/dev/null || { fail=1; continue; }
    for variant in plain fold; do
        flag=; [ $variant = fold ] && flag=--fold-bn
        model=$tmp/$n.$variant.onnx
        "$cnnc" export -q "$src" -o "$model" $flag || { echo "$n: export failed"; fail=1; continue; }
        if [ $have_checker = 1 ]; then
            $py -c "import onnx, sys; onnx.checker.check_model(sys.argv[1], full_check=True)" "$model" \
                || { echo "$n ($variant): onnx.checker refused it"; fail=1; }
        fi
        printf '%-10s %-6s %6s MB  ' "$n" "$variant" "$(( $(stat -c %s "$model") / 1048576 ))"
        node "$here/ort_run.js" "$model" "$tmp/$n.in.npy" "$tmp/$n.cnnc.npy" --threads 2 | sed "s|$tmp/||" || fail=1
    done
    rm -f "$tmp"/$n.*.onnx
done
echo "import fixtures in ONNX Runtime against PyTorch, as PyTorch wrote them and after a round trip"
echo "through cnnc (import, then export as written and with --fold-bn):"
for f in "$top"/tests/fixtures/onnx/*.out.npy; do
    n=${f%.out.npy}
    b=$(basename "$n")
    node "$here/ort_run.js" "$n.onnx" "$n.in.npy" "$f" | sed "s|$top/||" || fail=1
    for variant in plain fold; do
        flag=; [ $variant = fold ] && flag=--fold-bn
        "$cnnc" export -q "$n.onnx" -o "$tmp/$b.$variant.onnx" $flag || { echo "$b: export failed"; fail=1; continue; }
        if [ $have_checker = 1 ]; then
            $py -c "import onnx, sys; onnx.checker.check_model(sys.argv[1], full_check=True)" "$tmp/$b.$variant.onnx" \
                || { echo "$b ($variant): onnx.checker refused it"; fail=1; }
        fi
        node "$here/ort_run.js" "$tmp/$b.$variant.onnx" "$n.in.npy" "$f" | sed "s|$tmp/||" || fail=1
    done
done
echo "conformance fixtures (tests/fixtures/*.cnn with PyTorch's weights) exported by cnnc, in ONNX Runtime"
echo "against PyTorch's outputs (batch 7):"
for f in "$top"/tests/fixtures/*.out7.npy; do
    n=${f%.out7.npy}
    b=$(basename "$n")
    [ -f "$n.cnn" ] && [ -f "$n.safetensors" ] || continue
    "$cnnc" export -q "$n.cnn" -w "$n.safetensors" -o "$tmp/$b.onnx" || { echo "$b: export failed"; fail=1; continue; }
    node "$here/ort_run.js" "$tmp/$b.onnx" "$n.in7.npy" "$f" | sed "s|$tmp/||" || fail=1
done
exit $fail
