#!/usr/bin/env bash
# Installs everything tapegrad needs to build and test, from Debian's archive. Idempotent.
# Usage: scripts/install-deps.sh [--bench]   (--bench adds PyTorch, for conformance data and benchmarks)
set -euo pipefail
packages=(
  build-essential cmake ninja-build ccache pkg-config
  libxtensor-dev xtl-dev libxsimd-dev libfmt-dev doctest-dev libopenblas-dev libdnnl-dev
  ocl-icd-opencl-dev  # oneDNN's CMake package requires OpenCL's; libdnnl-dev only recommends it
  zlib1g-dev libcli11-dev nlohmann-json3-dev libcurl4-openssl-dev libssl-dev
  python3 python3-numpy
  libopenmpi-dev openmpi-bin  # data-parallel training (distributed/), its tests and the example
  qemu-user  # the tests on an emulated CPU without AVX-512 (tests/CMakeLists.txt)
  clang-format-14  # the layout check (ctest format)
  clang-14 libclang-rt-14-dev libomp-14-dev  # libFuzzer and clang's OpenMP, for the fuzz targets (scripts/fuzz.sh)
  dataset-fashion-mnist  # Fashion-MNIST's four files (31 MB), read from /usr/share/datasets/fashion-mnist
)
if [[ "${1:-}" == "--bench" ]]; then
  packages+=(python3-torch libtorch-dev time)
fi
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  sudo_cmd=""
  [[ $(id -u) -ne 0 ]] && sudo_cmd="sudo"
  $sudo_cmd apt-get update -qq
  $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
