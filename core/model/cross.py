"""The cross-encoder: "[CLS] label [SEP] document" -> relevance, in PyTorch (training, GPUs) or ONNX Runtime (CPUs).

On a CPU the trained cross-encoder is served through ONNX Runtime: exported once to ONNX (fp32) and
dynamically quantized to int8 with onnxruntime's own tools, both kept in the bundle. Which one serves is
``XMTC_CROSS_RUNTIME`` (``auto``: PyTorch on CUDA, else the ONNX file the bundle recommends).
"""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.model.fusion import sigmoid

RUNTIMES = ("auto", "torch", "onnx", "onnx-int8")
ONNX_DIR = "onnx"
ONNX_FP32 = "model.onnx"
ONNX_INT8 = "model_int8.onnx"


class CrossScorer:
    """A PyTorch cross-encoder (``AutoModelForSequenceClassification`` with one logit)."""

    runtime = "torch"

    def __init__(self, path: str, device: str = "cpu", max_length: int = 128) -> None:
        self.cpu_runtime = recommended_runtime(path)  # what its ONNX export serves on a CPU
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer
        from transformers.utils import logging as hf_logging

        self.device = torch.device(device)
        self.max_length = max_length
        self.path = path
        level = hf_logging.get_verbosity()
        hf_logging.set_verbosity_error()  # a new head is expected when starting from a bi-encoder checkpoint
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1, local_files_only=True)
        except Exception as exc:
            raise ModelError(f"Could not load a cross-encoder from {path}: {exc}"[:600]) from exc
        finally:
            hf_logging.set_verbosity(level)
        self.model.to(self.device).eval()

    def _encode(self, label_texts: Sequence[str], doc_texts: Sequence[str], tensors: str = "pt") -> dict[str, Any]:
        enc = self.tokenizer(list(label_texts), list(doc_texts), truncation="only_second", max_length=self.max_length,
                             padding=True, return_tensors=tensors)
        return {k: v.to(self.device) for k, v in enc.items()} if tensors == "pt" else dict(enc)

    def logits(self, label_texts: Sequence[str], doc_texts: Sequence[str]) -> Any:
        """Logits as a tensor with gradients (training)."""
        return self.model(**self._encode(label_texts, doc_texts)).logits.squeeze(-1)

    def logits_np(self, label_texts: Sequence[str], doc_texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Logits for aligned (label, document) pairs, without gradients."""
        import torch

        out = np.zeros(len(label_texts), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(label_texts), batch_size):
                logit = self.logits(label_texts[s:s + batch_size], doc_texts[s:s + batch_size])
                out[s:s + batch_size] = logit.float().cpu().numpy()
        return out

    def score(self, label_texts: Sequence[str], doc_texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """Relevance probabilities for aligned (label, document) pairs."""
        return sigmoid(self.logits_np(label_texts, doc_texts, batch_size))

    def save(self, folder: str) -> None:
        """The checkpoint, and its ONNX export for CPUs (fp32 and int8) with the recommended runtime."""
        self.model.save_pretrained(folder)
        self.tokenizer.save_pretrained(folder)
        self.export_onnx(Path(folder) / ONNX_DIR)

    def export_onnx(self, folder: Path, quantize: bool = True) -> dict[str, str]:
        """Write the model as ONNX (fp32) into ``folder`` and, with ``quantize``, an int8 copy beside it."""
        import torch

        folder.mkdir(parents=True, exist_ok=True)
        model = self.model.to("cpu").eval()
        enc = self._encode(["label"], ["a document"], tensors="pt")
        enc = {k: v.to("cpu") for k, v in enc.items()}
        names = [n for n in ("input_ids", "attention_mask", "token_type_ids") if n in enc]
        axes = {n: {0: "batch", 1: "sequence"} for n in names}
        with torch.inference_mode(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the tracer's notes on constant shapes (the axes are declared dynamic)
            torch.onnx.export(model, (), str(folder / ONNX_FP32), kwargs={n: enc[n] for n in names}, input_names=names,
                              output_names=["logits"], dynamic_axes={**axes, "logits": {0: "batch"}}, opset_version=17,
                              dynamo=False)
        self.model.to(self.device)
        out = {"fp32": ONNX_FP32}
        if quantize:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(folder / ONNX_FP32), str(folder / ONNX_INT8), weight_type=QuantType.QInt8)
            out["int8"] = ONNX_INT8
        (folder / "runtime.json").write_text(json.dumps({"cpu": self.cpu_runtime if quantize else "onnx"}))
        return out


class OnnxCrossScorer:
    """The same cross-encoder run by ONNX Runtime on the CPU (inference only)."""

    def __init__(self, path: str, onnx_file: Path, max_length: int = 128, threads: int | None = None) -> None:
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.path = path
        self.max_length = max_length
        self.runtime = "onnx-int8" if onnx_file.name == ONNX_INT8 else "onnx"
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(onnx_file), options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own types for a bad file
            raise ModelError(f"Could not load the ONNX cross-encoder {onnx_file}: {exc}"[:600]) from exc
        self.inputs = [i.name for i in self.session.get_inputs()]

    def logits_np(self, label_texts: Sequence[str], doc_texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        out = np.zeros(len(label_texts), dtype=np.float32)
        for s in range(0, len(label_texts), batch_size):
            enc = self.tokenizer(list(label_texts[s:s + batch_size]), list(doc_texts[s:s + batch_size]),
                                 truncation="only_second", max_length=self.max_length, padding=True, return_tensors="np")
            feeds = {n: enc[n].astype(np.int64) for n in self.inputs}
            out[s:s + batch_size] = self.session.run(None, feeds)[0].reshape(-1)
        return out

    def score(self, label_texts: Sequence[str], doc_texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        return sigmoid(self.logits_np(label_texts, doc_texts, batch_size))

    def save(self, folder: str) -> None:
        """A copy of the checkpoint folder it serves from (PyTorch weights and ONNX files alike)."""
        shutil.copytree(self.path, folder, dirs_exist_ok=True)


def recommended_runtime(path: str) -> str:
    """The CPU runtime a checkpoint's ONNX export recorded (int8 only where its top-10 matched PyTorch's)."""
    meta = Path(path) / ONNX_DIR / "runtime.json"
    if meta.is_file():
        return json.loads(meta.read_text()).get("cpu", "onnx")
    return "onnx"


def load_cross_scorer(path: str, device: str = "cpu", max_length: int = 128, runtime: str | None = None) -> Any:
    """The cross-encoder at ``path`` in the runtime asked for (``XMTC_CROSS_RUNTIME`` by default).

    ``auto`` serves PyTorch on a GPU; on a CPU the ONNX file the bundle recommends, else PyTorch.
    """
    runtime = runtime or os.environ.get("XMTC_CROSS_RUNTIME", "auto")
    if runtime not in RUNTIMES:
        raise ModelError(f"Unknown cross-encoder runtime {runtime!r}; use one of {', '.join(RUNTIMES)}.")
    if runtime == "auto":
        has_onnx = (Path(path) / ONNX_DIR / ONNX_FP32).is_file()
        runtime = recommended_runtime(path) if has_onnx and not device.startswith("cuda") else "torch"
    if runtime == "torch":
        return CrossScorer(path, device, max_length)
    onnx_file = Path(path) / ONNX_DIR / (ONNX_INT8 if runtime == "onnx-int8" else ONNX_FP32)
    if not onnx_file.is_file():
        raise ModelError(f"{onnx_file} does not exist: this bundle was saved without an ONNX export.")
    return OnnxCrossScorer(path, onnx_file, max_length)
