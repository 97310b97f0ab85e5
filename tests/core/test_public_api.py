"""The shape of core/: its public surface, its docstrings, its purity and determinism."""

from __future__ import annotations

import ast
from pathlib import Path

from agent_session_manager import core

CORE = Path(core.__file__).parent
# core/temporal.py is the one adapter that imports temporalio: it is deliberately not
# re-exported, and no other core module imports Temporal (checked on the source below).
ADAPTERS = {"temporal.py", "search_attributes.py"}
MODULES = sorted(p for p in CORE.glob("*.py") if p.name != "__init__.py")


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _is_typevar(node: ast.stmt) -> bool:
    value = node.value if isinstance(node, ast.Assign | ast.AnnAssign) else None
    return (
        isinstance(value, ast.Call)
        and isinstance(value.func, ast.Name)
        and value.func.id == "TypeVar"
    )


def _public_definitions(path: Path) -> dict[str, tuple[ast.stmt, int]]:
    """Public module-level names a module defines (not imports): name -> (node, index)."""
    found: dict[str, tuple[ast.stmt, int]] = {}
    body = _tree(path).body
    for i, node in enumerate(body):
        names: list[str] = []
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names = [node.name]
        elif isinstance(node, ast.Assign):
            names = [t.id for t in node.targets if isinstance(t, ast.Name)]
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names = [node.target.id]
        if _is_typevar(node):
            continue  # type variables are typing machinery, not API
        for name in names:
            if not name.startswith("_"):
                found[name] = (node, i)
    return found


def _has_summary(doc: str | None) -> bool:
    if not doc:
        return False
    first = doc.strip().splitlines()[0].strip()
    return bool(first) and len(first) <= 100


def _assignment_documented(path: Path, node: ast.stmt, index: int) -> bool:
    body = _tree(path).body
    following = body[index + 1] if index + 1 < len(body) else None
    if (
        isinstance(following, ast.Expr)
        and isinstance(following.value, ast.Constant)
        and isinstance(following.value.value, str)
    ):
        return _has_summary(following.value.value)
    lines = path.read_text().splitlines()
    above = lines[node.lineno - 2].strip() if node.lineno >= 2 else ""
    # Sphinx's "#:" comment block: the summary may span the lines just above.
    return above.startswith("#:")


def test_all_lists_exactly_the_public_names_of_the_pure_modules() -> None:
    expected: set[str] = set()
    for path in MODULES:
        if path.name not in ADAPTERS:
            expected |= set(_public_definitions(path))
    assert sorted(core.__all__) == sorted(expected)


def test_all_has_no_duplicates() -> None:
    assert len(core.__all__) == len(set(core.__all__))


def test_every_name_in_all_is_importable_from_core() -> None:
    namespace: dict[str, object] = {}
    exec("from agent_session_manager.core import *", namespace)
    for name in core.__all__:
        assert namespace[name] is getattr(core, name)


def test_every_public_name_has_a_one_line_docstring() -> None:
    undocumented: list[str] = []
    for path in MODULES:
        for name, (node, index) in _public_definitions(path).items():
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                ok = _has_summary(ast.get_docstring(node))
            else:
                ok = _assignment_documented(path, node, index)
            if not ok:
                undocumented.append(f"{path.name}:{name}")
    assert undocumented == []


def test_every_public_method_of_a_public_class_has_a_docstring() -> None:
    undocumented: list[str] = []
    for path in MODULES:
        for name, (node, _) in _public_definitions(path).items():
            if not isinstance(node, ast.ClassDef):
                continue
            for item in node.body:
                if (
                    isinstance(item, ast.FunctionDef | ast.AsyncFunctionDef)
                    and not item.name.startswith("_")
                    and not _has_summary(ast.get_docstring(item))
                ):
                    undocumented.append(f"{path.name}:{name}.{item.name}")
    assert undocumented == []


def test_only_the_adapter_module_imports_temporalio() -> None:
    importers: list[str] = []
    for path in [*MODULES, CORE / "__init__.py"]:
        for node in ast.walk(_tree(path)):
            modules: list[str] = []
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            if any(m == "temporalio" or m.startswith("temporalio.") for m in modules):
                importers.append(path.name)
    assert set(importers) == ADAPTERS


def test_core_never_reads_a_clock_or_a_random_source() -> None:
    # Workflows import core: a clock or RNG read here would break replay determinism.
    forbidden_attrs = {"now", "utcnow", "today", "uuid1", "uuid4", "monotonic", "perf_counter"}
    forbidden_modules = {"random", "secrets", "time"}
    offences: list[str] = []
    for path in MODULES:
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.Attribute) and node.attr in forbidden_attrs:
                offences.append(f"{path.name}:{node.lineno} .{node.attr}")
            elif isinstance(node, ast.Name) and node.id in {"uuid1", "uuid4"}:
                offences.append(f"{path.name}:{node.lineno} {node.id}")
            elif isinstance(node, ast.Import):
                offences += [
                    f"{path.name}:{node.lineno} import {a.name}"
                    for a in node.names
                    if a.name in forbidden_modules
                ]
            elif isinstance(node, ast.ImportFrom) and node.module in forbidden_modules:
                offences.append(f"{path.name}:{node.lineno} from {node.module}")
    assert offences == []


def _product_imports_of_core() -> set[str]:
    """The core modules that product code outside core imports, directly or by name."""
    defined_in = {name: path.stem for path in MODULES for name in _public_definitions(path)} | {
        path.stem: path.stem for path in MODULES
    }
    repo = CORE.parent
    used: set[str] = set()
    for package in ("store", "observability", "workflows", "activities", "worker", "client", "cli"):
        for path in (repo / package).rglob("*.py"):
            for node in ast.walk(_tree(path)):
                if isinstance(node, ast.ImportFrom) and node.module:
                    parts = node.module.split(".")
                    if parts[:2] != ["agent_session_manager", "core"]:
                        continue
                    if len(parts) > 2:
                        used.add(parts[2])
                    else:
                        used |= {defined_in[a.name] for a in node.names if a.name in defined_in}
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        parts = alias.name.split(".")
                        if parts[:2] == ["agent_session_manager", "core"] and len(parts) > 2:
                            used.add(parts[2])
    return used


def _core_imports_of(stem: str) -> set[str]:
    """The core modules that core module ``stem`` imports."""
    return {
        node.module.split(".")[2]
        for node in ast.walk(_tree(CORE / f"{stem}.py"))
        if isinstance(node, ast.ImportFrom)
        and node.module
        and node.module.split(".")[:2] == ["agent_session_manager", "core"]
        and len(node.module.split(".")) > 2
    }


def test_every_core_module_is_used_by_product_code_outside_core() -> None:
    # Code only tests call is dead: each core module must be part of the engine, directly or
    # through a core module the engine uses (core.config_text is how limits and budgets load).
    used = _product_imports_of_core()
    while grown := set().union(*(_core_imports_of(stem) for stem in used)) - used:
        used |= grown
    unused = {path.stem for path in MODULES} - used
    assert unused == set()
