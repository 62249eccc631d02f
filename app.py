"""PLRA's Gradio app (the OpenXLab entry point): `python app.py`; the port comes from GRADIO_SERVER_PORT or PORT.

What answers, set by environment variables (on OpenXLab: the app's settings):
- PLRA_ENDPOINT=URL: an OpenAI-compatible server (`plra serve`, LMDeploy, a hosted API) for Ask, Agent,
  Read and Write; the app installs only `requirements.txt` (no torch).
- PLRA_APP_MODEL=HUB_ID (or a local folder): a chat model fetched once at start into models/ and run inside
  the app on its CPU, instead of the tiny model (HF_ENDPOINT picks a hub mirror). It needs torch and
  transformers beside requirements.txt; start-up stops with one line saying so when they are missing.
- neither: Papers-only answers and the knowledge base work; a model-backed mode says that no model is there.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import MutableMapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent
MODELS_DIR = REPO_ROOT / "models"


def fetch_app_model(environ: MutableMapping[str, str] = os.environ) -> Path | None:
    """Fetch PLRA_APP_MODEL when set and point the in-process model at it (PLRA_MODEL_PATH); its folder."""
    wanted = environ.get("PLRA_APP_MODEL", "").strip()
    if not wanted:
        return None
    # Checked before downloading gigabytes: the lean requirements.txt leaves the in-process stack out.
    missing = [name for name in ("torch", "transformers") if importlib.util.find_spec(name) is None]
    if missing:
        raise SystemExit(
            f"PLRA_APP_MODEL={wanted} runs the model inside the app, which needs {' and '.join(missing)}: add "
            f"their pins from requirements/main.txt to requirements.txt, or serve the model elsewhere and set "
            f"PLRA_ENDPOINT instead"
        )
    folder = Path(wanted) if Path(wanted).is_dir() else MODELS_DIR / wanted.rstrip("/").split("/")[-1]
    if not (folder / "config.json").exists():
        from huggingface_hub import snapshot_download

        print(f"[app] fetching {wanted} into {folder}", flush=True)
        try:
            snapshot_download(wanted, local_dir=folder)
        except Exception as err:  # the hub raises many error types; each means the model is not there
            raise SystemExit(f"cannot fetch PLRA_APP_MODEL={wanted}: {type(err).__name__}: {err}") from None
    if not (folder / "config.json").exists():
        raise SystemExit(f"PLRA_APP_MODEL={wanted}: {folder} holds no config.json, so it is no Hugging Face model")
    # The app's in-process model is the tiny profile's; its model_path setting comes from PLRA_MODEL_PATH.
    environ["PLRA_MODEL_PATH"] = str(folder)
    return folder


if __name__ == "__main__":
    fetch_app_model()
    from plra.app import main  # after the fetch: the app reads PLRA_MODEL_PATH when it loads the model

    main()
