"""The GPU check (tools/gpu_check.sh, plra/toolchain/gpu_check.py): its CPU dry run always, the real run on a GPU."""

import json
import os
import subprocess
import time

import pytest

from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.toolchain import gpu_check, train

SCRIPT = REPO_ROOT / "tools" / "gpu_check.sh"
SEVEN_B_CONFIG = REPO_ROOT / "xtuner_configs" / "internlm2_chat_7b_qlora_plllm_e3.py"


def run_check(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    """tools/gpu_check.sh as a user runs it (its default Python is the checkout's .venv)."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run([str(SCRIPT), *args], capture_output=True, text=True, env=full_env, timeout=timeout)


def test_dry_run_prints_the_plan_with_the_real_shape_and_the_estimate(tmp_path):
    out = tmp_path / "dry.json"
    result = run_check("--dry-run", "--out", str(out))
    assert result.returncode == 0, result.stderr
    shape = train.KNOWN_SHAPES["internlm/internlm2-chat-7b"]
    numbers = (f"hidden {shape.hidden}, layers {shape.layers}, heads {shape.heads}, kv heads {shape.kv_heads}, "
               f"intermediate {shape.intermediate}, vocab {shape.vocab}")  # fmt: skip
    assert numbers == "hidden 4096, layers 32, heads 32, kv heads 8, intermediate 14336, vocab 92544"
    assert numbers in result.stdout
    # The estimate is `plra train --dry-run`'s: the knobs read through mmengine, the shape from the table.
    estimate = train.estimate_memory(train.read_knobs(SEVEN_B_CONFIG), shape)
    assert estimate["total"] <= 8.0
    assert f"estimate (plra train --dry-run): {estimate['total']} GiB" in result.stdout
    assert "LlamaForCausalLM" in result.stdout and "LoRA r=8 alpha=16" in result.stdout
    assert "512 tokens, batch 1" in result.stdout and "budget: 420 s" in result.stdout
    report = json.loads(out.read_text())
    assert report["complete"] and report["estimate_gib"] == estimate
    tiny = report["dry_run"]["tiny"]
    # The LoRA the tiny model trains is exactly what the estimate's formula counts for its shape.
    assert tiny["lora_params"] == train.ModelShape(**tiny["shape"]).lora_params(8)
    assert tiny["decode"]["new_tokens"] == 4
    assert report["dry_run"]["full_config"]["num_key_value_heads"] == 8


def test_without_cuda_the_run_stops_with_one_line(tmp_path):
    out = tmp_path / "report.json"
    # No visible device: what any machine without a GPU sees.
    result = run_check("--out", str(out), env={"CUDA_VISIBLE_DEVICES": ""})
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"gpu_check: error: {gpu_check.NO_CUDA_MESSAGE}"
    assert "CUDA GPU" in gpu_check.NO_CUDA_MESSAGE and "--dry-run" in gpu_check.NO_CUDA_MESSAGE
    assert not out.exists()


@pytest.mark.parametrize(
    "config",
    ["internlm2_chat_7b_qlora_plllm_e3.py", "internlm3_8b_instruct_qlora_plllm_e3.py",
     "llama3_8b_instruct_qlora_plllm_e3.py", "deepseek_v2_lite_chat_qlora_plllm_e3.py"],
)  # fmt: skip
def test_the_config_reader_reads_what_plra_train_reads(config, monkeypatch):
    monkeypatch.delenv("PLRA_MODEL_DIR", raising=False)
    path = REPO_ROOT / "xtuner_configs" / config
    knobs = gpu_check.config_knobs(gpu_check.read_config_settings(path))
    assert knobs == train.read_knobs(path)  # the GPU machine has no mmengine: both readers must agree


def test_internlm3_profile_plans_a_llama_shaped_qlora_step():
    plan = gpu_check.make_plan("internlm3-8b")
    assert gpu_check.describe_shape(plan.shape) == (
        "hidden 4096, layers 48, heads 32, kv heads 2, intermediate 10240, vocab 128512"
    )
    assert plan.lora.targets == list(gpu_check.LLAMA_LINEARS) and (plan.lora.r, plan.lora.alpha) == (8, 16)
    assert plan.estimate_gib["total"] > 8.0  # its 128k-token fp32 embeddings and head (tests/test_train.py)


def test_internlm2_targets_map_onto_the_llama_layers():
    mapped = gpu_check.llama_targets(["wqkv", "wo", "w1", "w2", "w3"])
    assert sorted(mapped) == sorted(gpu_check.LLAMA_LINEARS)
    assert gpu_check.llama_targets(None) == list(gpu_check.LLAMA_LINEARS)  # XTuner's default: every linear layer
    # The MoE profile's targets are a regex over expert names: the check refuses it in one line.
    with pytest.raises(PlraError, match="is a pattern"):
        gpu_check.make_plan("deepseek-v2-lite")


def test_the_budget_stops_a_step_before_it_starts_and_while_it_runs():
    budget = gpu_check.Budget(seconds=5, reserve_s=0)
    stopped_before = r"stopped before 'load 4-bit'.*raise --budget-s"
    with pytest.raises(gpu_check.BudgetExceeded, match=stopped_before), budget.step("load 4-bit", needs_s=60):
        pytest.fail("a step without the time it needs must not start")
    short = gpu_check.Budget(seconds=0.5, reserve_s=0)
    started = time.monotonic()
    with pytest.raises(gpu_check.BudgetExceeded, match="stopped during 'decode fp16'"), short.step("decode fp16", 0.1):
        time.sleep(10)
    assert time.monotonic() - started < 2  # the alarm ended the step at the deadline
    assert "decode fp16" in short.timings


@pytest.mark.gpu
@pytest.mark.slow
def test_gpu_check_measures_qlora_memory_and_decode_speed(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    out = tmp_path / "gpu_check.json"
    result = run_check("--out", str(out), "--work-dir", str(tmp_path), timeout=480)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(out.read_text())
    assert report["complete"] and report["gpu"] and report["versions"]["bitsandbytes"]
    step, decode = report["train_step"], report["decode"]
    assert 0 < step["peak_allocated_gib"] <= step["peak_reserved_gib"]
    assert step["peak_allocated_gib"] <= report["estimate_gib"]["total"]  # the estimate must not undercount
    assert step["trainable_params"] == train.KNOWN_SHAPES["internlm/internlm2-chat-7b"].lora_params(8)
    assert decode["fp16"]["tokens_per_s"] > 0 and decode["4bit"]["tokens_per_s"] > 0
    assert decode["fp16"]["new_tokens"] == decode["4bit"]["new_tokens"] == 128
    assert "max_memory_allocated" in result.stdout and "tokens/s" in result.stdout
