"""`plra ideas`: research directions grounded in the knowledge base, each resting on at least two papers.

A direction pairs a paper that matches the topic with another paper nothing in the knowledge base connects
it to (neither lists the other as related, and they share no dataset):
- transfer: a method not yet evaluated on a benchmark's data;
- combine: two methods from different topics, measured alone and together;
- risk: a personalization method measured against a risk another paper documents.
The gap, the first experiment, the benchmark and metric and the risk come from the papers' checked entries
(datasets, metrics, methods). With a model, each idea also gets a pitch paragraph, kept only when it still
cites at least two knowledge-base papers after the citation check.
"""

from __future__ import annotations

import json
from typing import Any

import typer

from plra.assistant.answer import Assistant, check_citations
from plra.errors import PlraError
from plra.prompts import CONTEXT_HEADER, IDEA_KINDS, IDEA_REWRITE_INSTRUCTIONS, SYSTEM, check_lang
from plra.research.write import MARKER, short_name
from plra.types import Paper

KINDS = ("transfer", "combine", "risk")
MIN_CITED = 2


def _linked(a: Paper, b: Paper) -> bool:
    shared = {d.lower() for d in a.datasets} & {d.lower() for d in b.datasets}
    return a.arxiv_id == b.arxiv_id or b.arxiv_id in a.related or a.arxiv_id in b.related or bool(shared)


def _ranked(assistant: Assistant, query: str, topic: str | None = None, k: int = 30) -> list[Paper]:
    hits = assistant.index.search(query, k=k, topic=topic)
    return [assistant.knowledge.papers[h.arxiv_id] for h in hits if h.arxiv_id in assistant.knowledge.papers]


def _label(assistant: Assistant, paper: Paper, lang: str) -> str:
    return assistant.knowledge.topic_label(paper.topics[0], lang).lower() or paper.topics[0]


def _detail(paper: Paper, fallback: str) -> str:
    """The paper's first method (or dataset) that is not just its own name."""
    name = short_name(paper).lower()
    return next((m for m in [*paper.methods, *paper.datasets] if m.lower() != name), fallback)


def _fill(kind: str, lang: str, values: dict[str, str]) -> dict[str, str]:
    return {part: text.format(**values) for part, text in IDEA_KINDS[kind][lang].items()}


def ideas(assistant: Assistant, topic: str, n: int = 5, lang: str = "en", llm=None) -> list[dict[str, Any]]:
    topic = (topic or "").strip()
    if not topic:
        raise PlraError("give a topic, e.g. plra ideas 'memory for personalized assistants'")
    check_lang(lang)
    if not assistant.in_field(topic):
        raise PlraError(f"{topic!r} does not match the knowledge base's field: rephrase it with the field's terms")
    if n < 1:
        raise PlraError(f"--n must be at least 1, got {n}")
    relevant = _ranked(assistant, topic)
    methods = [p for p in relevant if p.topics[0] not in ("benchmark", "survey", "risks") and p.methods]
    benchmarks = [p for p in _ranked(assistant, topic, "benchmark") + _ranked(assistant, "benchmark dataset",
                  "benchmark") if p.datasets and p.metrics]  # fmt: skip
    risks = _ranked(assistant, f"{topic} risks", "risks") + _ranked(assistant, "risks of personalization", "risks")
    none = {"en": ("its own data", "the task's metric", "its method"), "zh": ("自建数据", "任务指标", "其方法")}[lang]
    out: list[dict[str, Any]] = []
    for index, method in enumerate(methods):
        if len(out) >= n:
            break
        kind = KINDS[index % len(KINDS)]
        pool = {"transfer": benchmarks, "combine": [m for m in methods if m.topics[0] != method.topics[0]],
                "risk": risks}[kind]  # fmt: skip
        other = next((p for p in pool if not _linked(method, p)), None)
        bench = next((b for b in benchmarks if not _linked(method, b) and (other is None or b != other)), None)
        if other is None or bench is None:
            continue
        if kind == "transfer" or (kind == "risk" and other.datasets and other.metrics):
            bench = other  # the risk paper's own data measures the risk best
        values = {
            "method_name": short_name(method),
            "m": f"[arXiv:{method.arxiv_id}]",
            "method_data": ", ".join(method.datasets[:2]) or none[0],
            "method_detail": _detail(method, none[2]),
            "method_topic": _label(assistant, method, lang),
            "other_name": short_name(other),
            "o": f"[arXiv:{other.arxiv_id}]",
            "other_detail": _detail(other, none[2]),
            "other_topic": _label(assistant, other, lang),
            "benchmark_name": short_name(bench),
            "b": f"[arXiv:{bench.arxiv_id}]",
            "benchmark_data": bench.datasets[0],
            "metric": ((other.metrics if kind == "risk" else []) or bench.metrics)[0],
        }
        idea = {"kind": kind, **_fill(kind, lang, values)}
        text = " ".join([idea["gap"], idea["experiment"]])
        cited = list(dict.fromkeys([*(m.group(1) for m in MARKER.finditer(text)), bench.arxiv_id]))
        cited = [pid for pid in cited if assistant.knowledge.get(pid)]
        if len(cited) < MIN_CITED:
            continue
        idea |= {"benchmark": {"arxiv_id": bench.arxiv_id, "dataset": values["benchmark_data"],
                               "metric": values["metric"]}, "cited": cited, "pitch": None}  # fmt: skip
        if llm is not None:
            idea["pitch"] = _pitch(assistant, llm, idea, lang)
        out.append(idea)
    if not out:
        raise PlraError(f"no grounded idea found for {topic!r}: too few papers match; try a broader topic")
    return out


