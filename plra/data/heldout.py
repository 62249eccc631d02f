"""The held-out split: papers training never sees, so the field's perplexity can be measured on new text.

One paper in ten (by a hash of its id, so the split is stable as the knowledge base grows) among those
no benchmark question is about: the benchmark keeps testing what was trained, and the held-out texts
test whether the model learned the field's language rather than the documents it read. A held-out
paper's document is written to `heldout.jsonl` in the same form as the pretraining documents; every
training item that carries one of its sentences is left out (the guard compares word 8-grams and, for
Chinese, character 12-grams), so no held-out wording reaches training through a summary, a reading
path or a comparison.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from typing import Any

from plra.knowledge.kb import KnowledgeBase
from plra.types import CJK

SHARE = 10  # one paper in SHARE is held out
WORDS = 8
CHARS = 12


def benchmark_papers(rows: Iterable[dict[str, Any]]) -> set[str]:
    """Papers a benchmark question is about: its `source` ids (MCQ, open QA) or its `answer` (attribution)."""
    ids: set[str] = set()
    for row in rows:
        source = row.get("source") or []
        ids.update([source] if isinstance(source, str) else source)
        if re.fullmatch(r"\d{4}\.\d{4,5}", str(row.get("answer", ""))):
            ids.add(row["answer"])
    return ids


def heldout_ids(knowledge: KnowledgeBase, benchmarked: set[str]) -> set[str]:
    return {pid for pid in knowledge.papers
            if pid not in benchmarked and int(hashlib.sha256(pid.encode()).hexdigest(), 16) % SHARE == 0}  # fmt: skip


def grams(text: str) -> set[str]:
    """Word 8-grams of the Latin text and character 12-grams of the Chinese, case and punctuation ignored."""
    latin = re.findall(r"[a-z0-9]+", CJK.sub(" ", text.lower()))
    found = {" ".join(latin[i : i + WORDS]) for i in range(len(latin) - WORDS + 1)}
    for run in re.findall(r"[\u4e00-\u9fff]+", text):
        found |= {run[i : i + CHARS] for i in range(len(run) - CHARS + 1)}
    return found


def paper_grams(knowledge: KnowledgeBase, ids: set[str]) -> set[str]:
    found: set[str] = set()
    for pid in ids:
        paper = knowledge.papers[pid]
        for text in (paper.summary_en, paper.summary_zh, *paper.key_findings):
            found |= grams(text)
    return found


def item_text(item: dict[str, Any]) -> str:
    if "text" in item:
        return item["text"]
    messages = list(item.get("messages", [])) + list(item.get("prompt", []))
    messages += [m for key in ("chosen", "rejected") for m in item.get(key, []) if isinstance(m, dict)]
    return "\n".join(str(m.get("content", "")) for m in messages)


def keep_out(items: list[dict[str, Any]], heldout: set[str], forbidden: set[str]) -> tuple[list[dict[str, Any]], int]:
    """The items that neither name a held-out paper as a source nor carry a held-out sentence; and how many went."""
    kept = [item for item in items
            if not heldout & set(item.get("sources", [])) and not forbidden & grams(item_text(item))]  # fmt: skip
    return kept, len(items) - len(kept)
