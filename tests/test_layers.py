"""The package's shape, read from its imports: each layer imports only itself and the layers below it, and no
module imports itself back through others. Imports inside functions count (they are dependencies all the same)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from plra.paths import REPO_ROOT

PACKAGE = REPO_ROOT / "plra"
# Lowest first. The top-level modules other than cli/app/__main__ are the base every layer may use.
LAYERS = ["base", "knowledge", "data", "toolchain", "assistant", "research", "top"]
TOP = {"plra.cli", "plra.app", "plra.__main__"}
# The pipeline's example stage asks the served model real questions through the assistant: the one named exception.
ALLOWED_UPWARD = {("plra.toolchain.examples", "assistant")}


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    if module in TOP:
        return "top"
    parts = module.split(".")
    return parts[1] if len(parts) > 2 and parts[1] in LAYERS else "base"


def resolve(module: str, known: set[str]) -> str:
    """The plra module an import names (`from plra.knowledge import kb` names plra.knowledge.kb)."""
    while module not in known and "." in module:
        module = module.rsplit(".", 1)[0]
    return module


def imports_of(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [f"{node.module}.{alias.name}" for alias in node.names]
        else:
            continue
        found |= {resolve(name, known) for name in names if name.split(".")[0] == "plra"}
    return found - {"plra"}


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    files = {module_name(path): path for path in root.rglob("*.py")}
    known = set(files)
    return {module: imports_of(path, known) - {module} for module, path in files.items()}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    wrong = []
    for module, targets in graph.items():
        for target in targets:
            below = LAYERS.index(layer(target)) <= LAYERS.index(layer(module))
            if not below and (module, layer(target)) not in ALLOWED_UPWARD:
                wrong.append(f"{module} ({layer(module)}) imports {target} ({layer(target)})")
    return sorted(wrong)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every module that can reach itself, with one path back to it."""
    found = []
    for start in sorted(graph):
        stack, seen = [(start, [start])], set()
        while stack:
            node, path = stack.pop()
            for target in graph.get(node, ()):
                if target == start:
                    found.append([*path, start])
                    stack = []
                    break
                if target not in seen:
                    seen.add(target)
                    stack.append((target, [*path, target]))
    return found


def test_each_layer_imports_only_the_layers_below_it() -> None:
    assert upward_imports(import_graph()) == []


def test_no_module_imports_itself_back() -> None:
    assert cycles(import_graph()) == []


def test_every_subpackage_says_what_it_owns_and_may_import() -> None:
    for name in LAYERS[1:-1]:
        doc = ast.get_docstring(ast.parse((PACKAGE / name / "__init__.py").read_text(encoding="utf-8")))
        assert doc and "import" in doc, f"plra/{name}/__init__.py needs a docstring naming what it may import"


@pytest.fixture
def tiny_package(tmp_path: Path) -> Path:
    """A throwaway package laid out like plra, to show that the checks catch what they claim to."""
    root = tmp_path / "plra"
    for sub in ("knowledge", "assistant", "toolchain"):
        (root / sub).mkdir(parents=True)
        (root / sub / "__init__.py").write_text('"""x"""\n')
    (root / "__init__.py").write_text("")
    return root


def _graph(root: Path) -> dict[str, set[str]]:
    files = {".".join(p.relative_to(root.parent).with_suffix("").parts).removesuffix(".__init__"): p
             for p in root.rglob("*.py")}  # fmt: skip
    return {m: imports_of(p, set(files)) - {m} for m, p in files.items()}


def test_a_lower_layer_importing_an_upper_one_is_caught(tiny_package: Path) -> None:
    (tiny_package / "assistant" / "answer.py").write_text("X = 1\n")
    (tiny_package / "knowledge" / "kb.py").write_text("def f():\n    from plra.assistant.answer import X\n")
    assert upward_imports(_graph(tiny_package)) == [
        "plra.knowledge.kb (knowledge) imports plra.assistant.answer (assistant)"
    ]


def test_the_named_exception_is_the_only_one(tiny_package: Path) -> None:
    (tiny_package / "assistant" / "answer.py").write_text("X = 1\n")
    (tiny_package / "toolchain" / "examples.py").write_text("from plra.assistant import answer\n")
    (tiny_package / "toolchain" / "train.py").write_text("from plra.assistant.answer import X\n")
    assert upward_imports(_graph(tiny_package)) == [
        "plra.toolchain.train (toolchain) imports plra.assistant.answer (assistant)"
    ]


def test_a_cycle_is_caught(tiny_package: Path) -> None:
    (tiny_package / "knowledge" / "kb.py").write_text("from plra.knowledge import names\n")
    (tiny_package / "knowledge" / "names.py").write_text("from plra.knowledge.kb import load\n")
    found = cycles(_graph(tiny_package))
    assert ["plra.knowledge.kb", "plra.knowledge.names", "plra.knowledge.kb"] in found
