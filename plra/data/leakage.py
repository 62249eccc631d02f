"""The leakage guard: no benchmark question may appear in training data, exactly or nearly.

Questions are normalized (case, punctuation, spacing) and compared exactly, then as shingles: English
by word 6-grams, Chinese by character 8-grams. A training question that contains at least half of a
benchmark question's shingles is a near-duplicate. Paper titles and short names are taken out before
shingling: two questions about the same paper share its title, and what must differ is the wording
around it. Benchmark questions too short for MIN_SHINGLES shingles are checked for exact matches only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from plra.types import CJK

NEAR_DUPLICATE = 0.5
MIN_SHINGLES = 3


def normalize(text: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"[^\w\u4e00-\u9fff]+", " ", text.lower())).strip()


def shingles(text: str, names: tuple[str, ...] = ()) -> set[str]:
    norm = normalize(text)
    for name in names:
        if name in norm:
            norm = norm.replace(name, " ")
    if CJK.search(norm):
        chars = norm.replace(" ", "")
        return {chars[i : i + 8] for i in range(len(chars) - 7)}
    words = norm.split()
    return {" ".join(words[i : i + 6]) for i in range(len(words) - 5)}


@dataclass(frozen=True)
class Leak:
    benchmark_file: str
    benchmark_question: str
    training_id: str
    kind: str  # "exact" or "near"

    def __str__(self) -> str:
        return (
            f"{self.kind} match: {self.benchmark_file}: {self.benchmark_question[:90]!r} ~ training {self.training_id}"
        )


def find_leaks(benchmark: list[tuple[str, str]], training: list[tuple[str, str]], names: list[str] = ()) -> list[Leak]:
    """benchmark: (file, question); training: (id, user turn); names: paper titles and short names.
    Returns every offending pair."""
    # Longest first, so a title is removed before a short name inside it.
    names = tuple(sorted({n for n in map(normalize, names) if len(n) >= 3}, key=len, reverse=True))
    exact = {}
    index: dict[str, set[int]] = {}
    for number, (tid, text) in enumerate(training):
        exact.setdefault(normalize(text), tid)
        for shingle in shingles(text, names):
            index.setdefault(shingle, set()).add(number)
    leaks = []
    for source, question in benchmark:
        norm = normalize(question)
        if norm in exact:
            leaks.append(Leak(source, question, exact[norm], "exact"))
            continue
        grams = shingles(question, names)
        if len(grams) < MIN_SHINGLES:
            continue
        hits: dict[int, int] = {}
        for gram in grams:
            for number in index.get(gram, ()):
                hits[number] = hits.get(number, 0) + 1
        best = max(hits.items(), key=lambda kv: kv[1], default=None)
        if best and best[1] / len(grams) >= NEAR_DUPLICATE:
            leaks.append(Leak(source, question, training[best[0]][0], "near"))
    return leaks
