"""Judge-free scores of an answer: does it cover a key point? (standard library only: OpenCompass's env
imports it through plra.toolchain.workers.oc_evaluators, and tools/bench_answers.py from the main env.)"""

from __future__ import annotations

import re

COVERED = 0.6  # a key point counts as covered when this share of its content units appears in the answer


def content_units(text: str) -> set[str]:
    """English words of 3+ letters (lower-cased) and Chinese character bigrams."""
    text = text.lower()
    units = {w for w in re.findall(r"[a-z0-9][a-z0-9\-]{2,}", text)}
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        units |= {run[i : i + 2] for i in range(max(1, len(run) - 1))}
    return units


def covers(answer: str, key_point: str) -> bool:
    wanted = content_units(key_point)
    if not wanted:
        return False
    return len(wanted & content_units(answer)) / len(wanted) >= COVERED


def key_point_recall(answer: str, key_points: list[str]) -> float:
    return sum(covers(answer, p) for p in key_points) / len(key_points) if key_points else 0.0
