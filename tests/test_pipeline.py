import json
import os
import subprocess
import sys
import time

import pytest

from plra.paths import REPO_ROOT
from plra.toolchain.pipeline import SMOKE_QUESTIONS, STAGES, markdown
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
    if profile == "tiny":
        assert "transformers serve" in commands["serve"] and "eval_plllm_hf.py" in commands["eval"]
    else:
        assert "--backend turbomind --model-format awq --quant-policy 8" in commands["serve"]
        assert "eval_plllm_api.py" in commands["eval"] and "--api http://127.0.0.1:23333/v1" in commands["eval"]
    if profile == "internlm2-7b":
        train = next(s for s in steps if s["stage"] == "train")
        assert train["memory_gib"]["total"] <= 8.0
    assert commands["stop"] == f"plra serve --profile {profile} --stop"


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
