"""`plra ideas`: research directions from the gaps the field's synthesis records, not from pairs of papers.

A gap is an open problem a topic overview states, or a claim whose evidence is mixed (papers against it) or holds
only under conditions. Gaps on the asked topic come first (its own open problems, then the claims filed under
it), the rest by how much of the request they cover. Each idea says:
- the gap, in the synthesis's own cited words;
- why now: the newest paper that bears on it, with its year;
- a first experiment, chosen by what kind of gap it is (stale user state, synthetic versus real users, judges,
  incomparable protocols, little user data, side effects, cost, or a method gap), on a benchmark of the knowledge
  base that fits it and against a baseline method the knowledge base holds;
- what would count as a result.
With a model, each idea also gets a pitch paragraph written from the same material, kept only when it still
cites at least two knowledge-base papers after the citation check.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import typer

from plra.assistant.answer import LOCAL_OPTION, Assistant, check_citations
from plra.assistant.compose import lower_first, name_of
from plra.errors import PlraError
from plra.knowledge.synthesis import sentences
from plra.prompts import (
    CONTEXT_HEADER,
    IDEA_ACTIVE,
    IDEA_CONDITIONS,
    IDEA_EXPERIMENTS,
    IDEA_LABELS,
    IDEA_NONE,
    IDEA_REWRITE_INSTRUCTIONS,
    IDEA_SOURCES,
    IDEA_THIS_GAP,
    IDEA_WHY_NOW,
    SYSTEM,
    check_lang,
)
from plra.research.write import (
    MARKER,
    as_clause,
    claim_sentences,
    head_clause,
    short_label,
    standalone,
    standing_finding,
)
from plra.types import Claim, Paper, cited_ids

MIN_CITED = 2
POOL = 12  # papers retrieval offers for a gap's baseline and benchmark
NEAREST = 5  # papers retrieval offers as the gap's newest evidence, besides its own
NEAR_SCORE = 0.75  # of the best score: how close to the gap a paper must be to count as evidence on it
OWN_TOPIC = 0.3  # share of the request's topic words a taxonomy label must hold for the topic to be the asked one
ACTIVE_YEAR = 3  # papers from the newest year that make "the knowledge base holds N papers from YEAR" worth saying
NOT_METHODS = ("benchmark", "survey", "evaluation")
SAME_TOPIC = 0.25  # what each earlier idea on the same topic takes off a gap's score
OPEN_BONUS = 0.15  # an open problem's edge over a claim of the same relevance
RANKED = 10  # papers retrieval ranks for the request, which a relevant gap tends to rest on
# What kind of gap a text states, first match wins: it decides the experiment (prompts.IDEA_EXPERIMENTS).
GAP_KINDS = (
    ("time", r"updat|forget|outdated|stale|drift|\bshift|evolv|over time|sequential|changing users|dynamic profile"),
    (
        "protocol",
        r"self-reported|of their choosing|comparab|standardi[sz]ed|own (?:paper|benchmark)|"
        r"different (?:metrics|baselines)|head to head",
    ),
    (
        "realism",
        r"synthetic|simulat|real (?:users?|people|multi-week|chats|per-user)|realism|homogeneous|uniform|"
        r"persona[- ]prompt|llm-generated|llm-built|individual-level data",
    ),
    ("judge", r"judge|gpt-4 as|win rate|overlap metric|rouge|bleu|which metrics|annotator|ground truth"),
    ("data", r"cold[- ]start|handful|amount of user data|few examples|data-rich|grows? with|small fraction"),
    (
        "risk",
        r"safety|sycophan|toxic|harm|misalign|persua|manipulat|strategic|impersonat|privacy|stereotyp|inequit|"
        r"\bbias|dual use|profiling|fairness",
    ),
    ("cost", r"\bcost|latency|overhead|storage|slow|per token|serving"),
)
SESSIONS = re.compile(r"session|long-term|multi-turn|conversation|dialogue|memory|over time|temporal", re.I)
REAL_DATA = re.compile(r"\breal\b|genuine|human-human|participants|in the wild|wildchat|logs|amazon|reddit", re.I)


@dataclass
class Gap:
    kind: str  # open_problem | mixed_evidence | conditional
    topic: str  # the overview's topic, or the claim's file topic
    source: str  # "overview:<topic>/open_problems" or "claim:<id>"
    title: str
    text: str  # the gap in the asked language, cited as the synthesis cites it
    english: str  # the same in English: what the gap's kind and its papers are found from
    cites: list[str]
    claim: Claim | None = None


def _aligned(english: list[str], chinese: list[str]) -> list[str]:
    """The Chinese sentence that cites what each English sentence cites (by position when none does)."""
    out = []
    for index, sentence in enumerate(english):
        same = [z for z in chinese if set(cited_ids(z)) == set(cited_ids(sentence))]
        out.append(same[0] if same else (chinese[index] if index < len(chinese) else sentence))
    return out


def field_gaps(assistant: Assistant, lang: str) -> list[Gap]:
    """Every open problem of every overview, and every claim whose evidence is mixed or conditional."""
    knowledge = assistant.knowledge
    gaps: list[Gap] = []
    for topic, overview in knowledge.overviews.items():
        part = overview.section("open_problems")
        if part is None:
            continue
        label = short_label(assistant.knowledge, topic, lang)
        english = sentences(part.en)
        for en, own in zip(english, _aligned(english, sentences(part.zh)) if lang == "zh" else english, strict=True):
            text = standalone(own, lang, "open_problems")
            head = head_clause(text, lang)
            title = f"{label}：{head}" if lang == "zh" else f"{label}: {lower_first(head)}"
            gaps.append(
                Gap(
                    "open_problem",
                    topic,
                    f"overview:{topic}/open_problems",
                    title,
                    text,
                    standalone(en, "en", "open_problems"),
                    cited_ids(en),
                )
            )
    for claim in knowledge.claims:
        mixed = bool(claim.contradicts)
        if not mixed and _kind(claim.conditions_en) == "method":
            continue  # a claim that holds without qualification is no gap
        parts = claim_sentences(claim, lang)
        # The verdict as written (its short answer fits the question in the title), the results against it,
        # and the conditions it holds under.
        verdict = sentences(claim.claim_zh if lang == "zh" else claim.claim_en)[:1]
        against = [s for role, s in parts if role == "contrast" and s not in verdict][:2]
        space = " " if lang == "en" else ""
        conditions = space.join(s for role, s in parts if role == "condition")
        conditions = conditions if lang == "zh" else lower_first(conditions)
        text = space.join([*verdict, *against])
        if conditions:
            text += space + IDEA_CONDITIONS[lang].format(text=conditions)
        gaps.append(
            Gap(
                "mixed_evidence" if mixed else "conditional",
                claim.topics[0],
                f"claim:{claim.id}",
                claim.question_zh if lang == "zh" else claim.question_en,
                text,
                f"{claim.claim_en} {claim.conditions_en}",
                claim.papers(),
                claim,
            )
        )
    return gaps


def _kind(text: str) -> str:
    return next((kind for kind, pattern in GAP_KINDS if re.search(pattern, text, re.I)), "method")


def experiment_kind(gap: Gap) -> str:
    """Which experiment the gap calls for. A claim is tested where its conditions say it was not; a claim with
    papers on both sides, head to head under one protocol unless its conditions point elsewhere."""
    if gap.claim is None:
        return _kind(gap.english)
    kind = _kind(gap.claim.conditions_en)
    if gap.kind == "mixed_evidence" and kind not in ("realism", "data", "time"):
        return "protocol"
    return kind if kind != "method" else _kind(gap.claim.claim_en)


def topic_fit(assistant: Assistant, request: str) -> dict[str, float]:
    """How much of the request each topic's taxonomy label covers (the synthesis index's own measure)."""
    knowledge = assistant.knowledge
    fit = {
        topic: assistant.synthesis.section_fit(
            request, f"{knowledge.topics[topic].en} {knowledge.topics[topic].zh} {topic.replace('-', ' ')}"
        )
        for topic in knowledge.overviews
        if topic in knowledge.topics
    }
    ranked = [h.arxiv_id for h in assistant.index.search(request, k=10)]
    best, sure = assistant.synthesis.best_topic(request, ranked)
    if best in fit and sure:
        fit[best] = max(fit[best], OWN_TOPIC)
    return fit


def ranked_gaps(assistant: Assistant, request: str, lang: str) -> list[tuple[bool, float, Gap]]:
    """(on the asked topic, score, gap), best first: gaps whose own topic is the asked one before the rest, each
    group by how much of the request the gap's text and its topic's name cover together."""
    fit = topic_fit(assistant, request)
    knowledge = assistant.knowledge
    ranked = {h.arxiv_id for h in assistant.index.search(request, k=RANKED)}
    scored = []
    for gap in field_gaps(assistant, lang):
        own = fit.get(gap.topic, 0.0) >= OWN_TOPIC
        question = gap.claim.question_en if gap.claim else ""
        label = knowledge.topics[gap.topic].en if gap.topic in knowledge.topics else ""
        # What the gap itself says counts twice: a topic's name covers every gap of the topic alike.
        said = assistant.synthesis.section_fit(request, f"{gap.english} {question}")
        covered = assistant.synthesis.section_fit(request, f"{gap.english} {question} {label}")
        # The papers retrieval ranks for the request, when the gap rests on them, say it is about the request
        # in a way its words may not (as for plra.assistant.synthesis's claims).
        papers = min(1.0, len(ranked & set(gap.cites)) / 2)
        # Open problems are what the overview's editors judged open; a claim's conditions are narrower.
        score = said + covered + papers / 2 + fit.get(gap.topic, 0.0) / 4 + OPEN_BONUS * (gap.kind == "open_problem")
        if own or covered > 0:
            scored.append((own, score, gap))
    return sorted(scored, key=lambda s: (s[0], s[1]), reverse=True)


# ---------------------------------------------------------------------------------- what an idea is built from


def focus_of(text: str, lang: str) -> str:
    """What an open problem is about: 'Implicit information remains a gap, since ...' -> 'implicit information'."""
    head = head_clause(text, lang)
    if lang == "zh":
        subject = re.match(r"^(.{2,12}?)(?:仍待解决|仍是|尚未解决|是)", head)
    else:
        subject = re.match(r"^(.+?) (?:remains?|is|are|lacks?)\b", head)
    if subject is None or len(subject.group(1).split()) > 6:
        return IDEA_THIS_GAP[lang]  # a gap stated as a clause ("Steering mostly encodes ...") names no subject
    return lower_first(subject.group(1)) if lang == "en" else subject.group(1)


def _clean(value: str) -> str:
    """'PrefEval (3,000 preference-query pairs, 20 topics)' -> 'PrefEval'."""
    return re.sub(r"\s*\([^)]*\)", "", value).strip() or value


def _is_benchmark(paper: Paper) -> bool:
    return bool(paper.datasets and paper.metrics) and (
        "benchmark" in paper.topics or any(_clean(d) in (paper.aliases or []) for d in paper.datasets)
    )


def _dataset(paper: Paper) -> str:
    names = [_clean(d) for d in paper.datasets]
    return next((d for d in names if d in paper.aliases), names[0])


def _detail(paper: Paper, name: str) -> str:
    """The paper's first method that is not just its own name."""
    return next((_clean(m) for m in paper.methods if _clean(m).lower() != name.lower()), name)


