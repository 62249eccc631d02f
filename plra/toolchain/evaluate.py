"""`plra eval`: PLLM-Bench through OpenCompass (in `.venv-eval`), base vs tuned, with and without retrieval.

plra prepares the benchmark files (retrieval runs here, in the main env: the RAG variant carries the top-k
knowledge-base passages inside each prompt), OpenCompass runs `eval/eval_plllm_hf.py` or
`eval/eval_plllm_api.py` on them, and plra turns OpenCompass's summary into
`reports/eval/<timestamp>/summary.{json,md}` and a bar chart.
"""

from __future__ import annotations

import csv
import json
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
from plra.toolchain.model import resolve_model_dir

REPORTS = REPO_ROOT / "reports" / "eval"
SETS = {
    "mcq": ("question", "A", "B", "C", "D", "answer"),
    "qa": ("question", "key_points"),
    "attribution": ("question", "answer"),
}
RAG_K = 3


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


def prepare(out: Path, limit: int | None, variants: list[str]) -> dict[str, int]:
    """Write <out>/<variant>/{mcq,qa,attribution}.jsonl in the columns the OpenCompass config reads."""
    from plra.knowledge.retrieval import open_index

    settings = load_knowledge()
    folder = settings.field_dir / "benchmark"
    index = open_index(settings) if "rag" in variants else None
    counts = {}
    for name in SETS:
        rows = spread(load_benchmark(folder, name), limit)
        counts[name] = len(rows)
        for variant in variants:
            prepared = []
            for row in rows:
                question = row["question"]
                if variant == "rag":
                    query = question + (" " + " ".join(row[o] for o in "ABCD") if name == "mcq" else "")
                    question = with_passages(question, query, index)
                if name == "mcq":
                    prepared.append({"question": question, **{o: row[o] for o in "ABCD"}, "answer": row["answer"]})
                elif name == "qa":
                    prepared.append(
                        {"question": question, "key_points": row["key_points"], "ref_answer": row.get("reference", "")}
                    )
                else:
                    reference = json.dumps({"id": row["answer"], "aliases": row.get("aliases", [])}, ensure_ascii=False)
                    prepared.append({"question": question, "reference": reference})
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in prepared)
            write_text_atomic(out / variant / f"{name}.jsonl", text)
    return counts


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


def markdown(summary: dict[str, Any]) -> str:
    lines = [f"# PLLM-Bench, {summary['created']}", "",
             f"profile `{summary['profile']}`, mode {summary['mode']}, questions per set: "
             + ", ".join(f"{k} {v}" for k, v in summary["questions"].items()), "",
             "| model | retrieval | dataset | metric | score |", "|---|---|---|---|---|"]  # fmt: skip
    for r in summary["results"]:
        lines.append(f"| {r['model']} | {r['variant']} | {r['dataset']} | {r['metric']} | {r['value']:.2f} |")
    return "\n".join(lines) + "\n"


def plot(summary: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted({(r["dataset"], r["metric"]) for r in summary["results"]})
    systems = sorted({(r["model"], r["variant"]) for r in summary["results"]})
    values = {(r["model"], r["variant"], r["dataset"], r["metric"]): r["value"] for r in summary["results"]}
    width = 0.8 / max(len(systems), 1)
    fig, ax = plt.subplots(figsize=(max(6, 1.6 * len(keys)), 4))
    for i, (model, variant) in enumerate(systems):
        xs = [k + i * width for k in range(len(keys))]
        ax.bar(xs, [values.get((model, variant, d, m), 0) for d, m in keys], width, label=f"{model} / {variant}")
    ax.set_xticks([k + width * (len(systems) - 1) / 2 for k in range(len(keys))])
    ax.set_xticklabels([f"{d}\n{m}" for d, m in keys], fontsize=8)
    ax.set_ylim(0, 100)
    ax.set_ylabel("score (0-100)")
    ax.set_title(f"PLLM-Bench ({summary['profile']}, {summary['created']})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def model_specs(profile: ProfileSettings, names: list[str]) -> list[dict[str, str]]:
    specs = []
    for name in names:
        if name == "base":
            specs.append({"abbr": "base", "path": str(resolve_model_dir(profile))})
        elif name == "tuned":
            merged = REPO_ROOT / "work_dirs" / profile.name / "sft" / "latest" / "merged"
            if not (merged / "config.json").exists():
                raise PlraError(f"no tuned model at {merged}: run `plra train --profile {profile.name}` first")
            specs.append({"abbr": "tuned", "path": str(merged.resolve())})
        else:
            raise PlraError(f"unknown model '{name}' in --models: use base, tuned or both (base,tuned)")
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
        mode = "api"
        judge = judge or client.base_url
        if judge == client.base_url:
            log("[eval] warning: the served model judges its own answers; self-judging is weak (--judge URL)")
    else:
        config = REPO_ROOT / "eval" / "eval_plllm_hf.py"
        env |= {"PLRA_EVAL_MODELS": json.dumps(model_specs(profile, models)), "PLRA_EVAL_DEVICE": profile.device}
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
    counts = prepare(run_dir / "data", limit, variants)
    log(f"[eval] OpenCompass {Path(command['config']).name} on {counts} questions, variants {variants} -> {run_dir}")
    code = envs.run("eval", command["argv"], cwd=run_dir, extra_env=command["env"],
                    log_path=run_dir / "opencompass.log")  # fmt: skip
    if code != 0:
        raise PlraError(f"OpenCompass failed (exit {code}); see {run_dir / 'opencompass.log'}", exit_code=code)
    results = read_summary(run_dir / "opencompass")
    summary = {"created": created, "profile": profile.name, "mode": command["mode"], "questions": counts,
               "variants": variants, "results": results, "table": nested(results)}  # fmt: skip
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
    models: str = typer.Option("base,tuned", "--models", help="base, tuned or base,tuned"),
    rag: str = typer.Option("both", "--rag", help="on, off or both"),
    limit: int = typer.Option(None, "--limit", help="questions per set (spread over the file)"),
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
    settings = load_profile(profile, {"eval_limit": limit})
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
