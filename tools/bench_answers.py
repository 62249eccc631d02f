"""How good are the answers? Key-point recall and gold-citation rate on PLLM-Bench open QA, the follow-up
set, and the refusal figures by kind: the answers before answer plans (baseline) beside today's, same run.

    .venv/bin/python tools/bench_answers.py [--limit-model 12] [--endpoint URL] [--no-tiny] [--out reports/bench]

Systems:
- baseline: what `plra ask --no-llm` answered before answer plans: the top BM25 papers and one finding
  each, as a list; no history, no name resolution, BM25 refusal only;
- composer: today's `--no-llm` answer (plans, names resolved, follow-ups rewritten);
- tiny: the tiny model in-process (the tuned one when `make pipeline` has trained it), writing from the
  same plan, falling back to the composer when its output is degenerate (slow: `--limit-model` questions);
- endpoint: any OpenAI-compatible server given with --endpoint.
Writes answers.json, answers.md and answers.png under --out/answers-<timestamp>/.
"""

from __future__ import annotations

import argparse
import re
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm

from plra.assistant import answer as rag
from plra.io import read_jsonl, write_json_atomic, write_text_atomic
from plra.knowledge.retrieval import is_chinese
from plra.toolchain.scoring import key_point_recall

ARXIV = re.compile(r"\[arXiv:(\d{4}\.\d{4,5})\]")
BASELINE_HEADER = {
    "en": "The most relevant papers in the knowledge base and what they found:",
    "zh": "知识库中最相关的论文及其主要发现：",
}


class Baseline:
    """The answers before answer plans, kept here to measure against."""

    def __init__(self, assistant: rag.Assistant) -> None:
        self.assistant = assistant

    def ask(self, question: str, history=None, **_: Any) -> rag.AskResult:
        a = self.assistant
        lang = "zh" if is_chinese(question) else "en"
        signal = rag.field_signal(question, a.index, a.names)
        if rag._refuse(signal, a.thresholds[lang]):
            return rag.AskResult("", refused=True)
        lines = [BASELINE_HEADER[lang]]
        for hit in a.index.search(question, k=5):
            paper = a.knowledge.get(hit.arxiv_id)
            if lang == "zh" and getattr(paper, "summary_zh", ""):
                finding = re.split(r"(?<=[。！？])", paper.summary_zh)[0]
            else:
                finding = paper.key_findings[0] if getattr(paper, "key_findings", None) else hit.snippet
            lines.append(f"- {hit.title} ({hit.year}) [arXiv:{hit.arxiv_id}]: {finding}")
        text, citations, errors = rag.check_citations("\n".join(lines), a.knowledge, {})
        return rag.AskResult(text, citations, False, errors)


def open_qa_scores(ask, rows: list[dict[str, Any]], label: str) -> dict[str, float]:
    recall, gold_rate, seconds, fallbacks = [], [], [], 0
    for row in tqdm(rows, desc=f"open QA: {label}", leave=False):
        start = time.monotonic()
        result = ask(row["question"])
        seconds.append(time.monotonic() - start)
        fallbacks += bool(result.fallback)
        recall.append(key_point_recall(result.answer, row["key_points"]))
        gold = set(ARXIV.findall(row.get("reference", "")))
        cited = {c.arxiv_id for c in result.citations}
        gold_rate.append(len(gold & cited) / len(gold) if gold else 0.0)
    n = max(len(rows), 1)
    return {"n": len(rows), "key_point_recall": round(100 * sum(recall) / n, 1),
            "gold_citation_rate": round(100 * sum(gold_rate) / n, 1),
            "seconds_per_answer": round(sum(seconds) / n, 2), "fallbacks": fallbacks}  # fmt: skip


def followup_scores(ask, cases: list[dict[str, Any]], label: str) -> dict[str, Any]:
    by_lang: dict[str, list[bool]] = {}
    for case in tqdm(cases, desc=f"follow-ups: {label}", leave=False):
        result = ask(case["question"], history=case["history"])
        cited = {c.arxiv_id for c in result.citations}
        by_lang.setdefault(case["lang"], []).append(set(case["gold"]) <= cited)
    every = [hit for hits in by_lang.values() for hit in hits]
    per_lang = {f"gold_cited_{lang}": round(100 * sum(h) / len(h), 1) for lang, h in sorted(by_lang.items())}
    return {"n": len(every), "gold_cited": round(100 * sum(every) / max(len(every), 1), 1), **per_lang}


def refusal_scores(assistant: rag.Assistant) -> dict[str, Any]:
    """Cross-validated refusal by kind: the BM25 threshold alone (baseline) and with the scope rules."""
    keep = ("cross_validated", "by_kind")
    baseline = rag.calibrate(assistant.settings, rules=False, write=False)
    rules = rag.calibrate(assistant.settings, write=False)
    return {"baseline": {k: baseline[k] for k in keep}, "rules": {k: rules[k] for k in keep}}


