from __future__ import annotations

import pytest

from core.data.reports import parse_list


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("['a', 'b']", ["a", "b"]),
        ('["a", "b"]', ["a", "b"]),
        ("a|b | c", ["a", "b", "c"]),
        ("a;b", ["a", "b"]),
        ("single", ["single"]),
        ("", []),
        (None, []),
    ],
)
def test_parse_list_reads_json_python_and_separated_lists(cell, expected):
    assert parse_list(cell) == expected


@pytest.mark.parametrize("cell", ["[__import__('os').system('echo pwned')]", "['unterminated", "[1, 2"])
def test_parse_list_never_evaluates_code_and_rejects_bad_literals(cell):
    with pytest.raises(ValueError):
        parse_list(cell)