class Builder:
    """Finds, for one gap, the baseline, the benchmark(s) and the newest evidence, and writes the idea."""

    def __init__(self, assistant: Assistant, lang: str) -> None:
        self.assistant = assistant
        self.knowledge = assistant.knowledge
        self.lang = lang
        self.counted: set[str] = set()  # topics whose count of newest papers an idea has given

    def name(self, paper: Paper) -> str:
        return name_of(paper, self.assistant.name_index)

    def cite(self, paper: Paper) -> str:
        return f"{self.name(paper)} [arXiv:{paper.arxiv_id}]"

    def hits(self, gap: Gap, topic: str | None) -> list[Paper]:
        query = MARKER.sub("", gap.english)[:600]
        return [
            self.knowledge.papers[h.arxiv_id]
            for h in self.assistant.index.search(query, k=POOL, topic=topic)
            if h.arxiv_id in self.knowledge.papers
        ]

    def baselines(self, gap: Gap) -> list[Paper]:
        """Method papers for the gap: a claim's own papers first; then the papers retrieval ranks for the gap on its
        topic, those the topic's overview presents as its families' methods first (they are the baselines a
        reviewer expects)."""
        overview = self.knowledge.overviews.get(gap.topic)
        established = set()
        if overview is not None:
            for kind in ("families", "choosing"):
                part = overview.section(kind)
                established |= set(cited_ids(part.en)) if part else set()
        own = [
            self.knowledge.papers[p] for p in (gap.claim.papers() if gap.claim else []) if p in self.knowledge.papers
        ]
        retrieved = self.hits(gap, gap.topic)
        retrieved = [p for p in retrieved if p.arxiv_id in established] + retrieved
        out = []
        for paper in [*own, *retrieved]:
            # A baseline is a method someone ran: it has methods and data, and it is not itself a benchmark.
            method = paper.topics[0] not in NOT_METHODS and paper.methods and paper.datasets
            if paper not in out and method and not _is_benchmark(paper):
                out.append(paper)
        return out

    def benchmarks(self, gap: Gap) -> list[Paper]:
        """Benchmarks for the gap: those its papers are, then those retrieval ranks for it on the topic."""
        cited = [self.knowledge.papers[p] for p in gap.cites if p in self.knowledge.papers]
        overview = self.knowledge.overviews.get(gap.topic)
        listed = cited_ids(overview.section("benchmarks").en) if overview and overview.section("benchmarks") else []
        pool = [
            *cited,
            *(p for p in self.hits(gap, "benchmark") if gap.topic in p.topics),
            *(self.knowledge.papers[p] for p in listed if p in self.knowledge.papers),
            *self.hits(gap, "benchmark"),
        ]
        out = []
        for paper in pool:
            if paper not in out and _is_benchmark(paper):
                out.append(paper)
        return out

    def newest(self, gap: Gap) -> Paper | None:
        """The newest paper among the gap's own and the few retrieval ranks closest to it, on the topics the gap's
        papers are on (a memory benchmark can be the newest word on a decoding-time gap about memory)."""
        topics = {
            gap.topic,
            *(t for p in gap.cites if p in self.knowledge.papers for t in self.knowledge.papers[p].topics),
        }
        hits = [
            h
            for h in self.assistant.index.search(MARKER.sub("", gap.english)[:600], k=POOL)
            if h.arxiv_id in self.knowledge.papers and topics & set(self.knowledge.papers[h.arxiv_id].topics)
        ]
        top = hits[0].score if hits else 0.0
        near = [h.arxiv_id for h in hits[:NEAREST] if h.score >= NEAR_SCORE * top]
        order = list(dict.fromkeys([*gap.cites, *near]))
        papers = [self.knowledge.papers[p] for p in order if p in self.knowledge.papers]
        # Of the newest year, the gap's own evidence first, then the paper retrieval ranks closest.
        return max(papers, key=lambda p: (p.year, p.arxiv_id in gap.cites, -order.index(p.arxiv_id)), default=None)

    def pair(self, gap: Gap, bases: list[Paper], benches: list[Paper]) -> tuple[Paper, Paper]:
        """The baseline and benchmark that go together best: a benchmark the gap's own evidence uses, one the
        baseline was evaluated on (so its numbers exist), then retrieval's order."""

        def score(pair: tuple[int, Paper, int, Paper]) -> tuple[float, int]:
            i, base, j, bench = pair
            shared = {_clean(d).lower() for d in base.datasets} & {_clean(d).lower() for d in bench.datasets}
            return (2.0 * (bench.arxiv_id in gap.cites) + 1.5 * bool(shared) - 0.3 * i - 0.2 * j, -i)

        pairs = [(i, b, j, d) for i, b in enumerate(bases[:4]) for j, d in enumerate(benches[:5])]
        _, base, _, bench = max(pairs, key=score)
        return base, bench

    def why_now(self, gap: Gap, paper: Paper) -> str:
        finding = standing_finding(paper, gap.english, self.lang)
        text = IDEA_WHY_NOW[self.lang].format(
            name=self.name(paper),
            year=paper.year,
            cite=f"[arXiv:{paper.arxiv_id}]",
            finding=finding if self.lang == "zh" else as_clause(finding, (self.name(paper), *paper.aliases)),
        )
        same_year = [p for p in self.knowledge.papers.values() if gap.topic in p.topics and p.year == paper.year]
        newest_year = max(p.year for p in self.knowledge.papers.values())
        # How active the topic is, said once per topic: repeated on every idea it would be boilerplate.
        if len(same_year) >= ACTIVE_YEAR and paper.year == newest_year and gap.topic not in self.counted:
            self.counted.add(gap.topic)
            topic = short_label(self.knowledge, gap.topic, self.lang, inside=True)
            active = IDEA_ACTIVE[self.lang].format(n=len(same_year), year=paper.year, topic=topic)
            text += ("" if self.lang == "zh" else " ") + active
        return text

    def build(self, gap: Gap) -> dict[str, Any] | None:
        kind = experiment_kind(gap)
        bases, benches = self.baselines(gap), self.benchmarks(gap)
        if not bases or not benches:
            return None
        base, bench = self.pair(gap, bases, benches)
        other: Paper | None = None
        other_metric = ""
        if kind == "time":
            # Updates need data that unfolds over sessions; without it the gap is tested as a method gap.
            unfolding = [b for b in benches if SESSIONS.search(" ".join([b.title, *b.keywords, *b.datasets]))]
            if unfolding:
                bench = bench if bench in unfolding else unfolding[0]
            else:
                kind = "method"
        if kind == "realism":
            # The topic measured twice: on data written or simulated for a benchmark, and on real people's (from
            # the gap's own evidence, or the topic's).
            same = [b for b in benches if gap.topic in b.topics]
            real = [
                b
                for b in benches
                if (b in same or b.arxiv_id in gap.cites)
                and REAL_DATA.search(" ".join([b.title, *b.keywords, *b.datasets]))
            ]
            synthetic = [b for b in same if b not in real]
            if real and synthetic:
                bench, other = (bench if bench in synthetic else synthetic[0]), real[0]
            else:
                kind = "method"
        elif kind == "protocol":
            rival = [p for p in bases[1:] if gap.claim is None or p.arxiv_id in gap.claim.contradicts] or bases[1:]
            other = rival[0] if rival else None
            kind = kind if other else "method"
        elif kind == "risk":
            measuring = [b for b in benches if b != bench and ("risks" in b.topics or "privacy" in b.topics)]
            other = measuring[0] if measuring else next((b for b in benches[1:]), None)
            kind = kind if other else "method"
        elif kind in ("data", "cost", "judge"):
            other = next((p for p in bases[1:]), None)
        if other is not None and other in (base, bench):
            other = None
        if other is not None:
            other_metric = _clean(other.metrics[0]) if other.metrics else ""
        data_name = _dataset(bench)
        focus = (
            focus_of(gap.text, self.lang) if gap.claim is None else short_label(self.knowledge, gap.topic, self.lang)
        )
        values = {
            "base": self.cite(base),
            "base_name": self.name(base),
            "base_detail": _detail(base, self.name(base)),
            "data": f"{data_name} [arXiv:{bench.arxiv_id}]",
            "data_name": data_name,
            "metric": _clean(bench.metrics[0]),
            "other": self.cite(other) if other else IDEA_NONE[self.lang],
            "other_name": (_dataset(other) if kind == "realism" else self.name(other))
            if other
            else IDEA_NONE[self.lang],
            "other_metric": other_metric,
            "focus": focus if self.lang == "zh" else focus[:1].lower() + focus[1:],
            "topic": short_label(self.knowledge, gap.topic, self.lang, inside=True),
        }
        if kind == "realism" and other is not None:
            values["other"] = f"{_dataset(other)} [arXiv:{other.arxiv_id}]"
        template = IDEA_EXPERIMENTS[kind][self.lang]
        newest = self.newest(gap)
        idea = {
            "kind": gap.kind,
            "experiment_kind": kind,
            "topic": gap.topic,
            "topic_label": short_label(self.knowledge, gap.topic, self.lang, inside=True),
            "source": gap.source,
            "title": gap.title,
            "gap": gap.text,
            "why_now": self.why_now(gap, newest) if newest else "",
            "experiment": template["experiment"].format(**values),
            "result": template["result"].format(**values),
            "benchmark": {"arxiv_id": bench.arxiv_id, "dataset": data_name, "metric": values["metric"]},
            "baseline": {"arxiv_id": base.arxiv_id, "name": values["base_name"]},
            "newest": {"arxiv_id": newest.arxiv_id, "year": newest.year} if newest else None,
        }
        text = " ".join(idea[part] for part in ("gap", "why_now", "experiment", "result"))
        idea["cited"] = [
            pid for pid in dict.fromkeys(m.group(1) for m in MARKER.finditer(text)) if self.knowledge.get(pid)
        ]
        if len(idea["cited"]) < MIN_CITED or not idea["why_now"]:
            return None
        idea["pitch"] = None
        return idea


