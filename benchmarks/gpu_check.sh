#!/usr/bin/env bash
# The GPU check (benchmarks/gpu_check.py): vLLM throughput with the preset's sampling and SFT peak memory
# against the memory plan, on one GPU, in under 8 minutes, nothing downloaded.
#   PYTHON=/path/to/env/bin/python bash benchmarks/gpu_check.sh [--model-config CONFIG.json] [--dry-run]
# PYTHON needs the CUDA builds of torch and deepspeed and the vllm wheel (e.g. the generate-vllm env plus
# deepspeed); VLLM_PYTHON, if set, runs the vLLM part with another interpreter (the generate-vllm env)
# and PYTHON the SFT part (the train env).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-.venv/bin/python}"
LIMIT="${GPU_CHECK_SECONDS:-480}"
export HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
if [[ -n "${VLLM_PYTHON:-}" ]]; then
    timeout "$LIMIT" "$VLLM_PYTHON" benchmarks/gpu_check.py --part vllm "$@"
    timeout "$LIMIT" "$PYTHON" benchmarks/gpu_check.py --part sft "$@"
else
    timeout "$LIMIT" "$PYTHON" benchmarks/gpu_check.py "$@"
fi
