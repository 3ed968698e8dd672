"""BENCHMARKS.md can be trusted by reading it: each generated section is exactly what its bench renders from the
results file it wrote (so every number in it is a key of ``bench/results/*.json``), and written readings sit
outside the generated blocks."""

from __future__ import annotations

import re

import pytest

from bench.common import BENCHMARKS, ROOT, SECTIONS, render_section


def blocks() -> dict[str, str]:
    text = BENCHMARKS.read_text()
    return {m.group(1): m.group(2).strip() for m in re.finditer(r"<!-- (\w+) -->\n(.*?)\n<!-- /\1 -->", text, re.S)}


def test_every_section_has_a_bench_and_a_results_file():
    assert set(blocks()) == set(SECTIONS)
    for name in SECTIONS:
        assert (ROOT / "bench" / "results" / f"{name}.json").is_file(), name


@pytest.mark.parametrize("name", sorted(SECTIONS))
def test_a_generated_section_is_what_its_bench_renders_from_its_results(name):
    assert render_section(name).strip() == blocks()[name], "re-render with: python -m bench.common"


def test_the_readmes_worked_example_is_what_the_scale_bench_runs():
    from bench.tibkat import commands

    block = (ROOT / "README.md").read_text().split("<!-- tibkat -->", 1)[1].split("<!-- /tibkat -->", 1)[0]
    code = block.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.strip() for line in code.splitlines() if line.strip()] == commands()
