"""The layers of the design, read from the source: one direction of knowledge, no import circles.

dags/ wires, plugins/ extends Airflow, tasks/ does the work. tasks/ never imports Airflow, dags/
and plugins/ never import torch or sentence-transformers themselves, and the project's modules
import each other as a tree (a circle held together by imports inside functions counts too).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
# top folder -> the prefix its modules are imported by (plugins/ is on Airflow's sys.path)
FOLDERS = {"tasks": "tasks", "plugins": "", "dags": ""}


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    modules: dict[str, Path] = {}
    for folder, prefix in FOLDERS.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = list(path.relative_to(root / folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts = parts[:-1]
            name = ".".join([prefix, *parts] if prefix else parts)
            if name:
                modules[name] = path
    return modules


def imported_names(module: str, path: Path) -> set[str]:
    """Every module name an import statement anywhere in the file can mean (function bodies too)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                package = module.split(".")
                if path.name != "__init__.py":
                    package = package[:-1]
                package = package[: len(package) - node.level + 1]
                base = ".".join(package + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    modules = project_modules(root)
    return {
        name: {other for other in imported_names(name, path) if other in modules and other != name}
        for name, path in modules.items()
    }


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for start in graph:
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_the_project_imports_as_a_tree() -> None:
    graph = import_graph()
    assert len(graph) > 30  # the walk found the project, not an empty folder
    assert circles(graph) == []


def test_a_circle_is_found_when_there_is_one(tmp_path: Path) -> None:
    # the check itself: data <-> argilla_source, held together by an import inside a function
    (tmp_path / "tasks").mkdir()
    (tmp_path / "tasks" / "__init__.py").write_text("")
    (tmp_path / "tasks" / "data.py").write_text("from tasks.argilla_source import load\n")
    (tmp_path / "tasks" / "argilla_source.py").write_text(
        "def load():\n    from .data import prepare\n"
    )
    (tmp_path / "tasks" / "report.py").write_text("from tasks import data\n")
    for folder in ("plugins", "dags"):
        (tmp_path / folder).mkdir()
    assert circles(import_graph(tmp_path)) == [["tasks.argilla_source", "tasks.data"]]


@pytest.mark.parametrize(
    ("folder", "forbidden"),
    [
        ("tasks", ("airflow",)),
        ("plugins", ("torch", "sentence_transformers", "transformers")),
        ("dags", ("torch", "sentence_transformers", "transformers")),
    ],
)
def test_each_layer_keeps_to_its_own_imports(folder: str, forbidden: tuple[str, ...]) -> None:
    offenders = []
    for name, path in project_modules().items():
        if not path.is_relative_to(ROOT / folder):
            continue
        for imported in imported_names(name, path):
            if imported.split(".")[0] in forbidden:
                offenders.append(f"{path.relative_to(ROOT)} imports {imported}")
    assert offenders == []