def _pitch(assistant: Assistant, llm, idea: dict[str, Any], lang: str) -> str | None:
    """A model-written paragraph for the idea; None unless it keeps at least two valid citations."""
    knowledge = assistant.knowledge
    papers = "\n".join(f"[arXiv:{pid}] {knowledge.get(pid).title}" for pid in idea["cited"])
    body = "\n".join(f"{part}: {idea[part]}" for part in ("title", "gap", "experiment", "risk"))
    messages = [{"role": "system", "content": SYSTEM[lang]},
                {"role": "user", "content": f"{CONTEXT_HEADER[lang]}\n{papers}\n\n{IDEA_REWRITE_INSTRUCTIONS[lang]}"
                                            f"\n\n{body}"}]  # fmt: skip
    raw = llm.chat(messages)
    _, citations, _ = check_citations(raw, knowledge, {})
    kept = MARKER.sub(lambda m: m.group() if knowledge.get(m.group(1)) else "", raw).strip()
    return kept if len(citations) >= MIN_CITED else None


def ideas_markdown(items: list[dict[str, Any]], lang: str) -> str:
    labels = {"en": ("Gap", "First experiment", "Benchmark and metric", "Risk", "Pitch"),
              "zh": ("研究空白", "第一个实验", "基准与指标", "风险", "阐述")}[lang]  # fmt: skip
    stop = "：" if lang == "zh" else "."
    labels = tuple(f"{label}{stop}" for label in labels)
    lines = []
    for number, idea in enumerate(items, 1):
        bench = idea["benchmark"]
        lines += [f"## {number}. {idea['title']}", f"**{labels[0]}** {idea['gap']}",
                  f"**{labels[1]}** {idea['experiment']}",
                  f"**{labels[2]}** {bench['dataset']} [arXiv:{bench['arxiv_id']}], {bench['metric']}",
                  f"**{labels[3]}** {idea['risk']}"]  # fmt: skip
        if idea["pitch"]:
            lines.append(f"**{labels[4]}** {idea['pitch']}")
        lines.append("")
    return "\n".join(lines)


def ideas_command(
    topic: str = typer.Argument(..., help="the area to find directions in (English or Chinese)"),
    n: int = typer.Option(5, "--n", "-n", help="how many ideas"),
    lang: str = typer.Option("en", "--lang", help="en or zh"),
    no_llm: bool = typer.Option(False, "--no-llm", help="ideas from the knowledge base only, no model pitch"),
    endpoint: str = typer.Option(None, "--endpoint", help="OpenAI-compatible URL (default as for `plra ask`)"),
    as_json: bool = typer.Option(False, "--json", help="a JSON list"),
) -> None:
    """Research directions grounded in the knowledge base: gap (with the papers that show it), first
    experiment, benchmark and metric, and risk; each cites at least two papers."""
    from plra.assistant.answer import model_for

    items = ideas(Assistant(), topic, n, lang, None if no_llm else model_for(endpoint))
    typer.echo(json.dumps(items, ensure_ascii=False) if as_json else ideas_markdown(items, lang))
