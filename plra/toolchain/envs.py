"""The three Python environments and the one way to run a command inside one of them.

The upstream tools pin conflicting versions (xtuner wants transformers 4.48, lmdeploy wants 5.x,
opencompass wants its own mmengine), so each stage runs in its own venv by subprocess.

Each env is built once per requirements hash in a per-user cache (`PLRA_ENV_CACHE`, default
`~/.cache/plra/envs`) and linked into the checkout as `.venv`, `.venv-deploy`, `.venv-eval`; a fresh
clone therefore reuses what an earlier clone built. Standard library only: `python3 -m plra.toolchain.envs setup`
runs before anything is installed.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from plra.errors import PlraError
from plra.paths import REPO_ROOT

STAMP = ".plra-env.json"


@dataclass(frozen=True)
class EnvSpec:
    name: str
    link: str  # path of the venv link inside the checkout
    requirements: str  # requirements file, relative to the checkout
    key_packages: tuple[str, ...]  # what `plra env` reports
    install_checkout: bool = False  # the plra package itself (editable)


ENVS: dict[str, EnvSpec] = {
    "main": EnvSpec(
        "main",
        ".venv",
        "requirements/main.txt",  # the root requirements.txt is the app's alone (OpenXLab installs it)
        ("torch", "torchvision", "transformers", "xtuner", "peft", "lagent", "gradio", "bm25s"),
        install_checkout=True,
    ),
    "deploy": EnvSpec(
        "deploy", ".venv-deploy", "requirements/deploy.txt", ("lmdeploy", "torch", "transformers", "openai")
    ),
    "eval": EnvSpec("eval", ".venv-eval", "requirements/eval.txt", ("opencompass", "torch", "transformers")),
}


def spec(name: str) -> EnvSpec:
    try:
        return ENVS[name]
    except KeyError:
        raise PlraError(f"unknown environment '{name}': choose one of {', '.join(ENVS)}") from None


def cache_dir() -> Path:
    return Path(os.environ.get("PLRA_ENV_CACHE") or Path.home() / ".cache" / "plra" / "envs")


def requirements_hash(env: EnvSpec, root: Path = REPO_ROOT) -> str:
    """Hash of what defines the env: its requirements file and the interpreter building it."""
    digest = hashlib.sha256()
    digest.update((root / env.requirements).read_bytes())
    digest.update(f"{sys.version_info.major}.{sys.version_info.minor}".encode())
    return digest.hexdigest()[:16]


def venv_dir(name: str, root: Path = REPO_ROOT) -> Path:
    return root / spec(name).link


def bin_path(name: str, program: str, root: Path = REPO_ROOT) -> Path:
    return venv_dir(name, root) / "bin" / program


def _built_hash(target: Path) -> str | None:
    try:
        return json.loads((target / STAMP).read_text())["hash"]
    except (OSError, ValueError, KeyError):
        return None


def _stream(cmd: list[str], prefix: str, tail: collections.deque[str], env: dict[str, str] | None = None) -> int:
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    assert proc.stdout is not None
    for line in proc.stdout:
        line = line.rstrip()
        tail.append(line)
        # Keep the log readable: one line per package decision, not download bars.
        if line.startswith(("Collecting", "Installing", "Successfully", "ERROR", "Processing")):
            print(f"[{prefix}] {line[:160]}", flush=True)
    return proc.wait()


def _fail(env: EnvSpec, step: str, tail: collections.deque[str]) -> PlraError:
    errors = [line for line in tail if line.startswith("ERROR")] or list(tail)[-5:]
    detail = " | ".join(errors[-3:])
    return PlraError(f"setup of env '{env.name}' ({env.requirements}) failed while {step}: {detail}")


def _build(env: EnvSpec, target: Path, digest: str, root: Path) -> None:
    if target.exists():  # a half-built env from an interrupted run: its stamp was never written
        shutil.rmtree(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tail: collections.deque[str] = collections.deque(maxlen=60)
    print(f"[{env.name}] creating venv {target}", flush=True)
    if _stream([sys.executable, "-m", "venv", str(target)], env.name, tail) != 0:
        raise _fail(env, "creating the venv", tail)
    pip = [str(target / "bin" / "python"), "-m", "pip", "--disable-pip-version-check"]
    print(f"[{env.name}] installing {env.requirements}", flush=True)
    if _stream([*pip, "install", "--progress-bar", "off", "-r", str(root / env.requirements)], env.name, tail):
        raise _fail(env, f"installing {env.requirements}", tail)
    if _stream([*pip, "check"], env.name, tail) != 0:
        raise _fail(env, "checking dependencies (pip check)", tail)
    stamp = {"hash": digest, "requirements": env.requirements, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (target / STAMP).write_text(json.dumps(stamp))


def _link(env: EnvSpec, target: Path, root: Path) -> None:
    link = root / env.link
    if link.is_symlink():
        if link.resolve() == target.resolve():
            return
        link.unlink()
    elif link.exists():
        raise PlraError(f"{link} exists and is not a link made by `make setup`: move it away, then run `make setup`")
    link.symlink_to(target)


def _prune(env: EnvSpec, current: Path) -> None:
    """Remove this env's builds for older requirements: each one is several GB."""
    for old in cache_dir().glob(f"{env.name}-*"):
        if old != current and (old / STAMP).exists():
            print(f"[{env.name}] removing outdated build {old}", flush=True)
            shutil.rmtree(old, ignore_errors=True)


