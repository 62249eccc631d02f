import json
import subprocess
import time

import pytest

from plra import serve
from plra.errors import PlraError
from plra.llm import LLMClient
from plra.settings import load_profile
from tests.conftest import free_port, run_plra


def dry(*args: str) -> list[dict]:
    result = run_plra("serve", "--dry-run", "--json", *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_turbomind_argv_for_the_gpu_profiles():
    for profile, cache, batch in (("internlm2-7b", "0.4", "32"), ("internlm2-1.8b", "0.5", "64")):
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
            "--tp",
            "1",
        ]


def test_tp_replicas_and_adapter_options():
    [tp] = dry("--profile", "internlm2-7b", "--tp", "2", "--port", "24000")
    assert tp["argv"][tp["argv"].index("--tp") + 1] == "2" and "24000" in tp["argv"]
    proxy, *servers = dry("--profile", "internlm2-7b", "--replicas", "3", "--port", "24000")
    assert proxy["argv"][:3] == ["lmdeploy", "serve", "proxy"] and proxy["port"] == 24000
    assert [s["port"] for s in servers] == [24001, 24002, 24003]
    assert all(s["argv"][-2:] == ["--proxy-url", "http://127.0.0.1:24000"] for s in servers)
    [lora] = dry("--profile", "internlm2-7b", "--adapter", "plllm=work_dirs/internlm2-7b/sft/latest/adapter")
    argv = lora["argv"]
    assert argv[argv.index("--backend") + 1] == "pytorch"
    assert argv[argv.index("--adapters") + 1] == "plllm=work_dirs/internlm2-7b/sft/latest/adapter"


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
