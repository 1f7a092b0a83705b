#!/usr/bin/env bash
# GPU smoke check: every family's tiny pipeline on CUDA in bf16 (attach / gated / detach), a
# dtype/device round trip of the source reader, peak memory per check. Under 5 minutes on a GPU.
# Usage: scripts/gpu_check.sh [--cpu-fallback] [--dtype bfloat16|float16|float32] [--families ...]
# Without a GPU it refuses unless --cpu-fallback is given (then it runs on CPU and says so).
set -euo pipefail
cd "$(dirname "$0")/.."
python="${PYTHON:-}"
if [ -z "$python" ]; then
  if [ -x .venv/bin/python ]; then python=.venv/bin/python; else python=python3; fi
fi
export PYTHONPATH="$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
exec "$python" -m safesteer.jobs.gpu_check "$@"