def _ensure_checkout_installed(env: EnvSpec, root: Path) -> None:
    """Point the env's editable plra at this checkout (a cached env may have served another clone)."""
    python = str(root / env.link / "bin" / "python")
    probe = subprocess.run(
        [python, "-c", "import plra, pathlib; print(pathlib.Path(plra.__file__).resolve().parent.parent)"],
        capture_output=True,
        text=True,
        cwd="/",
    )
    if probe.returncode == 0 and Path(probe.stdout.strip()) == root.resolve():
        return
    print(f"[{env.name}] installing the plra package from {root} (editable)", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=60)
    cmd = [python, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "-e", str(root)]
    if _stream(cmd, env.name, tail) != 0:
        raise _fail(env, "installing the plra package", tail)


def setup(names: list[str] | None = None, root: Path = REPO_ROOT) -> dict[str, float]:
    """Build missing or outdated envs; return seconds spent per env. Idempotent and cheap when up to date."""
    timings: dict[str, float] = {}
    for name in names or list(ENVS):
        env = spec(name)
        start = time.monotonic()
        digest = requirements_hash(env, root)
        target = cache_dir() / f"{env.name}-{digest}"
        if _built_hash(target) == digest:
            print(f"[{env.name}] up to date ({env.requirements} unchanged, {target})", flush=True)
        else:
            _build(env, target, digest, root)
        _link(env, target, root)
        _prune(env, target)
        if env.install_checkout:
            _ensure_checkout_installed(env, root)
        timings[name] = time.monotonic() - start
        print(f"[{env.name}] ready in {timings[name]:.1f} s", flush=True)
    return timings


# Commands the tests need from the system, and the Debian package of each: the browser tests drive
# Debian's chromium (a browser a test tool downloads for itself cannot be fetched here).
SYSTEM_PACKAGES = {"chromium": "chromium"}


def ensure_system_packages(
    packages: dict[str, str] = SYSTEM_PACKAGES,
    apt_get: str | None = None,
    is_root: bool | None = None,
    path: str | None = None,
) -> list[str]:
    """Install the missing system packages with apt-get where we are root; else say, in one line each,
    what to run. Returns the lines to show (empty when everything is there). Never fails setup: only
    the browser tests need these, and they name the fix again."""
    missing = {cmd: pkg for cmd, pkg in packages.items() if not shutil.which(cmd, path=path)}
    if not missing:
        return []
    apt_get = apt_get or shutil.which("apt-get", path=path)
    is_root = os.geteuid() == 0 if is_root is None else is_root
    names = " ".join(sorted(set(missing.values())))
    if not (apt_get and is_root):
        how = f"sudo apt-get install -y {names}" if apt_get else f"install {names} with your system's package manager"
        return [f"[system] {', '.join(missing)} missing (the browser tests need it): run `{how}`"]
    print(f"[system] installing {names} with apt-get", flush=True)
    quiet = {"DEBIAN_FRONTEND": "noninteractive"}
    for argv in ([apt_get, "update", "-qq"], [apt_get, "install", "-y", "-qq", *sorted(set(missing.values()))]):
        done = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **quiet}, timeout=1800)
        if done.returncode != 0:
            tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["no output"]
            return [f"[system] `{' '.join(argv[1:3])}` failed ({tail[0][:200]}): install {names} by hand"]
    still = [cmd for cmd in missing if not shutil.which(cmd, path=path)]
    return [f"[system] apt-get ran but {', '.join(still)} is still not on PATH"] if still else []


