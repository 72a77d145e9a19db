#!/usr/bin/env bash
# Create a virtual environment with the FinOps Foundation's focus-validator, as
# /work/shared/recipes/focus-validator.md says: it needs Python >= 3.12 (pip on 3.11 resolves only 1.0.0,
# which knows FOCUS 1.0), and NumPy 2 for its pyarrow although it pins numpy<2.
# Usage: scripts/setup-focus-validator.sh [VENV_DIR]   (default: .venv-focus)
# Idempotent. Prints the path of the focus-validator executable: export it as ORCH_FOCUS_VALIDATOR to run
# the tests that check orch's FOCUS exports with it.
set -euo pipefail

VENV_DIR="${1:-.venv-focus}"
VERSION="${FOCUS_VALIDATOR_VERSION:-2.2.1}"
BIN="$VENV_DIR/bin/focus-validator"

if [ -x "$BIN" ] && "$VENV_DIR/bin/python" -c 'import focus_validator' >/dev/null 2>&1; then
    echo "$(cd "$VENV_DIR" && pwd)/bin/focus-validator"
    exit 0
fi

PY=""
for cand in python3.13 python3.12 /root/.pyenv/versions/3.1[23]*/bin/python3.1[23] "$HOME"/.pyenv/versions/3.1[23]*/bin/python3.1[23]; do
    if "$cand" -c 'import sys; assert sys.version_info >= (3, 12)' >/dev/null 2>&1; then
        PY="$(command -v "$cand")"
        break
    fi
done
if [ -z "$PY" ]; then
    echo "focus-validator $VERSION needs Python >= 3.12, and none was found" >&2
    exit 1
fi

echo "installing focus-validator==$VERSION with $PY into $VENV_DIR" >&2
"$PY" -m venv "$VENV_DIR"
"$VENV_DIR/bin/pip" install -q "focus-validator==$VERSION"
"$VENV_DIR/bin/pip" install -q "numpy>=2" 2>/dev/null
"$VENV_DIR/bin/python" -c 'import focus_validator' >/dev/null
echo "$(cd "$VENV_DIR" && pwd)/bin/focus-validator"
