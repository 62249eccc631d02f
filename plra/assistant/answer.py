"""`plra ask`: retrieve from the knowledge base, prompt, generate, then check every citation.

- Refusal: a question is outside the field when its best BM25 match is weak, few of its words occur in
  the knowledge base, and it names no glossary term; both thresholds are fitted per language on the
  shipped in-field / out-of-field question sets (`plra ask --calibrate`).
- Citations: the model cites `[arXiv:ID]`; an id that is neither a knowledge-base paper nor an arXiv
  result retrieved in this turn, or that comes with a title that is not the paper's, is removed from the
  answer and reported in `citation_errors`. The answer then shows numbered citations [1], [2], ...
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import typer

from plra.assistant import compose, intents, support
from plra.assistant.compose import Plan
from plra.assistant.conversation import check_history, load_history, recent_turns, standalone, trimmed
from plra.assistant.synthesis import SynthesisIndex
from plra.errors import PlraError
from plra.io import read_jsonl, write_json_atomic
from plra.knowledge import kb as kb_module
from plra.knowledge.names import NameIndex
from plra.knowledge.retrieval import SearchIndex, is_chinese, open_index, tokenize
from plra.prompts import (
    ANSWER_INSTRUCTIONS,
    COMPOSE,
    CONTEXT_HEADER,
    NOT_REVIEWED,
    PLAN_NOTES_HEADER,
    REFUSAL,
    SCOPE,
    SOURCES_HEADER,
    SYSTEM,
)
from plra.settings import KnowledgeSettings, load_knowledge
from plra.types import GlossaryTerm, arxiv_url, cited_ids

CITED = re.compile(r"(?:\"([^\"]{8,200})\"\s*)?\[?arXiv:\s*(\d{4}\.\d{4,5}|[a-z\-]+(?:\.[A-Z]{2})?/\d{7})(?:v\d+)?\]?")
STOP_STRINGS = ["<|im_end|>", "\nuser\n", "\nUser:", "\nQuestion:", "\n问题："]
DEFAULT_THRESHOLD = (4.0, 0.75)  # used until `plra ask --calibrate` has written refusal.json


@dataclass
class Citation:
    arxiv_id: str
    title: str
    year: int
    url: str
    reviewed: bool = True  # False for a paper nobody has curated yet: one in incoming/, or an arXiv result


COMPOSED = "composed from the knowledge base"
MAX_QUESTION_CHARS = 4000
RECENT_POOL = 20  # papers retrieval finds for a recent-work question, of which the newest are shown
WHOLE_TOPIC = 0.8  # share of a recent-work question's own words that name its topic: it asks about the whole topic
ASKED_EXTRA = 0.34  # share of a definition question's phrase a glossary term may lack and still be what is asked
GOAL_WORDS = 3  # words of a benchmark question a benchmark sentence holds: it speaks of the asker's own goal
SECTION_MIN_FIT = 0.35  # share of a question's words an overview part must hold to answer it


@dataclass
class AskResult:
    answer: str
    citations: list[Citation] = field(default_factory=list)
    refused: bool = False
    citation_errors: list[dict[str, str]] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    passages: list[Citation] = field(default_factory=list)  # what retrieval put in the prompt (for UIs)
    query: str = ""  # the standalone question retrieval saw (a follow-up rewritten with its history)
    rewrite: str = "none"  # how it was rewritten: "none", "rule" or "llm"
    intent: str = "general"  # the answer plan used (plra.assistant.intents)
    fallback: str | None = None  # why a model's answer gave way to the composer's
    writer: str = COMPOSED  # who wrote the answer: the composer, or the model's name
    history_trimmed: int = 0  # history messages dropped (the oldest) or cut to their start

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        del data["passages"]
        return data


# ------------------------------------------------------------------------------------------ refusal


def glossary_names(knowledge: kb_module.KnowledgeBase) -> list[str]:
    names = {n.lower() for t in knowledge.glossary for n in (t.term, *t.aliases) if len(n) >= 3}
    return sorted(names, key=len, reverse=True)


Signal = tuple[float, float, bool]  # best BM25 score, share of words the knowledge base knows, names a term


def field_signal(question: str, index: SearchIndex, names: list[str]) -> Signal:
    """Measured against the curated papers only: an uncurated paper in incoming/ (a bread-baking paper a broad
    arXiv query brought back) must never make a question about its subject look like the field's."""
    index = index.curated_only()
    tokens = tokenize(question)
    scores = index.bm25_scores(tokens)
    coverage = sum(t in index.vocab for t in tokens) / len(tokens) if tokens else 0.0
    lowered = question.lower()
    named = any(re.search(rf"(?<![a-z]){re.escape(n)}(?![a-z])", lowered) for n in names)
    return (float(scores.max()) if len(scores) else 0.0), coverage, named


def refusal_path(settings: KnowledgeSettings) -> Path:
    return settings.field_dir / "benchmark" / "refusal.json"


