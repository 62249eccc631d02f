import json

from plra.toolchain.model import MANIFEST, _checksums, chat, verify
from tests.conftest import run_plra


def test_embedded_model_answers_through_its_chat_template(tiny_model_dir):
    config = json.loads((tiny_model_dir / "tokenizer_config.json").read_text())
    assert "<|im_start|>" in config["chat_template"]  # SmolLM2's own ChatML template survived conversion
    assert config["model_input_names"] == ["input_ids", "attention_mask"]
    answer = chat(tiny_model_dir, "What is a user profile in a recommender system?", max_new_tokens=24)
    assert answer.strip() and "<|im_start|>" not in answer


def test_embedded_model_checksums_match(tiny_model_dir):
    assert verify(tiny_model_dir)


def test_verify_detects_a_changed_file(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / MANIFEST).write_text(json.dumps({"files": _checksums(tmp_path)}))
    assert verify(tmp_path)
    (tmp_path / "config.json").write_text('{"hidden_size": 1}')
    assert not verify(tmp_path)
    (tmp_path / MANIFEST).unlink()
    assert not verify(tmp_path)


def test_gpu_profile_offline_is_one_clear_line(isolated_config, tmp_path):
    result = run_plra("model", "fetch", "--profile", "internlm2-7b", "--no-check", env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "internlm/internlm2-chat-7b" in lines[0] and "PLRA_MODEL_PATH" in lines[0] and "--model-path" in lines[0]


def test_model_path_without_weights_is_refused(isolated_config, tmp_path):
    result = run_plra("model", "fetch", "--profile", "internlm2-7b", "--model-path", str(tmp_path), "--no-check")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        f"error: --model-path / PLRA_MODEL_PATH {tmp_path} holds no config.json: not a HF model"
    ]


def test_model_path_pointing_at_local_weights_is_used(isolated_config, tiny_model_dir):
    result = run_plra("model", "fetch", "--profile", "internlm2-7b", "--model-path", str(tiny_model_dir), "--no-check")
    assert result.returncode == 0, result.stderr
    assert f"model ready: {tiny_model_dir}" in result.stdout
