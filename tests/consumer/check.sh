#!/usr/bin/env bash
# A user's project, four ways: against the installed package with find_package(tapegrad), with
# pkg-config, with -I<prefix>/include alone, and with tapegrad's sources inside it
# (add_subdirectory). Each builds main.cpp and runs it, and each builds own_headers_main.cpp, whose
# own nn/module.hpp and autograd/tensor.hpp must not be confused with tapegrad's, whichever
# include directory comes first.  Usage: check.sh BUILD_DIR SOURCE_DIR [--no-subproject]
set -euo pipefail
build_dir=$1
tapegrad_source=$2
here=$(cd "$(dirname "$0")" && pwd)
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT
run_quiet() {  # runs a step, showing its output only when it fails
  local log=$1
  shift
  "$@" > "$log" 2>&1 || { echo "failed: $*"; cat "$log"; exit 1; }
}

echo "== find_package(tapegrad) against an installed tree"
run_quiet "$scratch/install.log" cmake --install "$build_dir" --prefix "$scratch/prefix"
run_quiet "$scratch/configure.log" cmake -S "$here" -B "$scratch/build" -DCMAKE_PREFIX_PATH="$scratch/prefix" \
  -DCMAKE_BUILD_TYPE=Release
run_quiet "$scratch/build.log" cmake --build "$scratch/build"
libdir=$(dirname "$(find "$scratch/prefix" -name 'libtapegrad.so.0' | head -n 1)")
LD_LIBRARY_PATH="$libdir" "$scratch/build/consumer"
LD_LIBRARY_PATH="$libdir" "$scratch/build/consumer_own_headers"

echo "== pkg-config tapegrad"
pc_dir=$(dirname "$(find "$scratch/prefix" -name tapegrad.pc | head -n 1)")
flags=$(PKG_CONFIG_PATH="$pc_dir" pkg-config --cflags --libs tapegrad)
run_quiet "$scratch/pkg-config.log" c++ -O1 "$here/main.cpp" -o "$scratch/consumer-pc" $flags
LD_LIBRARY_PATH="$libdir" "$scratch/consumer-pc"
# tapegrad's include directory first this time, the user's after it.
run_quiet "$scratch/pkg-config-own.log" c++ -O1 "$here/own_headers_main.cpp" -o "$scratch/consumer-pc-own" $flags \
  -I"$here/own_headers"
LD_LIBRARY_PATH="$libdir" "$scratch/consumer-pc-own"

echo "== -I<prefix>/include alone"
run_quiet "$scratch/plain.log" c++ -std=c++20 -pthread -O1 -I"$scratch/prefix/include" "$here/main.cpp" \
  -o "$scratch/consumer-plain" -L"$libdir" -ltapegrad -lfmt
LD_LIBRARY_PATH="$libdir" "$scratch/consumer-plain"

[[ "${3:-}" == "--no-subproject" ]] && exit 0
echo "== add_subdirectory(tapegrad) in a Debug project"
# The parent keeps its Debug build type; tapegrad is compiled inside it with the parent's flags.
launcher=()
command -v ccache > /dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
run_quiet "$scratch/sub-configure.log" cmake -S "$here/subproject" -B "$scratch/sub" -G Ninja \
  -DCMAKE_BUILD_TYPE=Debug -DTAPEGRAD_SOURCE_DIR="$tapegrad_source" "${launcher[@]}"
run_quiet "$scratch/sub-build.log" cmake --build "$scratch/sub"
"$scratch/sub/consumer"
"$scratch/sub/consumer_own_headers"
