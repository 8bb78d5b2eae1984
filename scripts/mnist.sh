#!/usr/bin/env bash
# Builds the examples and runs the Keras MNIST tutorial in C++ (examples/mnist). Extra
# arguments go to the program (see `build/examples/mnist/mnist --help`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -z "${TG_MNIST_DIR:-}" && -d ../shared/data/mnist ]]; then
  export TG_MNIST_DIR="$(cd ../shared/data/mnist && pwd)"
fi
cmake -S . -B build -G Ninja -DTG_BUILD_EXAMPLES=ON > /dev/null
cmake --build build -j "$(nproc)" --target mnist
build/examples/mnist/mnist --out "${TG_OUT:-out/mnist}" "$@"