def thresholds(settings: KnowledgeSettings) -> dict[str, tuple[float, float]]:
    """(score, coverage) thresholds per language, as `--calibrate` fitted them."""
    try:
        fitted = json.loads(refusal_path(settings).read_text())["threshold"]
        return {lang: (float(v["score"]), float(v["coverage"])) for lang, v in fitted.items()}
    except (OSError, ValueError, KeyError, TypeError):
        return {"en": DEFAULT_THRESHOLD, "zh": DEFAULT_THRESHOLD}


def _scores(decisions: list[bool], out_of_field: list[bool]) -> dict[str, float]:
    """Precision, recall and F1 of refusing, where refusing an out-of-field question is the positive."""
    tp = sum(d and o for d, o in zip(decisions, out_of_field, strict=True))
    fp = sum(d and not o for d, o in zip(decisions, out_of_field, strict=True))
    fn = sum(o and not d for d, o in zip(decisions, out_of_field, strict=True))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": round(precision, 4), "recall": round(recall, 4), "f1": round(f1, 4)}


def _refuse(signal: Signal, t: tuple[float, float]) -> bool:
    score, coverage, named = signal
    return score < t[0] and coverage < t[1] and not named


Feature = tuple[Signal, bool | None]  # the BM25 signal, and the scope rules' verdict (None: no verdict)


def _decide(feature: Feature, t: tuple[float, float]) -> bool:
    """Refuse? The scope rules decide where they speak; the fitted threshold decides the rest."""
    signal, override = feature
    return (not override) if override is not None else _refuse(signal, t)


def _fit(features: list[Feature], out_of_field: list[bool]) -> tuple[float, float]:
    """The (score, coverage) pair with the best F1; ties go to the lowest thresholds (refuse less)."""
    signals = [f[0] for f in features]
    scores = [*sorted({s[0] for s in signals}), max((s[0] for s in signals), default=0) + 1]
    coverages = [*sorted({s[1] for s in signals}), 1.01]
    pairs = [(a, b) for a in scores for b in coverages]
    return max(pairs, key=lambda t: (_scores([_decide(f, t) for f in features], out_of_field)["f1"], -t[0], -t[1]))


def by_kind(kinds: list[str], decisions: list[bool], labels: list[bool]) -> dict[str, dict[str, Any]]:
    """Per kind of question: how many were refused; for out-of-field kinds also precision, recall and F1 of
    refusing them against every in-field question (can the rule tell this kind from the field?)."""
    report: dict[str, dict[str, Any]] = {}
    in_field = [i for i, label in enumerate(labels) if not label]
    for kind in dict.fromkeys(kinds):
        members = [i for i, k in enumerate(kinds) if k == kind]
        refused = sum(decisions[i] for i in members)
        entry: dict[str, Any] = {"n": len(members), "refused": refused, "out_of_field": labels[members[0]]}
        if labels[members[0]]:
            pool = members + in_field
            entry |= _scores([decisions[i] for i in pool], [labels[i] for i in pool])
        report[kind] = entry
    return report


def calibrate(settings: KnowledgeSettings, rules: bool = True, write: bool = True) -> dict[str, Any]:
    """Fit one threshold per language on the shipped sets; report 2-fold cross-validated and in-sample
    precision, recall and F1 of refusing (all languages pooled), and the held-out figures by kind.
    rules=False: the BM25 threshold alone, without the scope rules (what a benchmark compares against)."""
    folder = settings.field_dir / "benchmark"
    rows = [(r["question"], r["lang"], False, r.get("kind", "topical")) for r in read_jsonl(folder / "in_field.jsonl")]
    rows += [
        (r["question"], r["lang"], True, r.get("kind", "off_topic")) for r in read_jsonl(folder / "out_of_field.jsonl")
    ]
    assistant = Assistant(settings)
    features = [(field_signal(q, assistant.index, assistant.names), assistant.override(q) if rules else None)
                for q, *_ in rows]  # fmt: skip
    labels = [row[2] for row in rows]
    fitted: dict[str, tuple[float, float]] = {}
    held_out: dict[int, bool] = {}
    for lang in sorted({row[1] for row in rows}):
        members = [i for i, row in enumerate(rows) if row[1] == lang]
        folds = [members[0::2], members[1::2]]
        for test, train in (folds, folds[::-1]):
            t = _fit([features[i] for i in train], [labels[i] for i in train])
            held_out |= {i: _decide(features[i], t) for i in test}
        fitted[lang] = _fit([features[i] for i in members], [labels[i] for i in members])
    in_sample = [_decide(features[i], fitted[rows[i][1]]) for i in range(len(rows))]
    cross = [held_out[i] for i in range(len(rows))]
    report = {
        "threshold": {lang: {"score": t[0], "coverage": t[1]} for lang, t in fitted.items()},
        "questions": {"in_field": labels.count(False), "out_of_field": labels.count(True)},
        "cross_validated": _scores(cross, labels),
        "in_sample": _scores(in_sample, labels),
        "by_kind": by_kind([row[3] for row in rows], cross, labels),
        "wrong": [rows[i][0] for i in range(len(rows)) if in_sample[i] != labels[i]],
    }
    if write:
        write_json_atomic(refusal_path(settings), report)
    return report


