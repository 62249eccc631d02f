"""`plra eval`: PLLM-Bench through OpenCompass (in `.venv-eval`), base vs tuned, with and without retrieval.

plra prepares the benchmark files (retrieval runs here, in the main env: the RAG variant carries the top-k
knowledge-base passages inside each prompt), OpenCompass runs `eval/eval_plllm_hf.py` or
`eval/eval_plllm_api.py` on them, and plra turns OpenCompass's summary into
`reports/eval/<timestamp>/summary.{json,md}` and a bar chart.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import typer

from plra.errors import PlraError
from plra.io import read_jsonl_numbered, write_json_atomic, write_text_atomic
from plra.paths import REPO_ROOT
from plra.settings import LaunchSettings, ProfileSettings, load_knowledge, load_launch, load_profile
from plra.toolchain import envs
from plra.toolchain.intervals import bootstrap_mean, mcnemar_p, paired_difference, verdict
from plra.toolchain.model import resolve_model_dir
from plra.toolchain.scoring import key_point_recall

REPORTS = REPO_ROOT / "reports" / "eval"
SETS = {
    "mcq": ("question", "A", "B", "C", "D", "answer"),
    "attribution": ("question", "answer"),
    "qa": ("question", "key_points"),
}
RAG_K = 2  # passages per prompt: a third more would make each retrieval prompt about a fifth longer


def load_benchmark(folder: Path, name: str) -> list[dict[str, Any]]:
    """Rows of one benchmark file; a malformed row names the file and line."""
    path = folder / f"{name}.jsonl"
    try:
        numbered = read_jsonl_numbered(path)
    except (OSError, ValueError) as err:
        raise PlraError(str(err)) from None
    for line, row in numbered:
        missing = [f for f in SETS[name] if not row.get(f)]
        if missing:
            raise PlraError(f"{path}:{line}: field '{missing[0]}' is missing or empty")
        if name == "mcq" and row["answer"] not in ("A", "B", "C", "D"):
            raise PlraError(f"{path}:{line}: field 'answer' must be one of A, B, C, D, not {row['answer']!r}")
    return [row for _, row in numbered]


def spread(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most `limit` rows taken evenly across the file (so both languages and all topics appear)."""
    if not limit or limit >= len(rows):
        return rows
    step = len(rows) / limit
    return [rows[int(i * step)] for i in range(limit)]


def with_passages(question: str, query: str, index) -> str:
    from plra.knowledge.retrieval import is_chinese

    hits = index.search(query, k=RAG_K)
    if is_chinese(question):
        context = "\n".join(
            f"[{i}] {h.title}（arXiv:{h.arxiv_id}，{h.year}）：{h.snippet}" for i, h in enumerate(hits, 1)
        )
        return f"参考资料：\n{context}\n\n问题：{question}"
    context = "\n".join(f"[{i}] {h.title} (arXiv:{h.arxiv_id}, {h.year}): {h.snippet}" for i, h in enumerate(hits, 1))
    return f"Knowledge-base passages:\n{context}\n\nQuestion: {question}"


LETTERS = "ABCD"


