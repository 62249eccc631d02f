"""`plra serve`: an OpenAI-compatible endpoint for a profile's model.

GPU profiles: `lmdeploy serve api_server` with TurboMind on the AWQ W4A16 model and KV-cache int8
(`--quant-policy 8`); `--tp N` tensor parallelism; `--replicas N` puts LMDeploy's proxy in front of N
api_servers, each on its own GPUs (CUDA_VISIBLE_DEVICES); `--adapter name=path` serves a LoRA adapter
unmerged (PyTorch engine). The engine and proxy settings are data: deploy/turbomind.toml and
deploy/proxy.toml, overridden by the profile's layers (flag > PLRA_* > plra.toml > profile > deploy file).
CPU (`tiny`): `transformers serve DIR --device cpu`, the same API. Both run in `.venv-deploy`.
The server runs in the background; `.plra/serve/<port>.json` records its pids, URL and model name.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import time
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import typer
from pydantic import BaseModel, ConfigDict, Field

from plra.errors import PlraError
from plra.io import write_json_atomic
from plra.llm import SERVE_STATE_DIR, pid_alive, wait_ready
from plra.paths import REPO_ROOT
from plra.settings import ProfileSettings, load_profile, validate_settings
from plra.toolchain import envs
from plra.toolchain.model import MODELS_DIR, resolve_model_dir

LOG_DIR = REPO_ROOT / ".plra" / "logs"
DEPLOY_DIR = REPO_ROOT / "deploy"
ENGINE_FILE = DEPLOY_DIR / "turbomind.toml"
PROXY_FILE = DEPLOY_DIR / "proxy.toml"
READY_DEADLINE_S = {"transformers": 240.0, "turbomind": 900.0, "pytorch": 900.0}
AWQ_SUFFIX = "-awq-w4a16"


class EngineConfig(BaseModel):
    """deploy/turbomind.toml: every key is required there, so the file is the one place defaults live."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model_format: Literal["awq"]  # what plra quantize writes; the only 4-bit format plra produces
    quant_policy: Literal[0, 4, 8]
    cache_max_entry_count: float = Field(gt=0, le=1)
    max_batch_size: int = Field(ge=1)
    session_len: int = Field(ge=1)
    tp: int = Field(ge=1)


class ProxyConfig(BaseModel):
    """deploy/proxy.toml."""

    model_config = ConfigDict(extra="forbid")

    routing_strategy: Literal["random", "min_expected_latency", "min_observed_latency"]


# deploy/turbomind.toml key -> the ProfileSettings field that overrides it. The profile keeps its older name
# for the KV policy; every other name is LMDeploy's.
PROFILE_OVERRIDES = {
    "quant_policy": "kv_quant_policy",
    "cache_max_entry_count": "cache_max_entry_count",
    "max_batch_size": "max_batch_size",
    "session_len": "session_len",
    "tp": "tp",
}

ConfigT = TypeVar("ConfigT", bound=BaseModel)


@dataclass
class Process:
    role: str  # "api_server", "proxy" or "transformers"
    argv: list[str]
    port: int
    env: dict[str, str] = field(default_factory=dict)  # set on top of the caller's environment

    def command_line(self) -> str:
        """The process as one shell line a user can paste: `CUDA_VISIBLE_DEVICES=2,3 lmdeploy serve ...`."""
        return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in self.env.items()), shlex.join(self.argv)])


def read_deploy_file(path: Path, cls: type[ConfigT]) -> ConfigT:
    """One of deploy/*.toml, validated: a missing key or a typo is one line naming the file and the key."""
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlraError(f"{path} is missing: it holds plra serve's LMDeploy settings (git checkout it)") from None
    except tomllib.TOMLDecodeError as err:
        raise PlraError(f"{path}: invalid TOML: {err}") from None
    return validate_settings(cls, values, str(path))


def engine_config(profile: ProfileSettings, path: Path = ENGINE_FILE) -> EngineConfig:
    """The engine settings of the profile's servers: the deploy file, overridden where the profile's layers
    (flag, PLRA_* variable, plra.toml, profile file) set a value."""
    base = read_deploy_file(path, EngineConfig)
    overrides = {key: getattr(profile, name) for key, name in PROFILE_OVERRIDES.items()}
    values = base.model_dump() | {key: value for key, value in overrides.items() if value is not None}
    return validate_settings(EngineConfig, values, str(path))


