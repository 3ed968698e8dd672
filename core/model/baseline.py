"""The paper's "production" baseline: a multi-label classification head on the same kind of encoder."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import numpy as np

from core.errors import ModelError
from core.model.encoders import load_bi_encoder
from core.model.labels import LabelTable, Prediction, check_texts, resolve_path
from core.model.training import Progress, Steps, TrainConfig, encoder_features, no_progress


class BaselineRanker:
    """Encoder + linear layer over every label, trained with MultiLabelSoftMarginLoss.

    It cannot add a label without retraining: new labels have no output unit.
    """

    kind = "baseline"

    def __init__(self, encoder: Any, table: LabelTable, head: Any = None) -> None:
        import torch

        self.encoder = encoder
        self.table = table
        dim = encoder.get_embedding_dimension()
        self.head = head if head is not None else torch.nn.Linear(dim, len(table))
        self.head.to(encoder.device)

    def _embed(self, texts: list[str]) -> Any:
        return self.encoder(encoder_features(self.encoder, texts))["sentence_embedding"]

    def train(self, doc_texts: list[str], doc_gold: list[set[int]], cfg: TrainConfig,
              progress: Progress = no_progress) -> dict[str, Any]:
        """Fine-tune encoder and head on the documents' gold labels."""
        import torch

        targets = np.zeros((len(doc_texts), len(self.table)), dtype=np.float32)
        for d, gold in enumerate(doc_gold):
            for lab in gold:
                if int(lab) in self.table._row:
                    targets[d, self.table.row(lab)] = 1.0
        if not targets.any():
            raise ModelError("There is nothing to train on: no document has a gold label.")
        torch.manual_seed(cfg.seed)
        rng = random.Random(cfg.seed)
        self.encoder.max_seq_length = cfg.max_seq_length
        optimizer = torch.optim.AdamW([{"params": self.encoder.parameters(), "lr": cfg.lr},
                                       {"params": self.head.parameters(), "lr": cfg.baseline_lr_head}])
        bs = cfg.batch_size
        steps = cfg.baseline_epochs * ((len(doc_texts) + bs - 1) // bs)
        loop = Steps("baseline", [], optimizer, steps, cfg.warmup_ratio, progress, clip=None)
        loss_fn = torch.nn.MultiLabelSoftMarginLoss()
        self.encoder.train()
        order = list(range(len(doc_texts)))
        for epoch in range(cfg.baseline_epochs):
            rng.shuffle(order)
            for s in range(0, len(order), bs):
                idx = order[s:s + bs]
                logits = self.head(self._embed([doc_texts[i] for i in idx]))
                loop.step(loss_fn(logits, torch.from_numpy(targets[idx]).to(logits.device)), epoch, cfg.baseline_epochs)
        self.encoder.eval()
        return loop.summary()

    def scores(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        import torch

        out = np.zeros((len(texts), len(self.table)), dtype=np.float32)
        with torch.inference_mode():
            for s in range(0, len(texts), batch_size):
                out[s:s + batch_size] = torch.sigmoid(self.head(self._embed(texts[s:s + batch_size]))).cpu().numpy()
        return out

    def rank(self, texts: list[str], k: int = 10) -> list[list[Prediction]]:
        check_texts(texts)
        scores = self.scores(texts)
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[Prediction(int(self.table.ids[c]), float(scores[r, c]), float(scores[r, c])) for c in top[r]]
                for r in range(len(texts))]

    def save(self, folder: Path) -> dict[str, Any]:
        import torch

        self.encoder.save(str(folder / "encoder"))
        torch.save(self.head.state_dict(), folder / "head.pt")
        self.table.save(folder)
        return {"encoder": "encoder", "labels": len(self.table)}

    @classmethod
    def load(cls, bundle: Path, manifest: dict[str, Any], device: str = "auto") -> BaselineRanker:
        import torch

        encoder = load_bi_encoder(resolve_path(bundle, manifest["encoder"]), device)
        ranker = cls(encoder, LabelTable.load(bundle))
        ranker.head.load_state_dict(torch.load(bundle / "head.pt", map_location=encoder.device, weights_only=True))
        ranker.encoder.eval()
        return ranker
