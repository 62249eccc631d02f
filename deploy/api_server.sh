#!/usr/bin/env bash
# One LMDeploy api_server for a profile: `plra serve` with the arguments as given. The logic (engine settings
# from deploy/turbomind.toml, the AWQ model, GPUs) lives in plra/serve.py; this script only forwards.
#
#   deploy/api_server.sh --profile internlm2-7b --dry-run    # print the lmdeploy command
#   deploy/api_server.sh --profile internlm2-7b --tp 2       # start it on the first two visible GPUs
#   deploy/api_server.sh --profile internlm2-7b --stop       # stop it
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# The checkout's main env first, so the script works without an activated venv; a plra on PATH otherwise.
PATH="$root/.venv/bin:$PATH" exec plra serve "$@"