def visible_gpus(environ: Mapping[str, str]) -> tuple[list[str], str] | None:
    """The GPUs the servers may use and what listed them; None where nothing says (a CPU machine's plan).

    CUDA_VISIBLE_DEVICES, when set, is the user's choice and bounds what the replicas take (its entries may be
    indices or GPU-/MIG- UUIDs: they pass through as written). Else nvidia-smi lists the machine's GPUs.
    """
    if "CUDA_VISIBLE_DEVICES" in environ:
        listed = [entry.strip() for entry in environ["CUDA_VISIBLE_DEVICES"].split(",")]
        # CUDA stops at the first entry that names no device ("-1" hides every GPU): so does this list
        stop = next((i for i, entry in enumerate(listed) if not entry or entry.startswith("-")), len(listed))
        return listed[:stop], "CUDA_VISIBLE_DEVICES"
    smi = shutil.which("nvidia-smi", path=environ.get("PATH"))
    if not smi:
        return None
    try:
        result = subprocess.run([smi, "--query-gpu=index", "--format=csv,noheader"], capture_output=True,
                                text=True, timeout=30)  # fmt: skip
    except (OSError, subprocess.TimeoutExpired):
        return None
    if result.returncode != 0:  # a driver problem: LMDeploy will say more than a count could
        return None
    return [line.strip() for line in result.stdout.splitlines() if line.strip()], "nvidia-smi"


def replica_gpus(replicas: int, tp: int, visible: tuple[list[str], str] | None) -> list[list[str]]:
    """Disjoint GPU sets of `tp` GPUs, one per replica: replica i takes the visible GPUs i*tp .. i*tp+tp-1.

    Where nothing lists the GPUs, replicas take 0 .. replicas*tp-1 and LMDeploy reports a missing one.
    """
    needed = replicas * tp
    gpus, source = visible or ([str(i) for i in range(needed)], "")
    if needed > len(gpus):
        asked = f"--replicas {replicas} x --tp {tp}" if replicas > 1 else f"--tp {tp}"
        listed = f"{len(gpus)} ({','.join(gpus)})" if gpus else "none"
        fixes = [f"lower {'--replicas or --tp' if replicas > 1 else '--tp'}"] if needed > 1 else []
        if source == "CUDA_VISIBLE_DEVICES":
            fixes.append("list more GPUs in CUDA_VISIBLE_DEVICES")
        fixes = fixes or ["serve on a machine with a GPU (the tiny profile serves on a CPU)"]
        raise PlraError(
            f"{asked} needs {needed} GPU{'s' * (needed > 1)}; {source} lists {listed}: {', or '.join(fixes)}"
        )
    return [gpus[i * tp : (i + 1) * tp] for i in range(replicas)]


def quantized_dir(model_dir: Path) -> Path:
    return model_dir.parent / f"{model_dir.name}{AWQ_SUFFIX}"


def default_model_dir(profile: ProfileSettings) -> Path:
    """The newest merged SFT model of the profile, else its base model; the AWQ copy on GPU engines."""
    tuned = REPO_ROOT / "work_dirs" / profile.name / "sft" / "latest" / "merged"
    model = tuned.resolve() if (tuned / "config.json").exists() else resolve_model_dir(profile)
    if profile.serve_engine == "turbomind" and (quantized_dir(model) / "config.json").exists():
        return quantized_dir(model)
    return model


def api_server_argv(profile: ProfileSettings, engine: EngineConfig, model_dir: str, port: int, adapters: list[str],
                    proxy_url: str | None = None) -> list[str]:  # fmt: skip
    """The exact `lmdeploy serve api_server` command for a GPU profile."""
    argv = ["lmdeploy", "serve", "api_server", model_dir, "--server-name", "0.0.0.0", "--server-port", str(port)]
    if adapters:  # TurboMind ignores LoRA adapters: unmerged adapters need the PyTorch engine
        argv += ["--backend", "pytorch", "--adapters", *adapters]
    else:  # a profile whose model TurboMind does not list (deepseek-v2-lite) names the PyTorch engine
        argv += ["--backend", "pytorch" if profile.serve_engine == "pytorch" else "turbomind"]
    if str(model_dir).endswith(AWQ_SUFFIX):  # any other folder holds fp16/bf16 weights LMDeploy reads as hf
        argv += ["--model-format", engine.model_format]
    argv += [
        "--quant-policy", str(engine.quant_policy),
        "--cache-max-entry-count", str(engine.cache_max_entry_count),
        "--max-batch-size", str(engine.max_batch_size),
        "--session-len", str(engine.session_len),
        "--tp", str(engine.tp),
    ]  # fmt: skip
    if proxy_url:
        argv += ["--proxy-url", proxy_url]
    return argv


def proxy_argv(port: int, path: Path = PROXY_FILE) -> list[str]:
    proxy = read_deploy_file(path, ProxyConfig)
    return ["lmdeploy", "serve", "proxy", "--server-name", "0.0.0.0", "--server-port", str(port),
            "--routing-strategy", proxy.routing_strategy]  # fmt: skip


