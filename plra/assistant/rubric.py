"""The parts of a reviewer's rubric that need no model (tools/bench_answers.py --rubric): does the plan fit the
kind of question, are the key points there, are the expected papers cited, does the prose read as a template
(stock connector phrases, a sentence said twice), and does each cited paper's entry support its sentence."""

from __future__ import annotations

import difflib
import re
from typing import Any

from plra.assistant.support import NUMBERED, sentences, supported
from plra.knowledge.kb import KnowledgeBase
from plra.prompts import SOURCES_HEADER
from plra.toolchain.scoring import key_point_recall

# The intents that answer each kind of question in the dev set (datasets/<field>/benchmark/answers_dev.jsonl).
PLAN_FITS = {
    "overview": {"overview"},
    "evidence": {"evidence"},
    "recommendation": {"evidence", "recommend"},
    "definition": {"definition", "evidence"},
    "difference": {"evidence", "definition", "compare"},
    "paper": {"paper"},
    "compare": {"compare", "evidence"},
    "list": {"list", "recommend"},
    "newcomer": {"newcomer"},
    "followup": {"paper", "compare", "list", "general", "definition", "evidence"},
    "open_problems": {"open_question"},
    "ideas": {"open_question", "general", "overview"},
    "related_work": {"overview", "general", "list"},
    "recent": {"recent"},
}
STOCK_PHRASES = [
    "here is how", "has been studied from several angles", "have been studied from several angles",
    "work from another angle", "it finds that", "in recent years", "it is worth noting", "plays a crucial role",
    "in conclusion", "from the knowledge base", "近年来", "值得注意的是", "从多个角度", "综上所述", "另一个角度",
    # the connectors that strung one finding per paper (the reviewer's examples, 2026-12-07)
    "both belong to", "also reports that", "in contrast, ", "的研究表明：", "同样指出", "与之不同",
]  # fmt: skip


def stock_phrases(answer: str) -> list[str]:
    lowered = answer.lower()
    return [p for p in STOCK_PHRASES if p in lowered]


def repeated_sentences(answer: str) -> int:
    """Sentences that say again, nearly word for word, what an earlier one said."""
    seen: list[str] = []
    repeats = 0
    for sentence in sentences(_body(answer)):
        plain = NUMBERED.sub("", sentence).strip().lower()
        if len(plain) < 25:
            continue
        if any(difflib.SequenceMatcher(None, plain, other).ratio() > 0.85 for other in seen):
            repeats += 1
        seen.append(plain)
    return repeats


def _body(answer: str) -> str:
    """The answer without its numbered source list (plra.assistant.answer.with_sources puts it last)."""
    headers = "|".join(re.escape(h) for h in SOURCES_HEADER.values())
    return re.split(rf"\n(?:{headers})\n", answer)[0]


def citations_checked(answer: str, cited: list[str], kb: KnowledgeBase) -> tuple[int, int]:
    """(citations, unsupported ones): each [n] of the answer's body, read as the n-th cited paper."""
    total = unsupported = 0
    for sentence in sentences(_body(answer)):
        for number in NUMBERED.findall(sentence):
            index = int(number) - 1
            if 0 <= index < len(cited):
                total += 1
                unsupported += not supported(sentence, kb, cited[index])
    return total, unsupported


def score(row: dict[str, Any], answer: str, intent: str, cited: list[str], kb: KnowledgeBase) -> dict[str, Any]:
    """The judge-free rubric of one answer: each part 0-2 like the reviewer's, with the counts behind it."""
    expected = row.get("expected", [])
    found = [pid for pid in expected if pid in cited]
    citations, unsupported = citations_checked(answer, cited, kb)
    stock = stock_phrases(answer)
    repeats = repeated_sentences(answer)
    recall = key_point_recall(answer, row.get("key_points", []))
    kind_ok = True
    if row.get("expected_kind_of_items") and cited:
        kind_ok = (
            sum(row["expected_kind_of_items"] in kb.papers[p].topics for p in cited if p in kb.papers)
            >= (len(cited) + 1) // 2
        )
    plan_fit = intent in PLAN_FITS.get(row["kind"], set())
    return {
        "id": row["id"],
        "kind": row["kind"],
        "lang": row["lang"],
        "intent": intent,
        "plan_fit": plan_fit,
        "key_point_recall": round(recall, 3),
        "expected_cited": round(len(found) / len(expected), 3) if expected else None,
        "items_of_the_kind_asked": kind_ok,
        "stock_phrases": stock,
        "repeated_sentences": repeats,
        "citations": citations,
        "unsupported_citations": unsupported,
        "template": bool(stock) or repeats > 0,
        "parts": {
            "answers_the_question": 2 if plan_fit and kind_ok else (1 if plan_fit or kind_ok else 0),
            "synthesis": 2 if not stock and not repeats else (1 if len(stock) + repeats <= 1 else 0),
            "citations_support": round(2 * (1 - unsupported / citations), 2) if citations else 0,
            "covers_key_points": round(2 * recall, 2),
        },
    }
