#!/usr/bin/env bash
# Unattended GPU check (issue 17): on a machine with an NVIDIA GPU, run benchmarks/gpu_check.py (bandwidth, matrix
# rates, a Llama-3.1-8B-shaped decode step) and print it beside the performance model's prediction for that GPU.
# Exits 2 with one line when no NVIDIA GPU (or no torch with CUDA) is there. Budget: a few minutes.
#   benchmarks/gpu_check.sh [GPU name as in gpus.csv, default: guessed from nvidia-smi]  > gpu_check.out
# Starting vLLM and running `orch bench` at several concurrencies (the issue's full check) is not scripted here yet.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
if ! command -v nvidia-smi >/dev/null 2>&1 || ! nvidia-smi -L >/dev/null 2>&1; then
  echo "gpu_check: no NVIDIA GPU here (nvidia-smi missing or finds none); run this on a GPU machine" >&2
  exit 2
fi
if ! "$PY" -c 'import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  echo "gpu_check: $PY has no torch with CUDA; pip install torch first" >&2
  exit 2
fi
gpu=${1:-$(nvidia-smi --query-gpu=name --format=csv,noheader | head -1 | grep -oE 'H100|H200|B200|A100|L40S|L4|A10G|T4' | head -1 || true)}
echo "== measured (benchmarks/gpu_check.py)"
timeout 600 "$PY" benchmarks/gpu_check.py
if [ -n "$gpu" ]; then
  echo "== predicted (orch estimate --model llama-3.1-8b --gpu $gpu --gpus 1 --explain)"
  timeout 60 "$PY" -m orchestrator.cli.main estimate --model llama-3.1-8b --gpu "$gpu" --gpus 1 --explain || true
else
  echo "gpu_check: GPU not recognised; pass its gpus.csv name as the first argument for the prediction" >&2
fi
