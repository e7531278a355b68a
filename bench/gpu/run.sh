#!/usr/bin/env bash
# The GPU check (issue 16) on any CUDA machine, from a checkout:
#   bash bench/gpu/run.sh OUTDIR [arguments of bench.gpu.measure, e.g. --budget-s 600]
# Uses the checkout's .venv (made by .ci/setup.sh) if there is one, else python3. Wheels left in .whl/
# beside the checkout are installed into a temporary folder first: for machines that cannot reach a
# package index (the project's pure-Python dependencies their image lacks). Writes OUTDIR/gpu.json
# (rewritten after every section), OUTDIR/log.txt and OUTDIR/nvidia-smi.txt.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:?usage: bash bench/gpu/run.sh OUTDIR [arguments of bench.gpu.measure]}"
shift
mkdir -p "$out"
py=python3
[ -x .venv/bin/python ] && py=.venv/bin/python
if compgen -G ".whl/*.whl" >/dev/null; then
  site=$(mktemp -d)
  "$py" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl || exit 1
  export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
fi
nvidia-smi >"$out/nvidia-smi.txt" 2>&1 || echo "no nvidia-smi" >"$out/nvidia-smi.txt"
export PYTHONUNBUFFERED=1
"$py" -m bench.gpu.measure "$out" "$@" 2>&1 | tee "$out/log.txt"
