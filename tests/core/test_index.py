"""One contract suite run against every label index implementation."""

from __future__ import annotations

import numpy as np
import pytest

from core.model.index import ExactIndex, HnswIndex, load_index

DIM = 16


def random_vectors(n: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=(n, DIM)).astype(np.float32)


@pytest.fixture(params=["exact", "hnsw"])
def index(request):
    return ExactIndex(DIM) if request.param == "exact" else HnswIndex(DIM, m=16, ef_construction=100, ef=50, seed=1,
                                                                     capacity=8)


def test_search_returns_label_ids_best_first_with_cosine_scores(index):
    vecs = random_vectors(50)
    ids = np.arange(100, 150)
    index.add(ids, vecs)
    found, sims = index.search(vecs[7] * 3.0, k=5)  # scale does not matter: cosine
    assert found[0, 0] == 107
    assert sims[0, 0] == pytest.approx(1.0, abs=1e-5)
    assert np.all(np.diff(sims[0]) <= 1e-6)
    assert len(index) == 50


def test_removed_labels_leave_the_results_without_a_rebuild(index):
    vecs = random_vectors(30)
    index.add(np.arange(30), vecs)
    index.remove(np.array([3]))
    found, _ = index.search(vecs[3], k=30)
    assert 3 not in found[0]
    assert len(index) == 29
    index.add(np.array([3]), vecs[3:4])  # and can come back
    assert index.search(vecs[3], k=1)[0][0, 0] == 3


def test_adding_labels_grows_the_index_and_replaces_a_vector(index):
    index.add(np.arange(10), random_vectors(10))
    more = random_vectors(40, seed=2)
    index.add(np.arange(10, 50), more)
    assert len(index) == 50
    index.add(np.array([5]), more[0:1])  # label 5 now has label 10's vector
    found, _ = index.search(more[0], k=2)
    assert set(found[0]) == {5, 10}


def test_k_larger_than_the_index_is_padded(index):
    index.add(np.arange(3), random_vectors(3))
    found, sims = index.search(random_vectors(2, seed=5), k=5)
    assert found.shape == (2, 5)
    assert (found[:, 3:] == -1).all() and np.isneginf(sims[:, 3:]).all()


def test_an_index_round_trips_through_disk(index, tmp_path):
    vecs = random_vectors(40)
    index.add(np.arange(40), vecs)
    index.remove(np.array([0]))
    index.save(tmp_path / "idx")
    loaded = load_index(tmp_path / "idx")
    assert type(loaded) is type(index)
    np.testing.assert_array_equal(loaded.search(vecs[1:4], 5)[0], index.search(vecs[1:4], 5)[0])
    assert 0 not in loaded.search(vecs[0], 40)[0]


def test_wrong_dimensions_are_refused(index):
    from core.errors import ModelError

    with pytest.raises(ModelError, match="dimension"):
        index.add(np.arange(2), np.zeros((2, DIM + 1)))
