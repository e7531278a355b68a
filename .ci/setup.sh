#!/usr/bin/env bash
# Sets up riffd on a fresh Debian/Ubuntu machine: system packages (only those missing),
# a virtual environment in .venv, PyTorch (CPU build unless an NVIDIA GPU is present), the project.
# Usage: bash .ci/setup.sh [--test]   (--test adds the test tools and the real peers the tests start)
set -euo pipefail
cd "$(dirname "$0")/.."
want_test=0
[ "${1:-}" = "--test" ] && want_test=1

sudo_cmd=""
[ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"

# System packages: PortAudio for the sound card; a C compiler for riffd's native CPU kernels
# (daemon/native, built on first use; without one the int8 engine falls back to PyTorch's kernels);
# for tests, a JACK server with its dummy driver, jack_capture, liblo's oscsend/oscdump and Pure
# Data as third-party OSC peers; iproute2 for the network namespace the Link tests make; an aarch64
# cross compiler (with its C library) and qemu-user to build and run the ARM NEON kernels' tests.
pkgs=(libsndfile1 libportaudio2 gcc)
[ "$want_test" = 1 ] && pkgs+=(jackd2 jack-capture liblo-tools puredata-core iproute2)
[ "$want_test" = 1 ] && pkgs+=(gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user-static)
# The web studio's browser tests: Debian's Chromium and its matching ChromeDriver (never a download).
[ "$want_test" = 1 ] && pkgs+=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  echo "setup: installing system packages: ${missing[*]}"
  $sudo_cmd apt-get update -qq
  # jackd2 asks whether to enable realtime scheduling; the non-interactive default (no) is what we want.
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

python_bin="${PYTHON:-python3}"
"$python_bin" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
  || { echo "setup: riffd needs Python 3.11 or newer ($python_bin is older)"; exit 1; }
[ -x .venv/bin/python ] || "$python_bin" -m venv .venv
pip=(.venv/bin/python -m pip install -q --disable-pip-version-check)

# torch first, so that the project's open `torch` requirement is already met: on a machine
# without a GPU a bare `torch` would pull a multi-GB CUDA build.
if ! .venv/bin/python -c 'import torch' 2>/dev/null; then
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    "${pip[@]}" torch
  else
    "${pip[@]}" "torch==${RIFFD_CPU_TORCH_VERSION:-2.13.0}" ${RIFFD_TORCH_INDEX:+--index-url "$RIFFD_TORCH_INDEX"}
  fi
fi
# The `tempo` extra (Ableton Link, beat tracking, Rubber Band: GPL-licensed, see the README) is
# part of both the daemon's and the tests' set-up.
if [ "$want_test" = 1 ]; then
  # The tests also start a local Ray cluster for `riffd serve --ray` (the riffd[ray] extra).
  "${pip[@]}" -e ".[tempo,test,ray]"
else
  "${pip[@]}" -e ".[tempo]"
fi
echo "setup: ready ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
