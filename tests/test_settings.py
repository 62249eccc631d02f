from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.settings import available_profiles, load_knowledge, load_launch, load_profile
from tests.conftest import run_plra


def test_profiles_shipped():
    assert available_profiles() == [
        "deepseek-v2-lite", "internlm2-1.8b", "internlm2-7b", "internlm3-8b", "llama3-8b", "tiny"
    ]  # fmt: skip


def test_profile_defaults_come_from_the_profile_file(isolated_config):
    tiny = load_profile("tiny")
    seven = load_profile("internlm2-7b")
    assert tiny.is_embedded and tiny.device == "cpu" and tiny.quant_group_size == 64
    assert seven.base_model == "internlm/internlm2-chat-7b"
    assert seven.serve_engine == "turbomind" and seven.cache_max_entry_count == 0.4 and seven.train_method == "qlora"
    assert seven.kv_quant_policy is None  # unset in the profile: deploy/turbomind.toml decides (tests/test_deploy.py)


def test_precedence_flag_over_env_over_file_over_profile(isolated_config, monkeypatch):
    assert load_profile("tiny").serve_port == 23333  # the profile's default
    isolated_config.write_text("[model]\nserve_port = 24000\n")
    assert load_profile("tiny").serve_port == 24000  # the file beats the profile
    monkeypatch.setenv("PLRA_SERVE_PORT", "25000")
    assert load_profile("tiny").serve_port == 25000  # the env var beats the file
    assert load_profile("tiny", {"serve_port": 26000}).serve_port == 26000  # the flag beats all
    assert load_profile("tiny", {"serve_port": None}).serve_port == 25000  # an unset flag does not


def test_per_profile_section_and_profile_choice_from_file(isolated_config, monkeypatch):
    isolated_config.write_text(
        'profile = "internlm2-7b"\n[model]\ntp = 2\n[model.internlm2-7b]\nmodel_path = "/data/ilm7b"\n'
    )
    settings = load_profile()
    assert settings.name == "internlm2-7b" and settings.tp == 2 and settings.model_path == Path("/data/ilm7b")
    assert load_profile("tiny").model_path is None  # the per-profile table applies to its profile only
    monkeypatch.setenv("PLRA_PROFILE", "internlm2-1.8b")
    assert load_profile().name == "internlm2-1.8b"


def test_knowledge_settings_arxiv_url_alias(isolated_config, monkeypatch):
    assert load_knowledge().arxiv_api_url.startswith("https://export.arxiv.org")
    monkeypatch.setenv("ARXIV_API_URL", "http://127.0.0.1:9/api/query")
    assert load_knowledge().arxiv_api_url == "http://127.0.0.1:9/api/query"


def test_launch_settings_precedence_and_xtuner_variable_names(isolated_config, monkeypatch):
    for var in ("NPROC_PER_NODE", "NNODES", "NODE_RANK", "ADDR", "MASTER_PORT"):
        monkeypatch.delenv(var, raising=False)
    assert load_launch().nnodes == 1 and load_launch().master_port == 29500
    isolated_config.write_text('[launch]\nnnodes = 2\nlauncher = "slurm"\npartition = "llm"\n')
    assert (load_launch().nnodes, load_launch().partition) == (2, "llm")
    monkeypatch.setenv("NNODES", "3")  # the name `xtuner train` reads
    monkeypatch.setenv("PORT", "7860")  # a web host's port for the app is not the rendezvous port
    assert load_launch().nnodes == 3 and load_launch().master_port == 29500
    monkeypatch.setenv("MASTER_PORT", "29601")
    assert load_launch().master_port == 29601
    monkeypatch.setenv("PLRA_NNODES", "4")  # plra's own name comes first
    assert load_launch().nnodes == 4
    assert load_launch({"nnodes": 5, "partition": None}).nnodes == 5 and load_launch().partition == "llm"
    monkeypatch.setenv("NODE_RANK", "-1")
    with pytest.raises(PlraError, match="node_rank"):
        load_launch()


def test_bad_value_names_the_setting(isolated_config):
    isolated_config.write_text('[model]\nserve_port = "many"\n')
    with pytest.raises(PlraError, match="serve_port"):
        load_profile("tiny")
    isolated_config.write_text("[model\n")
    with pytest.raises(PlraError, match=r"plra\.toml: invalid TOML"):
        load_profile("tiny")


def test_unknown_profile_is_one_clear_line(isolated_config):
    result = run_plra("model", "fetch", "--profile", "gpt-9")
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    choices = "deepseek-v2-lite, internlm2-1.8b, internlm2-7b, internlm3-8b, llama3-8b, tiny"
    assert lines == [f"error: unknown profile 'gpt-9': choose one of {choices}"]
