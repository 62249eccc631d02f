"""The app as OpenXLab deploys it: root app.py, a lean requirements.txt, the model chosen by environment."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from plra.paths import REPO_ROOT
from plra.toolchain.envs import ENVS, _built_hash, requirements_hash


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


tool = _load(REPO_ROOT / "tools" / "app_requirements.py", "app_requirements")
root_app = _load(REPO_ROOT / "app.py", "root_app")


@pytest.fixture(scope="module")
def probe():
    return tool.probe_app()


def test_the_main_env_pins_moved_to_requirements_main():
    assert ENVS["main"].requirements == "requirements/main.txt"
    main = tool.read_pins(REPO_ROOT / "requirements" / "main.txt")
    assert {"torch", "xtuner", "deepspeed", "bitsandbytes"} <= main.keys()
    # The main env was built from the lock of this file: `make setup` sees it up to date.
    assert requirements_hash(ENVS["main"]) == _built_hash(REPO_ROOT / ".venv")


def test_the_app_requirements_hold_no_gpu_stack_and_only_main_pins():
    pins = tool.read_pins(REPO_ROOT / "requirements.txt")
    for name in ("torch", "xtuner", "deepspeed", "bitsandbytes", "lmdeploy", "opencompass", "transformers"):
        assert name not in pins
    assert not [name for name in pins if tool.is_heavy(name)]
    main = tool.read_pins(REPO_ROOT / "requirements" / "main.txt")
    assert all(main.get(name) == line for name, line in pins.items())  # same exact versions as the tested env
    assert all("==" in line for line in pins.values())


def test_the_app_imports_no_torch_without_an_in_process_model(probe):
    for heavy in ("torch", "transformers", "xtuner", "lmdeploy", "deepspeed", "bitsandbytes"):
        assert heavy not in probe["modules"]
    answers = probe["answers"]
    assert not [key for key, text in answers.items() if not text.strip() or text.startswith("⚠️")]
    assert "[arXiv:2304.11406]" in answers["endpoint: Ask"] or "LaMP" in answers["endpoint: Ask"]


def test_every_distribution_the_app_imports_is_pinned_with_its_dependencies(probe):
    pins = tool.read_pins(REPO_ROOT / "requirements.txt")
    imported = tool.distributions_of(probe["modules"])
    assert {"gradio", "openai", "bm25s", "jieba", "pydantic", "pyyaml", "pypdf"} <= imported
    assert sorted(imported - pins.keys()) == []
    # `pip install -r requirements.txt` then installs nothing unpinned, and every pin is needed.
    assert sorted(tool.closure(set(pins)) - pins.keys()) == []
    assert sorted(pins.keys() - tool.closure(imported)) == []


def test_app_model_is_fetched_and_used_in_process(tmp_path, monkeypatch):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    environ = {"PLRA_APP_MODEL": str(folder)}
    assert root_app.fetch_app_model(environ) == folder and environ["PLRA_MODEL_PATH"] == str(folder)
    assert root_app.fetch_app_model({}) is None

    fetched = []

    def snapshot_download(repo_id, local_dir):
        fetched.append(repo_id)
        Path(local_dir).mkdir(parents=True)
        (Path(local_dir) / "config.json").write_text("{}")

    monkeypatch.setattr("huggingface_hub.snapshot_download", snapshot_download)
    monkeypatch.setattr(root_app, "MODELS_DIR", tmp_path / "models")
    environ = {"PLRA_APP_MODEL": "internlm/internlm2-chat-1_8b"}
    assert root_app.fetch_app_model(environ) == tmp_path / "models" / "internlm2-chat-1_8b"
    assert fetched == ["internlm/internlm2-chat-1_8b"]
    assert root_app.fetch_app_model(environ) == tmp_path / "models" / "internlm2-chat-1_8b" and len(fetched) == 1


def test_app_model_without_torch_stops_with_one_clear_line(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "torch" else real(name, *a))
    with pytest.raises(SystemExit, match=r"needs torch: add their pins from requirements/main\.txt"):
        root_app.fetch_app_model({"PLRA_APP_MODEL": "internlm/internlm2-chat-1_8b"})
