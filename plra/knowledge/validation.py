"""YAML data files read with the line of every key, and validated into models: every problem is an Issue that
names the file, the line and the field."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ValidationError

from plra.errors import PlraError

ModelT = TypeVar("ModelT", bound=BaseModel)


@dataclass(frozen=True)
class Issue:
    """One validation problem, located as precisely as the file allows."""

    path: Path
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"


# libyaml's parser when PyYAML was built with it: the same results, several times faster on 400 files.
SAFE_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def line_map(node: yaml.Node, prefix: tuple = (), duplicates: list | None = None) -> dict[tuple, int]:
    """Line (1-based) of every mapping key and sequence item, by its path of keys and indexes; a key that a
    mapping repeats is recorded in duplicates as (path, line)."""
    lines: dict[tuple, int] = {prefix: node.start_mark.line + 1}
    if isinstance(node, yaml.MappingNode):
        seen: set = set()
        for key, value in node.value:
            path = (*prefix, key.value)
            if key.value in seen and duplicates is not None:
                duplicates.append((path, key.start_mark.line + 1))
            seen.add(key.value)
            lines.update(line_map(value, path, duplicates))
            lines[path] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            lines.update(line_map(item, (*prefix, index), duplicates))
    return lines


def read_yaml(path: Path) -> tuple[Any, dict[tuple, int]]:
    """Parse a YAML file and map each path inside it to a line; a syntax error, bytes that are not UTF-8 or a
    repeated key name the file and the line."""
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        line = raw[: err.start].count(b"\n") + 1
        raise YamlSyntaxError(
            Issue(path, line, "", f"not UTF-8 text (byte {err.start}); save the file as UTF-8")
        ) from None
    try:
        node = yaml.compose(text, Loader=SAFE_LOADER)
        data = yaml.load(text, Loader=SAFE_LOADER)
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        raise YamlSyntaxError(Issue(path, line, "", f"invalid YAML: {getattr(err, 'problem', err)}")) from None
    duplicates: list[tuple[tuple, int]] = []
    lines = line_map(node, (), duplicates) if node is not None else {}
    if duplicates:
        where, line = duplicates[0]
        field = ".".join(map(str, where))
        raise YamlSyntaxError(Issue(path, line, field, "key repeated in the same mapping (YAML keeps only the last)"))
    return data, lines


class YamlSyntaxError(Exception):
    def __init__(self, issue: Issue) -> None:
        super().__init__(str(issue))
        self.issue = issue


def locate(lines: dict[tuple, int], loc: tuple) -> int | None:
    for end in range(len(loc), -1, -1):
        if loc[:end] in lines:
            return lines[loc[:end]]
    return None


def validate_model(model: type[BaseModel], data: Any, path: Path, lines: dict[tuple, int], prefix: tuple = ()):
    """Validate data against model; return (object or None, issues naming file, line and field)."""
    if not isinstance(data, dict):
        return None, [Issue(path, locate(lines, prefix), ".".join(map(str, prefix)), "expected a mapping")]
    try:
        return model.model_validate(data), []
    except ValidationError as err:
        issues = []
        for error in err.errors():
            loc = (*prefix, *error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            issues.append(Issue(path, locate(lines, loc), ".".join(map(str, loc)) or "entry", message))
        return None, issues


def load_model(path: Path, model: type[ModelT], issues: list[Issue]) -> tuple[ModelT | None, dict[tuple, int]]:
    """One YAML file as model and its line map; a syntax or schema problem goes to issues (and None back)."""
    try:
        data, lines = read_yaml(path)
    except YamlSyntaxError as err:
        issues.append(err.issue)
        return None, {}
    parsed, found = validate_model(model, data, path, lines)
    issues.extend(found)
    return parsed, lines


def load_yaml_model(path: Path, model: type[ModelT]) -> ModelT:
    """One YAML data file as model; any problem is one PlraError naming the file, line and field."""
    if not path.exists():
        raise PlraError(f"{path} is missing")
    try:
        data, lines = read_yaml(path)
    except YamlSyntaxError as err:
        raise PlraError(str(err.issue)) from None
    parsed, issues = validate_model(model, data, path, lines)
    if issues:
        raise PlraError("; ".join(str(i) for i in issues[:5]))
    return parsed


def load_list(path: Path, key: str, model: type[BaseModel], issues: list[Issue]) -> list[tuple[Any, dict]]:
    """The items of a top-level list in one YAML file, each with its own line map; problems go to issues."""
    if not path.exists():
        issues.append(Issue(path, None, "", "file missing"))
        return []
    try:
        data, lines = read_yaml(path)
    except YamlSyntaxError as err:
        issues.append(err.issue)
        return []
    items = (data or {}).get(key) if isinstance(data, dict) else None
    if not isinstance(items, list):
        issues.append(Issue(path, 1, key, f"expected a top-level '{key}:' list"))
        return []
    loaded = []
    for index, item in enumerate(items):
        obj, found = validate_model(model, item, path, lines, (key, index))
        issues.extend(found)
        if obj is not None:
            loaded.append((obj, {k[2:]: v for k, v in lines.items() if k[:2] == (key, index) and len(k) > 2}))
    return loaded