# ------------------------------------------------------------------------------------------ citations


def tidy_spacing(text: str) -> str:
    """Close the gaps a removed citation leaves: double spaces, and spaces before punctuation."""
    return re.sub(r"[ \t]+([,.;:。，；])", r"\1", re.sub(r"[ \t]{2,}", " ", text)).strip()


def check_citations(answer: str, knowledge: kb_module.KnowledgeBase, extra: dict[str, tuple[str, int]]):
    """Replace valid [arXiv:ID] citations with [n]; drop invalid ones. Returns (text, citations, errors)."""
    known = {pid: (p.title, p.year) for pid, p in {**knowledge.incoming, **knowledge.papers}.items()} | extra
    reviewed = set(knowledge.papers)  # incoming papers and this turn's arXiv results are nobody's reading yet
    order: list[str] = []
    errors: list[dict[str, str]] = []

    def replace(match: re.Match) -> str:
        title, pid = match.group(1), match.group(2)
        if pid not in known:
            errors.append({"cited": pid, "reason": "not a knowledge-base paper nor retrieved in this turn"})
            return f'"{title}" ' if title else ""
        if title and difflib.SequenceMatcher(None, title.lower(), known[pid][0].lower()).ratio() < 0.6:
            errors.append({"cited": pid, "reason": f"title {title!r} is not the paper's ({known[pid][0]!r})"})
            return ""
        if pid not in order:
            order.append(pid)
        prefix = f'"{title}" ' if title else ""
        return f"{prefix}[{order.index(pid) + 1}]"

    text = tidy_spacing(CITED.sub(replace, answer))
    citations = [Citation(pid, known[pid][0], known[pid][1], arxiv_url(pid), pid in reviewed) for pid in order]
    return text, citations, errors


def review_note(citation: Citation, lang: str) -> str:
    """' [not yet reviewed]' after a source nobody has curated, so a reader weighs it accordingly; else ''."""
    return "" if citation.reviewed else f" [{NOT_REVIEWED[lang]}]"


def with_sources(text: str, citations: list[Citation], lang: str) -> str:
    if not citations:
        return text
    lines = [
        f"[{i}] {c.title} ({c.year}), arXiv:{c.arxiv_id}{review_note(c, lang)}" for i, c in enumerate(citations, 1)
    ]
    return f"{text}\n\n{SOURCES_HEADER[lang]}\n" + "\n".join(lines)


# ------------------------------------------------------------------------------------------ generation


def build_messages(
    question: str, hits, knowledge: kb_module.KnowledgeBase, lang: str, instructions: str | None = None
) -> list[dict[str, str]]:
    passages = []
    for hit in hits:
        paper = knowledge.get(hit.arxiv_id)
        summary = getattr(paper, "summary_zh" if lang == "zh" else "summary_en", "") or hit.snippet
        passages.append(f"[arXiv:{hit.arxiv_id}] {hit.title} ({hit.year}): {summary}")
    context = CONTEXT_HEADER[lang] + "\n" + "\n\n".join(passages)
    return [
        {"role": "system", "content": SYSTEM[lang]},
        {"role": "user", "content": f"{context}\n\n{instructions or ANSWER_INSTRUCTIONS[lang]}\n\n{question}"},
    ]


class LocalModel:
    """The embedded or tuned tiny model, in-process, for when no endpoint is configured."""

    def __init__(self, model_dir: Path, max_tokens: int = 256) -> None:
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
        self.max_tokens = max_tokens
        self.name = f"{Path(model_dir).name} (in-process)"

    def _generate_kwargs(self, messages: list[dict[str, str]], max_tokens: int | None) -> dict[str, Any]:
        """Greedy decoding of the chat-templated messages; the same for chat() and stream()."""
        inputs = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt",
                                                    return_dict=True)  # fmt: skip
        # A 135M model loops without a penalty; no 4-gram may repeat, and a new chat turn ends the answer.
        return dict(**inputs, max_new_tokens=max_tokens or self.max_tokens, do_sample=False, repetition_penalty=1.2,
                    no_repeat_ngram_size=4, stop_strings=STOP_STRINGS, tokenizer=self.tokenizer)  # fmt: skip

    def chat(self, messages: list[dict[str, str]], max_tokens: int | None = None, **_gen: Any) -> str:
        kwargs = self._generate_kwargs(messages, max_tokens)
        with self.torch.no_grad():
            output = self.model.generate(**kwargs)
        return self.tokenizer.decode(output[0, kwargs["input_ids"].shape[1] :], skip_special_tokens=True).strip()

    def stream(self, messages: list[dict[str, str]], max_tokens: int | None = None, **_gen: Any) -> Iterator[str]:
        """Pieces of the answer as generate() produces them (a TextIteratorStreamer fed from a thread)."""
        import threading

        from transformers import TextIteratorStreamer

        streamer = TextIteratorStreamer(self.tokenizer, skip_prompt=True, skip_special_tokens=True)
        kwargs = self._generate_kwargs(messages, max_tokens) | {"streamer": streamer}
        thread = threading.Thread(target=self.model.generate, kwargs=kwargs, daemon=True)
        thread.start()
        yield from (piece for piece in streamer if piece)
        thread.join()