def plan(profile: ProfileSettings, model_dir: str, port: int, tp: int | None, replicas: int, adapters: list[str],
         environ: Mapping[str, str] | None = None) -> list[Process]:  # fmt: skip
    """Every process `plra serve` starts, in order (the proxy first, so api_servers can register).

    `tp` None: the profile's or the deploy file's. `environ` (default: this process's) says which GPUs exist.
    """
    for flag, value in (("--replicas", replicas), ("--tp", tp)):
        if value is not None and value < 1:
            raise PlraError(f"{flag} {value}: give 1 or more")
    if profile.serve_engine == "transformers":
        if replicas > 1 or (tp or 1) > 1 or adapters:
            raise PlraError(
                "--replicas, --tp and --adapter need a GPU profile (LMDeploy); the CPU server runs one copy"
            )
        argv = ["transformers", "serve", model_dir, "--device", "cpu", "--dtype", "float32", "--host", "127.0.0.1",
                "--port", str(port)]  # fmt: skip
        return [Process("transformers", argv, port)]
    engine = engine_config(profile)
    if tp is not None:
        engine = engine.model_copy(update={"tp": tp})
    # Checked for one server too: --tp beyond the GPUs fails here in a line, not in NCCL minutes later
    gpu_sets = replica_gpus(replicas, engine.tp, visible_gpus(os.environ if environ is None else environ))
    if replicas == 1:  # one server keeps the caller's GPUs (its first tp ones), as a plain lmdeploy run would
        return [Process("api_server", api_server_argv(profile, engine, model_dir, port, adapters), port)]
    proxy_url = f"http://127.0.0.1:{port}"
    processes = [Process("proxy", proxy_argv(port), port)]
    for index, gpus in enumerate(gpu_sets):
        replica_port = port + 1 + index
        argv = api_server_argv(profile, engine, model_dir, replica_port, adapters, proxy_url)
        # Without its own CUDA_VISIBLE_DEVICES every replica would load onto GPU 0 (and tp onto 0..tp-1)
        processes.append(Process("api_server", argv, replica_port, {"CUDA_VISIBLE_DEVICES": ",".join(gpus)}))
    return processes


def child_env(proc: Process, venv_bin: Path, environ: Mapping[str, str]) -> dict[str, str]:
    """The caller's environment, offline unless it says otherwise, the deploy env's programs first, and the
    process's own variables on top: a replica's CUDA_VISIBLE_DEVICES replaces the caller's wider list."""
    base = {**environ, "HF_HUB_OFFLINE": environ.get("HF_HUB_OFFLINE", "1")}
    base["PATH"] = f"{venv_bin}{os.pathsep}{environ.get('PATH', '')}"
    return {**base, **proc.env}


def state_path(port: int) -> Path:
    return SERVE_STATE_DIR / f"{port}.json"


def start(profile: ProfileSettings, model_dir: Path, port: int, tp: int | None = None, replicas: int = 1,
          adapters: list[str] | None = None, deadline_s: float | None = None, log=print) -> dict:  # fmt: skip
    """Start the server(s) in the background, wait until they answer, record and return the state."""
    existing = state_path(port)
    if existing.exists() and all(pid_alive(p["pid"]) for p in json.loads(existing.read_text())["processes"]):
        raise PlraError(f"a server started by plra already runs on port {port}: `plra serve --stop --port {port}`")
    processes = plan(profile, str(model_dir), port, tp, replicas, adapters or [])
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    started = []
    venv_bin = envs.venv_dir("deploy") / "bin"
    if not (venv_bin / "python").exists():
        raise PlraError("environment 'deploy' is not built (.venv-deploy missing): run `make setup`")
    for proc in processes:
        log_path = LOG_DIR / f"serve-{proc.role}-{proc.port}.log"
        argv = [str(venv_bin / proc.argv[0]), *proc.argv[1:]]
        with open(log_path, "w") as log_file:
            child = subprocess.Popen(argv, stdout=log_file, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                     env=child_env(proc, venv_bin, os.environ), start_new_session=True)  # fmt: skip
        started.append({"role": proc.role, "pid": child.pid, "port": proc.port, "argv": proc.argv,
                        "env": proc.env, "log": str(log_path)})  # fmt: skip
        log(f"[serve] {proc.role} pid {child.pid}: {proc.command_line()}")
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
            typer.echo(json.dumps([{"role": p.role, "port": p.port, "argv": p.argv, "env": p.env} for p in processes]))
        else:
            for proc in processes:
                typer.echo(proc.command_line())
        return
    state = start(settings, model_dir, port, settings.tp, replicas, adapter or [], log=typer.echo)
    typer.echo(json.dumps(state) if as_json else f"serving {state['model_name']} at {state['url']}")
