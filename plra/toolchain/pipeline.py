"""`plra pipeline`: the main job. data -> train -> quantize -> serve -> eval -> agent, with a report.

Each stage runs as its own `plra` command (its log in the run folder), is skipped when its inputs hash
the same as at its last success (`--force STAGE` redoes it), and a failure stops the run with the log
path and one line on why. Ctrl-C stops cleanly and ends the server the run started.
Reports: `reports/pipeline/<timestamp>/report.{md,json}` plus plots; `reports/pipeline/latest` -> newest.
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

REPORTS = REPO_ROOT / "reports" / "pipeline"
STATE = REPO_ROOT / ".plra" / "pipeline-state.json"
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


class Pipeline:
    def __init__(
        self, profile: ProfileSettings, limit: int | None, max_iters: int | None, force: set[str], log=print
    ) -> None:
        self.profile = profile
        self.limit = limit if limit is not None else profile.eval_limit
        self.max_iters = max_iters
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
        data_dir = REPO_ROOT / "build" / "data" / load_knowledge().field
        train_args = [*p, "--json"] + (["--max-iters", str(self.max_iters)] if self.max_iters else [])
        eval_args = [*p, "--rag", "both", "--json"] + (["--limit", str(self.limit)] if self.limit else [])
        if self.profile.device == "cuda":
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
            Stage(
                "train",
                lambda: ["plra", "train", *train_args],
                lambda: _hash(data_dir / "manifest.json", REPO_ROOT / self.profile.xtuner_config, self.max_iters),
                self._collect_train,
            ),
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
                lambda: _hash(self.train_dir / "manifest.json", kb_dir / "benchmark", self.limit),
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
        manifest = json.loads((self.train_dir / "manifest.json").read_text())
        plot_losses(manifest["losses"], self.run_dir / "train_loss.png")
        return {
            "first_loss": manifest["first_loss"],
            "last_loss": manifest["last_loss"],
            "train_duration_s": manifest["duration_s"],
            "merged": manifest["merged"],
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
        headline = [
            r
            for r in summary.get("results", [])
            if (r["dataset"], r["metric"])
            in {
                ("mcq", "acc_origin"),
                ("mcq", "perf_circular"),
                ("qa", "key_point_recall"),
                ("attribution", "accuracy"),
            }
        ]
        return {"report": summary.get("dir"), "table": headline, "plot": "eval.png"}

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


def plot_losses(losses: list[list[float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot([i for i, _ in losses], [v for _, v in losses], marker="o")
    ax.set_xlabel("iteration")
    ax.set_ylabel("training loss")
    ax.set_title("SFT loss")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


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
            if k not in ("status", "duration_s", "log", "table", "examples", "envs", "reason", "agent")
        }
        shown = ", ".join(f"{k}: {v}" for k, v in numbers.items())[:300]
        lines.append(f"| {name} | {stage['status']} | {stage.get('duration_s', 0)} | {shown} |")
    table = report["stages"].get("eval", {}).get("table")
    if table:
        lines += [
            "",
            "## Evaluation (PLLM-Bench, OpenCompass)",
            "",
            "| model | retrieval | dataset | metric | score |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {r['model']} | {r['variant']} | {r['dataset']} | {r['metric']} | {r['value']:.1f} |" for r in table
        ]
        lines += ["", "![eval](eval.png)"]
    if report["stages"].get("train", {}).get("plot"):
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


def dry_run(profile: ProfileSettings, limit: int | None, max_iters: int | None) -> list[dict[str, Any]]:
    """Every command of every stage, plra's and the upstream ones beneath it, without running anything."""
    from plra.toolchain import serve, train

    pipeline = Pipeline(profile, limit, max_iters, set(), log=lambda _m: None)
    merged = REPO_ROOT / "work_dirs" / profile.name / "sft" / "latest" / "merged"
    pipeline.merged = lambda: merged  # the run that would exist by then
    steps = []
    for stage in pipeline.stages():
        entry = {"stage": stage.name, "commands": [shlex.join(stage.argv())]}
        if stage.name == "setup":
            entry["commands"].insert(0, f"{sys.executable} -m plra.toolchain.envs setup")
        if stage.name == "train":
            plan = train.dry_run(profile, "sft", None)  # GPUs and nodes as `plra train` would resolve them
            entry["commands"] += [
                " ".join(f"{k}={v}" for k, v in c["env"].items()) + " " + " ".join(c["argv"]) for c in plan["commands"]
            ]
            entry["memory_gib"] = plan["memory_gib"]
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
    max_iters: int = typer.Option(None, "--max-iters", help="cap the training iterations"),
    force: list[str] = typer.Option(None, "--force", help="redo this stage even if its inputs are unchanged ('all')"),
    dry_run_flag: bool = typer.Option(False, "--dry-run", help="print every command of every stage"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Run the whole pipeline (data -> train -> quantize -> serve -> eval -> agent) and write a report."""
    settings = load_profile(profile)
    force = list(STAGES) if "all" in (force or []) else force
    unknown = set(force or []) - set(STAGES)
    if unknown:
        raise PlraError(f"--force {', '.join(sorted(unknown))}: stages are {', '.join(STAGES)}")
    if dry_run_flag:
        steps = dry_run(settings, limit, max_iters)
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
    report = Pipeline(settings, limit, max_iters, set(force or []), log=typer.echo).run()
    typer.echo(
        json.dumps({k: v["status"] for k, v in report["stages"].items()})
        if as_json
        else f"pipeline ok in {report['duration_s']:.0f} s"
    )
