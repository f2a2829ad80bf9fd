#!/usr/bin/env bash
# Data-parallel training under `mpirun -np 2` (registered by tests/mpi/meson.build when the mpi
# option is on): test_mpi_dist (the library: 2 processes at batch B give the weights of one at
# 2B, a failing step, mismatched replicas), then `cnnc train` under mpirun: output from rank 0
# only, --lr-scale-by-world, a process whose data is broken stopping both with the error printed
# once and a non-zero exit (never a hang: every run has a timeout), disagreeing processes refused.
# usage: run.sh MPIRUN TEST_MPI_DIST CNNC
set -u
mpirun=$1 test_prog=$2 cnnc=$3
export OMP_NUM_THREADS=1 OMP_WAIT_POLICY=passive
# containers often forbid the cross-memory attach Open MPI's shared-memory transport uses
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export ASAN_OPTIONS=${ASAN_OPTIONS:-}:detect_leaks=0 # Open MPI keeps its allocations to the end
run=("$mpirun" --allow-run-as-root --oversubscribe --bind-to none)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
fails=0
fail() { echo "FAIL: $*"; fails=$((fails + 1)); }

timeout 300 "${run[@]}" -np 2 "$test_prog"
rc=$?
[ $rc -eq 0 ] || fail "test_mpi_dist exited $rc"

"$test_prog" --write-data "$tmp/good" || fail "writing the data"
cp -r "$tmp/good" "$tmp/bad"
truncate -s 2000 "$tmp/bad/train-images-idx3-ubyte"
cat > "$tmp/tiny.cnn" <<'NET'
network tiny {
    input image[1, 12, 12];
    output logits = image -> conv2d(4, 3, pad=1) -> relu -> maxpool(2) -> flatten -> dense(16) -> relu -> dense(4);
}
train tiny { loss = cross_entropy; optimizer = sgd(lr=0.05, momentum=0.9); batch = 8; epochs = 2; }
NET
common=(train "$tmp/tiny.cnn" --threads 1)

# 1. two processes train; rank 0 alone prints and writes
timeout 120 "${run[@]}" -np 2 "$cnnc" "${common[@]}" --data "$tmp/good" --save "$tmp/w.safetensors" \
    --log "$tmp/log.csv" --lr-scale-by-world >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -eq 0 ] || { fail "2-process training exited $rc"; cat "$tmp/err"; }
[ "$(grep -o 'epoch 2: train loss' "$tmp/out" | wc -l)" = 1 ] || { fail "the epoch line is not printed once"; cat "$tmp/out"; }
grep -q 'lr 0.1$' "$tmp/out" || fail "--lr-scale-by-world did not double the rate: $(head -1 "$tmp/out")"
[ -s "$tmp/w.safetensors" ] || fail "no --save file"
# 100 examples / (2 x 8) = 6 steps per epoch, 12 in all: one step row each and one row per
# epoch, from rank 0 only
[ "$(grep -c '^step,' "$tmp/log.csv")" = 12 ] || fail "the log has $(grep -c '^step,' "$tmp/log.csv") step rows, not 12"
[ "$(grep -c '^epoch,' "$tmp/log.csv")" = 2 ] || fail "the log has $(grep -c '^epoch,' "$tmp/log.csv") epoch rows, not 2"

# 1b. the same through cnnc: 2 processes at batch 8 give the weights of one at batch 16
"$cnnc" "${common[@]}" --data "$tmp/good" --batch 16 --save "$tmp/w1.safetensors" -q >/dev/null 2>&1 ||
    fail "one process at batch 16"
timeout 120 "${run[@]}" -np 2 "$cnnc" "${common[@]}" --data "$tmp/good" --batch 8 --save "$tmp/w2.safetensors" -q \
    >/dev/null 2>&1 || fail "2 processes at batch 8"
worst=$("$test_prog" --compare "$tmp/w1.safetensors" "$tmp/w2.safetensors")
echo "cnnc train: 2 processes at batch 8 against one at batch 16: worst weight difference $worst"
awk -v w="$worst" 'BEGIN { exit !(w < 1e-4) }' || fail "cnnc: the weights differ by $worst"

# 1c. resume under mpirun: 2 epochs straight, and 1 epoch, a checkpoint, then --resume for the
# second, end with the same weights, bit for bit (shuffled, momentum; rank 0 writes, every
# process reads the checkpoint)
timeout 120 "${run[@]}" -np 2 "$cnnc" "${common[@]}" --data "$tmp/good" --save "$tmp/straight.safetensors" -q \
    >/dev/null 2>"$tmp/err" || { fail "2 epochs straight"; cat "$tmp/err"; }
timeout 120 "${run[@]}" -np 2 "$cnnc" "${common[@]}" --data "$tmp/good" --epochs 1 --checkpoint "$tmp/ck" -q \
    >/dev/null 2>"$tmp/err" || { fail "the first epoch with --checkpoint"; cat "$tmp/err"; }
timeout 120 "${run[@]}" -np 2 "$cnnc" "${common[@]}" --data "$tmp/good" --resume "$tmp/ck/last.safetensors" \
    --save "$tmp/resumed.safetensors" -q >/dev/null 2>"$tmp/err" || { fail "--resume"; cat "$tmp/err"; }
cmp -s "$tmp/straight.safetensors" "$tmp/resumed.safetensors" && echo "resume under mpirun: the same weights, bit for bit" ||
    fail "resumed under mpirun, the weights differ from the run that was not interrupted"

# 2. rank 1's data is broken: both stop, the error printed once, a non-zero exit, no hang
timeout 120 "${run[@]}" -np 1 "$cnnc" "${common[@]}" --data "$tmp/good" : -np 1 "$cnnc" "${common[@]}" \
    --data "$tmp/bad" >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "a process with broken data: exit $rc (124: hung)"
[ "$(grep -c 'cnnc: error' "$tmp/err")" = 1 ] || { fail "the error is not printed once"; cat "$tmp/err"; }
grep -q 'bad/train-images-idx3-ubyte' "$tmp/err" || { fail "the error does not name the file"; cat "$tmp/err"; }

# 3. processes that disagree (another seed: other weights and order) are refused
timeout 120 "${run[@]}" -np 1 "$cnnc" "${common[@]}" --data "$tmp/good" : -np 1 "$cnnc" "${common[@]}" \
    --data "$tmp/good" --seed 3 >"$tmp/out" 2>"$tmp/err"
rc=$?
[ $rc -ne 0 ] && [ $rc -ne 124 ] || fail "disagreeing processes: exit $rc"
[ "$(grep -c 'cnnc: error' "$tmp/err")" = 1 ] || { fail "the refusal is not printed once"; cat "$tmp/err"; }

# 4. eval under mpirun: sharded, the same figures as one process
"$cnnc" eval "$tmp/tiny.cnn" -w "$tmp/w.safetensors" --data "$tmp/good" --threads 1 --batch 7 >"$tmp/one" 2>&1
timeout 120 "${run[@]}" -np 2 "$cnnc" eval "$tmp/tiny.cnn" -w "$tmp/w.safetensors" --data "$tmp/good" --threads 1 \
    --batch 7 >"$tmp/two" 2>&1
[ "$(sed 's/, [0-9]* images\/s//' "$tmp/one")" = "$(sed 's/, [0-9]* images\/s//' "$tmp/two")" ] ||
    { fail "eval differs: $(cat "$tmp/one") / $(cat "$tmp/two")"; }

[ $fails -eq 0 ] && echo "mpi: all passed" || echo "mpi: $fails failed"
[ $fails -eq 0 ]
