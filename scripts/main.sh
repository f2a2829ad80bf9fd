#!/usr/bin/env bash
# The main job: set up, build, train LeNet-5 on Fashion-MNIST for 3 epochs, evaluate it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/deps.sh
[ -d build ] || meson setup build --buildtype=release
ninja -C build cnnc
examples=examples
data=/usr/share/datasets/fashion-mnist
./build/cnnc "$examples/lenet5.cnn"
./build/cnnc train "$examples/lenet5.cnn" --data "$data" --save lenet5.safetensors --log lenet5-metrics.csv
./build/cnnc eval "$examples/lenet5.cnn" -w lenet5.safetensors --data "$data"
