import json
import os
import subprocess
import time
import tomllib
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.llm import LLMClient
from plra.settings import load_profile
from plra.toolchain import serve
from tests.conftest import free_port, run_plra

# Tests name the GPUs they plan on, so a plan is the same on a CPU box, a 1-GPU box and an 8-GPU box.
EIGHT_GPUS = {"CUDA_VISIBLE_DEVICES": "0,1,2,3,4,5,6,7"}
DEPLOY = serve.REPO_ROOT / "deploy"


def dry(*args: str, env: dict[str, str] | None = None) -> list[dict]:
    result = run_plra("serve", "--dry-run", "--json", *args, env={**EIGHT_GPUS, **(env or {})})
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def run_script(script: str, *args: str, env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess:
    """An entry script of deploy/ as a user runs it: from another folder, with the main env on PATH."""
    path = f"{serve.REPO_ROOT / '.venv' / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}"
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", "PATH": path, **env}
    return subprocess.run([str(DEPLOY / script), *args], capture_output=True, text=True, env=full_env, cwd=cwd,
                          timeout=120)  # fmt: skip


def test_turbomind_argv_for_the_gpu_profiles():
    gpu_profiles = (("internlm2-7b", "0.4", "32"), ("internlm2-1.8b", "0.5", "64"), ("internlm3-8b", "0.5", "32"))
    for profile, cache, batch in gpu_profiles:
        [proc] = dry("--profile", profile)
        model = proc["argv"][3]
        assert model.endswith("-awq-w4a16")
        assert proc["argv"] == [
            "lmdeploy",
            "serve",
            "api_server",
            model,
            "--server-name",
            "0.0.0.0",
            "--server-port",
            "23333",
            "--backend",
            "turbomind",
            "--model-format",
            "awq",
            "--quant-policy",
            "8",
            "--cache-max-entry-count",
            cache,
            "--max-batch-size",
            batch,
            "--session-len",
            "8192",
            "--tp",
            "1",
        ]
        assert proc["env"] == {}  # one server keeps the GPUs its caller gives it


def test_tp_replicas_and_adapter_options():
    [tp] = dry("--profile", "internlm2-7b", "--tp", "2", "--port", "24000")
    assert tp["argv"][tp["argv"].index("--tp") + 1] == "2" and "24000" in tp["argv"]
    proxy, *servers = dry("--profile", "internlm2-7b", "--replicas", "3", "--port", "24000")
    assert proxy["argv"][:3] == ["lmdeploy", "serve", "proxy"] and proxy["port"] == 24000
    assert flag(proxy["argv"], "--routing-strategy") == "min_expected_latency" and proxy["env"] == {}
    assert [s["port"] for s in servers] == [24001, 24002, 24003]
    assert all(s["argv"][-2:] == ["--proxy-url", "http://127.0.0.1:24000"] for s in servers)
    [lora] = dry("--profile", "internlm2-7b", "--adapter", "plllm=work_dirs/internlm2-7b/sft/latest/adapter")
    argv = lora["argv"]
    assert argv[argv.index("--backend") + 1] == "pytorch"
    assert argv[argv.index("--adapters") + 1] == "plllm=work_dirs/internlm2-7b/sft/latest/adapter"


def test_deploy_file_values_reach_the_argv_and_the_profile_overrides_them():
    engine = tomllib.loads((DEPLOY / "turbomind.toml").read_text())
    assert engine["model_format"] == "awq" and engine["quant_policy"] == 8  # W4A16 + KV int8 live in the file
    [small] = dry("--profile", "internlm2-1.8b")  # its profile sets max_batch_size only
    argv = small["argv"]
    assert flag(argv, "--model-format") == "awq" and flag(argv, "--quant-policy") == "8"
    for key in ("cache_max_entry_count", "session_len", "tp"):
        assert flag(argv, "--" + key.replace("_", "-")) == str(engine[key]), key
    assert flag(argv, "--max-batch-size") == "64" != str(engine["max_batch_size"])  # the profile beats the file
    [seven] = dry("--profile", "internlm2-7b")
    assert flag(seven["argv"], "--cache-max-entry-count") == "0.4" != str(engine["cache_max_entry_count"])
    [deepseek] = dry("--profile", "deepseek-v2-lite")  # MLA: an fp16 KV cache on the PyTorch engine
    assert flag(deepseek["argv"], "--backend") == "pytorch" and flag(deepseek["argv"], "--quant-policy") == "0"
    assert "--model-format" not in deepseek["argv"]  # the merged fp16 model, no AWQ copy


def test_engine_precedence_flag_env_plra_toml_profile_deploy_file(tmp_path):
    config = tmp_path / "plra.toml"
    config.write_text("[model]\nsession_len = 4096\ntp = 2\n")
    env = {"PLRA_CONFIG": str(config), "PLRA_MAX_BATCH_SIZE": "48"}
    [server] = dry("--profile", "internlm2-1.8b", env=env)
    assert flag(server["argv"], "--session-len") == "4096"  # plra.toml beats the deploy file
    assert flag(server["argv"], "--max-batch-size") == "48"  # PLRA_* beats the profile's 64
    assert flag(server["argv"], "--tp") == "2"
    [flagged] = dry("--profile", "internlm2-1.8b", "--tp", "4", env=env)
    assert flag(flagged["argv"], "--tp") == "4"  # the flag beats everything


def test_engine_config_is_read_from_the_file_and_validated(tmp_path):
    engine = tmp_path / "turbomind.toml"
    text = (DEPLOY / "turbomind.toml").read_text()
    engine.write_text(text.replace("quant_policy = 8", "quant_policy = 4").replace("tp = 1", "tp = 2"))
    config = serve.engine_config(load_profile("internlm2-1.8b"), engine)
    assert (config.quant_policy, config.tp, config.max_batch_size) == (4, 2, 64)  # file, file, profile
    engine.write_text(text.replace("quant_policy = 8", "quant_polcy = 8"))
    with pytest.raises(PlraError, match=r"turbomind\.toml: setting 'quant_policy': Field required"):
        serve.engine_config(load_profile("internlm2-1.8b"), engine)


def test_each_replica_gets_its_own_gpus():
    proxy, *servers = dry("--profile", "internlm2-7b", "--replicas", "3", "--tp", "2")
    assert proxy["env"] == {}
    sets = [s["env"]["CUDA_VISIBLE_DEVICES"].split(",") for s in servers]
    assert sets == [["0", "1"], ["2", "3"], ["4", "5"]]
    assert all(flag(s["argv"], "--tp") == str(len(gpus)) for s, gpus in zip(servers, sets, strict=True))
    assert len({gpu for gpus in sets for gpu in gpus}) == 6  # disjoint: no GPU serves two replicas


def test_replicas_pick_from_the_callers_cuda_visible_devices():
    listed = {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}
    _, *servers = dry("--profile", "internlm2-7b", "--replicas", "2", "--tp", "2", env=listed)
    assert [s["env"] for s in servers] == [{"CUDA_VISIBLE_DEVICES": "4,5"}, {"CUDA_VISIBLE_DEVICES": "6,7"}]
    uuids = {"CUDA_VISIBLE_DEVICES": "GPU-aa, GPU-bb"}  # UUIDs pass through as written
    _, *servers = dry("--profile", "internlm2-7b", "--replicas", "2", env=uuids)
    assert [s["env"]["CUDA_VISIBLE_DEVICES"] for s in servers] == ["GPU-aa", "GPU-bb"]


def test_gpus_from_nvidia_smi_or_none_known(tmp_path):
    profile = load_profile("internlm2-7b")
    smi = tmp_path / "nvidia-smi"  # a stand-in for the driver's tool: it lists four GPUs as the real one does
    smi.write_text("#!/bin/sh\nprintf '0\\n1\\n2\\n3\\n'\n")
    smi.chmod(0o755)
    environ = {"PATH": str(tmp_path)}  # and no CUDA_VISIBLE_DEVICES
    _, *servers = serve.plan(profile, "m-awq-w4a16", 24000, 1, 4, [], environ=environ)
    assert [s.env["CUDA_VISIBLE_DEVICES"] for s in servers] == ["0", "1", "2", "3"]
    with pytest.raises(PlraError, match=r"^--replicas 3 x --tp 2 needs 6 GPUs; nvidia-smi lists 4 \(0,1,2,3\)"):
        serve.plan(profile, "m-awq-w4a16", 24000, 2, 3, [], environ=environ)
    smi.unlink()  # nothing lists the GPUs (a CPU machine printing a plan): 0 .. N*M-1, no refusal
    _, *servers = serve.plan(profile, "m-awq-w4a16", 24000, 2, 3, [], environ=environ)
    assert [s.command_line().split(" lmdeploy ")[0] for s in servers] == [
        "CUDA_VISIBLE_DEVICES=0,1",
        "CUDA_VISIBLE_DEVICES=2,3",
        "CUDA_VISIBLE_DEVICES=4,5",
    ]


def test_too_few_gpus_is_one_clear_line():
    result = run_plra(
        "serve", "--profile", "internlm2-7b", "--replicas", "2", "--tp", "2", "--dry-run",
        env={"CUDA_VISIBLE_DEVICES": "0,1,2"},
    )  # fmt: skip
    assert result.returncode != 0 and result.stderr.strip().splitlines() == [
        "error: --replicas 2 x --tp 2 needs 4 GPUs; CUDA_VISIBLE_DEVICES lists 3 (0,1,2): lower --replicas or --tp, "
        "or list more GPUs in CUDA_VISIBLE_DEVICES"
    ]
    single = run_plra("serve", "--profile", "internlm2-7b", "--tp", "2", "--dry-run", env={"CUDA_VISIBLE_DEVICES": "3"})
    assert single.returncode != 0 and "--tp 2 needs 2 GPUs; CUDA_VISIBLE_DEVICES lists 1 (3)" in single.stderr


def test_child_env_puts_the_replicas_gpus_over_the_callers(tmp_path):
    proc = serve.Process("api_server", ["lmdeploy"], 24001, {"CUDA_VISIBLE_DEVICES": "6,7"})
    env = serve.child_env(proc, tmp_path, {"CUDA_VISIBLE_DEVICES": "4,5,6,7", "PATH": "/usr/bin", "HOME": "/h"})
    assert env["CUDA_VISIBLE_DEVICES"] == "6,7" and env["HOME"] == "/h"
    assert env["PATH"] == f"{tmp_path}{os.pathsep}/usr/bin" and env["HF_HUB_OFFLINE"] == "1"


def test_entry_scripts_forward_to_plra_serve(tmp_path):
    args = ("--profile", "internlm2-7b", "--port", "24200", "--dry-run", "--json")
    direct = run_plra("serve", *args, env=EIGHT_GPUS)
    api = run_script("api_server.sh", *args, env=EIGHT_GPUS, cwd=tmp_path)
    assert api.returncode == 0, api.stderr
    assert json.loads(api.stdout) == json.loads(direct.stdout)
    proxy = run_script("proxy.sh", "2", "--profile", "internlm2-7b", "--tp", "2", "--port", "24200", "--dry-run",
                       env={"CUDA_VISIBLE_DEVICES": "4,5,6,7"}, cwd=tmp_path)  # fmt: skip
    assert proxy.returncode == 0, proxy.stderr
    head, *replicas = proxy.stdout.splitlines()
    assert head.startswith("lmdeploy serve proxy ")
    assert head.endswith("--server-port 24200 --routing-strategy min_expected_latency")  # deploy/proxy.toml's
    assert len(replicas) == 2
    for line, gpus, port in zip(replicas, ("4,5", "6,7"), (24201, 24202), strict=True):
        assert line.startswith(f"CUDA_VISIBLE_DEVICES={gpus} lmdeploy serve api_server ")
        assert f"--server-port {port} " in line and "--quant-policy 8 " in line and line.count("--tp 2") == 1
    usage = run_script("proxy.sh", "--profile", "internlm2-7b", env={}, cwd=tmp_path)
    assert usage.returncode == 2 and "usage: deploy/proxy.sh REPLICAS" in usage.stderr


def test_cpu_profile_serves_with_transformers_and_refuses_gpu_options(tiny_model_dir):
    [proc] = dry("--port", "24100", "--model", str(tiny_model_dir))
    assert proc["argv"][:3] == ["transformers", "serve", str(tiny_model_dir)]
    assert proc["argv"][3:] == ["--device", "cpu", "--dtype", "float32", "--host", "127.0.0.1", "--port", "24100"]
    result = run_plra("serve", "--dry-run", "--replicas", "2")
    assert result.returncode != 0 and "need a GPU profile" in result.stderr


def test_server_down_error_is_fast_and_clear():
    client = LLMClient.from_url(f"http://127.0.0.1:{free_port()}", model="m")
    start = time.monotonic()
    with pytest.raises(PlraError, match=r"nothing answers at http://127\.0\.0\.1:"):
        client.chat([{"role": "user", "content": "hi"}])
    assert time.monotonic() - start < 2.0


@pytest.mark.slow
def test_awq_of_the_tiny_model_keeps_its_logits(tiny_model_dir):
    result = run_plra(
        "quantize",
        "--model",
        str(tiny_model_dir),
        "--calib-samples",
        "16",
        "--calib-seqlen",
        "128",
        "--check",
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["logits_cosine"] >= 0.95
    assert 1.0 <= report["ppl_ratio"] < 2.0
    out = tiny_model_dir.parent / f"{tiny_model_dir.name}-awq-w4a16"
    config = json.loads((out / "config.json").read_text())
    assert config["quantization_config"]["quant_method"] == "awq" and config["quantization_config"]["bits"] == 4
    assert config["quantization_config"]["group_size"] == 64
    manifest = json.loads((out / "plra-quant.json").read_text())
    assert manifest["check"]["logits_cosine"] == report["logits_cosine"] and manifest["calib_samples"] == 16


def test_group_size_that_does_not_divide_is_refused(tiny_model_dir):
    result = run_plra("quantize", "--group-size", "128", "--model", str(tiny_model_dir))
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "error: smollm2-135m-instruct: hidden_size 576, num_attention_heads * head_dim 576 does not divide by "
        "group size 128; use --group-size 64"
    ]


@pytest.mark.slow
def test_cpu_server_answers_through_plra_llm(tiny_model_dir):
    port = free_port()
    state = serve.start(load_profile("tiny"), tiny_model_dir, port, log=lambda _m: None)
    try:
        client = LLMClient.from_url(state["url"], max_tokens=16, temperature=0.0)
        assert client.model == str(tiny_model_dir)
        assert isinstance(client.models(), list)  # /v1/models answers a list
        messages = [{"role": "user", "content": "Name one benchmark for personalized LLMs."}]
        whole = client.chat(messages)
        pieces = list(client.stream(messages))
        assert whole.strip() and len(pieces) > 1
        assert "".join(pieces).strip() == whole.strip()  # greedy: streaming gives the same text
        again = run_plra("serve", "--port", str(port))
        assert again.returncode != 0 and "already runs on port" in again.stderr
    finally:
        stopped = run_plra("serve", "--stop", "--port", str(port))
    assert stopped.returncode == 0
    pids = [p["pid"] for p in state["processes"]]
    time.sleep(0.5)
    assert all(subprocess.run(["kill", "-0", str(pid)], capture_output=True).returncode != 0 for pid in pids)
    assert not serve.state_path(port).exists()


@pytest.mark.gpu
def test_gpu_api_server_with_turbomind(tmp_path):
    torch = pytest.importorskip("torch")
    if not torch.cuda.is_available():
        pytest.skip("needs a CUDA GPU")
    from transformers import LlamaConfig, LlamaForCausalLM

    model_dir = tmp_path / "tiny-llama"
    config = LlamaConfig(
        hidden_size=256,
        intermediate_size=512,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        vocab_size=49152,
    )
    LlamaForCausalLM(config).half().save_pretrained(model_dir)
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        src = serve.REPO_ROOT / "models" / "smollm2-135m-instruct" / name
        if src.exists():
            (model_dir / name).write_bytes(src.read_bytes())
    port = free_port()
    state = serve.start(load_profile("internlm2-1.8b"), model_dir, port, log=lambda _m: None)
    try:
        answer = LLMClient.from_url(state["url"], max_tokens=8).chat([{"role": "user", "content": "hello"}])
        assert isinstance(answer, str)
    finally:
        serve.stop(port)
