#!/usr/bin/env bash
# LMDeploy's proxy in front of N api_servers, each on its own GPUs: `plra serve --replicas N` with the other
# arguments as given. Replica i gets CUDA_VISIBLE_DEVICES = the visible GPUs i*tp .. i*tp+tp-1; the proxy's
# settings are deploy/proxy.toml's. The logic lives in plra/serve.py; this script only forwards.
#
#   deploy/proxy.sh 4 --profile internlm2-7b --dry-run                           # print the five commands
#   CUDA_VISIBLE_DEVICES=4,5,6,7 deploy/proxy.sh 2 --profile internlm2-7b --tp 2  # 4,5 and 6,7
#   deploy/proxy.sh 4 --profile internlm2-7b --stop                              # stop the proxy and replicas
set -euo pipefail
if [[ $# -lt 1 || ! $1 =~ ^[0-9]+$ ]]; then
    echo "usage: deploy/proxy.sh REPLICAS [plra serve options]" >&2
    exit 2
fi
replicas="$1"
shift
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PATH="$root/.venv/bin:$PATH" exec plra serve --replicas "$replicas" "$@"
