#!/usr/bin/env bash
# A real llama.cpp for the tests, built once and cached between CI runs.
#
# Builds llama.cpp's shared libraries (libllama + libggml*) from the sources that
# the pinned llama-cpp-python sdist vendors, and installs llama-cpp-python into
# the active virtual environment WITHOUT compiling llama.cpp again
# (CMAKE_ARGS=-DLLAMA_BUILD=OFF: a pure-Python wheel, built once and cached too);
# the binding finds the libraries through LLAMA_CPP_LIB_PATH at run time.
# llama-quantize's work is the library call llama_model_quantize, which the tests
# and bench/quantize.py make through the binding, so neither llama-common nor
# the command-line tools are built.
#
# Only the libraries are compiled (no tests, examples, server, tools, mtmd), with
# GGML_NATIVE=ON (the CPU's own instructions): the cache key therefore includes a
# hash of the CPU's flags and the compiler's version, so a cache made on another
# CPU is never used. ggml's reference quantizers live in ggml-base, which is built
# without -march flags either way, so quantized bytes do not depend on it.
#
# Prints the llama.cpp directory (lib/ with the libraries, wheel/ with the binding's
# wheel) on stdout; logs go to stderr. Usage, with a virtual environment active:
#   LORRY_LLAMA_CPP_DIR=$(bash .ci/llama_cpp.sh) && export LORRY_LLAMA_CPP_DIR
set -euo pipefail

version=0.3.36
cmake_flags=(
    -G Ninja -DCMAKE_BUILD_TYPE=Release -DBUILD_SHARED_LIBS=ON -DGGML_NATIVE=ON
    -DLLAMA_BUILD_COMMON=OFF -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_TOOLS=OFF
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF
    -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF -DGGML_OPENMP=OFF
    "-DCMAKE_INSTALL_RPATH=\$ORIGIN" -DCMAKE_BUILD_WITH_INSTALL_RPATH=ON
)
log() { printf '[llama.cpp] %s\n' "$*" >&2; }

if ! command -v cmake >/dev/null || ! command -v ninja >/dev/null || ! command -v c++ >/dev/null; then
    log "installing cmake, ninja and g++ from Debian"
    sudo=()
    if [[ $(id -u) -ne 0 ]]; then sudo=(sudo); fi
    "${sudo[@]}" apt-get update -qq >&2
    "${sudo[@]}" apt-get install -y -qq --no-install-recommends cmake ninja-build g++ >&2
fi

cpu_flags=$(grep -m1 '^flags' /proc/cpuinfo || true)
key=$(printf '%s\n' "${cmake_flags[*]}" "$cpu_flags" "$(c++ --version | head -n1)" \
    | sha256sum | cut -c1-12)
cache_root="${LORRY_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lorry-ci}"
dest="$cache_root/llama.cpp-$version-$key"

if [[ -f "$dest/complete" ]]; then
    log "cached: $dest"
else
    log "building llama.cpp from llama-cpp-python==$version into $dest"
    started=$SECONDS
    mkdir -p "$cache_root"
    work=$(mktemp -d "$cache_root/.build-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    pip download --quiet --no-deps --no-binary llama-cpp-python "llama-cpp-python==$version" -d "$work" >&2
    tar -xzf "$work/llama_cpp_python-$version.tar.gz" -C "$work"
    src="$work/llama_cpp_python-$version"
    cmake -S "$src/vendor/llama.cpp" -B "$work/build" "${cmake_flags[@]}" >"$work/cmake.log" \
        || { cat "$work/cmake.log" >&2; exit 1; }
    nice -n 10 cmake --build "$work/build" --target llama -j 2 >"$work/build.log" 2>&1 \
        || { tail -n 50 "$work/build.log" >&2; exit 1; }
    log "compiled in $((SECONDS - started)) s"
    mkdir -p "$work/out/lib" "$work/out/wheel"
    cp -a "$work/build/bin/"lib*.so* "$work/out/lib/"
    CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" \
        pip wheel --quiet --no-deps "$src" -w "$work/out/wheel" >&2
    echo "llama-cpp-python==$version ${cmake_flags[*]}" >"$work/out/complete"
    rm -rf "$dest" && mv "$work/out" "$dest"
    log "built in $((SECONDS - started)) s"
fi

pip install --quiet "$dest"/wheel/llama_cpp_python-*.whl >&2
echo "$dest"
