"""The three Python environments and the one way to run a command inside one of them.

The upstream tools pin conflicting versions (xtuner wants transformers 4.48, lmdeploy wants 5.x,
opencompass wants its own mmengine), so each stage runs in its own venv by subprocess.

Each checkout owns its venvs (`.venv`, `.venv-deploy`, `.venv-eval`): uv builds them from the locked
requirements (`requirements/<env>.lock`, exact pins with hashes; `make lock` refreshes them from
`requirements/<env>.txt`) out of its global cache, so a second clone downloads nothing and links the
files instead of copying them, and no clone can run another clone's `plra`. uv itself is installed once
per user, pinned, by pip. Standard library only: `python3 -m plra.toolchain.envs setup` runs before
anything is installed.
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
UV_VERSION = "0.13.8"


@dataclass(frozen=True)
class EnvSpec:
    name: str
    link: str  # the venv's folder inside the checkout
    requirements: str  # the exact pins, relative to the checkout; the lock beside it adds hashes
    key_packages: tuple[str, ...]  # what `plra env` reports
    install_checkout: bool = False  # the plra package itself (editable)

    @property
    def lock(self) -> str:
        return str(Path(self.requirements).with_suffix(".lock"))


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


def tools_dir() -> Path:
    """Where the pinned uv lives: per user, beside uv's own cache (`PLRA_TOOLS_DIR` moves it)."""
    return Path(os.environ.get("PLRA_TOOLS_DIR") or Path.home() / ".cache" / "plra" / "tools")


def requirements_hash(env: EnvSpec, root: Path = REPO_ROOT) -> str:
    """Hash of what defines the env: its lock file and the interpreter building it."""
    digest = hashlib.sha256()
    digest.update((root / env.lock).read_bytes())
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
        # Keep the log readable: uv's summary lines and errors, not one line per package.
        if line.lstrip().startswith(("Resolved", "Prepared", "Installed", "Uninstalled", "error", "cause", "×")):
            print(f"[{prefix}] {line.strip()[:160]}", flush=True)
    return proc.wait()


def _fail(env: EnvSpec, step: str, tail: collections.deque[str]) -> PlraError:
    errors = [line.strip() for line in tail if line.lstrip().startswith(("error", "cause", "×", "╰", "hint"))] or list(
        tail
    )[-5:]
    detail = " | ".join(errors[-3:])
    return PlraError(f"setup of env '{env.name}' ({env.lock}) failed while {step}: {detail}")


