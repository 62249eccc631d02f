"""`plra pipeline`: the main job. data -> train -> quantize -> serve -> eval -> agent, with a report.

Each stage runs as its own `plra` command (its log in the run folder), is skipped when its inputs hash
the same as at its last success (`--force STAGE` redoes it), and a failure stops the run with the log
path and one line on why. Ctrl-C stops cleanly and ends the server the run started.
Reports: `reports/pipeline/<timestamp>/report.{md,json}` plus plots; `reports/pipeline/latest` -> newest.

The train stage runs the profile's `train_recipe` (tiny: pretrain, then SFT from the pretrained model); the
later stages use the SFT output. `--budget long` trains every recipe stage longer and scores the choice
questions in all four option rotations.
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer

from plra.errors import PlraError
from plra.io import write_json_atomic, write_text_atomic
from plra.paths import REPO_ROOT
from plra.settings import ProfileSettings, load_knowledge, load_profile
from plra.toolchain import envs
from plra.toolchain.evaluate import TRAINED, difference_lines, score_lines, target_lines

REPORTS = REPO_ROOT / "reports" / "pipeline"
STATE = REPO_ROOT / ".plra" / "pipeline-state.json"
STAGE_MODELS = {stage: name for name, stage in TRAINED.items()}  # plra eval --models names, by training stage
HEADLINE_METRICS = ("acc_origin", "acc_circular", "key_point_recall", "perplexity")  # the report table
STAGES = ("setup", "model", "kb", "data", "train", "quantize", "serve", "eval", "agent")
SMOKE_QUESTIONS = (
    "Which benchmarks evaluate how well LLMs personalize to a user's profile?",
    "个性化对齐与传统的 RLHF 有什么不同？",
)


def _hash(*parts: Any) -> str:
    """A stage's inputs: file contents (folders recursively) and plain values."""
    digest = hashlib.sha256()
    for part in parts:
        if isinstance(part, Path):
            files = sorted(p for p in part.rglob("*") if p.is_file()) if part.is_dir() else [part]
            for path in (f for f in files if f.exists()):
                digest.update(str(path).encode())
                digest.update(path.read_bytes())
        else:
            digest.update(json.dumps(part, sort_keys=True, default=str).encode())
    return digest.hexdigest()[:16]


@dataclass
class Stage:
    name: str
    argv: Callable[[], list[str]]  # the plra command, built when the stage runs (it may read earlier outputs)
    inputs: Callable[[], str] | None  # None: always run (the server must be started by this run)
    collect: Callable[[Path], dict[str, Any]]  # key numbers and artifacts, from the stage's outputs


@dataclass(frozen=True)
class Budget:
    """How long a run trains and how thoroughly it evaluates."""

    iters_scale: float  # multiplies each recipe stage's iterations (configs with an iteration budget: the CPU ones)
    rotations: int | None  # CircularEval rotations of the choice questions; None: the profile's eval_rotations


# `long` is about 4x the default's training and CircularEval's four rotations (see the README for timings).
BUDGETS = {"default": Budget(1.0, None), "long": Budget(4.0, 4)}


def budget_of(name: str) -> Budget:
    if name not in BUDGETS:
        raise PlraError(f"--budget {name!r}: choose one of {', '.join(BUDGETS)}")
    return BUDGETS[name]


