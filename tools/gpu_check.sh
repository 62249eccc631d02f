#!/usr/bin/env bash
# The GPU check: peak memory of one QLoRA step against `plra train --dry-run`'s estimate, and 4-bit vs fp16
# decode speed, on randomly initialised models of the real shapes (no download). The logic lives in
# plra/toolchain/gpu_check.py; this script only picks the Python and forwards the arguments.
#
#   tools/gpu_check.sh                                   # internlm2-7b, writes reports/gpu_check.json
#   tools/gpu_check.sh --profile internlm3-8b --out reports/gpu_check_internlm3.json
#   tools/gpu_check.sh --dry-run                         # on a CPU: the plan and a tiny model's LoRA step
#   PYTHON=python3 tools/gpu_check.sh                    # another Python with torch, transformers, peft,
#                                                        # accelerate and bitsandbytes (default .venv/bin/python)
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-$root/.venv/bin/python}"
# The GPU machine cannot reach the Hugging Face hub, and the check needs nothing from it.
export HF_HUB_OFFLINE=1
PYTHONPATH="$root${PYTHONPATH:+:$PYTHONPATH}" exec "$python" -m plra.toolchain.gpu_check "$@"