def spread(rows: list[dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """n rows taken evenly across the file (both languages, every topic), in a fixed order."""
    if n >= len(rows):
        return rows
    step = len(rows) / n
    return [rows[int(i * step)] for i in range(n)]


def plot(results: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = list(results["open_qa"])
    metrics = [("open_qa", "key_point_recall", "open QA key-point recall"),
               ("open_qa", "gold_citation_rate", "open QA gold cited"),
               ("followups", "gold_cited", "follow-up gold cited")]  # fmt: skip
    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.8 / len(systems)
    for i, system in enumerate(systems):
        values = [results[part].get(system, {}).get(metric, 0.0) for part, metric, _ in metrics]
        ax.bar([x + i * width for x in range(len(metrics))], values, width, label=system)
    ax.set_xticks([x + width * (len(systems) - 1) / 2 for x in range(len(metrics))], [m[2] for m in metrics])
    ax.set_ylabel("%")
    ax.set_ylim(0, 100)
    ax.legend()
    ax.set_title("PLRA answers: baseline vs answer plans")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def markdown(results: dict[str, Any]) -> str:
    header = "| system | open QA n | key-point recall | gold cited | s/answer | follow-ups n | gold cited (all/en/zh) |"
    lines = [header, "|---|---|---|---|---|---|---|"]
    for system, qa in results["open_qa"].items():
        fu = results["followups"].get(system, {})
        lines.append(f"| {system} | {qa['n']} | {qa['key_point_recall']} | {qa['gold_citation_rate']} | "
                     f"{qa['seconds_per_answer']} | {fu.get('n', '-')} | {fu.get('gold_cited', '-')} / "
                     f"{fu.get('gold_cited_en', '-')} / {fu.get('gold_cited_zh', '-')} |")  # fmt: skip
    lines += ["", "| refusal | kind | n | refused | P | R | F1 |", "|---|---|---|---|---|---|---|"]
    for rule, report in results["refusal"].items():
        cv = report["cross_validated"]
        lines.append(f"| {rule} | all (cross-validated) | | | {cv['precision']} | {cv['recall']} | {cv['f1']} |")
        for kind, entry in report["by_kind"].items():
            scores = [entry.get(k, "") for k in ("precision", "recall", "f1")]
            lines.append(
                f"| {rule} | {kind} | {entry['n']} | {entry['refused']} | " + " | ".join(map(str, scores)) + " |"
            )
    return "\n".join(lines) + "\n"


JUDGE_PROMPT = """You review an answer that a research assistant for personalized LLMs gave a researcher.
Score it on five parts, each 0, 1 or 2: answers_the_question (a verdict, recommendation or synthesis that fits
what was asked, first sentence answers), correct (facts and numbers right), synthesis (argues by idea, not a
finding per paper; no template phrases; nothing repeated), citations_support (each cited paper supports its
sentence), covers_key_points (the key points below). Reply with JSON only: {{"answers_the_question": n,
"correct": n, "synthesis": n, "citations_support": n, "covers_key_points": n, "note": "one sentence"}}.

Question: {question}
Key points a good answer holds: {key_points}
Answer:
{answer}"""


def rubric(assistant: rag.Assistant, rows: list[dict[str, Any]], judge=None) -> dict[str, Any]:
    """The dev set answered by the composer, scored by the judge-free rubric (and by a judge model if given)."""
    from plra.assistant.rubric import score

    scored = []
    for row in tqdm(rows, desc="rubric", unit="question"):
        result = assistant.ask(row["question"], history=row.get("history") or None)
        cited = [c.arxiv_id for c in result.citations]
        entry = score(row, result.answer, result.intent, cited, assistant.knowledge)
        entry["answer"] = result.answer
        if judge is not None:
            reply = judge.chat(
                [
                    {
                        "role": "user",
                        "content": JUDGE_PROMPT.format(
                            question=row["question"],
                            key_points="; ".join(row.get("key_points", [])),
                            answer=result.answer,
                        ),
                    }
                ]
            )
            entry["judge"] = parse_judge(reply)  # fmt: skip
        scored.append(entry)
    n = len(scored)
    parts = {part: round(sum(e["parts"][part] for e in scored) / n, 2) for part in scored[0]["parts"]}
    summary = {
        "questions": n,
        "plan_fit": round(sum(e["plan_fit"] for e in scored) / n, 3),
        "key_point_recall": round(sum(e["key_point_recall"] for e in scored) / n, 3),
        "expected_cited": round(sum(e["expected_cited"] or 0 for e in scored) / n, 3),
        "templated_answers": round(sum(e["template"] for e in scored) / n, 3),
        "unsupported_citations": round(
            sum(e["unsupported_citations"] for e in scored) / max(1, sum(e["citations"] for e in scored)), 3
        ),
        "parts": parts,
        "auto_total_of_8": round(sum(parts.values()), 2),
    }
    judged = [e["judge"] for e in scored if e.get("judge")]
    if judged:
        summary["judge_mean_of_10"] = round(sum(sum(v for k, v in j.items() if k != "note") for j in judged)
                                            / len(judged), 2)  # fmt: skip
    by_kind: dict[str, list] = {}
    for entry in scored:
        by_kind.setdefault(entry["kind"], []).append(entry)
    summary["by_kind"] = {k: {"n": len(v), "plan_fit": round(sum(e["plan_fit"] for e in v) / len(v), 2),
                              "key_point_recall": round(sum(e["key_point_recall"] for e in v) / len(v), 2)}
                          for k, v in sorted(by_kind.items())}  # fmt: skip
    return {"summary": summary, "answers": scored}


def parse_judge(reply: str) -> dict[str, Any] | None:
    import json

    match = re.search(r"\{.*\}", reply, re.S)
    try:
        data = json.loads(match.group(0)) if match else None
    except ValueError:
        return None
    keys = ("answers_the_question", "correct", "synthesis", "citations_support", "covers_key_points")
    if not isinstance(data, dict) or not all(isinstance(data.get(k), int | float) for k in keys):
        return None
    return {**{k: max(0, min(2, data[k])) for k in keys}, "note": str(data.get("note", ""))}


def rubric_markdown(summary: dict[str, Any]) -> str:
    lines = [f"Dev set: {summary['questions']} questions, composed answers (`plra ask --no-llm`)", "",
             "| measure | value |", "|---|---|"]  # fmt: skip
    for key in ("plan_fit", "key_point_recall", "expected_cited", "templated_answers", "unsupported_citations",
                "auto_total_of_8", "judge_mean_of_10"):  # fmt: skip
        if key in summary:
            lines.append(f"| {key.replace('_', ' ')} | {summary[key]} |")
    lines += ["", "| kind | n | plan fit | key-point recall |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['n']} | {v['plan_fit']} | {v['key_point_recall']} |" for k, v in summary["by_kind"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit-model", type=int, default=12, help="open-QA and follow-up cases per model system")
    parser.add_argument("--endpoint", help="an OpenAI-compatible server to measure beside the others")
    parser.add_argument("--no-tiny", action="store_true", help="skip the in-process tiny model")
    parser.add_argument("--out", type=Path, default=Path("reports/bench"))
    parser.add_argument("--rubric", action="store_true", help="score the answers dev set by the judge-free rubric")
    parser.add_argument("--judge", help="with --rubric: an OpenAI-compatible model that also scores on the rubric")
    args = parser.parse_args()
    assistant = rag.Assistant()
    folder = assistant.settings.field_dir / "benchmark"
    if args.rubric:
        judge = None
        if args.judge:
            from plra.llm import LLMClient

            judge = LLMClient.from_url(args.judge, max_tokens=200, temperature=0.0)
        report = rubric(assistant, read_jsonl(folder / "answers_dev.jsonl"), judge)
        out = args.out / f"rubric-{time.strftime('%Y%m%d-%H%M%S')}"
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out / "rubric.json", report)
        write_text_atomic(out / "rubric.md", rubric_markdown(report["summary"]))
        print(rubric_markdown(report["summary"]))
        print(f"written to {out}")
        return
    qa = read_jsonl(folder / "qa.jsonl")
    cases = read_jsonl(folder / "followups.jsonl")
    systems: dict[str, tuple[Any, int]] = {
        "baseline": (Baseline(assistant).ask, len(qa)),
        "composer": (lambda q, history=None: assistant.ask(q, history=history), len(qa)),
    }
    if not args.no_tiny:
        model = rag.LocalModel(rag.local_model_dir(), max_tokens=160)
        systems["tiny"] = (lambda q, history=None: assistant.ask(q, llm=model, history=history), args.limit_model)
    if args.endpoint:
        from plra.llm import LLMClient

        client = LLMClient.from_url(args.endpoint, max_tokens=400)
        systems["endpoint"] = (lambda q, history=None: assistant.ask(q, llm=client, history=history), args.limit_model)
    results: dict[str, Any] = {"open_qa": {}, "followups": {}}
    for name, (ask, n) in systems.items():
        results["open_qa"][name] = open_qa_scores(ask, spread(qa, n), name)
        results["followups"][name] = followup_scores(ask, spread(cases, n), name)
    results["refusal"] = refusal_scores(assistant)
    out = args.out / f"answers-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    write_json_atomic(out / "answers.json", results)
    write_text_atomic(out / "answers.md", markdown(results))
    plot(results, out / "answers.png")
    print(markdown(results))
    print(f"written to {out}")


if __name__ == "__main__":
    main()
