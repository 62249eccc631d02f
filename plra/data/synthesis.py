"""Training data from the field's written synthesis (overviews and claims): survey-style documents for
pretraining, questions and answers in both languages for SFT, and DPO pairs whose rejected answer contradicts
a claim's evidence."""

from __future__ import annotations

import random
from typing import Any

from plra.data.sft import conversation
from plra.knowledge.kb import KnowledgeBase
from plra.prompts import CLAIM_CONDITIONS, QUESTIONS, SYSTEM
from plra.types import OVERVIEW_SECTIONS, Claim, cited_ids

LANGS = ("en", "zh")
SECTION_TITLES = {
    "families": ("Families of approaches", "主要方法路线"),
    "choosing": ("Choosing an approach", "如何选择"),
    "evidence": ("What the evidence says", "实证结论"),
    "benchmarks": ("Benchmarks", "评测基准"),
    "open_problems": ("Open problems", "开放问题"),
}


def topic_name(kb: KnowledgeBase, topic_id: str, lang: str) -> str:
    """The topic as a question names it: its label, lower-case in English."""
    label = kb.topic_label(topic_id, lang)
    return label if lang == "zh" else label.lower()


def overview_document(kb: KnowledgeBase, topic_id: str, lang: str) -> str:
    """The overview as one survey section: a title, then each part under its heading."""
    overview = kb.overviews[topic_id]
    title = kb.topics[topic_id].zh if lang == "zh" else kb.topics[topic_id].en
    parts = [f"# {title}"]
    for section in overview.sections:
        heading = SECTION_TITLES[section.kind][lang == "zh"]
        parts += [f"## {heading}", getattr(section, lang)]
    return "\n\n".join(parts)


def claim_answer(claim: Claim, lang: str) -> str:
    verdict = claim.claim_zh if lang == "zh" else claim.claim_en
    conditions = claim.conditions_zh if lang == "zh" else claim.conditions_en
    return f"{verdict}\n\n{CLAIM_CONDITIONS[lang]}{conditions}"


def claim_document(claim: Claim, lang: str) -> str:
    question = claim.question_zh if lang == "zh" else claim.question_en
    return f"{question}\n{claim_answer(claim, lang)}"


def pretrain_documents(kb: KnowledgeBase) -> list[dict[str, str]]:
    docs = [{"text": overview_document(kb, t, lang)} for t in sorted(kb.overviews) for lang in LANGS]
    docs += [{"text": claim_document(c, lang)} for c in kb.claims for lang in LANGS]
    return docs


def sft_conversations(kb: KnowledgeBase, seed: int = 0) -> list[dict[str, Any]]:
    """One question per overview section and per claim, in both languages, answered from the synthesis."""
    rng = random.Random(seed)
    out: list[dict[str, Any]] = []
    for topic_id in sorted(kb.overviews):
        overview = kb.overviews[topic_id]
        for kind in OVERVIEW_SECTIONS:
            section = overview.section(kind)
            if section is None:
                continue
            for lang in LANGS:
                question = rng.choice(QUESTIONS[kind][lang]).format(topic=topic_name(kb, topic_id, lang))
                answer = getattr(section, lang)
                out.append(conversation(f"syn-{kind}-{topic_id}-{lang}", lang, "overview", [(question, answer)],
                                        cited_ids(answer)))  # fmt: skip
    for claim in kb.claims:
        for lang in LANGS:
            question = claim.question_zh if lang == "zh" else claim.question_en
            out.append(conversation(f"syn-claim-{claim.id}-{lang}", lang, "claim",
                                    [(question, claim_answer(claim, lang))], claim.papers()))  # fmt: skip
    return out


def dpo_pairs(kb: KnowledgeBase) -> list[dict[str, Any]]:
    """Chosen: the claim with its evidence and conditions; rejected: the confident answer the evidence contradicts
    (claims that carry one)."""
    pairs = []
    for claim in kb.claims:
        for lang in LANGS:
            contrary = claim.contrary_zh if lang == "zh" else claim.contrary_en
            if not contrary:
                continue
            question = claim.question_zh if lang == "zh" else claim.question_en
            pairs.append({
                "id": f"dpo-claim-{claim.id}-{lang}",
                "lang": lang,
                "rejection": "contradicts_claim",
                "sources": claim.papers(),
                "prompt": [{"role": "system", "content": SYSTEM[lang]}, {"role": "user", "content": question}],
                "chosen": [{"role": "assistant", "content": claim_answer(claim, lang)}],
                "rejected": [{"role": "assistant", "content": contrary}],
            })  # fmt: skip
    return pairs
