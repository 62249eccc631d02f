import json
import os
import subprocess
import sys
import time

import pytest

from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.settings import load_profile
from plra.toolchain.pipeline import SMOKE_QUESTIONS, STAGES, Pipeline, markdown
from tests.conftest import free_port, run_plra
from tests.openai_fixture import ScriptedOpenAI

SMALL = {"PLRA_CALIB_SAMPLES": "16", "PLRA_CALIB_SEQLEN": "128"}


@pytest.mark.parametrize("profile", ["tiny", "internlm2-1.8b", "internlm2-7b"])
def test_dry_run_prints_every_stage_for_every_profile(profile):
    result = run_plra("pipeline", "--profile", profile, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    assert [s["stage"] for s in steps] == [*STAGES, "stop"]
    commands = {s["stage"]: "\n".join(s["commands"]) for s in steps}
    assert "plra.toolchain.workers.xtuner_entry train" in commands["train"]
    if profile == "tiny":  # pretraining first, then SFT from its merged model
        pretrain = commands["train"].index("_pretrain_e1.py")
        sft_base = "PLRA_MODEL_DIR=" + str(REPO_ROOT / "work_dirs" / "tiny" / "pretrain" / "latest" / "merged")
        assert "--recipe pretrain,sft" in commands["train"] and pretrain < commands["train"].index(sft_base)
    else:
        assert "_pretrain_e1.py" not in commands["train"] and "--recipe sft " in commands["train"]
    if profile == "tiny":
        assert "transformers serve" in commands["serve"] and "eval_plllm_hf.py" in commands["eval"]
    else:
        assert "--backend turbomind --model-format awq --quant-policy 8" in commands["serve"]
        assert "eval_plllm_api.py" in commands["eval"] and "--api http://127.0.0.1:23333/v1" in commands["eval"]
    if profile == "internlm2-7b":
        train = next(s for s in steps if s["stage"] == "train")
        assert train["memory_gib"]["total"] <= 8.0
    assert commands["stop"] == f"plra serve --profile {profile} --stop"


def stage_argv(pipeline: Pipeline, name: str) -> list[str]:
    return next(stage.argv() for stage in pipeline.stages() if stage.name == name)


def test_train_and_eval_argv_follow_the_recipe_budget_and_max_iters(isolated_config):
    tiny = load_profile("tiny")
    base = ["plra", "train", "--profile", "tiny", "--recipe", "pretrain,sft"]
    default = Pipeline(tiny, None, None, set())
    assert stage_argv(default, "train") == [*base, "--json"]
    assert "--rotations" not in stage_argv(default, "eval")
    capped = Pipeline(tiny, 2, 6, set())  # what CI runs: --max-iters caps every stage of the one train call
    assert stage_argv(capped, "train") == [*base, "--max-iters", "6", "--json"]
    long = Pipeline(tiny, None, None, set(), budget="long")
    assert stage_argv(long, "train") == [*base, "--iters-scale", "4", "--json"]
    assert stage_argv(long, "eval")[-4:] == ["--rotations", "4", "--models", "base,tuned"]
    long_capped = Pipeline(tiny, None, 6, set(), budget="long")
    assert stage_argv(long_capped, "train") == [*base, "--max-iters", "6", "--iters-scale", "4", "--json"]
    # Each of these trains something else, so none may reuse another's cached result.
    hashes = {p._train_inputs() for p in (default, capped, long, long_capped)}
    assert len(hashes) == 4
    assert default._train_inputs() != Pipeline(tiny.model_copy(update={"train_recipe": ["sft"]}), None, None,
                                               set())._train_inputs()  # fmt: skip


def test_a_profile_without_a_recipe_trains_sft_only(isolated_config):
    profile = load_profile("internlm2-7b")
    assert profile.train_recipe == ["sft"]
    argv = stage_argv(Pipeline(profile, None, None, set()), "train")
    assert argv[argv.index("--recipe") + 1] == "sft"


def test_the_recipe_is_checked_where_it_is_set(isolated_config, monkeypatch):
    monkeypatch.setenv("PLRA_TRAIN_RECIPE", "pretrain, sft")
    assert load_profile("internlm2-7b").train_recipe == ["pretrain", "sft"]
    monkeypatch.setenv("PLRA_TRAIN_RECIPE", "sft,pretrain")
    with pytest.raises(PlraError, match="in the order pretrain, sft, dpo"):
        load_profile("tiny")
    monkeypatch.setenv("PLRA_TRAIN_RECIPE", "pretrain,dpo")
    with pytest.raises(PlraError, match="must hold sft"):
        load_profile("tiny")
    monkeypatch.setenv("PLRA_TRAIN_RECIPE", "pretrain,sft,dpo")  # DPO from the SFT model; SFT is still served
    assert load_profile("tiny").train_recipe == ["pretrain", "sft", "dpo"]


def test_an_ablation_trains_dpo_too_and_scores_every_stage_against_the_base(isolated_config):
    tiny = load_profile("tiny")
    plain, ablation = Pipeline(tiny, None, None, set()), Pipeline(tiny, None, None, set(), ablation=True)
    train = stage_argv(ablation, "train")
    assert train[train.index("--recipe") + 1] == "pretrain,sft,dpo"
    evaluation = stage_argv(ablation, "eval")
    assert evaluation[evaluation.index("--models") + 1] == "base,pretrain,tuned,dpo"
    assert "--rag" in evaluation and evaluation[evaluation.index("--rag") + 1] == "both"
    plain_eval = stage_argv(plain, "eval")
    assert plain_eval[plain_eval.index("--models") + 1] == "base,tuned"
    assert plain._train_inputs() != ablation._train_inputs()  # the ablation's training is not the plain run's
    gpu = stage_argv(Pipeline(load_profile("internlm2-7b"), None, None, set(), ablation=True), "eval")
    assert "--api" not in gpu and gpu[gpu.index("--models") + 1] == "base,tuned,dpo"


def test_an_unknown_budget_is_refused():
    with pytest.raises(PlraError, match="--budget 'short': choose one of default, long"):
        Pipeline(load_profile("tiny"), None, None, set(), budget="short")
    result = run_plra("pipeline", "--budget", "short", "--dry-run")
    assert result.returncode != 0 and "choose one of default, long" in result.stderr


def test_the_report_shows_each_training_stage():
    runs = [
        {"stage": "pretrain", "base_model": str(REPO_ROOT / "models" / "m"), "iterations": 60, "first_loss": 3.5,
         "last_loss": 2.9, "duration_s": 200.0},
        {"stage": "sft", "base_model": str(REPO_ROOT / "work_dirs" / "tiny" / "pretrain" / "x" / "merged"),
         "iterations": 200, "first_loss": 3.1, "last_loss": 2.2, "duration_s": 650.0},
    ]  # fmt: skip
    stage = {"status": "ok", "duration_s": 860.0, "recipe": "pretrain -> sft", "runs": runs, "plot": "train_loss.png"}
    report = {"profile": "tiny", "started": "now", "duration_s": 1.0, "status": "ok", "budget": "long",
              "stages": {"train": stage}}  # fmt: skip
    text = markdown(report)
    assert "## Training (pretrain -> sft, budget `long`)" in text
    assert "| pretrain | `models/m` | 60 | 3.500 | 2.900 | 200.0 |" in text
    assert "| sft | `work_dirs/tiny/pretrain/x/merged` | 200 | 3.100 | 2.200 | 650.0 |" in text


def test_unknown_stage_to_force_is_refused():
    result = run_plra("pipeline", "--force", "deploy", "--dry-run")
    assert result.returncode != 0 and "stages are setup, model, kb" in result.stderr


@pytest.mark.slow
def test_tiny_pipeline_end_to_end_then_resumes():
    port = free_port()
    env = {**SMALL, "PLRA_SERVE_PORT": str(port)}
    result = run_plra("pipeline", "--limit", "2", "--max-iters", "6", "--force", "all", env=env, timeout=1800)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    latest = REPO_ROOT / "reports" / "pipeline" / "latest"
    report = json.loads((latest / "report.json").read_text())
    assert report["status"] == "ok" and report["duration_s"] > 0
    assert {name: stage["status"] for name, stage in report["stages"].items()} == {name: "ok" for name in STAGES}
    train, quant = report["stages"]["train"], report["stages"]["quantize"]
    assert train["first_loss"] > 0 and train["last_loss"] > 0
    assert quant["logits_cosine"] >= 0.95
    assert report["stages"]["eval"]["table"] and (latest / "eval.png").exists() and (latest / "train_loss.png").exists()
    evaluation = report["stages"]["eval"]
    assert {r["dataset"] for r in evaluation["table"]} >= {"mcq", "attribution", "qa", "heldout"}
    assert all(r["low"] <= r["value"] <= r["high"] for r in evaluation["table"])  # every score has its interval
    assert {(d["model"], d["dataset"]) for d in evaluation["differences"]} >= {("tuned", "mcq"), ("tuned", "heldout")}
    assert "paired by question" in (latest / "report.md").read_text()
    examples = report["stages"]["agent"]["examples"]
    assert len(examples) == 2 and all(e["answer"].strip() for e in examples)
    assert "## Evaluation" in (latest / "report.md").read_text()
    assert not (REPO_ROOT / ".plra" / "serve" / f"{port}.json").exists()  # the server was stopped
    again = run_plra("pipeline", "--limit", "2", "--max-iters", "6", env=env, timeout=1800)
    assert again.returncode == 0, again.stdout[-3000:]
    second = json.loads((REPO_ROOT / "reports" / "pipeline" / "latest" / "report.json").read_text())
    assert second["stages"]["train"]["status"] == "skipped" and second["stages"]["data"]["status"] == "skipped"
    assert second["stages"]["serve"]["status"] == "ok"  # the server always starts fresh


def slow_unless_short(seconds: float, max_tokens: int, text: str):
    """A model that takes `seconds` to answer any request for more than `max_tokens` new tokens."""

    def reply(request: dict) -> str:
        if request["max_tokens"] > max_tokens:
            time.sleep(seconds)
        return text

    return reply


def run_smoke(url: str, env: dict[str, str]):
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **env}
    argv = [sys.executable, "-m", "plra.toolchain.examples", url, "tiny", SMOKE_QUESTIONS[0]]
    done = subprocess.run(argv, capture_output=True, text=True, env=full_env, cwd=REPO_ROOT, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


ANSWER = "LaMP benchmarks personalization [arXiv:2304.11406]."
# A one-second allowance for a 40-token answer.
TIGHT = {"PLRA_CLIENT_TIMEOUT_S": "1", "PLRA_ANSWER_MAX_TOKENS": "40", "PLRA_CLIENT_SECONDS_PER_TOKEN": "0"}


def report_of(result: dict) -> str:
    """The pipeline report's markdown for the smoke stage's result."""
    stage = {"status": "ok", "duration_s": 1.0, "examples": result["examples"], "agent": result["agent"]}
    report = {"profile": "tiny", "started": "now", "duration_s": 1.0, "status": "ok", "stages": {"agent": stage}}
    return markdown(report)


def test_a_slow_answer_is_retried_once_with_half_the_budget(isolated_config):
    with ScriptedOpenAI([slow_unless_short(2.5, 20, ANSWER)] * 20) as server:
        result = run_smoke(server.url, TIGHT)
    example = result["examples"][0]
    assert example["max_tokens"] == 20 and "did not answer within 1 s" in example["attempts"][0]["error"]
    assert example["citations"] == ["2304.11406"]
    assert result["agent"]["max_tokens"] == 20  # the agent's turns are capped by the same budget
    requested = {r["max_tokens"] for r in server.requests}
    assert requested <= {40, 20}, requested  # Lagent's default of 512 new tokens never reaches the server
    assert "_(answered on a retry with 20 new tokens: " in report_of(result)


def test_the_timeout_grows_with_the_token_budget(isolated_config):
    # 1 s + 0.1 s x 40 tokens = 5 s: the same slow model now answers at the first try.
    with ScriptedOpenAI([slow_unless_short(2.5, 20, ANSWER)] * 20) as server:
        result = run_smoke(server.url, TIGHT | {"PLRA_CLIENT_SECONDS_PER_TOKEN": "0.1"})
    example = result["examples"][0]
    assert example["max_tokens"] == 40 and example["attempts"] == []
    text = report_of(result)
    assert "LaMP benchmarks personalization" in text and "retry" not in text and "**No answer**" not in text


def test_an_answer_that_never_comes_is_reported_not_fatal(isolated_config):
    with ScriptedOpenAI([slow_unless_short(2.5, 0, ANSWER)] * 20) as server:
        result = run_smoke(server.url, TIGHT)
    example = result["examples"][0]
    assert [a["max_tokens"] for a in example["attempts"]] == [40, 20] and "within 1 s" in example["error"]
    text = report_of(result)
    assert "**No answer** (tried with 40, 20 new tokens)" in text and text.count("**No answer**") == 2
