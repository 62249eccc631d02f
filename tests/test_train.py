import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from plra import train
from plra.data import build as data_build
from plra.envs import REPO_ROOT
from plra.model import chat
from plra.settings import load_knowledge, load_profile
from tests.conftest import run_plra

CONFIGS = sorted((REPO_ROOT / "xtuner_configs").glob("*.py"))
EXPECTED = {"_e3.py": "sft.jsonl", "_pretrain_e1.py": "pretrain.jsonl", "_dpo_e1.py": "dpo.jsonl"}


@pytest.fixture(scope="module")
def training_data():
    settings = load_knowledge()
    data_build.build(settings, data_build.default_out_dir(settings), log=lambda _m: None)
    return data_build.default_out_dir(settings)


def test_the_shipped_configs_exist():
    names = {c.name for c in CONFIGS}
    assert {
        "internlm2_chat_7b_qlora_plllm_e3.py",
        "internlm2_chat_1_8b_qlora_plllm_e3.py",
        "internlm2_7b_qlora_plllm_pretrain_e1.py",
        "internlm2_chat_7b_qlora_plllm_dpo_e1.py",
        "llama3_8b_instruct_qlora_plllm_e3.py",
        "smollm2_135m_instruct_lora_plllm_e3.py",
    } <= names


@pytest.mark.parametrize("config", CONFIGS, ids=lambda p: p.name)
def test_config_loads_and_reads_what_data_build_writes(config, training_data, monkeypatch):
    from mmengine.config import Config

    for var in ("PLRA_MODEL_DIR", "PLRA_DATA_DIR", "PLRA_MAX_ITERS"):
        monkeypatch.delenv(var, raising=False)
    cfg = Config.fromfile(str(config))
    expected = next(v for k, v in EXPECTED.items() if config.name.endswith(k))
    data_path = Path(cfg.data_path)
    assert not data_path.is_absolute() and data_path.name == expected  # repo-relative, no machine paths
    assert (REPO_ROOT / data_path).exists()
    assert (training_data / expected).samefile(REPO_ROOT / data_path)
    if "qlora" in config.name:
        quant = cfg.model["llm"]["quantization_config"]
        assert quant["load_in_4bit"] and quant["bnb_4bit_quant_type"] == "nf4" and quant["bnb_4bit_use_double_quant"]
        assert len(cfg.model["lora"]["target_modules"]) >= 5  # every linear layer


def test_7b_qlora_dry_run_fits_8_gib():
    result = run_plra("train", "--profile", "internlm2-7b", "--dry-run", "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)  # stdout holds the JSON alone
    assert plan["memory_gib"]["total"] <= 8.0
    assert plan["knobs"]["quantized_4bit"] and plan["knobs"]["batch_size"] == 1
    train_argv = plan["commands"][0]["argv"]
    assert train_argv[:3] == ["python", "-m", "plra.workers.xtuner_entry"] and train_argv[3] == "train"
    assert [c["step"] for c in plan["commands"]] == ["train", "pth_to_hf", "merge"]


def test_multi_gpu_uses_torchrun_and_deepspeed():
    plan = json.loads(run_plra("train", "--profile", "internlm2-7b", "--gpus", "4", "--dry-run", "--json").stdout)
    argv = plan["commands"][0]["argv"]
    assert argv[0] == "torchrun" and "--nproc_per_node=4" in argv
    assert argv[argv.index("--deepspeed") + 1] == "deepspeed_zero2" and "--launcher" in argv


def test_memory_estimate_grows_with_length_rank_and_vocab():
    shape = train.KNOWN_SHAPES["internlm/internlm2-chat-7b"]
    knobs = train.TrainKnobs("m", True, True, 8, 512, 1, False, 2)
    base = train.estimate_memory(knobs, shape)["total"]
    assert train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "max_length": 2048}), shape)["total"] > base
    assert train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "lora_r": 64}), shape)["total"] > base
    llama = train.estimate_memory(knobs, train.KNOWN_SHAPES["meta-llama/Meta-Llama-3-8B-Instruct"])["total"]
    assert llama > base
    full = train.estimate_memory(knobs.__class__(**{**knobs.__dict__, "quantized_4bit": False}), shape)["total"]
    assert full > 2 * base  # fp16 weights take four times the space of 4-bit ones


def test_estimate_uses_local_config_json(tiny_model_dir):
    shape = train.shape_from_config_json(tiny_model_dir / "config.json")
    assert shape == train.KNOWN_SHAPES["models/smollm2-135m-instruct"]
    assert 130e6 < shape.linear_params + shape.vocab * shape.hidden < 140e6  # SmolLM2-135M


def answer_loss(model_dir: Path, conversations: list[dict]) -> float:
    """Mean teacher-forced loss of the assistant turns, through the model's own chat template."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32).eval()
    losses = []
    for row in conversations:
        messages = row["messages"][:3]
        prompt = tokenizer.apply_chat_template(messages[:2], add_generation_prompt=True, return_tensors="pt")
        full = tokenizer.apply_chat_template(messages, return_tensors="pt")[:, :384]
        labels = full.clone()
        labels[:, : prompt.shape[1]] = -100
        with torch.no_grad():
            losses.append(model(full, labels=labels).loss.item())
    return sum(losses) / len(losses)


@pytest.mark.slow
def test_tiny_sft_learns_merges_and_answers(training_data, tiny_model_dir, tmp_path):
    manifest = train.run(load_profile("tiny"), "sft", max_iters=24, run_dir=tmp_path / "run", log=lambda _m: None)
    assert len(manifest["losses"]) >= 2
    assert manifest["last_loss"] < manifest["first_loss"]
    merged = Path(manifest["merged"])
    conversations = [json.loads(line) for line in (training_data / "sft.jsonl").read_text().splitlines()[:12]]
    assert answer_loss(merged, conversations) < answer_loss(tiny_model_dir, conversations)
    tuned = load_file(merged / "model.safetensors")
    base = load_file(tiny_model_dir / "model.safetensors")
    key = "model.layers.0.self_attn.q_proj.weight"
    assert not torch.allclose(tuned[key].float(), base[key].float())
    assert torch.equal(tuned["model.norm.weight"].float(), base["model.norm.weight"].float())  # LoRA left it alone
    assert chat(merged, "What is LaMP?", max_new_tokens=16).strip()
    assert (tmp_path / "latest").resolve() == (tmp_path / "run").resolve()
    assert json.loads((tmp_path / "run" / "manifest.json").read_text())["data_hashes"]


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["dpo", "pretrain"])
def test_tiny_dpo_and_pretrain_run_two_iterations(stage, training_data, tmp_path):
    manifest = train.run(load_profile("tiny"), stage, max_iters=2, run_dir=tmp_path / stage, log=lambda _m: None)
    assert (Path(manifest["merged"]) / "config.json").exists()
    assert (tmp_path / stage / "xtuner" / "iter_2.pth").exists()