def _env_vars(name: str, root: Path, extra: dict[str, str] | None) -> dict[str, str]:
    venv = venv_dir(name, root)
    env = dict(os.environ)
    env.pop("PYTHONHOME", None)
    env["VIRTUAL_ENV"] = str(venv)
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    env.update(extra or {})
    return env


def shell_line(argv: list[str], env: dict[str, str] | None = None) -> str:
    """A command as one shell line to paste: `VAR=value ... program args`, quoted where needed."""
    return " ".join([*(f"{k}={shlex.quote(v)}" for k, v in (env or {}).items()), shlex.join(argv)])


def run(
    name: str,
    argv: list[str],
    *,
    cwd: Path | None = None,
    extra_env: dict[str, str] | None = None,
    log_path: Path | None = None,
    root: Path = REPO_ROOT,
) -> int:
    """Run argv inside env `name`, streaming its output, and return its exit code.

    argv[0] is looked up in the env's bin/ first (`python`, `xtuner`, `lmdeploy`, `opencompass`).
    With log_path the output is also written to that file (stdout and stderr merged).
    """
    venv = venv_dir(name, root)
    if not (venv / "bin" / "python").exists():
        raise PlraError(f"environment '{name}' is not built ({spec(name).link} missing): run `make setup`")
    program = venv / "bin" / argv[0]
    cmd = [str(program), *argv[1:]] if program.exists() else list(argv)
    env = _env_vars(name, root, extra_env)
    if log_path is not None:
        log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, text=True, stdout=subprocess.PIPE if log_path else None,
                                stderr=subprocess.STDOUT if log_path else None)  # fmt: skip
    except FileNotFoundError:
        raise PlraError(f"command not found in env '{name}': {argv[0]}") from None
    try:
        if log_path is None:
            return proc.wait()
        with open(log_path, "w", encoding="utf-8") as log:
            assert proc.stdout is not None
            for line in proc.stdout:
                sys.stdout.write(line)
                sys.stdout.flush()
                log.write(line)
            return proc.wait()
    except KeyboardInterrupt:
        # Ctrl-C reaches plra; the stage it started must not run on as an orphan.
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
        raise


def versions(name: str, root: Path = REPO_ROOT) -> dict[str, str | None]:
    """Installed versions of the env's key packages (None: not installed; empty dict: env not built)."""
    env = spec(name)
    python = bin_path(name, "python", root)
    if not python.exists():
        return {}
    code = (
        "import json, importlib.metadata as m, sys\n"
        "out = {}\n"
        "for p in sys.argv[1:]:\n"
        "    try: out[p] = m.version(p)\n"
        "    except m.PackageNotFoundError: out[p] = None\n"
        "print(json.dumps(out))"
    )
    result = subprocess.run([str(python), "-c", code, *env.key_packages], capture_output=True, text=True, cwd="/")
    return json.loads(result.stdout) if result.returncode == 0 else {}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m plra.toolchain.envs", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    setup_cmd = sub.add_parser("setup", help="build the environments that are missing or outdated")
    setup_cmd.add_argument("names", nargs="*", help=f"envs to build, of {', '.join(ENVS)} (default: all)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        timings = setup(args.names or None)
    except PlraError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code
    for line in ensure_system_packages() if not args.names else []:
        print(line, file=sys.stderr)
    summary = ", ".join(f"{name} {seconds:.1f} s" for name, seconds in timings.items())
    print(f"setup done in {time.monotonic() - start:.1f} s ({summary})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