def local_model_dir() -> Path:
    from plra.paths import REPO_ROOT
    from plra.settings import load_profile
    from plra.toolchain.model import resolve_model_dir

    tuned = REPO_ROOT / "work_dirs" / "tiny" / "sft" / "latest" / "merged"
    return tuned if (tuned / "config.json").exists() else resolve_model_dir(load_profile("tiny"))


# The in-process tiny model is opt-in: on a CPU it writes for minutes, and its answer is set aside more often than
# not (it cites nothing), while the composer answers at once from the same plan.
LOCAL_OPTION = typer.Option(
    False, "--local", help="with no endpoint, let the in-process tiny model write (minutes on a CPU)"
)


def model_for(endpoint: str | None, local: bool = False):
    """The model commands use: the given endpoint, else PLRA_ENDPOINT or a running `plra serve`, else the tiny
    model in-process when asked for (`--local`), else None: the answer is composed from the knowledge base."""
    from plra.llm import LLMClient, LLMSettings, default_endpoint
    from plra.settings import load_profile

    url = endpoint or default_endpoint()
    if not url:
        return LocalModel(local_model_dir()) if local else None
    # The profile's waits (client_timeout_s, client_seconds_per_token: a CPU server is slower), not its token
    # budget, which is sized for the tiny model.
    return LLMClient.for_profile(url, load_profile(), max_tokens=LLMSettings.max_tokens)


def covers_asked(question: str, term: GlossaryTerm) -> bool:
    """Does the glossary term name what a definition question asks about? False when the asked phrase holds
    words the term's names lack ("persona drift" against "persona"); True when the question is not of that form."""
    asked = intents.asked_phrase(question)
    if not asked:
        return True
    wanted = set(tokenize(asked))
    named = set(tokenize(" ".join([term.term, *term.aliases, *term.names_zh])))
    extra = wanted - named
    return not wanted or len(extra) / len(wanted) <= ASKED_EXTRA


