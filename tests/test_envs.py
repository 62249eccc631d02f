import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from plra.errors import PlraError
from plra.toolchain import envs
from tests.conftest import run_plra


def test_run_passes_exit_code_and_output(capfd):
    code = envs.run(
        "main", ["python", "-c", "import sys; print('out-line'); print('err-line', file=sys.stderr); sys.exit(7)"]
    )
    captured = capfd.readouterr()
    assert code == 7
    assert "out-line" in captured.out and "err-line" in captured.err


def test_run_uses_the_env_interpreter_and_tees_to_a_log(tmp_path, capfd):
    log = tmp_path / "logs" / "stage.log"
    code = envs.run("main", ["python", "-c", "import sys; print(sys.prefix)"], log_path=log)
    out = capfd.readouterr().out.strip()
    assert code == 0
    assert Path(out).resolve() == envs.venv_dir("main").resolve()
    assert log.read_text().strip() == out


def test_run_in_a_missing_env_says_how_to_build_it(tmp_path):
    with pytest.raises(PlraError, match=r"environment 'deploy' is not built .*make setup"):
        envs.run("deploy", ["python", "-V"], root=tmp_path)
    with pytest.raises(PlraError, match="unknown environment 'gpu'"):
        envs.run("gpu", ["python", "-V"])


def _fake_checkout(root: Path, lock: str) -> None:
    (root / "requirements").mkdir(parents=True, exist_ok=True)
    (root / "requirements" / "eval.lock").write_text(lock)


@pytest.mark.slow
def test_setup_is_idempotent_and_rebuilds_only_on_change(tmp_path):
    root = tmp_path / "checkout"
    _fake_checkout(root, "# nothing to install\n")
    first = envs.setup(["eval"], root=root)
    venv = root / ".venv-eval"
    stamp = (venv / envs.STAMP).stat().st_mtime_ns
    assert not venv.is_symlink() and (venv / "bin" / "python").exists()  # the checkout's own venv
    second = envs.setup(["eval"], root=root)
    assert (venv / envs.STAMP).stat().st_mtime_ns == stamp  # nothing rebuilt
    assert second["eval"] < min(first["eval"], 2.0)
    _fake_checkout(root, "# a changed lock\n")
    envs.setup(["eval"], root=root)
    assert json.loads((venv / envs.STAMP).read_text())["hash"] == envs.requirements_hash(envs.ENVS["eval"], root)


def test_setup_failure_names_the_env_and_the_installer_error(tmp_path):
    root = tmp_path / "checkout"
    _fake_checkout(root, "--no-index\nplra-no-such-package==9.9 --hash=sha256:" + "0" * 64 + "\n")
    with pytest.raises(PlraError) as err:
        envs.setup(["eval"], root=root)
    message = str(err.value)
    assert "env 'eval' (requirements/eval.lock)" in message and "plra-no-such-package" in message
    assert envs._built_hash(root / ".venv-eval") is None  # never marked up to date
    _fake_checkout(root, "# fixed\n")
    envs.setup(["eval"], root=root)  # the next setup finishes the env it started
    assert envs._built_hash(root / ".venv-eval") == envs.requirements_hash(envs.ENVS["eval"], root)


def test_setup_refuses_to_replace_a_foreign_venv_and_names_a_missing_lock(tmp_path):
    root = tmp_path / "checkout"
    _fake_checkout(root, "# nothing\n")
    (root / ".venv-eval").mkdir()
    with pytest.raises(PlraError, match="was not made by `make setup`"):
        envs.setup(["eval"], root=root)
    with pytest.raises(PlraError, match=r"requirements/deploy.lock is missing: run `make lock`"):
        envs.setup(["deploy"], root=root)


@pytest.mark.slow
def test_setup_replaces_a_link_to_the_old_shared_env_cache(tmp_path):
    root = tmp_path / "checkout"
    _fake_checkout(root, "# nothing\n")
    shared = tmp_path / "shared-env"
    shared.mkdir()
    (root / ".venv-eval").symlink_to(shared)
    envs.setup(["eval"], root=root)
    assert not (root / ".venv-eval").is_symlink() and (root / ".venv-eval" / "bin" / "python").exists()
    assert shared.exists() and not any(shared.iterdir())  # what the link pointed at is left alone


def test_the_locks_hold_exactly_the_pins_of_the_requirements():
    def pins(path: Path) -> set[str]:
        lines = [line.split()[0] for line in path.read_text().splitlines() if line and line[0].isalnum()]
        return {line.lower().replace("_", "-").split("+")[0] for line in lines if "==" in line}

    for env in envs.ENVS.values():
        locked = envs.REPO_ROOT / env.lock
        text = locked.read_text()
        assert "--hash=sha256:" in text and "/work/" not in text  # hashed, and no machine's paths in it
        # The lock may add the build tool the resolver pins (setuptools); everything else is the same.
        extra = {
            pin for pin in pins(locked) - pins(envs.REPO_ROOT / env.requirements) if not pin.startswith("setuptools")
        }
        assert not extra and not pins(envs.REPO_ROOT / env.requirements) - pins(locked), f"{env.lock}: run `make lock`"