def _rank(item: tuple[bool, float, Gap], taken: list[str], opening: bool) -> tuple[bool, bool, float]:
    """Own open problems first while their share lasts, then own gaps, each by score less what earlier ideas on
    the same topic take off."""
    own, score, gap = item
    return (own and gap.kind == "open_problem" and opening, own, score - SAME_TOPIC * taken.count(gap.topic))


def ideas(assistant: Assistant, topic: str, n: int = 5, lang: str = "en", llm=None) -> list[dict[str, Any]]:
    """Up to n ideas for the request, best first, each from a different gap and resting on its own papers."""
    topic = (topic or "").strip()
    if not topic:
        raise PlraError("give a topic, e.g. plra ideas 'memory for personalized assistants'")
    check_lang(lang)
    if not assistant.in_field(topic):
        raise PlraError(f"{topic!r} does not match the knowledge base's field: rephrase it with the field's terms")
    if n < 1:
        raise PlraError(f"--n must be at least 1, got {n}")
    builder = Builder(assistant, lang)
    out: list[dict[str, Any]] = []
    used: list[set[str]] = []
    pending = ranked_gaps(assistant, topic, lang)
    # The asked topics' own open problems come first; a share of the ideas is kept for the claims whose evidence
    # is mixed or conditional, when there are any on the topic.
    claims = any(own and gap.claim is not None for own, _, gap in pending)
    open_slots = n - (max(1, n // 3) if claims and n > 1 else 0)
    while pending and len(out) < n:
        # Each further idea from a topic that already has one counts a little less: a researcher asking about
        # two things wants directions on both.
        taken = [idea["topic"] for idea in out]
        opening = sum(idea["kind"] == "open_problem" for idea in out) < open_slots
        own, score, gap = max(pending, key=lambda item: _rank(item, taken, opening))
        pending.remove((own, score, gap))
        cites = set(gap.cites)
        if any(len(cites & seen) * 2 > len(cites) for seen in used):
            continue  # the same papers' gap, said another way (a claim restating an open problem)
        idea = builder.build(gap)
        if idea is None:
            continue
        if llm is not None:
            idea["pitch"] = _pitch(assistant, llm, idea, lang)
        out.append(idea)
        used.append(cites)
    if not out:
        raise PlraError(f"no grounded idea found for {topic!r}: too few papers match; try a broader topic")
    return out


def _pitch(assistant: Assistant, llm, idea: dict[str, Any], lang: str) -> str | None:
    """A model-written paragraph for the idea; None unless it keeps at least two valid citations."""
    knowledge = assistant.knowledge
    papers = "\n".join(f"[arXiv:{pid}] {knowledge.get(pid).title}" for pid in idea["cited"])
    body = "\n".join(f"{part}: {idea[part]}" for part in ("title", "gap", "why_now", "experiment", "result"))
    messages = [{"role": "system", "content": SYSTEM[lang]},
                {"role": "user", "content": f"{CONTEXT_HEADER[lang]}\n{papers}\n\n{IDEA_REWRITE_INSTRUCTIONS[lang]}"
                                            f"\n\n{body}"}]  # fmt: skip
    raw = llm.chat(messages)
    _, citations, _ = check_citations(raw, knowledge, {})
    kept = MARKER.sub(lambda m: m.group() if knowledge.get(m.group(1)) else "", raw).strip()
    return kept if len(citations) >= MIN_CITED else None


def ideas_markdown(items: list[dict[str, Any]], lang: str) -> str:
    stop = "：" if lang == "zh" else "."
    gap, why, experiment, result, pitch, source = (f"**{label}{stop}**" for label in IDEA_LABELS[lang])
    lines = []
    for number, idea in enumerate(items, 1):
        claim = idea["source"].split(":", 1)[1] if idea["source"].startswith("claim:") else ""
        topic = idea["topic_label"]
        origin = IDEA_SOURCES[idea["kind"]][lang].format(topic=topic, claim=claim)
        lines += [
            f"## {number}. {idea['title']}",
            f"{source} {origin}",
            "",
            f"{gap} {idea['gap']}",
            "",
            f"{why} {idea['why_now']}",
            "",
            f"{experiment} {idea['experiment']}",
            "",
            f"{result} {idea['result']}",
        ]
        if idea["pitch"]:
            lines += ["", f"{pitch} {idea['pitch']}"]
        lines.append("")
    return "\n".join(lines)


def ideas_command(
    topic: str = typer.Argument(..., help="the area to find directions in (English or Chinese)"),
    n: int = typer.Option(5, "--n", "-n", help="how many ideas"),
    lang: str = typer.Option("en", "--lang", help="en or zh"),
    no_llm: bool = typer.Option(False, "--no-llm", help="ideas from the knowledge base only, no model pitch"),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible URL (default as for `plra ask`)"),
    local: bool = LOCAL_OPTION,
    as_json: bool = typer.Option(False, "--json", help="a JSON list"),
) -> None:
    """Research directions from the field's open problems and its mixed or conditional evidence: the gap, why
    now (the newest evidence and its year), a first experiment on a knowledge-base benchmark with a baseline, and
    what would count as a result."""
    from plra.assistant.answer import model_for

    items = ideas(Assistant(), topic, n, lang, None if no_llm else model_for(endpoint, local))
    typer.echo(json.dumps(items, ensure_ascii=False) if as_json else ideas_markdown(items, lang))
