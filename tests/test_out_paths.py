"""--out that points at the wrong kind of path is one line naming it, before any work, and no file a person made
is replaced: `plra cite -o` wants a file, `plra write ... -o` and `plra data build --out` a folder."""

from __future__ import annotations

import pytest

from tests.conftest import run_plra


def assert_one_line_error(result, *expected: str) -> None:
    assert result.returncode != 0, result.stdout[-300:]
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr, result.stderr[-500:]
    for text in expected:
        assert text in result.stderr, result.stderr


def test_cite_out_must_be_a_file(tmp_path):
    folder = tmp_path / "refs"
    folder.mkdir()
    assert_one_line_error(run_plra("cite", "2304.11406", "--out", str(folder)),
                          f"--out {folder} is a folder", str(folder / "references.bib"))  # fmt: skip
    assert not any(folder.iterdir())
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    below = a_file / "refs.bib"
    assert_one_line_error(run_plra("cite", "2304.11406", "-o", str(below)), f"{a_file} is a file")
    assert a_file.read_text() == "mine"


@pytest.mark.parametrize("command", [["outline", "personalized reward models"],
                                     ["related-work", "memory for personalized dialogue", "--no-llm"]])  # fmt: skip
def test_write_out_must_be_a_folder_and_replaces_only_its_own_files(tmp_path, command):
    a_file = tmp_path / "draft.md"
    a_file.write_text("mine")
    assert_one_line_error(run_plra("write", *command, "--out", str(a_file)), f"--out {a_file} is a file")
    assert a_file.read_text() == "mine"

    paper = tmp_path / "paper"  # a person's folder that already has a references.bib of its own
    paper.mkdir()
    (paper / "references.bib").write_text("@misc{mine}")
    assert_one_line_error(run_plra("write", *command, "--out", str(paper)),
                          str(paper / "references.bib"), "plra write did not write it")  # fmt: skip
    assert sorted(p.name for p in paper.iterdir()) == ["references.bib"]
    assert (paper / "references.bib").read_text() == "@misc{mine}"

    out = tmp_path / "new"
    for _ in range(2):  # a new folder, then the same one again: plra wrote it, so it replaces its own files
        result = run_plra("write", *command, "--out", str(out))
        assert result.returncode == 0, result.stderr[-500:]
    assert (out / ".plra-write").exists() and "@" in (out / "references.bib").read_text()


def test_data_build_out_must_be_a_folder(tmp_path, isolated_config):
    a_file = tmp_path / "data.jsonl"
    a_file.write_text("mine")
    assert_one_line_error(run_plra("data", "build", "--out", str(a_file)), f"--out {a_file} is a file")
    assert_one_line_error(run_plra("data", "build", "--out", str(a_file / "sub")), f"{a_file} is a file")
    assert a_file.read_text() == "mine"
