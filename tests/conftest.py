"""Shared fixtures. Tests run offline; the embedded model is built by `make model` before them."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from plra.paths import REPO_ROOT
from plra.toolchain.model import embedded_dir

PLRA = [sys.executable, "-m", "plra"]
FIELD_DIR = REPO_ROOT / "datasets" / "personalized-llm"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_plra(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None, timeout: float = 600):
    """Run the real `plra` CLI in a subprocess, as a user would."""
    full_env = {**os.environ, "HF_HUB_OFFLINE": "1", **(env or {})}
    return subprocess.run(
        [*PLRA, *args], capture_output=True, text=True, env=full_env, cwd=cwd or REPO_ROOT, timeout=timeout
    )


@pytest.fixture(scope="session")
def tiny_model_dir() -> Path:
    folder = embedded_dir("smollm2-135m-instruct")
    if not (folder / "config.json").exists():
        pytest.fail(f"{folder} is missing: run `make model` (make test does it) before the tests")
    return folder


@pytest.fixture
def kb_copy(tmp_path, monkeypatch, isolated_config) -> Path:
    """A writable copy of the shipped knowledge base, selected through PLRA_DATASETS_DIR."""
    target = tmp_path / "datasets" / "personalized-llm"
    shutil.copytree(FIELD_DIR, target, ignore=shutil.ignore_patterns(".index", "incoming"))
    monkeypatch.setenv("PLRA_DATASETS_DIR", str(target.parent))
    return target


@pytest.fixture
def isolated_config(tmp_path, monkeypatch) -> Path:
    """A plra.toml path of the test's own, and no PLRA_* variables leaking in from the caller."""
    for key in list(os.environ):
        if key.startswith("PLRA_") and key != "PLRA_TOOLS_DIR":
            monkeypatch.delenv(key)
    config = tmp_path / "plra.toml"
    monkeypatch.setenv("PLRA_CONFIG", str(config))
    return config


def pytest_collection_modifyitems(config, items):
    """GPU tests skip, visibly, where no CUDA device is present."""
    import shutil

    if shutil.which("nvidia-smi"):
        return
    skip = pytest.mark.skip(reason="no CUDA GPU on this machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)
