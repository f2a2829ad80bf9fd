#!/usr/bin/env bash
# A build without the mpi option, started as one of several MPI processes (as mpirun would:
# OMPI_COMM_WORLD_SIZE=2), refuses to train: exit 2 and a message saying why, from rank 0.
# usage: no_mpi.sh CNNC EXAMPLES_DIR
set -u
cnnc=$1 examples=$2
out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=0 "$cnnc" train "$examples/lenet5.cnn" --data /nonexistent 2>&1)
rc=$?
[ $rc -eq 2 ] || { echo "FAIL: exit $rc, not 2: $out"; exit 1; }
echo "$out" | grep -q "no MPI support" || { echo "FAIL: $out"; exit 1; }
out=$(OMPI_COMM_WORLD_SIZE=2 OMPI_COMM_WORLD_RANK=1 "$cnnc" eval "$examples/lenet5.cnn" -w x --data /nonexistent 2>&1)
rc=$?
[ $rc -eq 2 ] && [ -z "$out" ] || { echo "FAIL: rank 1: exit $rc, output: $out"; exit 1; }
echo "refused as it should: exit 2"
