"""Typed settings, one object per concern, resolved in one order everywhere.

Precedence, strongest first: CLI flags, then environment variables (`PLRA_<FIELD>`), then the
project file `plra.toml` (in the working directory, or `PLRA_CONFIG`), then the profile's defaults
(`plra/profiles/<name>.toml`, data files a user can read and copy).

`plra.toml` looks like:

    profile = "tiny"          # the profile when no flag or PLRA_PROFILE names one
    [model]                   # ProfileSettings fields, for every profile
    serve_port = 23334
    [model.internlm2-7b]      # ProfileSettings fields for one profile only
    model_path = "/data/internlm2-chat-7b"
    [kb]                      # KnowledgeSettings fields
    arxiv_api_url = "http://localhost:8080/api/query"
    [launch]                  # LaunchSettings fields (plra train, and plra eval's slurm runner)
    launcher = "slurm"
    partition = "llm"
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from plra.errors import PlraError
from plra.paths import REPO_ROOT

PROFILES_DIR = Path(__file__).parent / "profiles"
DEFAULT_PROFILE = "tiny"
EMBEDDED_PREFIX = "embedded:"


class ProfileSettings(BaseModel):
    """What a profile fixes: the base model and how each stage trains, quantizes, serves and evaluates it."""

    model_config = ConfigDict(extra="forbid")

    name: str
    description: str = ""
    base_model: str  # a hub id, or "embedded:<name>" for the model `plra model fetch` builds locally
    model_path: Path | None = None  # local weights; overrides fetching base_model
    device: Literal["cpu", "cuda"] = "cpu"
    train_method: Literal["lora", "qlora", "full"] = "lora"
    xtuner_config: str
    # The training stages the pipeline runs, in order; each starts from the one before's merged model. The
    # pipeline serves and evaluates the SFT output, so the recipe holds "sft" (DPO may follow it).
    train_recipe: list[Literal["pretrain", "sft", "dpo"]] = ["sft"]
    quant_group_size: int = 128
    calib_samples: int = 128
    calib_seqlen: int = 2048
    serve_engine: Literal["transformers", "turbomind", "pytorch"] = "transformers"
    serve_port: int = 23333
    # LMDeploy engine settings: None leaves the value to deploy/turbomind.toml (plra.toolchain.serve.engine_config), so
    # the shared defaults live in one file and a profile names only what its model or GPU needs otherwise.
    kv_quant_policy: Literal[0, 4, 8] | None = None
    cache_max_entry_count: float | None = None
    max_batch_size: int | None = None
    session_len: int | None = None
    tp: int | None = None
    eval_limit: int | None = None  # questions per set, every set (None: the whole MCQ and attribution sets)
    eval_qa_limit: int | None = None  # open questions: a fixed stratified sample of this many (None: eval_limit)
    eval_rotations: int = 4  # CircularEval: each choice question in this many rotations of its options (1-4)
    eval_batch_size: int = 8
    eval_max_out_len: int = 256
    # The weights' type while scoring: "auto" is float16 on a GPU, and on a CPU bfloat16 where the cores do it
    # natively (about twice float32's speed there; base and tuned are scored alike) and float32 elsewhere.
    eval_dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    # How long a client waits for the served model: a fixed allowance for the prompt plus one per new
    # token, so a slow CPU gets time in proportion to what it is asked to write (see plra.llm).
    client_timeout_s: float = 120.0
    client_seconds_per_token: float = 0.0
    answer_max_tokens: int = 512  # example answers and the agent's turns in the pipeline's last stage

    @field_validator("train_recipe", mode="before")
    @classmethod
    def _split_recipe(cls, value: Any) -> Any:
        # PLRA_TRAIN_RECIPE arrives as one string: "pretrain,sft".
        return [part.strip() for part in value.split(",") if part.strip()] if isinstance(value, str) else value

    @field_validator("train_recipe")
    @classmethod
    def _check_recipe(cls, value: list[str]) -> list[str]:
        order = {"pretrain": 0, "sft": 1, "dpo": 2}
        if "sft" not in value:
            raise ValueError("the recipe must hold sft (the pipeline serves and evaluates the SFT model)")
        if len(set(value)) != len(value) or value != sorted(value, key=order.__getitem__):
            raise ValueError("each stage at most once, in the order pretrain, sft, dpo")
        return value

    @property
    def is_embedded(self) -> bool:
        return self.base_model.startswith(EMBEDDED_PREFIX)


class KnowledgeSettings(BaseModel):
    """Where the knowledge base lives and where it grows from."""

    model_config = ConfigDict(extra="forbid")

    field: str = "personalized-llm"
    datasets_dir: Path = REPO_ROOT / "datasets"
    arxiv_api_url: str = "https://export.arxiv.org/api/query"
    arxiv_timeout_s: float = 20.0  # connecting and each read
    arxiv_deadline_s: float = 60.0  # a whole search or PDF download, retries included
    arxiv_retries: int = 3
    arxiv_delay_s: float = 3.0  # arXiv asks clients for one request every three seconds
    embedding_model: Path | None = None  # a local sentence-embedding model enables dense retrieval
    # `plra kb update` keeps a fetched paper only at this relevance to the field or above (plra.knowledge.relevance):
    # fitted on the curated papers (leave-one-out) against off-topic abstracts; 0 lets every paper in.
    min_relevance: float = Field(0.51, ge=0.0, le=1.0)

    @property
    def field_dir(self) -> Path:
        return self.datasets_dir / self.field


class LaunchSettings(BaseModel):
    """How training starts on one GPU, several, several nodes or a slurm cluster (and evaluation on slurm).

    Only upstream launchers are used: torchrun the way `xtuner train` calls it, srun with XTuner's
    `--launcher slurm`, and OpenCompass's own `--slurm -p PARTITION`.
    """

    model_config = ConfigDict(extra="forbid")

    gpus: int | None = Field(None, ge=0)  # GPUs (processes) per node; None: 1 on a CUDA profile, 0 on a CPU one
    nnodes: int = Field(1, ge=1)
    node_rank: int = Field(0, ge=0)
    master_addr: str | None = None  # node 0's address, the same on every node (torchrun's rendezvous)
    master_port: int = Field(29500, ge=1, le=65535)
    launcher: Literal["pytorch", "slurm"] | None = None  # None: pytorch for more than one process, else none
    partition: str | None = None  # the slurm partition (srun -p, opencompass --slurm -p)


# Settings whose environment variable is not simply PLRA_<FIELD>. The launch settings also answer to the
# variables `xtuner train` itself reads (NPROC_PER_NODE, NNODES, NODE_RANK, ADDR), so a cluster
# script written for XTuner drives `plra train` unchanged.
ENV_ALIASES = {
    "arxiv_api_url": ("PLRA_ARXIV_API_URL", "ARXIV_API_URL"),
    "gpus": ("PLRA_GPUS", "NPROC_PER_NODE"),
    "nnodes": ("PLRA_NNODES", "NNODES"),
    "node_rank": ("PLRA_NODE_RANK", "NODE_RANK"),
    "master_addr": ("PLRA_MASTER_ADDR", "ADDR"),
    # Not XTuner's PORT: web hosts (OpenXLab included) set PORT for the app, which is no rendezvous port.
    "master_port": ("PLRA_MASTER_PORT", "MASTER_PORT"),
}

SettingsT = TypeVar("SettingsT", bound=BaseModel)


def available_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def config_path() -> Path:
    return Path(os.environ.get("PLRA_CONFIG") or Path.cwd() / "plra.toml")


def _read_toml(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise PlraError(f"{path}: invalid TOML: {err}") from None


def _from_env(cls: type[BaseModel], environ: dict[str, str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in cls.model_fields:
        for var in ENV_ALIASES.get(field, (f"PLRA_{field.upper()}",)):
            if environ.get(var):
                values[field] = environ[var]
                break
    return values


def validate_settings(cls: type[SettingsT], values: dict[str, Any], origin: str) -> SettingsT:
    """Validated settings; the first problem is one line naming where they came from and the setting."""
    try:
        return cls.model_validate(values)
    except ValidationError as err:
        first = err.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise PlraError(f"{origin}: setting '{where}': {first['msg']}") from None


def _layer(defaults: dict[str, Any], file_values: dict[str, Any], env_values: dict[str, Any], flags: dict[str, Any]):
    merged = dict(defaults)
    for layer in (file_values, env_values, {k: v for k, v in flags.items() if v is not None}):
        merged.update(layer)
    return merged


def load_profile(
    profile: str | None = None,
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> ProfileSettings:
    """Resolve the active profile and its settings (flags > env > plra.toml > profile file)."""
    environ = dict(os.environ if environ is None else environ)
    config_file = config_file or config_path()
    file_data = _read_toml(config_file)
    name = profile or environ.get("PLRA_PROFILE") or file_data.get("profile") or DEFAULT_PROFILE
    profile_file = PROFILES_DIR / f"{name}.toml"
    if not profile_file.exists():
        raise PlraError(f"unknown profile '{name}': choose one of {', '.join(available_profiles())}")
    defaults = {"name": name, **_read_toml(profile_file)}
    model_section = file_data.get("model", {})
    per_profile = model_section.get(name, {}) if isinstance(model_section.get(name), dict) else {}
    file_values = {k: v for k, v in model_section.items() if not isinstance(v, dict)} | per_profile
    merged = _layer(defaults, file_values, _from_env(ProfileSettings, environ), flags or {})
    return validate_settings(ProfileSettings, merged, f"profile '{name}' ({config_file.name}, PLRA_* variables, flags)")


def _load_section(
    cls: type[SettingsT], section: str, what: str, flags: dict[str, Any] | None, environ: dict[str, str] | None,
    config_file: Path | None,
) -> SettingsT:  # fmt: skip
    """Settings of one `plra.toml` table: flags > env > file > the class's defaults."""
    environ = dict(os.environ if environ is None else environ)
    config_file = config_file or config_path()
    file_values = _read_toml(config_file).get(section, {})
    merged = _layer({}, file_values, _from_env(cls, environ), flags or {})
    return validate_settings(cls, merged, f"{what} ({config_file.name}, PLRA_* variables, flags)")


def load_knowledge(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> KnowledgeSettings:
    return _load_section(KnowledgeSettings, "kb", "knowledge settings", flags, environ, config_file)


def load_launch(
    flags: dict[str, Any] | None = None,
    environ: dict[str, str] | None = None,
    config_file: Path | None = None,
) -> LaunchSettings:
    return _load_section(LaunchSettings, "launch", "launch settings", flags, environ, config_file)
