from __future__ import annotations

from core.model.lexical import LexicalMatcher


def test_names_are_found_word_aligned_with_plurals_folded():
    m = LexicalMatcher([1, 2, 3, 4], ["Breast Neoplasms", "Myocardial Infarction", "Rats", "Studies"])
    text = "A breast neoplasm study after myocardial infarctions in rats; no infarction-free ratsbane."
    assert m.match(text) == {1, 2, 3, 4}
    assert m.match("Myocardial damage; an infarction elsewhere") == set()
    assert m.match("ratsbane") == set()
