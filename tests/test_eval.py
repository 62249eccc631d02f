import collections
import json
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.knowledge import kb
from plra.settings import LaunchSettings, load_knowledge, load_profile
from plra.toolchain import envs, evaluate, serve
from tests.conftest import free_port, run_plra

BENCH = Path(__file__).resolve().parent.parent / "datasets" / "personalized-llm" / "benchmark"


def test_benchmark_sizes_languages_and_sources():
    papers = kb.load(load_knowledge()).papers
    mcq = evaluate.load_benchmark(BENCH, "mcq")
    qa = evaluate.load_benchmark(BENCH, "qa")
    attribution = evaluate.load_benchmark(BENCH, "attribution")
    assert len(mcq) >= 300 and sum(r["lang"] == "zh" for r in mcq) >= 100
    assert len(qa) >= 120 and len(attribution) >= 100
    letters = collections.Counter(r["answer"] for r in mcq)
    assert max(letters.values()) - min(letters.values()) <= 0.1 * len(mcq)  # no favourite letter to guess
    for row in mcq + qa:
        assert set(row["source"]) <= set(papers)
    assert all(r["answer"] in papers for r in attribution)
    assert all(len(set(r[o] for o in "ABCD")) == 4 for r in mcq)  # four distinct options


def test_malformed_benchmark_row_names_file_and_line(tmp_path):
    good = {"question": "q", "A": "a", "B": "b", "C": "c", "D": "d", "answer": "A"}
    (tmp_path / "mcq.jsonl").write_text(json.dumps(good) + "\n" + json.dumps({**good, "answer": "E"}) + "\n")
    with pytest.raises(PlraError, match=r"mcq\.jsonl:2: field 'answer' must be one of A, B, C, D"):
        evaluate.load_benchmark(tmp_path, "mcq")
    (tmp_path / "qa.jsonl").write_text(json.dumps({"question": "q", "key_points": ["k"]}) + "\n{oops\n")
    with pytest.raises(PlraError, match=r"qa\.jsonl:2: invalid JSON"):
        evaluate.load_benchmark(tmp_path, "qa")


def test_spread_takes_rows_across_the_file():
    rows = [{"i": i} for i in range(10)]
    assert [r["i"] for r in evaluate.spread(rows, 3)] == [0, 3, 6]
    assert evaluate.spread(rows, None) == rows


def test_slurm_runner_is_opencompass_own():
    slurm = LaunchSettings(launcher="slurm", partition="llm")
    assert evaluate.runner_args(slurm) == ["--slurm", "-p", "llm"]  # no --debug: it would run jobs one by one
    assert evaluate.runner_args(slurm, 8, "auto") == ["--slurm", "-p", "llm", "--max-num-workers", "8", "-q", "auto"]
    assert evaluate.runner_args(LaunchSettings()) == ["--debug"]
    assert evaluate.runner_args(LaunchSettings(launcher="pytorch")) == ["--debug"]  # a training launcher: local
    with pytest.raises(PlraError, match="--max-num-workers and --quotatype are for slurm runs: add --slurm"):
        evaluate.runner_args(LaunchSettings(), 8)
    with pytest.raises(PlraError, match="needs a partition: --slurm PARTITION"):
        evaluate.runner_args(LaunchSettings(launcher="slurm"))


