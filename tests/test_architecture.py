"""The floor plan holds: layered packages, files of one idea, objects that answer for themselves.

These are the renovation's done-criteria (docs/architecture.md), kept true by the suite:

* the package import graph (every ``import``, function-local ones included) is acyclic;
* no file under ``ambient_imaging/`` is over 600 lines and no function over 100;
* nothing outside ``ambient_imaging/operators/`` calls an operator's private hooks or walks
  the composite tree (``ComposedOperator``/``ScaledOperator`` internals);
* there is exactly one public function named ``reconstruct``.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ambient_imaging"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 100
PRIVATE_OPERATOR_HOOKS = ("_replace", "_with_rows", "_sub", "_stack", "_with_noise_factor")


def _modules() -> dict[str, Path]:
    out = {}
    for p in sorted(PKG.rglob("*.py")):
        rel = p.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = p
    return out


def _unit(module: str) -> str:
    """The layer unit of a module: its subpackage (``ambient_imaging.sampling``) or top-level module."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 1 else parts[0]


def _imports(module: str, path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_pkg = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base if is_pkg else base[:-1]
                base = base[: len(base) - (node.level - 1)]
                name = ".".join(base + ([node.module] if node.module else []))
            else:
                name = node.module or ""
            found.add(name)
            found.update(f"{name}.{a.name}" for a in node.names)
    return {n for n in found if n == "ambient_imaging" or n.startswith("ambient_imaging.")}


def test_package_import_graph_is_acyclic():
    mods = _modules()
    graph: dict[str, set[str]] = {}
    for name, path in mods.items():
        if name == "ambient_imaging" or name.startswith("ambient_imaging.cli") or name == "ambient_imaging.__main__":
            continue  # the root re-exports and the CLI sit on top of everything
        src = _unit(name)
        for target in _imports(name, path):
            dst = _unit(target)
            if dst != src and dst in {_unit(m) for m in mods} and not dst.startswith("ambient_imaging.cli"):
                graph.setdefault(src, set()).add(dst)
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> None:
        state[n] = 1
        stack.append(n)
        for m in sorted(graph.get(n, ())):
            if state.get(m) == 1:
                cycle = stack[stack.index(m):] + [m]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = 2

    for n in sorted(graph):
        if n not in state:
            visit(n)


def test_files_and_functions_fit_on_a_screen():
    long_files, long_functions = [], []
    for path in sorted(PKG.rglob("*.py")):
        text = path.read_text(encoding="utf-8")
        n = text.count("\n")
        if n > MAX_FILE_LINES:
            long_files.append(f"{path.relative_to(PKG.parent)} ({n} lines)")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{path.relative_to(PKG.parent)}:{node.lineno} {node.name} ({length})")
    assert not long_files, f"files over {MAX_FILE_LINES} lines: {long_files}"
    assert not long_functions, f"functions over {MAX_FUNCTION_LINES} lines: {long_functions}"


def test_nobody_calls_operator_private_hooks_from_outside():
    offenders = []
    for path in sorted(PKG.rglob("*.py")):
        if path.is_relative_to(PKG / "operators"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Attribute) and node.attr in PRIVATE_OPERATOR_HOOKS:
                offenders.append(f"{path.relative_to(PKG.parent)}:{node.lineno} .{node.attr}")
            if isinstance(node, ast.Attribute) and node.attr in ("outer", "inner") and isinstance(node.value, ast.Name):
                offenders.append(f"{path.relative_to(PKG.parent)}:{node.lineno} walks a composite (.{node.attr})")
    assert not offenders, offenders


def test_exactly_one_public_reconstruct():
    found = []
    for path in sorted(PKG.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in tree.body:
            if isinstance(node, ast.FunctionDef) and node.name == "reconstruct":
                found.append(str(path.relative_to(PKG.parent)))
    assert len(found) == 1, f"public functions named reconstruct: {found}"


def test_cli_start_up_imports_neither_the_trainer_nor_scipy_stats():
    """Every command builds the whole parser: it must stay light (the trainer, the networks and skimage's
    scipy.stats cost seconds of start-up; each is imported where it is used)."""
    import subprocess
    import sys

    code = ("import sys; from ambient_imaging.cli import build_parser; build_parser(); "
            "print(sorted(m for m in ('ambient_imaging.training.assembly', 'ambient_imaging.training.trainer', "
            "'scipy.stats', 'skimage.metrics') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]", out
