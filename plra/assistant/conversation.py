"""Conversations: a history of OpenAI messages, and the follow-up rewritten into a standalone question.

"What dataset did they use?" after a turn about LaMP must retrieve LaMP. Before retrieval the question
is rewritten: by the served model when there is one (and its rewrite is kept only if it still names what
the rule would carry), else by a rule that carries the papers and terms of the last turns into the
question when the question points back ("it", "that paper", "它", "这篇") or names nothing itself.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from plra.errors import PlraError
from plra.knowledge.names import NameIndex
from plra.knowledge.retrieval import is_chinese
from plra.prompts import REWRITE_INSTRUCTIONS

ROLES = ("system", "user", "assistant")
TURNS_CARRIED = 2  # user+assistant exchanges whose names a follow-up can point back to
# What a history may hold: the newest messages, each cut to its start. Only the last turns are ever used, and
# a megabyte of history must not cost minutes of name matching.
MAX_HISTORY_MESSAGES = 12
MAX_MESSAGE_CHARS = 4000
MAX_CARRIED = 3  # papers carried from the history: more dilutes retrieval

POINTS_BACK = re.compile(
    r"\b(it|its|it's|they|them|their|theirs|this|that|these|those|the paper|the method|the benchmark|the authors|"
    r"the same|above|former|latter|previous|earlier|one)\b"
    r"|它|它们|其|这篇|那篇|该|这个|那个|上述|上面|前者|后者|他们|作者",
    re.IGNORECASE,
)


@dataclass
class Standalone:
    question: str  # what retrieval and the answer use
    carried: list[str] = field(default_factory=list)  # arXiv ids carried from the history
    terms: list[str] = field(default_factory=list)  # glossary terms carried from the history
    method: str = "none"  # "none", "rule" or "llm"


def load_history(path: Path) -> list[dict[str, str]]:
    """A JSON list of OpenAI messages; errors name the file, the message and the field."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PlraError(f"{path}: cannot read the history ({err.strerror})") from None
    except ValueError as err:
        raise PlraError(f"{path}: not JSON ({err}); give a list of {{'role', 'content'}} messages") from None
    return check_history(data, str(path))


def check_history(data: Any, origin: str = "history") -> list[dict[str, str]]:
    if not isinstance(data, list):
        raise PlraError(f"{origin}: a history is a JSON list of messages, not {type(data).__name__}")
    for i, message in enumerate(data):
        if not isinstance(message, dict):
            raise PlraError(f"{origin}: message {i} is not an object with 'role' and 'content'")
        if message.get("role") not in ROLES:
            raise PlraError(
                f"{origin}: message {i}: 'role' must be one of {', '.join(ROLES)}, not {message.get('role')!r}"
            )
        if not isinstance(message.get("content"), str):
            raise PlraError(f"{origin}: message {i}: 'content' must be a string")
    messages = [{"role": m["role"], "content": m["content"]} for m in data if m["role"] != "system"]
    return [{"role": m["role"], "content": m["content"][:MAX_MESSAGE_CHARS]} for m in messages[-MAX_HISTORY_MESSAGES:]]


def trimmed(history: list[dict[str, str]]) -> int:
    """How many messages check_history drops or cuts (reported as history_trimmed in `plra ask --json`)."""
    kept = [m for m in history if m.get("role") != "system"]
    dropped = max(0, len(kept) - MAX_HISTORY_MESSAGES)
    return dropped + sum(len(str(m.get("content", ""))) > MAX_MESSAGE_CHARS for m in kept[dropped:])


def recent_turns(history: list[dict[str, str]], turns: int = TURNS_CARRIED) -> list[dict[str, str]]:
    users = [i for i, m in enumerate(history) if m["role"] == "user"]
    start = users[-turns] if len(users) >= turns else 0
    return history[start:]


def carried_names(history: list[dict[str, str]], names: NameIndex) -> tuple[list[str], list[str]]:
    """Papers and terms of the last turns, the latest first: what "it" most likely means. A user turn's
    own names come first; an answer counts only for the first paper it names (its sources list and
    related papers are not what "it" points at)."""
    papers: list[str] = []
    terms: list[str] = []
    turns = recent_turns(history)
    for i in range(len(turns) - 1, -1, -1):
        message = turns[i]
        if message["role"] != "user":
            continue
        asked = names.papers(message["content"])
        answer = turns[i + 1]["content"] if i + 1 < len(turns) else ""
        answered = names.papers(answer.split("\n\nSources:")[0].split("\n\n参考文献：")[0])[:1]
        papers += [p for p in (asked or answered) if p not in papers]
        terms += [t.term for t in names.terms_in(message["content"]) if t.term not in terms]
    return papers[:MAX_CARRIED], terms[:1]  # the term the last turn was about comes first in it


def rule_rewrite(question: str, history: list[dict[str, str]], names: NameIndex) -> Standalone:
    """Carry the last turns' names into a follow-up that points back or names no paper of its own."""
    if not history:
        return Standalone(question)
    own_papers = names.papers(question)
    own_terms = names.terms_in(question)
    points_back = bool(POINTS_BACK.search(question))
    short = len(question) <= 20 if is_chinese(question) else len(question.split()) <= 6  # "And the metrics?"
    if not points_back and (own_papers or own_terms or not short):
        return Standalone(question)
    papers, terms = carried_names(history, names)
    papers = [p for p in papers if p not in own_papers]
    terms = [t for t in terms if t not in {x.term for x in own_terms}] if not papers else []
    if not papers and not terms:
        return Standalone(question)
    shown = [f"{names.display_name(p)} [arXiv:{p}]" for p in papers] + terms
    joiner = "（指：{}）" if is_chinese(question) else " (about: {})"
    return Standalone(question + joiner.format(", ".join(shown)), papers, terms, "rule")


def llm_rewrite(question: str, history: list[dict[str, str]], names: NameIndex, llm) -> Standalone:
    """The served model rewrites; a rewrite that drops what the rule carries is not trusted."""
    rule = rule_rewrite(question, history, names)
    if rule.method == "none":
        return rule
    lang = "zh" if is_chinese(question) else "en"
    transcript = "\n".join(f"{m['role']}: {m['content'][:600]}" for m in recent_turns(history))
    prompt = REWRITE_INSTRUCTIONS[lang].format(history=transcript, question=question)
    try:
        text = llm.chat([{"role": "user", "content": prompt}], max_tokens=96, temperature=0.0).strip()
    except PlraError:
        return rule
    text = text.splitlines()[0].strip().strip('"“”') if text else ""
    kept = set(names.papers(text)) | {t.term for t in names.terms_in(text)}
    if not text or len(text) > 400 or not set(rule.carried + rule.terms) <= kept:
        return rule
    return Standalone(text, rule.carried, rule.terms, "llm")


def standalone(question: str, history: list[dict[str, str]], names: NameIndex, llm=None) -> Standalone:
    """The question as retrieval should see it. Only a served model (an OpenAI client) rewrites: the
    in-process tiny model cannot do it reliably, and the rule does it in microseconds."""
    from plra.llm import LLMClient

    if isinstance(llm, LLMClient):
        return llm_rewrite(question, history, names, llm)
    return rule_rewrite(question, history, names)
