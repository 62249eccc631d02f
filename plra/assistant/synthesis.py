"""Finding the field's written synthesis that answers a question: the claim whose question it asks, and the
topic whose overview covers it. Scores are the share of the question's (IDF-weighted) words that a claim or a
topic holds, so a question that merely shares one common word with a claim does not pick it."""

from __future__ import annotations

import math
import re
from collections import Counter

from plra.knowledge.kb import KnowledgeBase
from plra.knowledge.retrieval import tokenize
from plra.types import Claim

CLAIM_MIN_SCORE = 0.45  # below this share of the question's weight, no claim answers it (wrong verdicts cost more)
TOPIC_MIN_SCORE = 0.2
MAJORITY = 3  # of the five best-ranked papers carrying a topic among their first two: the question is on it
QUESTION_WEIGHT = 0.7
WORDS_WEIGHT = 0.6  # of a claim's score; the rest: its papers among the question's best-ranked papers
RANKED_PAPERS = 10
PAPERS_FOR_FULL = 2  # two of a claim's papers ranked for the question is full paper evidence
# Words every question of the field may use: they say nothing about which topic it is on.
GENERIC = (
    "personalization personalized personalizing personalize personalise llm llms large language model models "
    "method methods approach approaches user users main open problem problems based new latest recent work "
    "works paper papers family families pick choose field research would each which what when how best "
    "个性化 大模型 模型 方法 问题 开放 最新 最近 进展 新进展 研究 哪些 什么 "
    "主要 哪 几类 几种 哪几类 哪几种 做法 路线 思路 做 大致 有 怎么 如何 目前 现在 还有 方面 "
    # how a writing request is put ("帮我写一段……的相关工作，带引用"): it names no topic
    "draft write section paragraph related citations cite 帮 写 一段 关于 相关 带 引用 工作 "
    "output outputs individual individuals individually"
)
# A negated phrase names what the asker rules out ("without per-user fine-tuning", "不用给每个用户单独训练"):
# its words must not pick the topic that does exactly that.
NEGATED = re.compile(
    r"\b(?:without|rather than|instead of|other than|not (?:by|through|using|via)|can'?t|cannot)\b[^,.;?!]{0,40}"
    r"|(?:不用|无需|不需要|不靠|而不是|不通过)[^，。；？！,?]{0,20}",
    re.I,
)


def without_negated(question: str) -> str:
    """The question less what it rules out."""
    return NEGATED.sub(" ", question)


class SynthesisIndex:
    def __init__(self, kb: KnowledgeBase) -> None:
        self.kb = kb
        self.claims = kb.claims
        # A claim answers the question it was written for: its question counts most, its text and topics less.
        self.question_tokens = [set(tokenize(f"{c.question_en} {c.question_zh}")) for c in self.claims]
        self.claim_tokens = [
            set(tokenize(" ".join([c.claim_en, *(kb.topics[t].en for t in c.topics if t in kb.topics)])))
            for c in self.claims
        ]
        self.topic_ids = list(kb.topics)
        self.topic_tokens = [set(tokenize(f"{kb.topics[t].en} {kb.topics[t].zh} {t.replace('-', ' ')}"))
                             for t in self.topic_ids]  # fmt: skip
        docs = [q | c for q, c in zip(self.question_tokens, self.claim_tokens, strict=True)] + self.topic_tokens
        counts = Counter(token for doc in docs for token in doc)
        self.idf = {token: math.log(1 + len(docs) / n) for token, n in counts.items()}
        self.unseen = math.log(1 + len(docs))
        self.generic = set(tokenize(GENERIC))

    def _coverage(self, question: list[str], doc: set[str]) -> float:
        weights = {t: self.idf.get(t, self.unseen) for t in set(question)}
        total = sum(weights.values())
        return sum(w for t, w in weights.items() if t in doc) / total if total else 0.0

    def best_claim(
        self, question: str, topic: str | None = None, ranked: list[str] | None = None
    ) -> tuple[Claim | None, float]:
        """The claim that answers the question, with its score; (None, best score) when none reaches the bar.
        Half the score is how much of the question the claim's words hold (numbers do not count: "20 examples"
        asks about few examples, not about 20), half how many of the claim's papers retrieval ranks for it."""
        words = [w for w in tokenize(question) if not w.isdigit()]
        top = set((ranked or [])[:RANKED_PAPERS])
        scored = [
            (WORDS_WEIGHT * (QUESTION_WEIGHT * self._coverage(words, self.question_tokens[i])
                             + (1 - QUESTION_WEIGHT) * self._coverage(words, self.claim_tokens[i]))
             + (1 - WORDS_WEIGHT) * min(1.0, len(top & set(c.papers())) / min(PAPERS_FOR_FULL, len(c.papers())))
             + (0.05 if topic in c.topics else 0.0), i)
            for i, c in enumerate(self.claims)
        ]  # fmt: skip
        if not scored:
            return None, 0.0
        score, index = max(scored)
        return (self.claims[index] if score >= CLAIM_MIN_SCORE else None), score

    def section_fit(self, question: str, text: str) -> float:
        """The share of the question's topic-specific words an overview part holds."""
        words = [w for w in tokenize(question) if w not in self.generic and not w.isdigit()]
        return self._coverage(words, set(tokenize(text))) if words else 0.0

    def topic_share(self, question: str, topic: str) -> float:
        """The share of the question's topic-specific words that name the topic itself: 1.0 for "what is new in
        personalized alignment", less when the question asks about a matter within the topic."""
        words = [w for w in tokenize(question) if w not in self.generic and not w.isdigit()]
        if topic not in self.topic_ids or not words:
            return 0.0
        return self._coverage(words, self.topic_tokens[self.topic_ids.index(topic)])

    def best_topic(self, question: str, ranked: list[str]) -> tuple[str | None, bool]:
        """(topic, sure): the topic the question names; the field as a whole ("survey") when it names nothing
        but the field; else the first topic most of the best-ranked papers share (sure when most of them do)."""
        words = [w for w in tokenize(without_negated(question)) if w not in self.generic and not w.isdigit()]
        if not words and "survey" in self.kb.overviews:
            return "survey", True
        score, index = max((self._coverage(words, doc), -i) for i, doc in enumerate(self.topic_tokens))
        if score >= TOPIC_MIN_SCORE:  # ties go to the topic the taxonomy lists first
            return self.topic_ids[-index], True
        votes = Counter(t for pid in ranked[:5] if pid in self.kb.papers for t in self.kb.papers[pid].topics[:2])
        if not votes:
            return None, False
        topic, count = votes.most_common(1)[0]
        return topic, count >= MAJORITY
