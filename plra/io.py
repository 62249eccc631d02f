"""Files written so that a crash never leaves a half-written one: write a temp file, then rename."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from plra.errors import PlraError


def write_bytes_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside path, then rename: readers never see half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _check_way_to(path: Path, flag: str) -> None:
    """The nearest existing folder above path must be a folder: a file there would make mkdir fail midway."""
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise PlraError(f"{flag} {path}: {parent} is a file, so nothing can be written below it")
            return


def check_file_out(path: Path, flag: str = "--out", example: str = "out.txt") -> None:
    """path may become a file: it is no folder and nothing on the way to it is a file (one line if not)."""
    if path.is_dir():
        raise PlraError(f"{flag} {path} is a folder: give a file name, such as {path / example}")
    _check_way_to(path, flag)


def check_folder_out(path: Path, flag: str = "--out", what: str = "the files") -> None:
    """path may become a folder: it is no file and nothing on the way to it is a file (one line if not)."""
    if path.exists() and not path.is_dir():
        raise PlraError(f"{flag} {path} is a file: give a folder for {what}")
    _check_way_to(path, flag)


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, ensure_ascii=False, indent=2) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file; a malformed line raises ValueError naming the file and line."""
    return [row for _, row in read_jsonl_numbered(path)]


def read_jsonl_numbered(path: Path) -> list[tuple[int, dict[str, Any]]]:
    """(line number, row) pairs, so that later checks of a row can name its line too."""
    rows = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ValueError(f"{path}:{number}: invalid JSON: {err.msg} (column {err.colno})") from None
        if not isinstance(row, dict):
            raise ValueError(f"{path}:{number}: expected a JSON object, got {type(row).__name__}")
        rows.append((number, row))
    return rows
