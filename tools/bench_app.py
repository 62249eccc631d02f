"""Concurrent questions through the Gradio app's API (gradio_client): success count, p50 and p95 latency.

    .venv/bin/python tools/bench_app.py [--url http://127.0.0.1:7860/] [--n 20] [--mode "Papers only"|Ask]

Without --url it starts `app.py` on a free port and stops it afterwards. Modes: "Papers only" (no
model: retrieval and the extractive answer) and "Ask" (the tiny model in-process, or the endpoint set).
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
QUESTIONS = [
    "Which benchmarks evaluate personalized text generation?", "What is pluralistic alignment?",
    "How do memory systems support long-term dialogue?", "个性化大模型有哪些常用的评测基准？",
    "How do role-playing agents keep a consistent persona?", "检索增强个性化是怎么做的？",
    "Which papers study per-user LoRA adapters?", "What risks does personalization bring?",
]  # fmt: skip


def start_app(port: int) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_SERVER_PORT": str(port), "GRADIO_SERVER_NAME": "127.0.0.1",
           "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}  # fmt: skip
    proc = subprocess.Popen([sys.executable, "app.py"], cwd=REPO, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)  # fmt: skip
    for _ in range(120):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    sys.exit("app.py did not start within 120 s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--url")
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--mode", default="Papers only", choices=["Papers only", "Ask"])
    args = parser.parse_args()
    proc = None
    url = args.url
    if not url:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        proc = start_app(port)
        url = f"http://127.0.0.1:{port}/"
    from gradio_client import Client

    def one(i: int) -> tuple[bool, float]:
        start = time.perf_counter()
        try:
            history, _, sources = Client(url, verbose=False).predict(
                QUESTIONS[i % len(QUESTIONS)], [], args.mode, False, 0.2, api_name="/respond"
            )
            ok = bool(history and history[-1]["content"]) and "arxiv.org" in sources
        except Exception as err:  # a failed request is a result here, not a crash
            print(f"request {i}: {type(err).__name__}: {err}", file=sys.stderr)
            ok = False
        return ok, time.perf_counter() - start

    try:
        wall = time.perf_counter()
        with ThreadPoolExecutor(max_workers=args.n) as pool:
            results = list(pool.map(one, range(args.n)))
        wall = time.perf_counter() - wall
    finally:
        if proc:
            proc.terminate()
    latencies = sorted(t for _, t in results)
    print(
        f"mode {args.mode!r}: {sum(ok for ok, _ in results)}/{args.n} succeeded in {wall:.1f} s; "
        f"latency p50 {statistics.median(latencies):.2f} s, p95 {latencies[int(0.95 * (len(latencies) - 1))]:.2f} s"
    )


if __name__ == "__main__":
    main()