def test_eval_dry_run_prints_the_opencompass_command_and_writes_nothing(tiny_model_dir):
    config = str(evaluate.REPO_ROOT / "eval" / "eval_plllm_hf.py")
    workdir = str(evaluate.REPORTS / "<timestamp>" / "opencompass")
    args = ("eval", "--profile", "tiny", "--models", "base", "--rag", "off", "--dry-run", "--json")
    slurm = run_plra(*args, "--slurm", "llm", "--max-num-workers", "4", "--quotatype", "spot")
    assert slurm.returncode == 0, slurm.stderr
    plan = json.loads(slurm.stdout)
    assert plan["argv"] == ["opencompass", config, "-w", workdir, "--slurm", "-p", "llm", "--max-num-workers", "4",
                            "-q", "spot"]  # fmt: skip
    assert json.loads(plan["env"]["PLRA_EVAL_MODELS"]) == [{"abbr": "base", "path": str(tiny_model_dir)}]
    assert plan["env"]["PLRA_EVAL_VARIANTS"] == "norag"
    local = json.loads(run_plra(*args).stdout)
    assert local["argv"] == ["opencompass", config, "-w", workdir, "--debug"]
    from_env = json.loads(run_plra(*args, env={"PLRA_LAUNCHER": "slurm", "PLRA_PARTITION": "gpu"}).stdout)
    assert from_env["argv"][-3:] == ["--slurm", "-p", "gpu"]  # the [launch] settings reach eval too
    assert not (evaluate.REPORTS / "<timestamp>").exists()
    text = run_plra(*args[:-1], "--slurm", "llm")
    assert text.returncode == 0 and text.stdout.splitlines()[-1].endswith(f"-w '{workdir}' --slurm -p llm")


def test_opencompass_accepts_the_slurm_command(tmp_path, tiny_model_dir):
    # OpenCompass's own --dry-run parses the arguments and partitions the tasks, then stops before any srun.
    evaluate.prepare(tmp_path / "data", 2, ["norag"])
    runner = evaluate.runner_args(LaunchSettings(launcher="slurm", partition="llm"), 3, "auto")
    command = evaluate.plan(load_profile("tiny"), ["base"], ["norag"], None, None, tmp_path, runner)
    log = tmp_path / "opencompass.log"
    code = envs.run("eval", [*command["argv"], "--dry-run"], cwd=tmp_path, extra_env=command["env"], log_path=log)
    assert code == 0, log.read_text()[-3000:]
    assert "Partitioned into" in log.read_text()


def _check_summary(summary: dict, models: set[str], variants: set[str]) -> None:
    results = summary["results"]
    assert {r["model"] for r in results} == models and {r["variant"] for r in results} == variants
    assert all(0 <= r["value"] <= 100 for r in results)
    for model in models:
        for variant in variants:
            mcq = summary["table"][model][variant]["mcq"]
            assert mcq["perf_circular"] <= mcq["acc_origin"]  # CircularEval is never easier than one pass
            assert "key_point_recall" in summary["table"][model][variant]["qa"]
            assert "accuracy" in summary["table"][model][variant]["attribution"]


@pytest.mark.slow
def test_opencompass_on_the_tiny_base_model_with_and_without_retrieval():
    result = run_plra("eval", "--models", "base", "--rag", "both", "--limit", "3", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    _check_summary(summary, {"base"}, {"norag", "rag"})
    run_dir = Path(summary["dir"])
    assert json.loads((run_dir / "summary.json").read_text())["results"] == summary["results"]
    assert (run_dir / "summary.png").stat().st_size > 5000 and "| base | rag |" in (run_dir / "summary.md").read_text()
    rag_prompt = json.loads((run_dir / "data" / "rag" / "qa.jsonl").read_text().splitlines()[0])["question"]
    assert "arXiv:" in rag_prompt  # the retrieval variant carries knowledge-base passages
    compared = json.loads(run_plra("eval", "--compare", str(run_dir), str(run_dir), "--json").stdout)
    assert compared and all(row["delta"] == 0 for row in compared)


@pytest.mark.slow
def test_opencompass_through_the_cpu_server(tiny_model_dir):
    port = free_port()
    state = serve.start(load_profile("tiny"), tiny_model_dir, port, log=lambda _m: None)
    try:
        result = run_plra("eval", "--api", state["url"], "--rag", "off", "--limit", "2", "--json")
    finally:
        serve.stop(port)
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["mode"] == "api"
    _check_summary(summary, {"served"}, {"norag"})
    assert "self-judging is weak" in result.stderr
    judged = summary["table"]["served"]["norag"]["qajudge"]  # GenericLLMEvaluator, the served model as judge
    assert judged and all(0 <= v <= 100 for v in judged.values())
