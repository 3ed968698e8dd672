"""Does enriching label texts help? Zero-shot bi-encoder on the canonical split, per label-text variant.

Usage: python -m bench.label_text
"""

from __future__ import annotations

import json

from bench.common import ROOT, command_line, machine, update_benchmarks
from bench.ranking import load_split, log
from core.config import Settings
from core.model.bicross import evaluate_ranker, make_label_table
from core.model.encoders import default_encoder_path, load_bi_encoder
from core.model.ranker import BiCrossRanker

VARIANTS = {"preferred name": 0, "name + 1 parent": 1, "name + all parents": 99}


def main() -> None:
    settings = Settings.from_env()
    labels, train, test = load_split(settings.demo_data_dir)
    texts, gold = [t for t, _ in test], [g for _, g in test]
    encoder = load_bi_encoder(default_encoder_path(settings.encoder_path), "cpu", 128)
    out = {}
    for name, parents in VARIANTS.items():
        ranker = BiCrossRanker.build(encoder, make_label_table(labels, [g for _, g in train], parents=parents))
        out[name] = evaluate_ranker(ranker, texts, gold)
        log(f"{name}: {out[name]}")
    result = {"zero_shot": out, "machine": machine(), "command": command_line("bench.label_text", None)}
    (ROOT / "bench" / "results" / "label_text.json").write_text(json.dumps(result, indent=2))
    update_benchmarks("label_text", render(result))


def render(result: dict) -> str:
    rows = "\n".join(f"| {n} | {m['P@1']:.3f} | {m['P@5']:.3f} | {m['R@10']:.3f} | {m['nDCG@10']:.3f} | {m['R@30']:.3f} |"
                     for n, m in result["zero_shot"].items())
    return f"""## Label text enrichment (`bench/label_text.py`)

Command: `{result['command']}` · machine: {result['machine']}. Zero-shot all-MiniLM-L6-v2, no prior, on the
canonical TEST split over 8,132 labels (MeSH 2015 in the demo has no alternative names; parents are the
nearest ancestors among the corpus's labels).

| label text | P@1 | P@5 | R@10 | nDCG@10 | R@30 |
|---|---|---|---|---|---|
{rows}"""


if __name__ == "__main__":
    main()
