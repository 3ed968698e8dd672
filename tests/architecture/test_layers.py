"""The layering of the code, checked on every import (also those inside functions).

``core`` is grouped by concept into subpackages stacked in layers; a module imports only from lower layers or
from its own subpackage (two subpackages of one layer never import each other). ``core`` never imports Streamlit,
``storage`` never imports ``core``, and the pages reach the database only through ``core``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from core.config import ROOT

# Lowest first. A unit is a subpackage (core.model) or a top-level module (core.jobs).
LAYERS = [
    ["core.config", "core.errors", "core.clock"],
    ["core.accounts"],
    ["core.jobs"],
    ["core.data"],
    ["core.model"],
    ["core.taxonomy", "core.newlabels"],
    ["core.evaluation"],
    ["core.tasks", "core.worker", "core.cli", "core.api"],
]
LEVEL = {unit: i for i, units in enumerate(LAYERS) for unit in units}


def imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every import in a file, relative imports resolved."""
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(node.lineno, a.name) for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.append((node.lineno, node.module))
            out += [(node.lineno, f"{node.module}.{a.name}") for a in node.names if node.module == "core"]
    return out


def unit(module: str) -> str | None:
    parts = module.split(".")
    if parts[0] != "core" or len(parts) < 2:
        return None
    return ".".join(parts[:2])


def module_name(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")


CORE = sorted((ROOT / "core").rglob("*.py"))


def test_every_core_module_sits_in_a_layer():
    assert {unit(module_name(p)) for p in CORE if module_name(p) != "core"} <= set(LEVEL)


@pytest.mark.parametrize("path", CORE, ids=lambda p: module_name(p))
def test_a_core_module_imports_only_lower_layers_or_its_own_subpackage(path):
    own = unit(module_name(path))
    if own is None:
        return
    bad = []
    for line, module in imports(path):
        other = unit(module)
        if other is None or other == own:
            continue
        if LEVEL[other] >= LEVEL[own] and not (LEVEL[own] == len(LAYERS) - 1 == LEVEL[other]):
            bad.append(f"line {line}: {module} ({other}, layer {LEVEL[other]}) from layer {LEVEL[own]}")
    assert not bad, f"{module_name(path)} imports upwards or sideways: {bad}"


@pytest.mark.parametrize(("folder", "forbidden", "why"), [
    ("core", "streamlit", "core is free of Streamlit"),
    ("storage", "core", "storage is free of core"),
    ("pages", "storage", "pages reach the database through core"),
])
def test_packages_keep_out_of_what_they_must_not_know(folder, forbidden, why):
    paths = sorted((ROOT / folder).rglob("*.py"))
    assert paths
    bad = [f"{p.relative_to(ROOT)}:{line} {m}" for p in paths for line, m in imports(p)
           if m == forbidden or m.startswith(forbidden + ".")]
    assert not bad, f"{why}: {bad}"


def test_the_layering_test_catches_an_upward_import(tmp_path):
    """The checker itself: a data module importing the model layer is reported."""
    fake = tmp_path / "core" / "data" / "x.py"
    fake.parent.mkdir(parents=True)
    fake.write_text("def f():\n    from core.model.ranker import BiCrossRanker\n")
    found = [(line, m) for line, m in imports(fake) if unit(m) and LEVEL[unit(m)] > LEVEL["core.data"]]
    assert found == [(2, "core.model.ranker")]
