"""The one-way rule of docs/ARCHITECTURE.md, enforced: each layer imports only from the layers before it.

Every import statement is read from the source (module level and inside functions alike), so a lazy
import that reaches downstream fails here too.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# layer -> the top-level packages it must never import
FORBIDDEN = {
    "predictor": {"tools", "agent", "ui"},
    "tools": {"agent", "ui"},
    "agent": {"ui"},
}


def imported_packages(path: Path) -> set[tuple[str, int]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {(alias.name.split(".")[0], node.lineno) for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add((node.module.split(".")[0], node.lineno))
    return found


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_upstream(layer):
    violations = [f"{path.relative_to(ROOT)}:{line} imports {package}"
                  for path in sorted((ROOT / layer).rglob("*.py"))
                  for package, line in sorted(imported_packages(path)) if package in FORBIDDEN[layer]]
    assert violations == []


def test_the_rule_catches_a_downstream_import(tmp_path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from agent.service import get_agent_service\n    import ui\n")
    assert {p for p, _ in imported_packages(sample)} == {"agent", "ui"}


def test_every_layer_says_what_it_owns():
    for layer in FORBIDDEN:
        doc = ast.get_docstring(ast.parse((ROOT / layer / "__init__.py").read_text(encoding="utf-8")))
        assert doc and len(doc) > 80, f"{layer}/__init__.py needs a docstring saying what the layer owns"
