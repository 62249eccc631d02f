"""DPO preference pairs: chosen = grounded and correctly cited; rejected = the mistakes an assistant for
scholars must not make (a fabricated citation, a wrong year or author, a method attributed to the wrong
paper, an unhelpful refusal). Output is the jsonl form XTuner's `load_jsonl_dataset` reads:
{"prompt": [messages], "chosen": [assistant message], "rejected": [assistant message]}.
"""

from __future__ import annotations

import random
from typing import Any

from plra.data.sft import findings_answer, metadata_answer, summary_answer
from plra.data.text import alias
from plra.knowledge.kb import KnowledgeBase
from plra.prompts import QUESTIONS, REFUSAL_UNHELPFUL, SYSTEM
from plra.types import Paper

REJECTIONS = ("fabricated_citation", "wrong_year", "wrong_author", "wrong_attribution", "unhelpful_refusal")


def fabricated_id(rng: random.Random) -> str:
    """An id with month 13: well-formed to a reader, impossible on arXiv, so never someone's real paper."""
    return f"{rng.randint(20, 25)}13.{rng.randint(0, 99999):05d}"


def _pair(pid: str, lang: str, kind: str, question: str, chosen: str, rejected: str, sources: list[str]):
    assert chosen != rejected, (pid, kind)
    return {
        "id": pid,
        "lang": lang,
        "rejection": kind,
        "sources": sources,
        "prompt": [{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": question}],
        "chosen": [{"role": "assistant", "content": chosen}],
        "rejected": [{"role": "assistant", "content": rejected}],
    }


def build(kb: KnowledgeBase, seed: int = 0) -> list[dict[str, Any]]:
    rng = random.Random(seed)
    papers = [kb.papers[k] for k in sorted(kb.papers)]
    pairs: list[dict[str, Any]] = []

    def other_than(paper: Paper) -> Paper:
        while (other := rng.choice(papers)).arxiv_id == paper.arxiv_id or other.authors[0] == paper.authors[0]:
            pass
        return other

    for index, paper in enumerate(papers):
        slots = {"title": paper.title, "alias": alias(paper)}
        for lang in ("en", "zh"):
            question = rng.choice(QUESTIONS["metadata"][lang]).format(**slots)
            chosen = metadata_answer(paper, lang)
            if (index + (lang == "zh")) % 2 == 0:
                wrong = paper.model_copy(update={"year": paper.year + rng.choice((-2, -1, 1, 2))})
                kind = "wrong_year"
            else:
                wrong = paper.model_copy(update={"authors": [other_than(paper).authors[0], *paper.authors[1:]]})
                kind = "wrong_author"
            rejected = metadata_answer(wrong, lang)
            pairs.append(_pair(f"dpo-{len(pairs):05d}", lang, kind, question, chosen, rejected, [paper.arxiv_id]))
        lang = "en" if index % 2 == 0 else "zh"
        question = rng.choice(QUESTIONS["summary"][lang]).format(**slots)
        chosen = summary_answer(paper, lang)
        if index % 4 < 2:
            kind = "fabricated_citation"
            rejected = chosen.replace(paper.arxiv_id, fabricated_id(rng))
        else:
            kind = "wrong_attribution"  # this paper's method told under another paper's name and id
            other = other_than(paper)
            rejected = summary_answer(paper.model_copy(update={"arxiv_id": other.arxiv_id, "title": other.title,
                                                               "year": other.year}), lang)  # fmt: skip
        pairs.append(_pair(f"dpo-{len(pairs):05d}", lang, kind, question, chosen, rejected, [paper.arxiv_id]))
        if index % 3 == 0:
            lang = "zh" if index % 2 else "en"
            question = rng.choice(QUESTIONS["findings"][lang]).format(**slots)
            pairs.append(_pair(f"dpo-{len(pairs):05d}", lang, "unhelpful_refusal", question,
                               findings_answer(paper, lang), REFUSAL_UNHELPFUL[lang], [paper.arxiv_id]))  # fmt: skip
    return pairs


def xtuner_row(pair: dict[str, Any]) -> dict[str, Any]:
    return {key: pair[key] for key in ("prompt", "chosen", "rejected")}
