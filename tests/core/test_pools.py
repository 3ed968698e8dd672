from __future__ import annotations

import numpy as np
import pytest

from core.newlabels.pools import EmbeddingCache, build_pools, pool_recall


def test_pools_hold_the_nearest_documents_best_first_and_are_capped_by_the_corpus():
    docs = np.array([[1, 0], [0, 1], [0.8, 0.6]], dtype=np.float32)
    pools = build_pools([10, 11, 12], docs, {1: np.array([1, 0]), 2: np.array([0, 1])}, size=2)
    assert pools == {1: [10, 12], 2: [11, 12]}
    assert len(build_pools([10, 11, 12], docs, {1: np.array([1, 0])}, size=1000)[1]) == 3


def test_pool_recall_by_hand():
    pools = {1: [5, 6, 7, 8], 2: [9, 1]}
    recall = pool_recall(pools, {1: {6, 8}, 2: {3}, 3: {4}}, ks=[1, 2, 4])
    # label 1: top1 {5} -> 0, top2 {5,6} -> 1/2, top4 -> 1; label 2: never -> 0; label 3 has no pool.
    assert recall == {1: 0.0, 2: pytest.approx(0.25), 4: pytest.approx(0.5)}


class CountingEncoder:
    def __init__(self):
        self.calls = 0

    def get_embedding_dimension(self):
        return 2

    def encode(self, texts, **_):
        self.calls += 1
        return np.ones((len(texts), 2), dtype=np.float32) / np.sqrt(2)


def test_embeddings_are_computed_once_per_key(tmp_path):
    cache, enc = EmbeddingCache(tmp_path), CountingEncoder()
    a = cache.get("v1", enc, [1, 2], ["a", "b"])
    b = cache.get("v1", enc, [1, 2], ["a", "b"])
    cache.get("v2", enc, [1, 2], ["a", "b"])
    assert enc.calls == 2 and np.array_equal(a, b)
