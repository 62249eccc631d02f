"""`plra serve`: an OpenAI-compatible endpoint for a profile's model.

GPU profiles: `lmdeploy serve api_server` with TurboMind on the AWQ W4A16 model and KV-cache int8
(`--quant-policy 8`); `--tp N` tensor parallelism; `--replicas N` puts LMDeploy's proxy in front of N
api_servers; `--adapter name=path` serves a LoRA adapter unmerged (PyTorch engine).
CPU (`tiny`): `transformers serve DIR --device cpu`, the same API. Both run in `.venv-deploy`.
The server runs in the background; `.plra/serve/<port>.json` records its pids, URL and model name.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import typer

from plra import envs
from plra.envs import REPO_ROOT
from plra.errors import PlraError
from plra.io import write_json_atomic
from plra.llm import SERVE_STATE_DIR, pid_alive, wait_ready
from plra.model import MODELS_DIR, resolve_model_dir
from plra.settings import ProfileSettings, load_profile

LOG_DIR = REPO_ROOT / ".plra" / "logs"
READY_DEADLINE_S = {"transformers": 240.0, "turbomind": 900.0, "pytorch": 900.0}


@dataclass
class Process:
    role: str  # "api_server", "proxy" or "transformers"
    argv: list[str]
    port: int


def quantized_dir(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}-awq-w4a16"


def default_model_dir(profile: ProfileSettings) -> Path:
    """The newest merged SFT model of the profile, else its base model; the AWQ copy on GPU engines."""
    tuned = REPO_ROOT / "work_dirs" / profile.name / "sft" / "latest" / "merged"
    model = tuned.resolve() if (tuned / "config.json").exists() else resolve_model_dir(profile)
    if profile.serve_engine == "turbomind" and (quantized_dir(model) / "config.json").exists():
        return quantized_dir(model)
    return model


def api_server_argv(profile: ProfileSettings, model_dir: str, port: int, tp: int, adapters: list[str],
                    proxy_url: str | None = None) -> list[str]:  # fmt: skip
    """The exact `lmdeploy serve api_server` command for a GPU profile."""
    argv = ["lmdeploy", "serve", "api_server", model_dir, "--server-name", "0.0.0.0", "--server-port", str(port)]
    if adapters:  # TurboMind ignores LoRA adapters: unmerged adapters need the PyTorch engine
        argv += ["--backend", "pytorch", "--adapters", *adapters]
    else:
        argv += ["--backend", "turbomind"]
    if str(model_dir).endswith("-awq-w4a16"):
        argv += ["--model-format", "awq"]
    argv += [
        "--quant-policy", str(profile.kv_quant_policy),
        "--cache-max-entry-count", str(profile.cache_max_entry_count),
        "--max-batch-size", str(profile.max_batch_size),
        "--tp", str(tp),
    ]  # fmt: skip
    if proxy_url:
        argv += ["--proxy-url", proxy_url]
    return argv


def plan(profile: ProfileSettings, model_dir: str, port: int, tp: int, replicas: int, adapters: list[str]):
    """Every process `plra serve` starts, in order (the proxy first, so api_servers can register)."""
    if profile.serve_engine == "transformers":
        if replicas > 1 or tp > 1 or adapters:
            raise PlraError(
                "--replicas, --tp and --adapter need a GPU profile (LMDeploy); the CPU server runs one copy"
            )
        argv = ["transformers", "serve", model_dir, "--device", "cpu", "--dtype", "float32", "--host", "127.0.0.1",
                "--port", str(port)]  # fmt: skip
        return [Process("transformers", argv, port)]
    if replicas <= 1:
        return [Process("api_server", api_server_argv(profile, model_dir, port, tp, adapters), port)]
    proxy_url = f"http://127.0.0.1:{port}"
    processes = [Process("proxy", ["lmdeploy", "serve", "proxy", "--server-name", "0.0.0.0", "--server-port",
                                   str(port), "--routing-strategy", "min_expected_latency"], port)]  # fmt: skip
    for index in range(replicas):
        replica_port = port + 1 + index
        argv = api_server_argv(profile, model_dir, replica_port, tp, adapters, proxy_url)
        processes.append(Process("api_server", argv, replica_port))
    return processes


def state_path(port: int) -> Path:
    return SERVE_STATE_DIR / f"{port}.json"


def start(profile: ProfileSettings, model_dir: Path, port: int, tp: int = 1, replicas: int = 1,
          adapters: list[str] | None = None, deadline_s: float | None = None, log=print) -> dict:  # fmt: skip
    """Start the server(s) in the background, wait until they answer, record and return the state."""
    existing = state_path(port)
    if existing.exists() and all(pid_alive(p["pid"]) for p in json.loads(existing.read_text())["processes"]):
        raise PlraError(f"a server started by plra already runs on port {port}: `plra serve --stop --port {port}`")
    processes = plan(profile, str(model_dir), port, tp, replicas, adapters or [])
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = []
    env = {**os.environ, "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1")}
    for proc in processes:
        log_path = LOG_DIR / f"serve-{proc.role}-{proc.port}.log"
        venv_bin = envs.venv_dir("deploy") / "bin"
        if not (venv_bin / "python").exists():
            raise PlraError("environment 'deploy' is not built (.venv-deploy missing): run `make setup`")
        argv = [str(venv_bin / proc.argv[0]), *proc.argv[1:]]
        env["PATH"] = f"{venv_bin}{os.pathsep}{os.environ.get('PATH', '')}"
        with open(log_path, "w") as log_file:
            child = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO_ROOT, env=env,
                                     start_new_session=True)  # fmt: skip
        started.append({"role": proc.role, "pid": child.pid, "port": proc.port, "argv": proc.argv,
                        "log": str(log_path)})  # fmt: skip
        log(f"[serve] {proc.role} pid {child.pid}: {' '.join(proc.argv)}")
    url = f"http://127.0.0.1:{port}/v1"
    state = {"url": url, "model_name": str(model_dir), "profile": profile.name, "processes": started,
             "started": time.strftime("%Y-%m-%dT%H:%M:%S")}  # fmt: skip
    write_json_atomic(state_path(port), state)
    deadline = deadline_s or READY_DEADLINE_S[profile.serve_engine]
    try:
        for proc in started if replicas <= 1 else started[1:]:
            waited = wait_ready(f"http://127.0.0.1:{proc['port']}", deadline,
                                alive=lambda pid=proc["pid"]: pid_alive(pid))  # fmt: skip
            log(f"[serve] {proc['role']} on port {proc['port']} ready after {waited:.1f} s")
        if replicas > 1:
            wait_ready(url, deadline)
    except PlraError as err:
        stop(port)
        raise PlraError(f"{err}; see {started[-1]['log']}") from None
    return state


def stop(port: int, grace_s: float = 10.0) -> list[int]:
    """Stop every process plra started for the port; return their pids."""
    path = state_path(port)
    if not path.exists():
        raise PlraError(f"no server started by plra on port {port} ({path} missing)")
    pids = [p["pid"] for p in json.loads(path.read_text())["processes"]]
    for pid in reversed(pids):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while any(pid_alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.2)
    for pid in pids:
        if pid_alive(pid):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
    path.unlink(missing_ok=True)
    return pids


def serve_command(
    profile: str = typer.Option(None, "--profile", "-p"),
    model: Path = typer.Option(None, "--model", help="model folder (default: latest tuned, else the base)"),
    port: int = typer.Option(None, "--port", help="port of the endpoint (default: the profile's, 23333)"),
    tp: int = typer.Option(None, "--tp", help="tensor parallel GPUs per server"),
    replicas: int = typer.Option(1, "--replicas", help="api_servers behind LMDeploy's proxy"),
    adapter: list[str] = typer.Option(None, "--adapter", help="name=path of a LoRA adapter to serve unmerged"),
    stop_flag: bool = typer.Option(False, "--stop", help="stop the server plra started on the port"),
    dry_run: bool = typer.Option(False, "--dry-run", help="print the commands without starting anything"),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Serve the model behind an OpenAI-compatible API (LMDeploy TurboMind on GPUs, transformers on CPUs)."""
    settings = load_profile(profile, {"serve_port": port, "tp": tp})
    port = settings.serve_port
    if stop_flag:
        pids = stop(port)
        typer.echo(f"stopped the server on port {port} (pids {', '.join(map(str, pids))})")
        return
    if model is not None:
        model_dir = model
    elif dry_run and not settings.is_embedded:  # no weights needed to show the commands
        base = settings.model_path or MODELS_DIR / settings.base_model.split("/")[-1]
        model_dir = quantized_dir(base) if settings.serve_engine == "turbomind" else base
    else:
        model_dir = default_model_dir(settings)
    if dry_run:
        processes = plan(settings, str(model_dir), port, settings.tp, replicas, adapter or [])
        if as_json:
            typer.echo(json.dumps([{"role": p.role, "port": p.port, "argv": p.argv} for p in processes]))
        else:
            for proc in processes:
                typer.echo(" ".join(proc.argv))
        return
    state = start(settings, model_dir, port, settings.tp, replicas, adapter or [], log=typer.echo)
    typer.echo(json.dumps(state) if as_json else f"serving {state['model_name']} at {state['url']}")