def uv_binary() -> Path:
    """The pinned uv, installed by pip into a small venv of its own the first time it is needed."""
    home = tools_dir() / f"uv-{UV_VERSION}"
    uv = home / "bin" / "uv"
    if uv.exists():
        return uv
    print(f"[setup] installing uv {UV_VERSION} into {home}", flush=True)
    tail: collections.deque[str] = collections.deque(maxlen=60)
    partial = home.with_name(home.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    steps = (
        [sys.executable, "-m", "venv", str(partial)],
        [str(partial / "bin" / "pip"), "install", "-q", f"uv=={UV_VERSION}"],
    )
    for step in steps:
        if _stream(step, "setup", tail) != 0:
            raise PlraError(f"installing uv {UV_VERSION} failed: {' | '.join(list(tail)[-3:])}")
    # The venv's scripts name its folder: move it into place only after pip is done with it.
    shutil.rmtree(home, ignore_errors=True)
    partial.rename(home)
    subprocess.run([str(home / "bin" / "python"), "-m", "venv", "--upgrade", str(home)], capture_output=True)
    return uv


def pip_sources() -> list[str]:
    """The package sources pip is configured with here (wheel folders, extra indexes), as uv flags.

    uv does not read pip's configuration; a machine that keeps wheels on disk (this machine kind keeps its
    CPU torch there) must give uv the same places or the locks' local versions cannot be found.
    """
    flags: list[str] = []
    try:
        listed = subprocess.run(
            [sys.executable, "-m", "pip", "config", "list"], capture_output=True, text=True, timeout=60
        )
        lines = listed.stdout.splitlines()
    except (OSError, subprocess.TimeoutExpired):
        lines = []
    values: dict[str, list[str]] = {"find-links": [], "extra-index-url": []}
    for line in lines:
        key, _, value = line.partition("=")
        option = key.rsplit(".", 1)[-1]
        if option in values:
            values[option] += [item for item in value.strip("'\"").split() if item not in values[option]]
    for env_var, option in (("PIP_FIND_LINKS", "find-links"), ("PIP_EXTRA_INDEX_URL", "extra-index-url")):
        values[option] += [item for item in os.environ.get(env_var, "").split() if item not in values[option]]
    for option, items in values.items():
        for item in items:
            flags += [f"--{option}", item]
    # Both indexes name the same releases; take each version from wherever it is, as pip does.
    return [*flags, "--index-strategy", "unsafe-best-match"] if flags else flags


def _uv_env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["UV_PYTHON_DOWNLOADS"] = "never"  # the interpreter running setup is the one every env uses
    env.setdefault("UV_NO_PROGRESS", "1")
    return env


def _write_stamp(target: Path, digest: str | None, env: EnvSpec) -> None:
    stamp = {"hash": digest, "lock": env.lock, "built": time.strftime("%Y-%m-%dT%H:%M:%S")}
    (target / STAMP).write_text(json.dumps(stamp))


def _prepare(env: EnvSpec, target: Path) -> None:
    """Make `target` a venv of ours to sync into, or say why it cannot be."""
    if target.is_symlink():  # the shared env cache of earlier versions linked it here: replace the link
        print(
            f"[{env.name}] replacing the link to a shared env ({os.readlink(target)}) with this checkout's own",
            flush=True,
        )
        target.unlink()
    elif target.exists() and not (target / STAMP).exists():
        raise PlraError(f"{target} exists and was not made by `make setup`: move it away, then run `make setup`")
    python_matches = (target / "bin" / "python").exists() and subprocess.run(
        [
            str(target / "bin" / "python"),
            "-c",
            f"import sys; sys.exit(sys.version_info[:2] != {tuple(sys.version_info[:2])})",
        ],
        capture_output=True,
    ).returncode == 0
    if target.exists() and not python_matches:
        shutil.rmtree(target)
    if not target.exists():
        tail: collections.deque[str] = collections.deque(maxlen=60)
        print(f"[{env.name}] creating venv {target}", flush=True)
        if _stream(
            [str(uv_binary()), "venv", "-q", "--python", sys.executable, str(target)], env.name, tail, _uv_env()
        ):
            raise _fail(env, "creating the venv", tail)
    # Marked ours before anything is installed: an interrupted sync is finished by the next setup.
    _write_stamp(target, None, env)


def _build(env: EnvSpec, target: Path, digest: str, root: Path) -> None:
    _prepare(env, target)
    uv = str(uv_binary())
    python = ["--python", str(target / "bin" / "python")]
    tail: collections.deque[str] = collections.deque(maxlen=80)
    print(f"[{env.name}] installing {env.lock}", flush=True)
    sync = [uv, "pip", "sync", "--require-hashes", *python, *pip_sources(), str(root / env.lock)]
    if _stream(sync, env.name, tail, _uv_env()) != 0:
        raise _fail(env, f"installing {env.lock}", tail)
    if env.install_checkout:
        print(f"[{env.name}] installing the plra package from {root} (editable)", flush=True)
        editable = [uv, "pip", "install", "--no-deps", "--no-build-isolation", *python, "-e", str(root)]
        if _stream(editable, env.name, tail, _uv_env()) != 0:
            raise _fail(env, "installing the plra package", tail)
    if _stream([uv, "pip", "check", *python], env.name, tail, _uv_env()) != 0:
        raise _fail(env, "checking dependencies (uv pip check)", tail)
    _write_stamp(target, digest, env)


def setup(names: list[str] | None = None, root: Path = REPO_ROOT) -> dict[str, float]:
    """Build missing or outdated envs of this checkout; return seconds spent per env. Cheap when up to date."""
    timings: dict[str, float] = {}
    for name in names or list(ENVS):
        env = spec(name)
        start = time.monotonic()
        if not (root / env.lock).exists():
            raise PlraError(f"{env.lock} is missing: run `make lock` to write it from {env.requirements}")
        digest = requirements_hash(env, root)
        target = root / env.link
        if not target.is_symlink() and _built_hash(target) == digest:
            print(f"[{env.name}] up to date ({env.lock} unchanged)", flush=True)
        else:
            _build(env, target, digest, root)
        timings[name] = time.monotonic() - start
        print(f"[{env.name}] ready in {timings[name]:.1f} s", flush=True)
    return timings


def lock(names: list[str] | None = None, root: Path = REPO_ROOT) -> list[Path]:
    """Write `requirements/<env>.lock` from `requirements/<env>.txt`: the same pins, with every file's hash."""
    written = []
    for name in names or list(ENVS):
        env = spec(name)
        tail: collections.deque[str] = collections.deque(maxlen=60)
        version = ".".join(map(str, sys.version_info[:3]))
        cmd = [str(uv_binary()), "pip", "compile", "-q", "--generate-hashes", "--python-version", version,
               "--custom-compile-command", "make lock", *pip_sources(), env.requirements, "-o", env.lock]  # fmt: skip
        proc = subprocess.run(cmd, cwd=root, capture_output=True, text=True, env=_uv_env())
        if proc.returncode != 0:
            tail.extend((proc.stderr or proc.stdout).splitlines())
            raise _fail(env, "locking", tail)
        print(f"[{env.name}] wrote {env.lock}", flush=True)
        written.append(root / env.lock)
    return written


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
    lock_cmd = sub.add_parser(
        "lock", help="write requirements/<env>.lock (pins with hashes) from requirements/<env>.txt"
    )
    lock_cmd.add_argument("names", nargs="*", help=f"envs to lock, of {', '.join(ENVS)} (default: all)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    try:
        if args.command == "lock":
            lock(args.names or None)
            return 0
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