class Assistant:
    """Everything `plra ask`, the agent and the app share: the knowledge base, the index, the names, the
    refusal rule, the answer plans."""

    def __init__(self, settings: KnowledgeSettings | None = None) -> None:
        self.settings = settings or load_knowledge()
        self.knowledge = kb_module.load(self.settings)
        self.index = open_index(self.settings, self.knowledge)
        self.names = glossary_names(self.knowledge)
        self.name_index = NameIndex(self.knowledge)
        self.synthesis = SynthesisIndex(self.knowledge)
        self.field_words = kb_module.field_words(self.settings)
        self.thresholds = thresholds(self.settings)

    def override(self, question: str) -> bool | None:
        """The scope rules (plra.assistant.intents) that come before the fitted threshold."""
        lowered = question.lower()
        field_word = any(w in lowered for w in self.field_words) or bool(self.name_index.terms_in(question))
        return intents.scope_override(question, len(self.name_index.papers(question)), field_word)

    def in_field(self, question: str) -> bool:
        lang = "zh" if is_chinese(question) else "en"
        return not _decide((field_signal(question, self.index, self.names), self.override(question)),
                           self.thresholds[lang])  # fmt: skip

    def plan(self, question: str, query: str, lang: str, k: int) -> Plan:
        """The answer plan: intent, then the papers it needs (named papers first, always)."""
        named = self.name_index.papers(query)
        terms = self.name_index.terms_in(query)
        kind = intents.intent(question, len(named), len(terms))
        from_papers = False  # the papers answer, not an overview part that shares a word
        phrase = None  # a definition asked of a phrase the glossary lacks: the papers that use it define it
        if kind in ("definition", "general") and terms and not covers_asked(question, terms[0]):
            # "What is persona drift?" names the glossary's "persona" but asks about more than it: the
            # neighbouring term's definition would answer another question; the papers on the phrase answer it.
            terms, from_papers = [], True
            phrase = intents.asked_phrase(question) if kind == "definition" else None
            kind = "general"
        if kind == "definition" and not terms:
            kind = "general"
        term = terms[0] if terms else None
        path = compose.pick_path(self.knowledge.paths, question, lang) if kind == "newcomer" else None
        # A list names up to compose.LIST_SHOWN papers of the asked kind, after filtering: it needs a wider pool.
        pool = k + len(named) + (2 * compose.LIST_SHOWN if kind == "list" else 0)
        ranked = [h.arxiv_id for h in self.index.search(query, k=pool)]
        if kind == "paper" and intents.OTHER_WORK.search(question):
            # "Has anyone improved on its retrieval scoring?": the paper under discussion is context; the answer is
            # the other work, so the papers are the ones retrieval finds for the question, that paper left out.
            kind, from_papers = "general", True
            papers = [p for p in ranked if p not in named][:k]
        elif kind == "newcomer" and path:
            papers = [s.arxiv_id for s in path.steps]
        elif term and not named:
            # "Which papers study that?" (a list): the glossary's papers for the term first. Any other question
            # keeps its best hit first: one that describes a paper's content while naming a term means that paper.
            lead = [] if kind == "list" else ranked[:1]
            papers = list(dict.fromkeys([*lead, *term.papers, *ranked]))[: pool if kind == "list" else k]
        else:
            papers = list(dict.fromkeys([*named, *ranked]))[: pool if kind == "list" else max(k, len(named))]
        papers = [p for p in papers if self.knowledge.get(p)]
        if phrase and (using := [p for p in papers if p in self.knowledge.papers
                                 and compose.phrase_sentence(self.knowledge.papers[p], phrase, lang)]):  # fmt: skip
            kind, papers = "definition", list(dict.fromkeys([*using, *papers]))
        plan = Plan(kind, lang, papers, named, term, path)
        plan.phrase = phrase if kind == "definition" else None
        # "用户画像和用户记忆在个性化大模型中有什么区别": the field's own name is where the two differ, not one of them.
        contrasted = [t for t in terms[1:] if not self._names_the_field(t)]
        if terms and not contrasted and intents.DIFFERENCE.search(question):
            contrasted = self._head_noun_terms(query, terms[0])
        if contrasted and intents.DIFFERENCE.search(question):
            plan.other_term = contrasted[0]
        if kind == "paper" and intents.synthesis_intent(question) in ("evidence", "recommend"):
            # "Is there solid evidence that steering reliably personalizes style? StyleVector looks nice", "Need a
            # benchmark for long-form generation, not LaMP": the named paper is an example or a foil; a claim or
            # the overview's advice answers, when one fits.
            weighed = dataclasses.replace(plan)
            self._plan_from_synthesis(weighed, question, query, ranked)
            plan = weighed if weighed.claim or weighed.sections else plan
        elif kind not in ("newcomer", "paper") and not from_papers and not (kind == "compare" and len(named) >= 2):
            self._plan_from_synthesis(plan, question, query, ranked)
        if plan.other_term is not None and plan.claim is None and not plan.sections:
            plan.intent = "definition"  # no claim states the difference: the two glossary entries do
        return plan

    def _head_noun_terms(self, question: str, first: GlossaryTerm) -> list[GlossaryTerm]:
        """Glossary terms whose head noun the question uses on its own ("user memory" -> "Long-term memory"): the
        second side of a difference asked in words the glossary does not list verbatim; the first listed wins."""
        words = set(tokenize(question)) - set(tokenize(first.term)) - self.synthesis.generic
        return [t for t in self.knowledge.glossary
                if t is not first and tokenize(t.term)[-1:] and tokenize(t.term)[-1] in words
                and not self._names_the_field(t)]  # fmt: skip

    def _benchmarks_for(self, question: str, lang: str, guess: str | None) -> tuple[str | None, int]:
        """The topic whose overview's benchmarks part has the sentence holding most of the question's own words
        (two at least; the guessed topic wins ties), and how many it holds; (None, 0) when none does."""
        wanted = {w for w in tokenize(question) if w not in self.synthesis.generic and not w.isdigit()}
        wanted -= set(tokenize("benchmark benchmarks dataset datasets evaluate evaluation test use should 基准 评测"))
        best: tuple[int, bool, str] | None = None
        for topic, overview in self.knowledge.overviews.items():
            part = overview.section("benchmarks")
            if part is None:
                continue
            held = max((len(wanted & set(tokenize(line))) for line in compose.sentences_of(getattr(part, lang), lang)),
                       default=0)  # fmt: skip
            if held >= 2 and (best is None or (held, topic == guess) > best[:2]):
                best = (held, topic == guess, topic)
        return (best[2], best[0]) if best else (None, 0)

    def _stated_difference(self, question: str, lang: str) -> tuple[str, str, str] | None:
        """(topic, part, sentence): the overview sentence that holds all the words a difference question contrasts
        (at least two), or None."""
        wanted = {w for w in tokenize(question) if w not in self.synthesis.generic and not w.isdigit()}
        wanted -= set(tokenize("differ difference differences split distinction between versus vs what 区别 差异 不同"))
        if len(wanted) < 2:
            return None
        best: tuple[int, str, str, str] | None = None
        for topic, overview in self.knowledge.overviews.items():
            for part in overview.sections:
                for line in compose.sentences_of(getattr(part, lang), lang):
                    held = len(wanted & set(tokenize(line)))
                    if held == len(wanted) and (best is None or held > best[0]):
                        best = (held, topic, part.kind, line)
        return best[1:] if best else None

    def _names_the_field(self, term: GlossaryTerm) -> bool:
        """Is the term the field itself ("personalized large language model"): every word of it generic?"""
        words = set(tokenize(term.term))
        return bool(words) and words <= self.synthesis.generic

    def _plan_from_overview(self, plan: Plan, question: str, query: str, topic: str | None, overview) -> None:
        """A general or list question that one part of its topic's overview answers gets that part, written as a
        survey would, rather than one finding per paper; a benchmark list gets the benchmarks part."""
        if overview is None:
            return
        if plan.intent == "list":  # a list asks for papers; only a list of benchmarks has a part of its own
            if not intents.BENCHMARK_WORDS.search(question) or re.search(r"\bpapers?\b|论文", question, re.I):
                return
            best, fit = overview.section("benchmarks"), 1.0
        else:
            scored = [(self.synthesis.section_fit(query, getattr(s, plan.lang)), s) for s in overview.sections]
            fit, best = max(scored, key=lambda pair: pair[0])
        if best is None or fit < SECTION_MIN_FIT:
            return
        plan.intent = "overview"
        self._answer_from_sections(plan, topic, overview, (best.kind,))

    def _plan_from_synthesis(self, plan: Plan, question: str, query: str, ranked: list[str]) -> None:
        """Questions the field's synthesis answers: a claim for evidence and recommendations, the topic's overview
        for approaches, choices, benchmarks and open problems, the newest papers for recent work."""
        wanted = intents.synthesis_intent(question)
        if wanted is None and plan.intent not in ("open_question", "general", "list"):
            return
        topic, named = self.synthesis.best_topic(query, ranked)
        if plan.named and plan.intent == "open_question":
            # "Build on StyleVector: what directions?": the named paper's topic, whose open problems are the ideas.
            paper = self.knowledge.papers.get(plan.named[0])
            own = [t for t in (paper.topics if paper else []) if t in self.knowledge.overviews]
            topic, named = (own[0], True) if own else (topic, named)
        overview = self.knowledge.overviews.get(topic or "") if named else None  # a guessed topic answers no overview
        if wanted is None and plan.intent in ("general", "list"):
            self._plan_from_overview(plan, question, query, topic, overview)
            return
        if wanted == "recent":
            # The newest of the papers that retrieval finds for the question: a topic's whole list would bring in
            # its newest papers on other matters.
            candidates = [
                h.arxiv_id for h in self.index.search(query, k=RECENT_POOL) if h.arxiv_id in self.knowledge.papers
            ]
            papers = self.knowledge.papers
            if named and topic and self.synthesis.topic_share(query, topic) >= WHOLE_TOPIC:
                # The question names nothing but the topic: its own papers (the topic among a paper's first two),
                # whatever retrieval ranks; a short question's words rank its newest papers poorly.
                candidates = sorted((pid for pid, p in papers.items() if topic in p.topics[:2]), reverse=True)
            elif named and topic:  # the asked topic only: a neighbouring topic's new papers do not answer it
                candidates = [pid for pid in candidates if topic in papers[pid].topics] or candidates
            if plan.term is not None:  # a named term narrows further, to the papers that speak of it
                on_term = [pid for pid in candidates if compose.mentions(self.knowledge.papers[pid], plan.term)]
                candidates = on_term or candidates
            newest = sorted(candidates, key=lambda pid: -self.knowledge.papers[pid].year)  # stable: rank breaks ties
            if year := intents.asked_year(question):  # "2026 年的新进展": another year's paper does not answer
                plan.year, newest = year, [pid for pid in newest if self.knowledge.papers[pid].year == year]
            plan.intent, plan.topic, plan.papers = "recent", topic if named else None, newest[: 8 if year else 6]
            return
        # "Which benchmark should I use?": a claim's verdict about what benchmarks show is no choice; an overview's
        # benchmarks part is, the one that fits the stated goal first (compose_recommend). The part comes from the
        # overview with a benchmark sentence on the goal ("remembers facts across sessions": memory's), wherever
        # the question's topic guess points; with none, a claim answers as before.
        if wanted == "recommend" and intents.BENCHMARK_WORDS.search(question):
            claim, _ = self.synthesis.best_claim(query, topic, ranked)
            fitting, held = self._benchmarks_for(question, plan.lang, topic)
            # A claim written to answer "which benchmark should be used for X" is itself the recommendation, unless
            # a benchmark sentence holds the question's particular goal ("whole emails, reviews, long answers").
            recommends = claim is not None and bool(intents.RECOMMEND.search(claim.question_en))
            if recommends and claim is not None and held < GOAL_WORDS:
                plan.intent, plan.claim, plan.topic = "evidence", claim, topic
                plan.papers = [p for p in dict.fromkeys([*claim.papers(), *ranked[:1]]) if p in self.knowledge.papers]
                return
            if fitting is None and overview is not None and overview.section("benchmarks") is not None:
                fitting = topic  # no sentence on the goal: the asked topic's benchmarks, as they are
            if fitting is not None:
                plan.intent = "recommend"
                self._answer_from_sections(plan, fitting, self.knowledge.overviews[fitting], ("benchmarks",))
                return
        # "What method should I use?" with no alternatives named: the overview's advice by situation answers,
        # the situation the question states first; a claim's verdict answers "A or B?".
        choosing = overview.section("choosing") if overview is not None else None
        if (wanted == "recommend" and choosing is not None and not intents.ALTERNATIVES.search(question)
                and not intents.BENCHMARK_WORDS.search(question)):  # fmt: skip
            plan.intent = "recommend"
            self._answer_from_sections(plan, topic, overview, ("choosing",))
            return
        if wanted in ("evidence", "recommend", "difference"):
            claim, _ = self.synthesis.best_claim(query, topic, ranked)
            if claim is not None:
                plan.intent, plan.claim, plan.topic = "evidence", claim, topic
                plan.papers = [p for p in dict.fromkeys([*claim.papers(), *ranked[:1]]) if p in self.knowledge.papers]
                return
        if wanted == "difference" and plan.other_term is None and (stated := self._stated_difference(query, plan.lang)):
            # "discriminative vs generative LLM recommenders": no claim or glossary pair, but an overview sentence
            # states the split; it opens the answer, the part of the overview it comes from after it.
            plan.intent, plan.lead = "overview", stated[2]
            self._answer_from_sections(plan, stated[0], self.knowledge.overviews[stated[0]], (stated[1],))
            return
        if overview is None:
            return
        if wanted == "difference":  # no claim states it: the glossary may (plan), else the plan intent() chose
            return
        if plan.intent == "open_question":
            sections = ("open_problems",)
        elif wanted == "recommend":
            sections = ("benchmarks",) if intents.BENCHMARK_WORDS.search(question) else ("choosing",)
        elif wanted == "overview":  # related work argues the lines of work and what the evidence shows, no advice
            sections = ("families", "evidence") if intents.RELATED_WORK.search(question) else ("families", "choosing")
        elif wanted == "evidence":  # no claim fits: what the topic's overview says the evidence shows
            sections = ("evidence",)
        else:
            return
        plan.intent = "open_question" if plan.intent == "open_question" else (wanted or plan.intent)
        self._answer_from_sections(plan, topic, overview, sections)

    def _answer_from_sections(self, plan: Plan, topic: str | None, overview, sections: tuple[str, ...]) -> None:
        """The plan answers from these parts of the topic's overview; its papers are the ones they cite."""
        plan.topic, plan.sections = topic, sections
        text = " ".join(getattr(part, plan.lang) for kind in sections if (part := overview.section(kind)))
        plan.papers = [p for p in cited_ids(text) if p in self.knowledge.papers]

    def ask(self, question: str, llm=None, k: int = 5, on_token: Callable[[str], None] | None = None,
            extra_sources: dict[str, tuple[str, int]] | None = None,
            history: list[dict[str, str]] | None = None) -> AskResult:  # fmt: skip
        """Answer one question, a follow-up when `history` (OpenAI messages) is given; llm=None: the
        composer's answer (no model)."""
        start = time.monotonic()
        question = question.strip()
        if not question:
            raise PlraError("the question is empty")
        if len(question) > MAX_QUESTION_CHARS:
            raise PlraError(f"the question has {len(question):,} characters; ask in at most {MAX_QUESTION_CHARS:,}")
        history_trimmed = trimmed(history or [])
        lang = "zh" if is_chinese(question) else "en"
        rewritten = standalone(question, check_history(history or []), self.name_index, llm)
        query = rewritten.question
        if not self.in_field(query):
            return AskResult(REFUSAL[lang].format(scope=SCOPE[lang]), refused=True, query=query,
                             rewrite=rewritten.method,
                             timings={"total_ms": round(1000 * (time.monotonic() - start), 1)})  # fmt: skip
        plan = self.plan(question, query, lang, k)
        hits = [self.index.hit(p) for p in plan.papers]
        retrieved = time.monotonic()
        # The support check is enforced, not only measured: a citation its paper's entry does not back is
        # dropped, and a sentence left without support goes with it (the composer's and the model's alike).
        curated = compose.curated_text(plan, self.knowledge)
        draft, unsupported = support.enforce(compose.compose(plan, self.knowledge, self.name_index, query),
                                             self.knowledge, curated)  # fmt: skip
        draft = draft or COMPOSE["nothing"][lang]
        fallback = None
        if llm is None:
            text, citations, errors = check_citations(draft, self.knowledge, extra_sources or {})
        else:
            notes = f"{PLAN_NOTES_HEADER[lang]}\n{draft}\n\n{compose.plan_instructions(plan)}"
            messages = build_messages(query, hits, self.knowledge, lang, instructions=notes)
            messages[1:1] = recent_turns(check_history(history or []))
            pieces = []
            for piece in llm.stream(messages):
                pieces.append(piece)
                if on_token:
                    on_token(piece)
            raw, unsupported = support.enforce("".join(pieces), self.knowledge)
            text, citations, errors = check_citations(raw, self.knowledge, extra_sources or {})
            fallback = compose.degenerate(text, question, len(citations))
            if fallback:
                raw = COMPOSE["fallback_note"][lang].format(reason=fallback) + "\n\n" + draft
            else:
                raw += self._named_notes(raw, plan, query, lang)
            text, citations, errors = check_citations(raw, self.knowledge, extra_sources or {})
        errors = unsupported + errors
        generated = time.monotonic()
        timings = {
            "retrieval_ms": round(1000 * (retrieved - start), 1),
            "generation_ms": round(1000 * (generated - retrieved), 1),
            "total_ms": round(1000 * (time.monotonic() - start), 1),
        }
        passages = [Citation(h.arxiv_id, h.title, h.year, arxiv_url(h.arxiv_id), h.curated) for h in hits]
        writer = COMPOSED if llm is None or fallback else getattr(llm, "name", type(llm).__name__)
        return AskResult(with_sources(text, citations, lang), citations, False, errors, timings, passages,
                         query=query, rewrite=rewritten.method, intent=plan.intent, fallback=fallback,
                         writer=writer, history_trimmed=history_trimmed)  # fmt: skip

    def _named_notes(self, raw: str, plan: Plan, query: str, lang: str) -> str:
        """A sentence for each paper the question names that the model's answer does not cite."""
        cited = {m.group(2) for m in CITED.finditer(raw)}
        notes = []
        for pid in (p for p in plan.named if p not in cited and p in self.knowledge.papers):
            said = compose.best_finding(self.knowledge.papers[pid], query, lang)
            name = self.name_index.display_name(pid)
            notes.append(COMPOSE["named_note"][lang].format(name=name, text=f"{said} [arXiv:{pid}]"))
        return "".join(f"\n\n{n}" for n in notes)


