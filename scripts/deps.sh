#!/usr/bin/env bash
# Installs what cnnc needs to build, test and train, from Debian 12's packages (as root).
# Installs only what is missing, so a second run costs nothing.
set -euo pipefail
pkgs=(gcc pkg-config flex bison meson ninja-build libdnnl-dev libcriterion-dev zlib1g-dev
      libcjson-dev dataset-fashion-mnist python3-numpy python3-pytest
      libplplot-dev plplot-driver-cairo libopenmpi-dev openmpi-bin
      protobuf-c-compiler libprotobuf-c-dev libonnx-dev)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q
    apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
