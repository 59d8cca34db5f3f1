"""The house rules, checked from the code: import directions, no circles, short functions."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = {"fastvp": ROOT / "src" / "fastvp", "fastvp.kernels": ROOT / "kernels"}
MAX_LINES = 80


def _modules() -> dict[str, Path]:
    """Every module of the package: dotted name -> file."""
    out = {}
    for package, folder in SOURCES.items():
        for path in sorted(folder.rglob("*.py")):
            parts = path.relative_to(folder).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join((package, *parts))] = path
    return out


MODULES = _modules()


def _resolve(module: str, path: Path, level: int, name: str | None) -> str:
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for _ in range(level - 1):
        package = package.rpartition(".")[0]
    return f"{package}.{name}" if name else package


def _imports(module: str, path: Path) -> set[str]:
    """The package modules `module` imports (anywhere in its body, lazy imports included)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve(module, path, node.level, node.module) if node.level else node.module
            names = [f"{base}.{a.name}" if f"{base}.{a.name}" in MODULES else base
                     for a in node.names]
        else:
            continue
        found |= {n for n in names if n in MODULES and n != module}
    return found


GRAPH = {m: _imports(m, p) for m, p in MODULES.items()}


def test_no_module_imports_the_package_root():
    offenders = sorted(m for m, deps in GRAPH.items() if "fastvp" in deps)
    assert offenders == []


def test_no_import_circle():
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(GRAPH[m]):
            if d == "fastvp":
                continue
            if state.get(d) == 1:
                pytest.fail("import circle: " + " -> ".join(stack[stack.index(d):] + [d]))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(GRAPH):
        if m not in state:
            visit(m)


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


@pytest.mark.parametrize("importer,forbidden", [
    ("fastvp.kernels", ("fastvp.pic", "fastvp.surrogate")),
    ("fastvp.pic", ("fastvp.surrogate",)),
    ("fastvp.config", ("fastvp.pic",)),
    ("fastvp.initial", ("fastvp.pic",)),
    ("fastvp.files", ("fastvp.pic", "fastvp.surrogate")),
    ("fastvp.distributed", ("fastvp.pic", "fastvp.surrogate")),
    ("fastvp.plots", ("fastvp.pic", "fastvp.surrogate", "fastvp.problems", "fastvp.evaluation")),
    # the old checkpoint formats are read without the trainers (who call it)
    ("fastvp.surrogate.migrate", ("fastvp.surrogate.train", "fastvp.surrogate.baseline",
                                  "fastvp.surrogate.loop")),
])
def test_import_directions(importer, forbidden):
    bad = sorted((m, d) for m, deps in GRAPH.items() if _under(m, importer)
                 for d in deps for f in forbidden if _under(d, f))
    assert bad == []


def test_nothing_outside_the_cli_imports_the_cli():
    bad = sorted((m, d) for m, deps in GRAPH.items() if not _under(m, "fastvp.cli")
                 for d in deps if _under(d, "fastvp.cli"))
    assert bad == []


def test_only_the_cli_imports_the_evaluation():
    """fastvp.evaluation sits on top of the library (data, pic, surrogate), under the CLI."""
    bad = sorted((m, d) for m, deps in GRAPH.items()
                 if not _under(m, "fastvp.cli") and not _under(m, "fastvp.evaluation")
                 for d in deps if _under(d, "fastvp.evaluation"))
    assert bad == []


def test_no_function_is_longer_than_80_lines():
    long = []
    for module, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_LINES:
                    long.append(f"{module}.{node.name}: {lines} lines")
    assert long == []


def test_the_closed_form_gradient_lives_in_two_files():
    """sigma(z) u summed over hidden units (G_i = sum_k sigma_ik u_k) is written only in the
    torch home (surrogate/potential.py) and its fused twin (kernels/deepset_leapfrog.py, the
    one Triton writer of softplus', on the per-example passes of kernels/deepset_common.py)."""
    writers = sorted(m for m, p in MODULES.items() if "softplus_prime" in p.read_text()
                     or "_softplus_prime" in p.read_text())
    assert writers == ["fastvp.kernels.deepset_leapfrog", "fastvp.surrogate.potential"]


MAX_FILE_LINES = 500


def test_no_source_file_is_longer_than_500_lines():
    long = sorted(f"{m}: {n} lines" for m, p in MODULES.items()
                  if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES)
    assert long == []


def test_pic_config_holds_no_initial_distribution_field():
    import dataclasses

    from fastvp.config import DEPRECATED, PICConfig

    fields = {f.name for f in dataclasses.fields(PICConfig)}
    assert fields.isdisjoint(DEPRECATED) and not any("sigma" in f or f.startswith("mu_") for f in fields)


def _function_imports(module: str, path: Path) -> tuple[int, int]:
    """(internal imports inside functions, internal imports in all) of one module."""
    tree = ast.parse(path.read_text())
    inside = {id(sub) for node in ast.walk(tree) if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
              for sub in ast.walk(node) if sub is not node}
    found = [node for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)
             and (node.level > 0 or (node.module or "").startswith("fastvp"))]
    return sum(id(node) in inside for node in found), len(found)


def test_at_most_a_tenth_of_internal_imports_hide_in_functions():
    """Imports at module top, so the import graph shows how the parts use each other; the
    exceptions (optional or heavy dependencies such as the Triton kernels, CLI start-up)
    stay a small share."""
    counts = [_function_imports(m, p) for m, p in MODULES.items()]
    inside, total = sum(c[0] for c in counts), sum(c[1] for c in counts)
    assert inside <= 0.10 * total, f"{inside} of {total} internal imports are inside functions"