def _stable_order(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def stratified(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """A fixed sample of at most `limit` rows, taken in turn from each (language, topic) stratum."""
    if not limit or limit >= len(rows):
        return rows
    strata: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for row in sorted(rows, key=lambda r: _stable_order(str(r.get("id") or r["question"]))):
        strata.setdefault((row.get("lang", ""), row.get("topic", "")), []).append(row)
    queues = [strata[k] for k in sorted(strata)]
    picked: list[dict[str, Any]] = []
    while len(picked) < limit:
        for queue in queues:
            if queue and len(picked) < limit:
                picked.append(queue.pop(0))
    return picked


def rotations(qid: str, question: str, choices: list[str], gold: int, count: int = 4) -> list[dict[str, Any]]:
    """The rows of one question in `count` rotations of its options (CircularEval), with the gold letter of each."""
    if not 1 <= count <= len(choices):
        raise PlraError(f"eval_rotations must be between 1 and {len(choices)}, not {count}")
    rows = []
    for shift in range(count):
        order = [(i + shift) % len(choices) for i in range(len(choices))]
        row = {"qid": qid, "rotation": shift, "question": question}
        row |= {LETTERS[slot]: choices[i] for slot, i in enumerate(order)}
        row["answer"] = LETTERS[order.index(gold)]
        rows.append(row)
    return rows


def attribution_choices(row: dict[str, Any], papers: dict[str, Any]) -> tuple[list[str], int]:
    """The gold paper and three others of its topic (the nearest confusions), as "Title (year)"."""
    gold = papers.get(row["answer"])
    if gold is None:
        raise PlraError(f"attribution question {row.get('id')}: {row['answer']} is not in the knowledge base")
    same_topic = [p for i, p in papers.items() if i != gold.arxiv_id and row.get("topic") in p.topics]
    others = [p for i, p in papers.items() if i != gold.arxiv_id and p not in same_topic]
    ranked = sorted(same_topic, key=lambda p: _stable_order(row["id"] + p.arxiv_id))
    ranked += sorted(others, key=lambda p: _stable_order(row["id"] + p.arxiv_id))
    choices = [f"{p.title} ({p.year})" for p in [gold, *ranked[:3]]]
    place = int(_stable_order(row["id"]), 16) % len(choices)  # where the gold one stands before rotation
    choices.insert(place, choices.pop(0))
    return choices, place


def prepare(out: Path, limit: int | None, variants: list[str], qa_limit: int | None = None, rotation_count: int = 4
            ) -> dict[str, int]:  # fmt: skip
    """Write <out>/<variant>/{mcq,attribution,qa}.jsonl in the columns the OpenCompass config reads.

    Choice sets hold every question (or `limit`, spread over the file) in all option rotations; open QA a
    fixed stratified sample of `qa_limit` (default `limit`)."""
    from plra.knowledge.kb import load
    from plra.knowledge.retrieval import open_index

    settings = load_knowledge()
    folder = settings.field_dir / "benchmark"
    index = open_index(settings) if "rag" in variants else None
    papers = load(settings).papers
    counts = {}
    for name in SETS:
        source = load_benchmark(folder, name)
        rows = stratified(source, qa_limit or limit) if name == "qa" else spread(source, limit)
        counts[name] = len(rows)
        for variant in variants:
            prepared = []
            for n, row in enumerate(rows):
                question = row["question"]
                qid = str(row.get("id") or f"{name}-{n}")
                if name == "attribution":
                    choices, gold = attribution_choices(row, papers)
                elif name == "mcq":
                    choices, gold = [row[o] for o in LETTERS], LETTERS.index(row["answer"])
                if variant == "rag":
                    query = question + (" " + " ".join(choices) if name == "mcq" else "")
                    question = with_passages(question, query, index)
                if name == "qa":
                    prepared.append({"qid": qid, "question": question, "key_points": row["key_points"],
                                     "ref_answer": row.get("reference", "")})  # fmt: skip
                else:
                    prepared += rotations(qid, question, choices, gold, rotation_count)
            # Shortest prompts first: a batch pads to its longest row, so neighbours of like length waste least
            # (a stable sort: a question's rotations, of one length, stay together; scores are kept by qid).
            prepared.sort(key=lambda r: sum(len(r[c]) for c in ("question", *LETTERS) if c in r))
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prepared)
            write_text_atomic(out / variant / f"{name}.jsonl", text)
    return counts


def _predictions(workdir: Path, model: str, abbr: str) -> list[dict[str, Any]]:
    """OpenCompass's predictions of one model on one dataset, in row order (shards joined)."""
    folders = sorted(workdir.glob(f"*/predictions/{model}"))
    if not folders:
        return []
    whole = folders[-1] / f"{abbr}.json"
    shards = sorted(folders[-1].glob(f"{abbr}_*.json"), key=lambda p: int(p.stem.rsplit("_", 1)[1]))
    rows: list[dict[str, Any]] = []
    for path in [whole] if whole.exists() else shards:
        data = json.loads(path.read_text(encoding="utf-8"))
        rows += [data[k] for k in sorted(data, key=int)]
    return rows


def _chosen_letter(prediction: Any) -> str | None:
    """The option a prediction picked: the label itself (by loss) or the first standalone letter (generated)."""
    text = str(prediction or "").strip()
    if len(text) == 1 and text in LETTERS:
        return text
    match = re.search(r"\b([ABCD])\b", text)
    return match.group(1) if match else None


def item_scores(workdir: Path, data: Path, models: list[str], variants: list[str]) -> dict[tuple, dict[str, float]]:
    """Per question: {(model, variant, dataset, metric): {qid: score in [0, 1]}} from the prediction files."""
    scores: dict[tuple, dict[str, float]] = {}
    for variant in variants:
        for name in SETS:
            rows = [json.loads(line) for line in (data / variant / f"{name}.jsonl").read_text().splitlines() if line]
            for model in models:
                predicted = _predictions(workdir, model, f"plllm_{name}_{variant}")
                if not rows or len(predicted) != len(rows):
                    continue  # the model was not run on this set (or the run broke off)
                if name == "qa":
                    recall = {r["qid"]: key_point_recall(str(p.get("prediction") or ""), r["key_points"])
                              for r, p in zip(rows, predicted, strict=True)}  # fmt: skip
                    scores[(model, variant, name, "key_point_recall")] = recall
                    continue
                right: dict[str, list[bool]] = {}
                for r, p in zip(rows, predicted, strict=True):
                    right.setdefault(r["qid"], []).append(_chosen_letter(p.get("prediction")) == r["answer"])
                scores[(model, variant, name, "acc_origin")] = {q: float(v[0]) for q, v in right.items()}
                if any(len(v) > 1 for v in right.values()):  # right in every rotation of its options
                    scores[(model, variant, name, "acc_circular")] = {q: float(all(v)) for q, v in right.items()}
    return scores


def with_intervals(scores: dict[tuple, dict[str, float]]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Each score with its 95 % bootstrap interval, and each trained model - base per metric as a paired difference."""
    results = []
    for (model, variant, dataset, metric), per_item in sorted(scores.items()):
        mean, low, high = bootstrap_mean(list(per_item.values()))
        results.append({"model": model, "variant": variant, "dataset": dataset, "metric": metric,
                        "value": round(100 * mean, 2), "low": round(100 * low, 2), "high": round(100 * high, 2),
                        "n": len(per_item)})  # fmt: skip
    differences = []
    for (model, variant, dataset, metric), trained in sorted(scores.items()):
        base = scores.get(("base", variant, dataset, metric))
        if model == "base" or base is None:
            continue
        shared = sorted(set(base) & set(trained))
        a, b = [base[q] for q in shared], [trained[q] for q in shared]
        mean, low, high = paired_difference(a, b)
        row = {"model": model, "variant": variant, "dataset": dataset, "metric": metric, "n": len(shared),
               "delta": round(100 * mean, 2), "low": round(100 * low, 2), "high": round(100 * high, 2),
               "verdict": verdict(low, high)}  # fmt: skip
        if metric.startswith("acc"):
            row["mcnemar_p"] = round(mcnemar_p(a, b), 4)
        differences.append(row)
    return results, differences


def heldout_rows(losses: dict[str, list[float]], variant: str = "norag"
                 ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:  # fmt: skip
    """Perplexity per model on the held-out documents (exp of the mean loss per token, interval likewise), and
    each trained model - base as the paired difference of the losses (negative: it predicts the field better)."""
    results = []
    for model, values in sorted(losses.items()):
        mean, low, high = bootstrap_mean(values)
        results.append({"model": model, "variant": variant, "dataset": "heldout", "metric": "perplexity",
                        "value": round(math.exp(mean), 2), "low": round(math.exp(low), 2),
                        "high": round(math.exp(high), 2), "n": len(values)})  # fmt: skip
    differences = []
    for model in sorted(set(losses) - {"base"} if "base" in losses else ()):
        mean, low, high = paired_difference(losses["base"], losses[model])
        differences.append({"model": model, "variant": variant, "dataset": "heldout", "metric": "loss (nats/token)",
                            "n": len(losses["base"]), "delta": round(mean, 3), "low": round(low, 3),
                            "high": round(high, 3), "verdict": verdict(low, high)})  # fmt: skip
    return results, differences


def heldout_losses(profile: ProfileSettings, models: list[str], limit: int | None, log=print) -> dict[str, list[float]]:
    """Each model's loss on the held-out documents `plra data build` set aside (none: an empty dict)."""
    from plra.data.build import default_out_dir
    from plra.toolchain.perplexity import document_losses

    path = default_out_dir(load_knowledge()) / "heldout.jsonl"
    if not path.exists():
        log(f"[eval] no held-out documents at {path}: run `plra data build` for the perplexity row")
        return {}
    texts = [row["text"] for _, row in read_jsonl_numbered(path)][: limit or None]
    if not texts:
        return {}
    log(f"[eval] held-out perplexity: {len(texts)} documents, models {models}")
    return {s["abbr"]: document_losses(Path(s["path"]), texts, profile.device) for s in model_specs(profile, models)}


def read_summary(workdir: Path) -> list[dict[str, Any]]:
    """OpenCompass's summary CSV as rows of {model, variant, dataset, metric, value}."""
    found = sorted(workdir.glob("*/summary/summary_*.csv"))
    if not found:
        raise PlraError(f"OpenCompass wrote no summary under {workdir}")
    results = []
    with open(found[-1], encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            dataset = row.pop("dataset")
            metric = row.pop("metric")
            row.pop("version", None)
            row.pop("mode", None)
            if not dataset.startswith("plllm_") or metric.endswith("_count"):
                continue  # other datasets, and raw counts (scores are what the report compares)
            _, name, variant = dataset.split("_", 2)
            for model, value in row.items():
                try:
                    results.append({"model": model, "variant": variant, "dataset": name, "metric": metric,
                                    "value": round(float(value), 2)})  # fmt: skip
                except ValueError:
                    continue  # "-": the metric does not exist for this model
    return results


def nested(results: list[dict[str, Any]]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for r in results:
        tree.setdefault(r["model"], {}).setdefault(r["variant"], {}).setdefault(r["dataset"], {})[r["metric"]] = r[
            "value"
        ]
    return tree


def interval(row: dict[str, Any], digits: int = 1) -> str:
    return f"[{row['low']:.{digits}f}, {row['high']:.{digits}f}]" if "low" in row else ""


def difference_lines(differences: list[dict[str, Any]]) -> list[str]:
    """Each trained model - base per metric as a markdown table (the pipeline's report shows the same one)."""
    if not differences:
        return []
    lines = ["", "Trained - base, paired by question (95 % bootstrap interval; McNemar's exact p for accuracies):", "",
             "| model | retrieval | dataset | metric | n | model - base | 95 % CI | p | reading |",
             "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for d in differences:
        p = f"{d['mcnemar_p']:.3g}" if "mcnemar_p" in d else ""
        digits = 3 if d["dataset"] == "heldout" else 1  # a loss in nats, not points out of 100
        lines.append(f"| {d['model']} | {d['variant']} | {d['dataset']} | {d['metric']} | {d['n']} | "
                     f"{d['delta']:+.{digits}f} | {interval(d, digits)} | {p} | {d['verdict']} |")  # fmt: skip
    return lines


def target_lines(differences: list[dict[str, Any]], model: str = "tuned") -> list[str]:
    """Whether training taught the model the field, by the benchmark's own target: held-out perplexity lower
    than the base's and MCQ accuracy higher, each with a 95 % interval that excludes 0."""
    held = next((d for d in differences if d["model"] == model and d["dataset"] == "heldout"), None)
    mcq = next((d for d in differences if d["model"] == model and d["dataset"] == "mcq"
                and d["variant"] == "norag" and d["metric"] == "acc_origin"), None)  # fmt: skip
    if held is None and mcq is None:
        return []
    lines = ["", f"Does training teach the field? {model} against base:", ""]
    if held:
        lines.append(f"- held-out perplexity: {held['verdict']} (loss {held['delta']:+.3f} nats/token, "
                     f"95 % CI {interval(held, 3)}, {held['n']} documents)")  # fmt: skip
    if mcq:
        p = f", McNemar p {mcq['mcnemar_p']:.3g}" if "mcnemar_p" in mcq else ""
        lines.append(f"- MCQ accuracy without retrieval: {mcq['verdict']} ({mcq['delta']:+.1f} points, "
                     f"95 % CI {interval(mcq)}, n {mcq['n']}{p})")  # fmt: skip
    met = bool(held and held["high"] < 0 and mcq and mcq["low"] > 0)
    lines += ["", "Target met: perplexity fell and accuracy rose, both beyond their intervals." if met else
              "Target not met in this budget: a difference whose interval holds 0 is no evidence either way "
              "(`plra pipeline --budget long` trains four times as long)."]  # fmt: skip
    return lines


def score_lines(results: list[dict[str, Any]]) -> list[str]:
    """Scores with their intervals as a markdown table (the pipeline's report shows the same one)."""
    lines = ["| model | retrieval | dataset | metric | n | score | 95 % CI |", "|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r['model']} | {r['variant']} | {r['dataset']} | {r['metric']} | {r.get('n', '')} | "
                     f"{r['value']:.1f} | {interval(r)} |")  # fmt: skip
    return lines


def markdown(summary: dict[str, Any]) -> str:
    counts = ", ".join(f"{k} {v}" for k, v in summary["questions"].items())
    lines = [f"# PLLM-Bench, {summary['created']}", "",
             f"profile `{summary['profile']}`, mode {summary['mode']}, questions per set: {counts}", ""]  # fmt: skip
    differences = summary.get("differences", [])
    lines += score_lines(summary["results"]) + difference_lines(differences) + target_lines(differences)
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["dataset"], r["metric"]) for r in summary["results"] if r["metric"] != "perplexity"})
    systems = sorted({(r["model"], r["variant"]) for r in summary["results"]})
    values = {(r["model"], r["variant"], r["dataset"], r["metric"]): r for r in summary["results"]}
    width = 0.8 / max(len(systems), 1)
    held = [r for r in summary["results"] if r["metric"] == "perplexity"]
    fig, axes = plt.subplots(1, 2 if held else 1, figsize=(max(6, 1.6 * len(keys)) + (2.5 if held else 0), 4),
                             gridspec_kw={"width_ratios": [4, 1]} if held else None, squeeze=False)  # fmt: skip
    ax = axes[0][0]
    for i, (model, variant) in enumerate(systems):
        xs = [k + i * width for k in range(len(keys))]
        rows = [values.get((model, variant, d, m)) for d, m in keys]
        heights = [r["value"] if r else 0 for r in rows]
        # Error bars: the 95 % bootstrap interval around each score.
        errors = [[r["value"] - r.get("low", r["value"]) if r else 0 for r in rows],
                  [r.get("high", r["value"]) - r["value"] if r else 0 for r in rows]]  # fmt: skip
        ax.bar(xs, heights, width, yerr=errors, capsize=2, label=f"{model} / {variant}")
    ax.set_xticks([k + width * (len(systems) - 1) / 2 for k in range(len(keys))])
    ax.set_xticklabels([f"{d}\n{m}" for d, m in keys], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (0-100)")
    ax.set_title(f"PLLM-Bench ({summary['profile']}, {summary['created']}), 95 % intervals")
    ax.legend(fontsize=8)
    if held:  # another scale: lower is better
        side = axes[0][1]
        spread = [[r["value"] - r["low"] for r in held], [r["high"] - r["value"] for r in held]]
        side.bar([r["model"] for r in held], [r["value"] for r in held], yerr=spread, capsize=3, color="C2")
        side.set_title(f"held-out perplexity (n={held[0]['n']})", fontsize=9)
        side.set_ylabel("perplexity (lower is better)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


# The trained models `--models` can name, by the training stage whose merged output they are ("tuned" is SFT,
# the model the pipeline serves); an ablation scores each against the base.
TRAINED = {"tuned": "sft", "pretrain": "pretrain", "dpo": "dpo"}


def model_specs(profile: ProfileSettings, names: list[str]) -> list[dict[str, str]]:
    specs = []
    for name in names:
        if name == "base":
            specs.append({"abbr": "base", "path": str(resolve_model_dir(profile))})
        elif name in TRAINED:
            merged = REPO_ROOT / "work_dirs" / profile.name / TRAINED[name] / "latest" / "merged"
            if not (merged / "config.json").exists():
                raise PlraError(f"no {name} model at {merged}: run `plra train --profile {profile.name} "
                                f"--stage {TRAINED[name]}` first")  # fmt: skip
            specs.append({"abbr": name, "path": str(merged.resolve())})
        else:
            raise PlraError(f"unknown model '{name}' in --models: use base, {', '.join(TRAINED)} (e.g. base,tuned)")
    return specs


LOCAL_RUNNER = ("--debug",)  # one process, its output on the terminal and in opencompass.log


def runner_args(launch: LaunchSettings, max_num_workers: int | None = None, quotatype: str | None = None) -> list[str]:
    """How OpenCompass runs its tasks: in this process, or through its own SlurmRunner (one srun per task)."""
    if launch.launcher != "slurm":
        if max_num_workers or quotatype:
            raise PlraError("--max-num-workers and --quotatype are for slurm runs: add --slurm PARTITION")
        return list(LOCAL_RUNNER)
    if not launch.partition:
        raise PlraError("the slurm launcher (PLRA_LAUNCHER, plra.toml [launch]) needs a partition: --slurm PARTITION")
    # No --debug here: it would make the SlurmRunner submit the tasks one after another.
    args = ["--slurm", "-p", launch.partition]
    if max_num_workers:
        # Shards per dataset and srun jobs at once; OpenCompass 0.5.4 defaults to 1, one job after another.
        args += ["--max-num-workers", str(max_num_workers)]
    if quotatype:
        args += ["-q", quotatype]
    return args


NATIVE_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}  # x86 flags of cores that multiply bfloat16 in hardware


def scoring_dtype(profile: ProfileSettings, cpuinfo: Path = Path("/proc/cpuinfo")) -> str:
    """The weights' type for scoring: the profile's `eval_dtype`, or for "auto" the fastest exact-enough one.

    A CPU without native bfloat16 emulates it several times slower than float32, hence the flag check."""
    if profile.eval_dtype != "auto":
        return profile.eval_dtype
    if profile.device == "cuda":
        return "float16"
    try:
        flags = {word for line in cpuinfo.read_text().splitlines() if line.startswith("flags") for word in line.split()}
    except OSError:  # not Linux: no way to tell, so the safe type
        return "float32"
    return "bfloat16" if flags & NATIVE_BF16_FLAGS else "float32"


def plan(profile: ProfileSettings, models: list[str], variants: list[str], api: str | None, judge: str | None,
         run_dir: Path, runner: Sequence[str] = LOCAL_RUNNER, log=print) -> dict[str, Any]:  # fmt: skip
    """The OpenCompass command of a run in `run_dir`, with its environment, exactly as run() executes it."""
    env = {
        "PLRA_EVAL_DATA": str(run_dir / "data"),
        "PLRA_EVAL_VARIANTS": ",".join(variants),
        "PLRA_EVAL_MAX_OUT_LEN": str(profile.eval_max_out_len),
        "PLRA_EVAL_BATCH_SIZE": str(profile.eval_batch_size),
        "PYTHONPATH": str(REPO_ROOT),  # plra.toolchain.workers.oc_evaluators, imported by the dataset config
        "HF_HUB_OFFLINE": "1",
        "HF_DATASETS_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
    }
    if api:
        from plra.llm import LLMClient

        client = LLMClient.from_url(api)
        config = REPO_ROOT / "eval" / "eval_plllm_api.py"
        env |= {"PLRA_EVAL_API_URL": client.base_url, "PLRA_EVAL_API_MODEL": client.model,
                "PLRA_EVAL_TOKENIZER": str(resolve_model_dir(profile)), "PLRA_EVAL_API_ABBR": "served"}  # fmt: skip
        env["PLRA_EVAL_SCORING"] = "generate"  # an OpenAI-compatible server gives no loss: choices are generated
        mode = "api"
        judge = judge or client.base_url
        if judge == client.base_url:
            log("[eval] warning: the served model judges its own answers; self-judging is weak (--judge URL)")
    else:
        config = REPO_ROOT / "eval" / "eval_plllm_hf.py"
        env |= {"PLRA_EVAL_MODELS": json.dumps(model_specs(profile, models)), "PLRA_EVAL_DEVICE": profile.device,
                "PLRA_EVAL_DTYPE": scoring_dtype(profile), "PLRA_EVAL_SCORING": "loss"}  # fmt: skip
        mode = "hf"
    if judge:
        from plra.llm import LLMClient

        judge_client = LLMClient.from_url(judge)
        env |= {
            "PLRA_JUDGE_URL": judge_client.base_url,
            "PLRA_JUDGE_MODEL": judge_client.model,
            "PLRA_EVAL_TOKENIZER": str(resolve_model_dir(profile)),
        }
    argv = ["opencompass", str(config), "-w", str(run_dir / "opencompass"), *runner]
    # OpenCompass writes tmp/ into its working directory: the run's folder (shared storage under slurm).
    return {"mode": mode, "config": str(config), "cwd": str(run_dir), "env": env, "argv": argv}


def run(profile: ProfileSettings, models: list[str], variants: list[str], limit: int | None, api: str | None,
        judge: str | None = None, runner: Sequence[str] = LOCAL_RUNNER, log=print) -> dict[str, Any]:  # fmt: skip
    created = time.strftime("%Y%m%d_%H%M%S")
    run_dir = REPORTS / created
    command = plan(profile, models, variants, api, judge, run_dir, runner, log)
    qa_limit = profile.eval_qa_limit if limit is None else limit
    counts = prepare(run_dir / "data", limit, variants, qa_limit, profile.eval_rotations)
    log(f"[eval] OpenCompass {Path(command['config']).name} on {counts} questions, variants {variants} -> {run_dir}")
    code = envs.run("eval", command["argv"], cwd=run_dir, extra_env=command["env"],
                    log_path=run_dir / "opencompass.log")  # fmt: skip
    if code != 0:
        raise PlraError(f"OpenCompass failed (exit {code}); see {run_dir / 'opencompass.log'}", exit_code=code)
    abbrs = ["served"] if api else models
    results, differences = with_intervals(item_scores(run_dir / "opencompass", run_dir / "data", abbrs, variants))
    # The LLM judge's grades come from OpenCompass's own summary (no per-question scores to resample).
    results += [r for r in read_summary(run_dir / "opencompass") if r["dataset"] == "qajudge"]
    if not api:  # a served model gives no loss over the API; the model folders do
        held_results, held_differences = heldout_rows(heldout_losses(profile, models, limit, log))
        results, differences = results + held_results, differences + held_differences
    if not results:
        raise PlraError(f"OpenCompass wrote no predictions for {abbrs} under {run_dir / 'opencompass'}")
    summary = {"created": created, "profile": profile.name, "mode": command["mode"], "questions": counts,
               "variants": variants, "results": results, "differences": differences,
               "table": nested(results)}  # fmt: skip
    write_json_atomic(run_dir / "summary.json", summary)
    write_text_atomic(run_dir / "summary.md", markdown(summary))
    plot(summary, run_dir / "summary.png")
    return summary | {"dir": str(run_dir)}


def compare(a: Path, b: Path) -> list[dict[str, Any]]:
    """Per (model, variant, dataset, metric): the score in run A, in run B and B - A."""

    def load(ref: Path) -> dict:
        path = next((c for c in (ref, ref / "summary.json", REPORTS / ref / "summary.json") if c.is_file()), None)
        try:
            return {(r["model"], r["variant"], r["dataset"], r["metric"]): r["value"]
                    for r in json.loads(path.read_text())["results"]}  # fmt: skip
        except (AttributeError, OSError, ValueError, KeyError):
            raise PlraError(f"{ref}: no summary.json written by plra eval there") from None

    first, second = load(a), load(b)
    return [{"model": k[0], "variant": k[1], "dataset": k[2], "metric": k[3], "a": first.get(k), "b": second.get(k),
             "delta": round(second[k] - first[k], 2) if k in first and k in second else None}
            for k in sorted(set(first) | set(second))]  # fmt: skip


def eval_command(
    profile: str = typer.Option(None, "--profile", "-p"),
    models: str = typer.Option("base,tuned", "--models", help="base, tuned (SFT), pretrain, dpo, comma-separated"),
    rag: str = typer.Option("both", "--rag", help="on, off or both"),
    limit: int = typer.Option(None, "--limit", help="questions per set (spread over the file)"),
    rotations: int = typer.Option(
        None, "--rotations", help="CircularEval: each choice question in 1-4 rotations of its options"
    ),
    api: str = typer.Option(None, "--api", help="evaluate the model served at this OpenAI-compatible URL"),
    judge: str = typer.Option(
        None,
        "--judge",
        help="OpenAI-compatible URL of the LLM judge for open questions (default with --api: the served model itself)",
    ),
    compare_runs: tuple[Path, Path] | None = typer.Option(None, "--compare", help="two run folders: print B - A"),
    slurm: str = typer.Option(None, "--slurm", help="run OpenCompass's tasks on this slurm partition (--slurm -p)"),
    max_num_workers: int = typer.Option(None, "--max-num-workers", help="slurm jobs at once (OpenCompass default 1)"),
    quotatype: str = typer.Option(None, "--quotatype", help="slurm quota type (OpenCompass's -q)"),
    dry_run_flag: bool = typer.Option(False, "--dry-run", help="print the OpenCompass command without running it"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Score models on PLLM-Bench with OpenCompass; write reports/eval/<timestamp>/summary.{json,md,png}."""
    if compare_runs:
        rows = compare(*compare_runs)
        if as_json:
            typer.echo(json.dumps(rows))
            return
        for r in rows:
            delta = "n/a" if r["delta"] is None else f"{r['delta']:+.2f}"
            typer.echo(
                f"{r['model']:6s} {r['variant']:6s} {r['dataset']:12s} {r['metric']:20s} {r['a']} -> {r['b']} ({delta})"
            )
        return
    variants = {"on": ["rag"], "off": ["norag"], "both": ["norag", "rag"]}.get(rag)
    if variants is None:
        raise PlraError(f"--rag must be on, off or both, not {rag!r}")
    settings = load_profile(profile, {"eval_limit": limit, "eval_rotations": rotations})
    launch = load_launch({"launcher": "slurm", "partition": slurm} if slurm else {})
    runner = runner_args(launch, max_num_workers, quotatype)
    names = [m.strip() for m in models.split(",") if m.strip()]
    log = (lambda _m: typer.echo(_m, err=True) if "warning" in _m else None) if as_json else typer.echo
    if dry_run_flag:
        command = plan(settings, names, variants, api, judge, REPORTS / "<timestamp>", runner, log)
        if as_json:
            typer.echo(json.dumps(command))
            return
        typer.echo(f"# in {command['cwd']}")
        typer.echo(envs.shell_line(command["argv"], command["env"]))
        return
    summary = run(settings, names, variants, settings.eval_limit, api, judge, runner, log)
    if as_json:
        typer.echo(json.dumps(summary))
        return
    typer.echo(markdown(summary))
    typer.echo(f"report: {summary['dir']}/summary.md, summary.json, summary.png")