def ask_command(
    question: str = typer.Argument(None, help="the question (English or Chinese)"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object: answer, citations, refused, ..."),
    stream: bool = typer.Option(False, "--stream", help="print the answer as it is generated"),
    no_llm: bool = typer.Option(False, "--no-llm", help="instant extractive answer: top papers and findings"),
    endpoint: str = typer.Option(
        None,
        "--endpoint",
        help="OpenAI-compatible URL (default: PLRA_ENDPOINT or "
        "the server `plra serve` started; else composed from the knowledge base, or --local)",
    ),
    local: bool = LOCAL_OPTION,
    k: int = typer.Option(5, "--k", "-k", help="knowledge-base passages in the prompt"),
    calibrate_flag: bool = typer.Option(False, "--calibrate", help="fit the refusal threshold and report P/R/F1"),
    history_file: Path = typer.Option(
        None,
        "--history",
        help="earlier turns: a JSON list of OpenAI messages ({role, content}); the question "
        "is then a follow-up, rewritten into a standalone one before retrieval (shown as 'query' in --json)",
    ),
) -> None:
    """Answer a question about personalized LLMs with checked, numbered citations."""
    if calibrate_flag:
        report = calibrate(load_knowledge())
        if as_json:
            typer.echo(json.dumps(report))
            return
        cv, ins = report["cross_validated"], report["in_sample"]
        shown = ", ".join(f"{lang} score {t['score']:.2f} / coverage {t['coverage']:.2f}"
                          for lang, t in report["threshold"].items())  # fmt: skip
        typer.echo(f"refusal thresholds {shown} on {report['questions']}")
        typer.echo(f"2-fold cross-validated: precision {cv['precision']}, recall {cv['recall']}, F1 {cv['f1']}")
        typer.echo(f"in-sample:              precision {ins['precision']}, recall {ins['recall']}, F1 {ins['f1']}")
        for kind, entry in report["by_kind"].items():
            scores = f", P {entry['precision']} R {entry['recall']} F1 {entry['f1']}" if entry["out_of_field"] else ""
            typer.echo(f"  {kind:12s} {entry['refused']}/{entry['n']} refused{scores}")
        return
    if not question:
        raise PlraError('give a question, e.g. plra ask "What is pluralistic alignment?"')
    assistant = Assistant()
    llm = None if no_llm else model_for(endpoint, local)
    on_token = (lambda piece: typer.echo(piece, nl=False)) if stream and not as_json else None
    history = load_history(history_file) if history_file else None
    result = assistant.ask(question, llm=llm, k=k, on_token=on_token, history=history)
    if as_json:
        typer.echo(json.dumps(result.to_json(), ensure_ascii=False))
        return
    if on_token:
        typer.echo("\n")
    typer.echo(result.answer)
    for error in result.citation_errors:
        typer.echo(f"(removed citation arXiv:{error['cited']}: {error['reason']})", err=True)
    written = "" if result.refused else f", {result.writer}"
    typer.echo(f"({result.timings['total_ms']:.0f} ms{written})", err=True)