@pytest.mark.slow
def test_two_clones_each_run_their_own_plra(tmp_path):
    # The bug this layout fixes: with one shared venv the last clone to run setup took over every other.
    clones = [tmp_path / "first", tmp_path / "second"]
    for clone in clones:
        subprocess.run(["git", "clone", "-q", "--local", str(envs.REPO_ROOT), str(clone)], check=True)
        for lock in ("main", "deploy", "eval"):  # the locks as this checkout has them, committed or not
            shutil.copy(envs.REPO_ROOT / "requirements" / f"{lock}.lock", clone / "requirements")
        shutil.copy(envs.REPO_ROOT / "plra" / "toolchain" / "envs.py", clone / "plra" / "toolchain" / "envs.py")
    for clone in clones:
        setup = subprocess.run([sys.executable, "-m", "plra.toolchain.envs", "setup", "main"], cwd=clone,
                               capture_output=True, text=True, timeout=900)  # fmt: skip
        assert setup.returncode == 0, setup.stdout[-1500:] + setup.stderr[-1500:]
    for clone in clones:  # run from / so the working directory cannot supply the package
        probe = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-c", "import plra; print(plra.__file__)"],
                               cwd="/", capture_output=True, text=True)  # fmt: skip
        assert Path(probe.stdout.strip()).resolve().is_relative_to(clone.resolve()), probe.stdout + probe.stderr


def test_main_env_imports_the_training_stack_on_cpu():
    code = (
        "import torch, torchvision, transformers, xtuner, peft, lagent, gradio\n"
        "from transformers import LlamaForCausalLM\n"
        "import xtuner.dataset\n"
        "boxes = torch.tensor([[0., 0., 1., 1.], [0., 0., 1., 1.]])\n"
        "print(torchvision.ops.nms(boxes, torch.tensor([0.9, 0.8]), 0.5).tolist(), transformers.__version__)"
    )
    result = subprocess.run([str(envs.bin_path("main", "python")), "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split()[0] == "[0]"


def test_env_command_reports_all_three_envs():
    result = run_plra("env", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert set(report["envs"]) == {"main", "deploy", "eval"}
    main = report["envs"]["main"]
    assert main["built"] and main["up_to_date"]
    assert main["packages"]["xtuner"] == "0.2.0" and main["packages"]["transformers"].startswith("4.48")
    assert report["gpu"]["visible"] == bool(shutil.which("nvidia-smi") and report["gpu"]["detail"])
    for name in ("deploy", "eval"):
        assert report["envs"][name]["built"], f"{name} env missing: make setup builds it"
    assert report["envs"]["deploy"]["packages"]["lmdeploy"] == "0.18.0"
    assert report["envs"]["eval"]["packages"]["opencompass"] == "0.5.4"


def test_setup_module_runs_without_dependencies():
    # `make setup` runs this with the bare system interpreter before any env exists.
    result = subprocess.run(
        [sys.executable, "-m", "plra.toolchain.envs", "--help"], capture_output=True, text=True, cwd=envs.REPO_ROOT
    )
    assert result.returncode == 0 and "setup" in result.stdout


def test_ctrl_c_stops_the_stage_it_started(tmp_path):
    import signal
    import time

    marker = tmp_path / "child.pid"
    script = (
        "import sys\n"
        "from plra.toolchain import envs\n"
        "child = \"import os, time; open(sys.argv[1], 'w').write(str(os.getpid())); time.sleep(60)\"\n"
        f"envs.run('main', ['python', '-c', 'import sys; ' + child, {str(marker)!r}], log_path=None)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", script], cwd=envs.REPO_ROOT, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.2)
    child_pid = int(marker.read_text())
    parent.send_signal(signal.SIGINT)
    parent.wait(timeout=60)  # the stage gets 10 s to end before it is killed; a loaded CI machine is slow
    time.sleep(0.5)
    assert subprocess.run(["kill", "-0", str(child_pid)], capture_output=True).returncode != 0


def fake_apt_get(folder: Path, installs: bool) -> Path:
    """An apt-get that records its arguments and, when told to, 'installs' a chromium into the same folder."""
    script = folder / "apt-get"
    make = f'\nif [ "$1" = install ]; then printf "#!/bin/sh\\n" > {folder}/chromium; chmod +x {folder}/chromium; fi'
    script.write_text(f'#!/bin/sh\necho "$@" >> {folder}/calls{make if installs else ""}\n')
    script.chmod(0o755)
    return script


def test_setup_installs_chromium_with_apt_get_as_root(tmp_path):
    apt = fake_apt_get(tmp_path, installs=True)
    lines = envs.ensure_system_packages(apt_get=str(apt), is_root=True, path=str(tmp_path))
    assert lines == [] and (tmp_path / "chromium").exists()
    assert (tmp_path / "calls").read_text().splitlines() == ["update -qq", "install -y -qq chromium"]
    again = envs.ensure_system_packages(apt_get=str(apt), is_root=True, path=str(tmp_path))
    assert again == [] and len((tmp_path / "calls").read_text().splitlines()) == 2  # nothing to do twice


def test_setup_says_what_to_run_without_root_and_when_apt_get_does_not_help(tmp_path):
    apt = fake_apt_get(tmp_path, installs=False)
    [line] = envs.ensure_system_packages(apt_get=str(apt), is_root=False, path=str(tmp_path))
    assert "chromium missing" in line and "sudo apt-get install -y chromium" in line
    assert not (tmp_path / "calls").exists()  # nothing was run without root
    [line] = envs.ensure_system_packages(apt_get=str(apt), is_root=True, path=str(tmp_path))
    assert "still not on PATH" in line
