"""GPL on a tiny corpus with the bundled model (teacher: a cross-encoder head on the same weights)."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelError
from core.model.encoders import load_bi_encoder
from core.model.training import CrossScorer
from core.newlabels.gpl import GplConfig, TitleQueries, mine, train_gpl

DOCS = [
    ("Pancreatic cancer surgery", "Resection outcomes for pancreatic adenocarcinoma in older adults."),
    ("Asthma in children", "Inhaled corticosteroids reduced exacerbations in childhood asthma."),
    ("Heart attack care", "Early angioplasty after acute myocardial infarction lowered mortality."),
    ("", "Breast cancer screening by mammography. Detection rates rose."),
]


def test_title_queries_fall_back_to_the_first_sentence():
    assert TitleQueries().generate(DOCS, 1) == [["Pancreatic cancer surgery"], ["Asthma in children"],
                                                 ["Heart attack care"], ["Breast cancer screening by mammography."]]


@pytest.fixture(scope="module")
def models(encoder_path):
    return load_bi_encoder(encoder_path, "cpu", 64), CrossScorer(encoder_path, "cpu", 64)


def test_mining_never_uses_the_positive_as_its_negative_and_gpl_changes_the_encoder(models):
    encoder, teacher = models
    cfg = GplConfig(negatives_per_query=2, batch_size=4, lr=1e-4)
    ex = mine(encoder, teacher, DOCS, TitleQueries(), cfg)
    assert len(ex.queries) == 8 and len(ex.margins) == 8
    assert all(p != n for p, n in zip(ex.positives, ex.negatives, strict=True))
    before = encoder.encode(["pancreatic cancer"], normalize_embeddings=True)
    stats = train_gpl(encoder, ex, cfg)
    assert stats["steps"] == 2
    assert not np.allclose(before, encoder.encode(["pancreatic cancer"], normalize_embeddings=True), atol=1e-5)


def test_documents_without_text_give_a_clear_error(models):
    encoder, teacher = models
    with pytest.raises(ModelError, match="no query"):
        mine(encoder, teacher, [("", "")], TitleQueries(), GplConfig())


class OverlapTeacher:
    """A teacher whose score is the number of words a query shares with a document."""

    @staticmethod
    def score(q: str, d: str) -> float:
        return float(len(set(q.lower().split()) & set(d.lower().replace(".", " ").split())))

    def logits_np(self, queries, docs):
        return np.array([self.score(q, d) for q, d in zip(queries, docs, strict=True)])


def test_each_margin_is_the_teachers_positive_score_minus_its_negative_score(models):
    encoder, _ = models
    docs = [("pancreatic cancer", "pancreatic cancer resection outcomes."), ("childhood asthma", "asthma in children."),
            ("myocardial infarction", "acute myocardial infarction and angioplasty.")]
    ex = mine(encoder, OverlapTeacher(), docs, TitleQueries(), GplConfig(negatives_per_query=2))
    expected = [OverlapTeacher.score(q, p) - OverlapTeacher.score(q, n)
                for q, p, n in zip(ex.queries, ex.positives, ex.negatives, strict=True)]
    assert ex.margins == expected
    assert all(m > 0 for m in ex.margins)  # each title shares words with its own abstract only: positive margins


def test_gpl_can_adapt_on_a_seeded_sample_of_the_corpus(models):
    encoder, _ = models
    docs = [(f"title {i}", f"abstract number {i} about topic {i}.") for i in range(6)]
    ex = mine(encoder, OverlapTeacher(), docs, TitleQueries(), GplConfig(max_docs=3, negatives_per_query=1))
    again = mine(encoder, OverlapTeacher(), docs, TitleQueries(), GplConfig(max_docs=3, negatives_per_query=1))
    # Three documents' queries, positives and negatives (all from the sample), the same three every time.
    assert len(set(ex.queries)) == 3 and set(ex.positives) | set(ex.negatives) <= {a for _, a in docs}
    assert len(set(ex.positives) | set(ex.negatives)) == 3 and ex.queries == again.queries