class Pipeline:
    def __init__(
        self, profile: ProfileSettings, limit: int | None, max_iters: int | None, force: set[str], log=print,
        budget: str = "default", ablation: bool = False,
    ) -> None:  # fmt: skip
        self.profile = profile
        # An ablation also trains DPO from the SFT model and scores every stage's model against the base.
        self.recipe = list(profile.train_recipe) + (["dpo"] if ablation and "dpo" not in profile.train_recipe else [])
        self.ablation = ablation
        self.limit = limit if limit is not None else profile.eval_limit
        self.max_iters = max_iters
        self.budget_name = budget
        self.budget = budget_of(budget)
        self.force = force
        self.log = log
        self.run_dir = REPORTS / time.strftime("%Y%m%d_%H%M%S")
        self.port = profile.serve_port
        self.server_started = False

    # -- where earlier stages left things
    @property
    def train_dir(self) -> Path:
        return REPO_ROOT / "work_dirs" / self.profile.name / "sft" / "latest"

    def merged(self) -> Path:
        return (self.train_dir / "merged").resolve()

    def train_argv(self) -> list[str]:
        """One `plra train --recipe` call: the stages in order, each capped by --max-iters."""
        argv = ["plra", "train", "--profile", self.profile.name, "--recipe", ",".join(self.recipe)]
        if self.max_iters:
            argv += ["--max-iters", str(self.max_iters)]
        if self.budget.iters_scale != 1:
            argv += ["--iters-scale", f"{self.budget.iters_scale:g}"]
        return [*argv, "--json"]

    def _train_inputs(self) -> str:
        from plra.toolchain.train import stage_config

        data_dir = REPO_ROOT / "build" / "data" / load_knowledge().field
        configs = [stage_config(self.profile, stage, None) for stage in self.recipe]
        return _hash(data_dir / "manifest.json", *configs, self.recipe, self.max_iters,
                     self.budget.iters_scale)  # fmt: skip

    def served_model(self) -> Path:
        """TurboMind serves the AWQ copy; the CPU server serves the merged model itself."""
        from plra.toolchain.serve import quantized_dir

        return quantized_dir(self.merged()) if self.profile.serve_engine == "turbomind" else self.merged()

    def _last_json(self, log_path: Path) -> dict[str, Any]:
        lines = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.startswith("{")]
        return json.loads(lines[-1]) if lines else {}

    def stages(self) -> list[Stage]:
        p = ["--profile", self.profile.name]
        kb_dir = load_knowledge().field_dir
        eval_args = [*p, "--rag", "both", "--json"] + (["--limit", str(self.limit)] if self.limit else [])
        if self.budget.rotations:
            eval_args += ["--rotations", str(self.budget.rotations)]
        if self.ablation:  # the model folders themselves (on a GPU too): base and the output of every stage
            eval_args += ["--models", ",".join(["base", *(STAGE_MODELS[stage] for stage in self.recipe)])]
        elif self.profile.device == "cuda":
            eval_args += ["--api", f"http://127.0.0.1:{self.port}/v1"]
        else:
            eval_args += ["--models", "base,tuned"]
        return [
            Stage("setup", lambda: ["plra", "env", "--json"], None, self._collect_setup),
            Stage(
                "model",
                lambda: ["plra", "model", "fetch", *p],
                lambda: _hash(self.profile.base_model, str(self.profile.model_path)),
                lambda log: {"model": str(self.profile.model_path or self.profile.base_model)},
            ),
            Stage(
                "kb",
                lambda: ["plra", "kb", "validate"],
                lambda: _hash(kb_dir / "papers", kb_dir / "glossary.yaml"),
                lambda log: {"summary": log.read_text().strip().splitlines()[-1]},
            ),
            Stage(
                "data",
                lambda: ["plra", "data", "build", "--json"],
                lambda: _hash(kb_dir, REPO_ROOT / "plra" / "data", REPO_ROOT / "plra" / "prompts.py"),
                lambda log: {"counts": self._last_json(log).get("counts")},
            ),
            Stage("train", self.train_argv, self._train_inputs, self._collect_train),
            Stage(
                "quantize",
                lambda: ["plra", "quantize", *p, "--model", str(self.merged()), "--check", "--json"],
                lambda: _hash(
                    self.train_dir / "manifest.json",
                    self.profile.quant_group_size,
                    self.profile.calib_samples,
                    self.profile.calib_seqlen,
                ),
                lambda log: self._last_json(log),
            ),
            Stage(
                "serve",
                lambda: ["plra", "serve", *p, "--model", str(self.served_model()), "--json"],
                None,
                self._collect_serve,
            ),
            Stage(
                "eval",
                lambda: ["plra", "eval", *eval_args],
                lambda: _hash(
                    self.train_dir / "manifest.json", kb_dir / "benchmark", self.limit, self.budget.rotations
                ),
                self._collect_eval,
            ),
            Stage("agent", self._agent_argv, None, self._collect_agent),
        ]

    # -- key numbers per stage
    def _collect_setup(self, log: Path) -> dict[str, Any]:
        report = self._last_json_block(log)
        return {"envs": {n: e.get("packages", {}) for n, e in report.get("envs", {}).items()}, "gpu": report.get("gpu")}

    def _last_json_block(self, log: Path) -> dict[str, Any]:
        text = log.read_text(encoding="utf-8")
        start = text.find("{")
        try:
            return json.loads(text[start:]) if start >= 0 else {}
        except ValueError:
            return {}

    def _collect_train(self, log: Path) -> dict[str, Any]:
        recipe = self.recipe
        manifests = {
            stage: json.loads((self.train_dir.parent.parent / stage / "latest" / "manifest.json").read_text())
            for stage in recipe
        }
        plot_losses({stage: m["losses"] for stage, m in manifests.items()}, self.run_dir / "train_loss.png")
        sft = manifests["sft"]  # the model every later stage uses
        return {
            "recipe": " -> ".join(recipe),
            "first_loss": sft["first_loss"],
            "last_loss": sft["last_loss"],
            "train_duration_s": round(sum(m["duration_s"] for m in manifests.values()), 1),
            "merged": sft["merged"],
            "runs": [
                {k: m.get(k) for k in ("stage", "base_model", "iterations", "first_loss", "last_loss", "duration_s")}
                for m in manifests.values()
            ],
            "plot": "train_loss.png",
        }

    def _collect_serve(self, log: Path) -> dict[str, Any]:
        self.server_started = True
        state = self._last_json(log)
        return {"url": state.get("url"), "model": state.get("model_name")}

    def _collect_eval(self, log: Path) -> dict[str, Any]:
        summary = self._last_json(log)
        if summary.get("dir") and (Path(summary["dir"]) / "summary.png").exists():
            (self.run_dir / "eval.png").write_bytes((Path(summary["dir"]) / "summary.png").read_bytes())
        headline = [r for r in summary.get("results", []) if r["metric"] in HEADLINE_METRICS]
        return {"report": summary.get("dir"), "table": headline, "differences": summary.get("differences", []),
                "questions": summary.get("questions", {}), "plot": "eval.png"}  # fmt: skip

    def _agent_argv(self) -> list[str]:
        url = f"http://127.0.0.1:{self.port}/v1"
        return ["python", "-m", "plra.toolchain.examples", url, self.profile.name, *SMOKE_QUESTIONS]

    def _collect_agent(self, log: Path) -> dict[str, Any]:
        result = self._last_json(log)
        answers = [*result.get("examples", []), *([result["agent"]] if result.get("agent") else [])]
        failed = sum(1 for a in answers if a.get("error"))
        return {"examples": result.get("examples", []), "agent": result.get("agent"),
                "answered": f"{len(answers) - failed}/{len(answers)}"}  # fmt: skip

    # -- running
    def run(self) -> dict[str, Any]:
        self.run_dir.mkdir(parents=True, exist_ok=True)
        state = json.loads(STATE.read_text()) if STATE.exists() else {}
        key = self.profile.name
        done = state.setdefault(key, {})
        report: dict[str, Any] = {
            "profile": self.profile.name,
            "started": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "budget": self.budget_name,
            "limit": self.limit,
            "stages": {},
        }
        start = time.monotonic()
        failure: PlraError | None = None
        try:
            for stage in self.stages():
                report["stages"][stage.name] = self._run_stage(stage, done)
                write_json_atomic(STATE, state)
        except PlraError as err:
            failure = err
        except KeyboardInterrupt:
            failure = PlraError("interrupted (Ctrl-C)", exit_code=130)
        finally:
            if self.server_started:
                self._stop_server()
            report["duration_s"] = round(time.monotonic() - start, 1)
            for name in STAGES:
                report["stages"].setdefault(name, {"status": "skipped" if failure else "ok", "reason": "not reached"})
            report["status"] = "failed" if failure else "ok"
            if failure:
                report["error"] = str(failure)
            self._write_report(report)
        if failure:
            raise failure
        return report

    def _run_stage(self, stage: Stage, done: dict[str, Any]) -> dict[str, Any]:
        inputs = stage.inputs() if stage.inputs else None
        previous = done.get(stage.name, {})
        if inputs and stage.name not in self.force and previous.get("inputs") == inputs and previous.get("result"):
            self.log(f"[pipeline] {stage.name}: skipped (inputs unchanged since {previous.get('finished')})")
            return {**previous["result"], "status": "skipped", "duration_s": 0.0, "reason": "inputs unchanged"}
        argv = stage.argv()
        log_path = self.run_dir / "logs" / f"{stage.name}.log"
        self.log(f"[pipeline] {stage.name}: {shlex.join(argv)}")
        begin = time.monotonic()
        code = envs.run("main", argv, cwd=REPO_ROOT, log_path=log_path)
        seconds = round(time.monotonic() - begin, 1)
        if code != 0:
            tail = [line for line in log_path.read_text(encoding="utf-8").splitlines() if line.strip()][-1:]
            done.pop(stage.name, None)
            raise PlraError(
                f"stage '{stage.name}' failed (exit {code}): {tail[0] if tail else 'no output'}; log: {log_path}",
                exit_code=code,
            )
        result = {
            "status": "ok",
            "duration_s": seconds,
            "log": str(log_path.relative_to(REPO_ROOT)),
            **stage.collect(log_path),
        }
        if inputs:
            done[stage.name] = {"inputs": inputs, "result": result, "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
        self.log(f"[pipeline] {stage.name}: ok in {seconds:.1f} s")
        return result

    def _stop_server(self) -> None:
        from plra.toolchain.serve import stop

        try:
            stop(self.port)
            self.log(f"[pipeline] stopped the server on port {self.port}")
        except PlraError:
            pass

    def _write_report(self, report: dict[str, Any]) -> None:
        write_json_atomic(self.run_dir / "report.json", report)
        write_text_atomic(self.run_dir / "report.md", markdown(report))
        latest = REPORTS / "latest"
        tmp = REPORTS / f".latest-{os.getpid()}"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(self.run_dir.name)
        os.replace(tmp, latest)
        self.log(f"[pipeline] report: {self.run_dir / 'report.md'}")


def plot_losses(losses: dict[str, list[list[float]]], path: Path) -> None:
    """One line per recipe stage; each stage counts its iterations from 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    for stage, points in losses.items():
        ax.plot([i for i, _ in points], [v for _, v in points], marker="o", label=stage)
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title("Training loss (" + " -> ".join(losses) + ")")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def training_lines(runs: list[dict[str, Any]], budget: str) -> list[str]:
    """A row per recipe stage: what it started from, how long it trained and how its loss moved."""

    def where(path: str | None) -> str:
        folder = Path(path or "?")
        return str(folder.relative_to(REPO_ROOT)) if folder.is_relative_to(REPO_ROOT) else str(folder)

    def loss(value: float | None) -> str:
        return "-" if value is None else f"{value:.3f}"

    stages = " -> ".join(r["stage"] for r in runs)
    lines = ["", f"## Training ({stages}, budget `{budget}`)", ""]
    lines += ["| stage | starts from | iterations | first loss | last loss | seconds |", "|---|---|---|---|---|---|"]
    for r in runs:
        lines.append(f"| {r['stage']} | `{where(r.get('base_model'))}` | {r.get('iterations') or '-'} | "
                     f"{loss(r.get('first_loss'))} | {loss(r.get('last_loss'))} | {r.get('duration_s')} |")  # fmt: skip
    return lines


def example_text(example: dict[str, Any]) -> str:
    """An example answer, or why there is none; a retry with a smaller budget is said too."""
    if example.get("error"):
        tries = ", ".join(str(a["max_tokens"]) for a in example.get("attempts", []))
        return f"**No answer** (tried with {tries} new tokens): {example['error']}"
    retried = example.get("attempts")
    if not retried:
        return example["answer"]
    note = f"answered on a retry with {example['max_tokens']} new tokens: {retried[0]['error']}"
    return f"{example['answer']}\n\n_({note})_"


def markdown(report: dict[str, Any]) -> str:
    lines = [
        f"# PLRA pipeline — profile `{report['profile']}`",
        "",
        f"Started {report['started']}, {report['duration_s']:.0f} s in all, status **{report['status']}**.",
        "",
    ]
    if report.get("error"):
        lines += [f"> {report['error']}", ""]
    lines += ["| stage | status | seconds | key numbers |", "|---|---|---|---|"]
    for name, stage in report["stages"].items():
        numbers = {
            k: v
            for k, v in stage.items()
            if k not in ("status", "duration_s", "log", "table", "examples", "envs", "reason", "agent", "runs")
        }
        shown = ", ".join(f"{k}: {v}" for k, v in numbers.items())[:300]
        lines.append(f"| {name} | {stage['status']} | {stage.get('duration_s', 0)} | {shown} |")
    evaluation = report["stages"].get("eval", {})
    if evaluation.get("table"):
        counts = ", ".join(f"{k} {v}" for k, v in evaluation.get("questions", {}).items())
        lines += ["", "## Evaluation (PLLM-Bench, OpenCompass)", "", f"Questions: {counts}.", ""]
        differences = evaluation.get("differences", [])
        lines += score_lines(evaluation["table"]) + difference_lines(differences) + target_lines(differences)
        lines += ["", "![eval](eval.png)"]
    training = report["stages"].get("train", {})
    if training.get("runs"):
        lines += training_lines(training["runs"], report.get("budget", "default"))
    if training.get("plot"):
        lines += ["", "## Training loss", "", "![loss](train_loss.png)"]
    for example in report["stages"].get("agent", {}).get("examples", []):
        lines += ["", f"## Q: {example['question']}", "", example_text(example)]
    agent = report["stages"].get("agent", {}).get("agent")
    if agent and agent.get("error"):
        lines += ["", "## Agent", "", example_text(agent)]
    elif agent:
        tools = ", ".join(agent["agent_tools"]) or "none"
        lines += ["", f"## Agent (tools called: {tools}; fallback: {agent['fallback']})", "", example_text(agent)]
    return "\n".join(lines) + "\n"


def dry_run(
    profile: ProfileSettings, limit: int | None, max_iters: int | None, budget: str = "default"
) -> list[dict[str, Any]]:
    """Every command of every stage, plra's and the upstream ones beneath it, without running anything."""
    from plra.toolchain import serve, train

    pipeline = Pipeline(profile, limit, max_iters, set(), log=lambda _m: None, budget=budget)
    merged = REPO_ROOT / "work_dirs" / profile.name / "sft" / "latest" / "merged"
    pipeline.merged = lambda: merged  # the run that would exist by then
    steps = []
    for stage in pipeline.stages():
        entry = {"stage": stage.name, "commands": [shlex.join(stage.argv())]}
        if stage.name == "setup":
            entry["commands"].insert(0, f"{sys.executable} -m plra.toolchain.envs setup")
        if stage.name == "train":
            # GPUs and nodes as `plra train` would resolve them; each stage from the one before's merged model.
            plans = train.dry_run_recipe(
                profile, profile.train_recipe, max_iters=max_iters, iters_scale=pipeline.budget.iters_scale
            )
            entry["commands"] += [
                " ".join(f"{k}={v}" for k, v in c["env"].items()) + " " + " ".join(c["argv"])
                for plan in plans
                for c in plan["commands"]
            ]
            # The stages run one after another: the peak is the largest of theirs.
            estimates = [plan["memory_gib"] for plan in plans if plan["memory_gib"]]
            entry["memory_gib"] = max(estimates, key=lambda m: m["total"]) if estimates else None
        if stage.name == "quantize":
            entry["commands"].append(
                f"{envs.spec('deploy').link}/bin/python -m plra.toolchain.workers.awq quantize --model "
                f"{merged} --group-size {profile.quant_group_size} ..."
            )
        if stage.name == "serve":
            model = serve.quantized_dir(merged) if profile.serve_engine == "turbomind" else merged
            entry["commands"] += [
                " ".join(p.argv) for p in serve.plan(profile, str(model), profile.serve_port, profile.tp, 1, [])
            ]
        if stage.name == "eval":
            config = "eval_plllm_api.py" if profile.device == "cuda" else "eval_plllm_hf.py"
            entry["commands"].append(
                f"{envs.spec('eval').link}/bin/opencompass eval/{config} -w reports/eval/<ts>/opencompass --debug"
            )
        steps.append(entry)
    steps.append({"stage": "stop", "commands": [f"plra serve --profile {profile.name} --stop"]})
    return steps


def pipeline_command(
    profile: str = typer.Option(None, "--profile", "-p"),
    limit: int = typer.Option(None, "--limit", help="benchmark questions per set in the eval stage"),
    max_iters: int = typer.Option(None, "--max-iters", help="cap the training iterations of every recipe stage"),
    budget: str = typer.Option(
        "default", "--budget", help="default, or long: 4x the training iterations and 4 CircularEval rotations"
    ),
    force: list[str] = typer.Option(None, "--force", help="redo this stage even if its inputs are unchanged ('all')"),
    ablation: bool = typer.Option(
        False, "--ablation", help="also train DPO and score base / +pretraining / +SFT / +DPO, retrieval off and on"
    ),
    dry_run_flag: bool = typer.Option(False, "--dry-run", help="print every command of every stage"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the whole pipeline (data -> train -> quantize -> serve -> eval -> agent) and write a report."""
    settings = load_profile(profile)
    budget_of(budget)  # a wrong name fails before any stage runs
    force = list(STAGES) if "all" in (force or []) else force
    unknown = set(force or []) - set(STAGES)
    if unknown:
        raise PlraError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)}")
    if dry_run_flag:
        steps = dry_run(settings, limit, max_iters, budget)
        if as_json:
            typer.echo(json.dumps(steps))
            return
        for step in steps:
            typer.echo(f"# {step['stage']}")
            for command in step["commands"]:
                typer.echo(command)
            if step.get("memory_gib"):
                typer.echo(f"# estimated peak GPU memory {step['memory_gib']['total']} GiB")
        return
    report = Pipeline(settings, limit, max_iters, set(force or []), log=typer.echo, budget=budget,
                      ablation=ablation).run()  # fmt: skip
    typer.echo(
        json.dumps({k: v["status"] for k, v in report["stages"].items()})
        if as_json
        else f"pipeline ok in {report['duration_s']:.0f} s"
    )
