import json

import pytest

from plra.envs import REPO_ROOT
from plra.pipeline import STAGES
from tests.conftest import free_port, run_plra

SMALL = {"PLRA_CALIB_SAMPLES": "16", "PLRA_CALIB_SEQLEN": "128"}


@pytest.mark.parametrize("profile", ["tiny", "internlm2-1.8b", "internlm2-7b"])
def test_dry_run_prints_every_stage_for_every_profile(profile):
    result = run_plra("pipeline", "--profile", profile, "--dry-run", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    steps = json.loads(result.stdout.strip().splitlines()[-1])
    assert [s["stage"] for s in steps] == [*STAGES, "stop"]
    commands = {s["stage"]: "\n".join(s["commands"]) for s in steps}
    assert "plra.workers.xtuner_entry train" in commands["train"]
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
