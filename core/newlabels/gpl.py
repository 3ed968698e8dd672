"""Domain adaptation by GPL: pseudo-queries -> mined hard negatives -> cross-encoder margins -> MarginMSE.

The ``gpl`` package (0.1.4) does not import with transformers 5, so the method is implemented here on
sentence-transformers' own ``MarginMSELoss`` and ``SentenceTransformerTrainer``.
"""

from __future__ import annotations

import random
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np

from core.errors import ModelError
from core.model.encoders import encode, similarities
from core.model.training import CrossScorer, Progress, no_progress


@dataclass
class GplConfig:
    queries_per_doc: int = 1
    negatives_per_query: int = 3
    mine_top_k: int = 50
    epochs: int = 1
    batch_size: int = 16
    lr: float = 2e-5
    max_seq_length: int = 128
    seed: int = 0
    max_docs: int = 0  # adapt on a seeded sample of this many documents (0: all; a library's corpus takes hours)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class QueryGenerator(Protocol):
    """Makes pseudo-queries for documents: a list of queries per (title, abstract)."""

    name: str

    def generate(self, docs: Sequence[tuple[str, str]], n: int) -> list[list[str]]: ...


class TitleQueries:
    """The offline default: a document's title is a query its abstract answers (the first sentence when untitled)."""

    name = "title"

    def generate(self, docs: Sequence[tuple[str, str]], n: int) -> list[list[str]]:
        out = []
        for title, abstract in docs:
            query = title.strip() or re.split(r"(?<=[.!?])\s", abstract.strip(), maxsplit=1)[0]
            out.append([query][:n] if query else [])
        return out


class Seq2SeqQueries:
    """A local seq2seq query generator (a doc2query-style T5 checkpoint folder), sampled."""

    name = "seq2seq"

    def __init__(self, path: str, device: str = "cpu", max_length: int = 64) -> None:
        from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForSeq2SeqLM.from_pretrained(path, local_files_only=True).to(device).eval()
        except Exception as exc:
            raise ModelError(f"Could not load a query generator from {path}: {exc}"[:500]) from exc
        self.device, self.max_length = device, max_length

    def generate(self, docs: Sequence[tuple[str, str]], n: int) -> list[list[str]]:
        import torch

        out = []
        with torch.inference_mode():
            for title, abstract in docs:
                enc = self.tokenizer(f"{title}. {abstract}", truncation=True, max_length=384, return_tensors="pt")
                gen = self.model.generate(**enc.to(self.device), do_sample=True, top_p=0.95, max_length=self.max_length,
                                          num_return_sequences=n)
                out.append([q.strip() for q in self.tokenizer.batch_decode(gen, skip_special_tokens=True) if q.strip()])
        return out


class LLMQueries:
    """Queries from an OpenAI-compatible chat model (any server with the official client)."""

    name = "llm"

    def __init__(self, client: Any, model: str) -> None:
        self.client, self.model = client, model

    def generate(self, docs: Sequence[tuple[str, str]], n: int) -> list[list[str]]:
        out = []
        for title, abstract in docs:
            reply = self.client.chat.completions.create(
                model=self.model, temperature=0.7,
                messages=[{"role": "user", "content": f"Title: {title}\nAbstract: {abstract}\n\nWrite {n} short search "
                           "queries, one per line, that this abstract answers. Only the queries."}])
            text = reply.choices[0].message.content or ""
            out.append([q.strip(" -0123456789.") for q in text.splitlines() if q.strip(" -0123456789.")][:n])
        return out


@dataclass
class GplExamples:
    queries: list[str]
    positives: list[str]
    negatives: list[str]
    margins: list[float]


def mine(encoder: Any, teacher: CrossScorer, docs: Sequence[tuple[str, str]], generator: QueryGenerator,
         cfg: GplConfig, progress: Progress = no_progress) -> GplExamples:
    """Pseudo-queries, hard negatives from the encoder's top-k, and the teacher's margins."""
    rng = random.Random(cfg.seed)
    if 0 < cfg.max_docs < len(docs):
        docs = [docs[i] for i in sorted(rng.sample(range(len(docs)), cfg.max_docs))]
    texts = [a or t for t, a in docs]
    queries = generator.generate(docs, cfg.queries_per_doc)
    pairs = [(q, d) for d, qs in enumerate(queries) for q in qs]
    if not pairs:
        raise ModelError("The query generator produced no query: documents need a title or an abstract.")
    progress(0.1, f"mining hard negatives for {len(pairs)} pseudo-queries")
    doc_vecs = encode(encoder, texts)
    q_vecs = encode(encoder, [q for q, _ in pairs])
    k = min(cfg.mine_top_k + 1, len(texts))
    top = np.argsort(-similarities(q_vecs, doc_vecs), axis=1)[:, :k]
    ex = GplExamples([], [], [], [])
    for (q, d), row in zip(pairs, top, strict=True):
        candidates = [int(c) for c in row if int(c) != d]
        for neg in rng.sample(candidates, min(cfg.negatives_per_query, len(candidates))):
            ex.queries.append(q)
            ex.positives.append(texts[d])
            ex.negatives.append(texts[neg])
    progress(0.3, f"scoring {len(ex.queries)} (query, positive, negative) triples with the teacher")
    pos = teacher.logits_np(ex.queries, ex.positives)
    neg = teacher.logits_np(ex.queries, ex.negatives)
    ex.margins = [float(p - n) for p, n in zip(pos, neg, strict=True)]
    return ex


def train_gpl(encoder: Any, examples: GplExamples, cfg: GplConfig, progress: Progress = no_progress) -> dict[str, Any]:
    """Fine-tune ``encoder`` in place with MarginMSE on the mined triples (sentence-transformers' trainer)."""
    from datasets import Dataset
    from sentence_transformers import SentenceTransformerTrainer, SentenceTransformerTrainingArguments
    from sentence_transformers.sentence_transformer.losses import MarginMSELoss
    from transformers import TrainerCallback

    if not examples.queries:
        raise ModelError("No GPL training triple was mined; the corpus needs at least two documents.")
    encoder.max_seq_length = cfg.max_seq_length
    data = Dataset.from_dict({"query": examples.queries, "positive": examples.positives,
                              "negative": examples.negatives, "label": examples.margins})

    class Report(TrainerCallback):
        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            progress(state.global_step / max(1, state.max_steps), f"GPL step {state.global_step}/{state.max_steps}")

    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        args = SentenceTransformerTrainingArguments(
            output_dir=out, num_train_epochs=cfg.epochs, per_device_train_batch_size=cfg.batch_size,
            learning_rate=cfg.lr, warmup_steps=0.1, seed=cfg.seed, save_strategy="no", report_to="none",
            logging_strategy="no", disable_tqdm=True, dataloader_num_workers=0, use_cpu=str(encoder.device) == "cpu")
        trainer = SentenceTransformerTrainer(model=encoder, args=args, train_dataset=data, loss=MarginMSELoss(encoder),
                                             callbacks=[Report()])
        result = trainer.train()
    encoder.eval()
    return {"triples": len(examples.queries), "steps": int(result.global_step), "final_loss": float(result.training_loss),
            "seconds": time.monotonic() - started}
