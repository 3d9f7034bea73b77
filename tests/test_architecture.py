"""The arrows of the house style, checked on the source: a small pure core, adapters at the
edges that do not import each other, heavy libraries only where they are needed."""

import ast
from pathlib import Path

import pytest

PKG = Path(__file__).parent.parent / "svctrace"


def _imports(path: Path, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text())
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            out.add(node.module)
    return out


def _modules(package: str) -> list[Path]:
    return sorted((PKG / package).glob("*.py"))


# package → svctrace packages it may import (besides itself)
ALLOWED = {
    "model": set(),
    "trace": {"model", "errors"},
    "rules": {"model", "errors", "inputs"},
    "cluster": {"model", "errors", "inputs"},
    "diagnose": {"model", "errors", "rules", "trace"},
    "render": {"model", "diagnose"},
    # the explain pipeline, below cli/: every adapter and check, never cli/ (it does not print)
    "explain": {"model", "errors", "inputs", "rules", "trace", "cluster", "diagnose", "render",
                "packets"},
}
HEAVY = {"kubernetes": {"cluster/live.py", "cluster/lightimport.py", "cluster/node_exec.py"},
         "scapy": {"packets.py", "explain/probe.py"},
         "iptc": {"rules/node.py"}}


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_layers(package: str) -> None:
    for path in _modules(package):
        ours = {m.split(".")[1] for m in _imports(path) if m.startswith("svctrace.")}
        bad = ours - ALLOWED[package] - {package}
        assert not bad, f"{path.relative_to(PKG)} imports svctrace.{sorted(bad)}"


def test_inputs_module_stands_on_errors_only() -> None:
    ours = {m.split(".")[1] for m in _imports(PKG / "inputs.py") if m.startswith("svctrace.")}
    assert ours <= {"errors"}, sorted(ours)


@pytest.mark.parametrize("library", sorted(HEAVY))
def test_heavy_libraries_stay_at_the_edges(library: str) -> None:
    users = {str(p.relative_to(PKG)) for p in PKG.rglob("*.py")
             if any(m == library or m.startswith(library + ".") for m in _imports(p))}
    assert users <= HEAVY[library], sorted(users - HEAVY[library])


def test_cli_modules_import_nothing_heavy_at_module_level() -> None:
    for path in _modules("cli"):
        top = _imports(path, top_level_only=True)
        heavy = {m for m in top if m.split(".")[0] in ("kubernetes", "scapy", "iptc", "rich")}
        assert not heavy, f"{path.name}: {sorted(heavy)} at module level"


def test_the_explain_pipeline_neither_prints_nor_parses_arguments() -> None:
    for path in _modules("explain"):
        used = {m.split(".")[0] for m in _imports(path)} | {
            ".".join(m.split(".")[:2]) for m in _imports(path)}
        assert not used & {"typer", "rich", "svctrace.cli"}, path.name
        assert "print(" not in path.read_text(), f"{path.name} prints"
