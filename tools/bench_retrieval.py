"""Retrieval speed and memory at 10,000 entries: PLRA's hybrid index vs a plain rank_bm25 baseline, same run.

    .venv/bin/python tools/bench_retrieval.py [--entries 10000] [--queries 300] [--out reports/bench]

The synthetic knowledge base is made from the real entries: each synthetic entry takes a real paper's text,
shuffles its sentences and mixes in sentences of another paper, so vocabulary and lengths stay realistic.
Targets on a 2-core machine: build < 30 s, p50 < 10 ms, at least 10x faster per query than the baseline.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import re
import statistics
import time
import tracemalloc
from pathlib import Path

from plra.knowledge import kb
from plra.knowledge.retrieval import Doc, PlainBM25, SearchIndex, document, load_questions
from plra.settings import load_knowledge


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?。！？])\s*", text) if s.strip()]


def synthetic_docs(real: list[Doc], n: int, seed: int = 13) -> list[Doc]:
    rng = random.Random(seed)
    docs = list(real)
    while len(docs) < n:
        base, other = rng.choice(real), rng.choice(real)
        en = _sentences(base.text_en) + rng.sample(_sentences(other.text_en), k=min(2, len(_sentences(other.text_en))))
        zh = _sentences(base.text_zh) + _sentences(other.text_zh)[:1]
        rng.shuffle(en)
        rng.shuffle(zh)
        text_en, text_zh = " ".join(en), "".join(zh)
        docs.append(
            dataclasses.replace(
                base,
                arxiv_id=f"9{len(docs):09d}",
                title=f"{base.title} ({len(docs)})",
                text_en=text_en,
                text_zh=text_zh,
                search_text=f"{base.title} {text_en} {text_zh}",
            )
        )
    return docs[:n]


def measure(label: str, build, query, queries: list[str]) -> dict[str, float]:
    """Build time and query latency in one pass, then peak traced memory of a second build
    (tracemalloc slows Python down several times, so it must stay out of the timed pass)."""
    start = time.perf_counter()
    system = build()
    build_s = time.perf_counter() - start
    times = []
    for q in queries:
        t0 = time.perf_counter()
        query(system, q)
        times.append((time.perf_counter() - t0) * 1000)
    del system
    tracemalloc.start()
    system = build()
    query(system, queries[0])
    peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
    tracemalloc.stop()
    times.sort()
    return {
        "system": label,
        "build_s": build_s,
        "p50_ms": statistics.median(times),
        "p95_ms": times[int(0.95 * (len(times) - 1))],
        "peak_mb": peak_mb,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--entries", type=int, default=10_000)
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    args = parser.parse_args()
    settings = load_knowledge()
    knowledge = kb.load(settings)
    real = [document(p, knowledge.terms_for(p.arxiv_id)) for p in knowledge.papers.values()]
    docs = synthetic_docs(real, args.entries)
    questions = [q["question"] for q in load_questions(settings.field_dir / "benchmark" / "retrieval.jsonl")]
    queries = (questions * (args.queries // len(questions) + 1))[: args.queries]
    print(f"{len(docs)} entries ({len(real)} real), {len(queries)} queries (English and Chinese)", flush=True)
    ours = measure("plra (bm25s+jieba)", lambda: SearchIndex.from_docs(docs), lambda s, q: s.search(q, k=5), queries)
    base = measure("baseline (rank_bm25)", lambda: PlainBM25(docs), lambda s, q: s.rank(q, 5), queries)
    print(f"\n{'system':22s} {'build s':>8s} {'p50 ms':>8s} {'p95 ms':>8s} {'peak MB':>8s}")
    for row in (ours, base):
        print(
            f"{row['system']:22s} {row['build_s']:8.2f} {row['p50_ms']:8.2f} {row['p95_ms']:8.2f} {row['peak_mb']:8.1f}"
        )
    print(
        f"\nper-query speed-up at p50: {base['p50_ms'] / ours['p50_ms']:.1f}x "
        f"(targets: build < 30 s, p50 < 10 ms, >= 10x)"
    )
    args.out.mkdir(parents=True, exist_ok=True)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    names = ["plra", "rank_bm25"]
    axes[0].bar(names, [ours["p50_ms"], base["p50_ms"]], color=["#3b7dd8", "#999999"])
    axes[0].set_ylabel("query p50 (ms, log)")
    axes[0].set_yscale("log")
    axes[1].bar(names, [ours["build_s"], base["build_s"]], color=["#3b7dd8", "#999999"])
    axes[1].set_ylabel("index build (s)")
    fig.suptitle(f"Retrieval over {len(docs):,} entries")
    fig.tight_layout()
    fig.savefig(args.out / "retrieval_bench.png", dpi=120)
    print(f"plot: {args.out / 'retrieval_bench.png'}")


if __name__ == "__main__":
    main()
