"""New subjects by active learning at a library's scale: TIBKAT (41k records, 41k GND subjects), as the paper measured.

Usage (``python -m bench.active_learning --corpus tibkat`` runs this):
    python -m bench.active_learning_tibkat --initial-only        # the initial model: an hour, as the ceiling's
    python -m bench.active_learning_tibkat --initial BUNDLE [--gpl] [--adapted FOLDER] [--variants greedy,random]

Protocol: 30 subjects with 100-400 ``train_en`` records are drawn with a seed (the list goes to the results) and
taken out of the taxonomy and of ``train_en``'s gold (the records stay); the initial model is trained on that by the
TIBKAT project's own training (``xmtc train --minutes 60``'s settings and budget). The ceiling is that project's
served model, trained the same way with every subject. Pools of 1,000 records per new subject are drawn from the
records the initial model trained on (all of ``train_en`` but the 10% it held out to fit its fusion, which check the
campaign and choose its settings), by the pretrained and by a GPL-adapted encoder. The simulated oracle answers
from ``train_en``'s gold, with the app's campaign settings. Recall@10 of the new subjects is read on the ``dev_en``
records that carry one, ranking every subject and ranking the 30 new ones only; old subjects' Recall@10 on
``dev_en`` before and after the campaign, with the bi-encoder frozen during it and learning with replay.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench.active_learning import VARIANTS, Probe, at_answers, phase_medians
from bench.common import ROOT, command_line, machine, update_benchmarks
from bench.ranking import log, progress_printer
from bench.tibkat import served

FOLDER = ROOT / "var" / "bench-tibkat"  # the TIBKAT project bench.tibkat built (its served model is the ceiling)
NEW_SUBJECTS, LO, HI, SEED = 30, 100, 400, 0
RESULTS = ROOT / "bench" / "results" / "active_learning_tibkat.json"
MINUTES = 60.0  # the ceiling's training budget (bench.tibkat's `xmtc train tibkat --minutes 60`)


def choose_subjects(train_gold: list[set[int]], n: int = NEW_SUBJECTS, lo: int = LO, hi: int = HI,
                    seed: int = SEED) -> list[int]:
    """``n`` subjects drawn with ``seed`` among those with ``lo``..``hi`` training records (sorted ids)."""
    counts: dict[int, int] = {}
    for gold in train_gold:
        for lab in gold:
            counts[lab] = counts.get(lab, 0) + 1
    eligible = sorted(lab for lab, c in counts.items() if lo <= c <= hi)
    if len(eligible) < n:
        raise SystemExit(f"only {len(eligible)} subjects have {lo}-{hi} training records; {n} wanted")
    return sorted(random.Random(seed).sample(eligible, n))


def setup(folder: Path) -> dict[str, Any]:
    """The project's records and subjects, the new subjects, and the gold without them."""
    from core.data.catalog import servable_labels

    db, version, dev, train = served(folder)
    labels = servable_labels(db, 1)
    db.dispose()
    new_ids = set(choose_subjects([set(d.gold) for d in train]))
    return {"ceiling_version": version, "dev": dev, "train": train, "labels": labels, "new_ids": new_ids,
            "old_labels": [lab for lab in labels if lab.id not in new_ids]}


def train_initial(s: dict[str, Any], folder: Path, minutes: float) -> Path:
    """The initial model: the project's training (its settings and time budget) without the new subjects."""
    from core.model.bicross import fit_bicross
    from core.model.encoders import default_encoder_path
    from core.model.training import TrainConfig
    from core.model.versions import write_bundle

    ceiling_cfg = json.loads((Path(s["ceiling_version"].path) / "manifest.json").read_text())["training_config"]
    # The ceiling's settings (it was trained before "auto" label texts, with the records' words: what auto picks here).
    cfg = TrainConfig.from_dict({**ceiling_cfg, "time_budget_min": minutes, "label_text": "terms"})
    texts = [d.text for d in s["train"]]
    gold = [set(d.gold) - s["new_ids"] for d in s["train"]]
    started = time.monotonic()
    fit = fit_bicross(default_encoder_path(), "cpu", s["old_labels"], texts, gold, cfg, progress_printer("initial"),
                      deadline=started + 60 * minutes, eval_docs=len(s["dev"]))
    stats = {k: v for k, v in fit.stats.items() if k != "notes"}
    bundle = write_bundle(folder / "al" / "models", 1, "bicross", lambda f: {
        **fit.ranker.save(f), "training_config": cfg.as_dict(), "training_stats": json.loads(json.dumps(stats, default=str)),
        "new_subjects": sorted(s["new_ids"])})
    log(f"initial model ({fit.stats['train_seconds'] / 60:.1f} min): {bundle}")
    return bundle


POOL_KS = (100, 200, 400, 1000)
MEASURE_AT = (0, 10, 30, 50, 100)  # answers per subject where the model is read (each reading takes a minute)
GPL_DOCS = 2000  # GPL adapts on a seeded sample of the records (all 37k take hours on a CPU)
PROBE_DOCS = 1000  # dev_en / held-out records read for old subjects


class NewProbe(Probe):
    """Recall@10 of the new subjects two ways: every subject ranked (as served), and the new ones only."""

    def __init__(self, texts: list[str], gold: list[set[int]], new_ids: list[int]) -> None:
        super().__init__(texts, gold)
        self.new_ids = new_ids

    def only_new(self, ranker: Any) -> float:
        """R@10 when the model ranks the new subjects among themselves (its first-stage scores of exactly them)."""
        from core.model.metrics import evaluate

        vecs = self._vectors.get(ranker.bi_path)
        if vecs is None:
            vecs = ranker.embed_documents(self.texts)
            self._vectors = {ranker.bi_path: vecs}
        rankings = []
        for start in range(0, len(self.texts), 64):
            scores = ranker.scores_among(self.texts[start:start + 64], self.new_ids, vecs[start:start + 64])
            rankings += [[self.new_ids[j] for j in np.argsort(-row, kind="stable")[:10]] for row in scores]
        return evaluate(rankings, self.gold, ("R@10",))["R@10"]


def pools_by(encoder: Any, ids: list[int], texts: dict[int, str], new_names: dict[int, str],
             positives: dict[int, set[int]]) -> tuple[dict[int, list[tuple[int, float]]], dict[str, float], float | None]:
    """Pools of 1,000 (record, cosine) from ``ids`` by ``encoder``, their recall@k and the embedding minutes (None:
    the vectors were cached by an earlier run)."""
    from core.model.encoders import encode, fingerprint
    from core.newlabels.pools import EmbeddingCache, pool_recall, scored_pools

    started = time.monotonic()
    report = progress_printer("embedding records")
    cache = EmbeddingCache(FOLDER / "al" / "embeddings")  # a re-run reuses the records' vectors (minutes each)
    key, records = f"enc-{fingerprint(encoder)}", [texts[i] for i in ids]
    cached = cache.path(key, ids, records).is_file()
    vecs = cache.get(key, encoder, ids, records, lambda done, total: report(done / total, f"{done:,}"))
    minutes = None if cached else (time.monotonic() - started) / 60
    label_vecs = dict(zip(new_names, encode(encoder, list(new_names.values())), strict=True))
    pools = scored_pools(ids, vecs, label_vecs, max(POOL_KS))
    recall = pool_recall({lab: [d for d, _ in p] for lab, p in pools.items()}, positives, POOL_KS)
    return pools, {str(k): round(v, 4) for k, v in recall.items()}, minutes


def other_pools(initial: Path, ids: list[int], texts: dict[int, str], new_names: dict[int, str],
                positives: dict[int, set[int]]) -> dict[str, dict[str, float]]:
    """Pool recall@k by what else could draw the pools: the initial model's own fine-tuned bi-encoder (its neighbour
    memory holds these records' vectors) and the subjects' names against the records by its TF-IDF features."""
    from sklearn.preprocessing import normalize

    from core.model.encoders import encode
    from core.model.loading import load_ranker
    from core.newlabels.pools import pool_recall, scored_pools

    ranker = load_ranker(initial, "cpu")
    assert ranker.memory is not None and ranker.sparse is not None and len(ranker.memory) == len(ids)
    names = list(new_names.values())
    served = scored_pools(ids, ranker.memory.vectors, dict(zip(new_names, encode(ranker.bi_encoder, names),
                                                               strict=True)), max(POOL_KS))
    words = normalize(ranker.sparse.vectorizer.transform([texts[i] for i in ids]))
    scores = (normalize(ranker.sparse.vectorizer.transform(names)) @ words.T).toarray()
    lexical = {lab: [ids[j] for j in np.argsort(-row, kind="stable")[:max(POOL_KS)]]
               for lab, row in zip(new_names, scores, strict=True)}
    out = {}
    for key, pools in (("served_bi_encoder", {lab: [d for d, _ in p] for lab, p in served.items()}),
                       ("tfidf_names", lexical)):
        out[key] = {str(k): round(v, 4) for k, v in pool_recall(pools, positives, POOL_KS).items()}
    return out


def adapt(al_texts: list[str], folder: Path) -> tuple[Any, dict[str, Any]]:
    """GPL on a seeded sample of the records the campaign asks about; the teacher is the pretrained ms-marco re-ranker
    (the initial model has no cross-encoder: the hour's plan leaves it out on a CPU)."""
    from core.config import Settings
    from core.model.cross import CrossScorer
    from core.model.encoders import default_encoder_path, default_reranker_path, load_bi_encoder
    from core.newlabels.gpl import GplConfig, TitleQueries, mine, train_gpl

    settings = Settings.from_env()
    pretrained = default_encoder_path(settings.encoder_path)
    teacher = CrossScorer(default_reranker_path(settings.reranker_path, pretrained, settings.pretrained_dir), "cpu")
    encoder = load_bi_encoder(pretrained, "cpu", 128)
    cfg = GplConfig(max_docs=GPL_DOCS)
    started = time.monotonic()
    docs = [(t.split(". ", 1)[0], t.split(". ", 1)[-1]) for t in al_texts]
    ex = mine(encoder, teacher, docs, TitleQueries(), cfg, progress_printer("gpl-mine"))
    stats = {**train_gpl(encoder, ex, cfg, progress_printer("gpl")), "total_seconds": time.monotonic() - started,
             "config": cfg.as_dict(), "teacher": "pretrained ms-marco re-ranker"}
    saved = folder / "al" / f"gpl-{time.strftime('%Y%m%dT%H%M%S')}"
    encoder.save(str(saved))
    (saved / "gpl_stats.json").write_text(json.dumps(stats))
    return encoder, {**stats, "saved": str(saved)}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--folder", type=Path, default=FOLDER, help="the TIBKAT project built by bench.tibkat")
    parser.add_argument("--minutes", type=float, default=MINUTES, help="the initial model's time budget")
    parser.add_argument("--initial", type=Path, default=None, help="reuse a trained initial bundle")
    parser.add_argument("--initial-only", action="store_true", help="train and save the initial model, then stop")
    parser.add_argument("--adapted", type=Path, default=None, help="reuse a GPL-adapted encoder saved by an earlier run")
    parser.add_argument("--iterations", type=int, default=20, help="150 questions each: 5 per subject")
    parser.add_argument("--variants", default="greedy,random", help=f"greedy first; any of {sorted(VARIANTS)}")
    parser.add_argument("--add", action="store_true",
                        help="add the variants' curves to the existing results file (no ceiling, no consolidation)")
    parser.add_argument("--no-consolidate", action="store_true", help="skip the bi-encoder's learning after greedy")
    parser.add_argument("--pools-only", action="store_true", help="stop once the pools are built (their vectors cached)")
    parser.add_argument("--pool-encoder", choices=("gpl", "pretrained"), default="gpl",
                        help="whose pools the campaign asks from")
    parser.add_argument("--no-write", action="store_true")
    parser.add_argument("--render", type=Path, help="only re-render a results file into BENCHMARKS.md and its plot")
    args = parser.parse_args(argv)
    if args.render:
        write(json.loads(args.render.read_text()))
        return
    from core.model.bicross import validation_split
    from core.model.encoders import default_encoder_path, load_bi_encoder
    from core.model.loading import load_ranker
    from core.newlabels.acquisition import make_strategy
    from core.newlabels.active_learning import ActiveLearningCycle, ALConfig
    from core.newlabels.oracle import SimulatedOracle

    command = command_line("bench.active_learning_tibkat", argv)
    s = setup(args.folder)
    train, dev, new_ids = s["train"], s["dev"], s["new_ids"]
    log(f"{len(new_ids)} new subjects; {len(train)} train_en, {len(dev)} dev_en records")
    initial = args.initial or train_initial(s, args.folder, args.minutes)
    if args.initial_only:
        return
    names = {lab.id: lab.pref_label for lab in s["labels"]}
    new_list = sorted(new_ids)
    results: dict[str, Any] = {"machine": machine(), "command": command, "initial_bundle": str(initial),
                               "ceiling_bundle": s["ceiling_version"].path}
    if args.add:  # more settings on the same campaign: the file's other keys (ceiling, consolidation) stay
        results = json.loads(RESULTS.read_text())
        results["commands_added"] = [*results.get("commands_added", []), command]
        if "consolidation" in results:  # the campaign the consolidation learned, whatever the defaults are now
            results.setdefault("consolidation_al_config", results["al_config"])
    manifest = json.loads((Path(initial) / "manifest.json").read_text())
    results["initial_train_minutes"] = round(manifest["training_stats"]["train_seconds"] / 60, 1)
    results["new_subjects"] = [{"id": i, "name": names[i], "train_records": sum(i in d.gold for d in train),
                                "dev_records": sum(i in d.gold for d in dev)} for i in new_list]

    # The initial model's split: the records it trained on (asked about, replayed) and the 10% it held out.
    al_idx, check_idx = validation_split(len(train), 0.1, 0)
    al_ids = [train[i].id for i in al_idx]
    texts = {d.id: d.text for d in train}
    old_gold = {d.id: set(d.gold) - new_ids for d in train}
    oracle_gold = {d.id: set(d.gold) & new_ids for d in train}
    check = [train[i] for i in check_idx]
    new_dev = [d for d in dev if set(d.gold) & new_ids]
    new_test = NewProbe([d.text for d in new_dev], [set(d.gold) & new_ids for d in new_dev], new_list)
    old_dev = [d for d in dev if set(d.gold) - new_ids][:PROBE_DOCS]
    old_test = Probe([d.text for d in old_dev], [set(d.gold) - new_ids for d in old_dev])
    check_new_docs = [d for d in check if set(d.gold) & new_ids]
    check_new = Probe([d.text for d in check_new_docs], [set(d.gold) & new_ids for d in check_new_docs])
    check_old_docs = [d for d in check if set(d.gold) - new_ids][:PROBE_DOCS]
    check_old = Probe([d.text for d in check_old_docs], [set(d.gold) - new_ids for d in check_old_docs])
    results["documents"] = {"asked_from": len(al_ids), "held_out_train": len(check),
                            "held_out_train_new": len(check_new_docs), "held_out_train_old_read": len(check_old_docs),
                            "dev_new": len(new_dev), "dev_old_read": len(old_dev)}
    log(f"documents: {results['documents']}")

    # The ceiling: the project's served model, trained the same way with every subject's full gold.
    if not args.add:
        ceiling = load_ranker(s["ceiling_version"].path, "cpu")
        results["ceiling_new_R@10"] = new_test.recall(ceiling, False)
        results["ceiling_new_only_R@10"] = new_test.only_new(ceiling)
        results["ceiling_heldout_new_R@10"] = check_new.recall(ceiling, False)
        results["ceiling_old_R@10"] = old_test.recall(ceiling, False)
        log(f"ceiling: new R@10 {results['ceiling_new_R@10']:.3f}, only new {results['ceiling_new_only_R@10']:.3f}")
        del ceiling

    # Pools of 1,000 from the records asked about, by the pretrained encoder and by the GPL-adapted one.
    new_names = {i: names[i] for i in new_list}
    positives = {lab: {d for d in al_ids if lab in oracle_gold[d]} for lab in new_list}
    pretrained_pools, results["pool_recall_pretrained"], minutes = pools_by(
        load_bi_encoder(default_encoder_path(), "cpu", 128), al_ids, texts, new_names, positives)
    log(f"pool recall, pretrained encoder: {results['pool_recall_pretrained']}")
    if args.adapted:
        adapted = load_bi_encoder(args.adapted, "cpu", 128)
        results["gpl"] = {**json.loads((args.adapted / "gpl_stats.json").read_text()), "saved": str(args.adapted)}
    else:
        adapted, results["gpl"] = adapt([texts[i] for i in al_ids], args.folder)
    scored, results["pool_recall_gpl"], _ = pools_by(adapted, al_ids, texts, new_names, positives)
    # The campaign asks from the pools of the encoder named (GPL, as the protocol says, unless it made them worse).
    results["pool_encoder"] = args.pool_encoder
    scored = scored if args.pool_encoder == "gpl" else pretrained_pools
    pools = {lab: [d for d, _ in p] for lab, p in scored.items()}
    # Kept for bench.tibkat_campaign (the same pools in the app's database, and the served vectors of their records).
    (args.folder / "al" / "pools.json").write_text(json.dumps({str(k): v for k, v in scored.items()}))
    results["pool_embedding_minutes"] = minutes or results.get("pool_embedding_minutes")
    results["pool_recall_at_400_gpl"] = results["pool_recall_gpl"]["400"]
    results["pool_recall_at_400_pretrained"] = results["pool_recall_pretrained"]["400"]
    log(f"pool recall, GPL-adapted encoder: {results['pool_recall_gpl']}")
    results["pool_recall_other"] = other_pools(initial, al_ids, texts, new_names, positives)
    log(f"pool recall, other scorers: {results['pool_recall_other']}")
    del adapted
    if args.pools_only:
        return

    # Active learning, the app's campaign settings; the served encoder's vectors of the records asked about are the
    # neighbour memory's (the initial model embedded exactly these records, in this order, for it).
    for variant in filter(None, args.variants.split(",")):  # none: only the pools (with --add)
        ranker = load_ranker(initial, "cpu", trainable=True)
        assert ranker.memory is not None and len(ranker.memory) == len(al_ids)
        memory_vectors = ranker.memory.vectors.copy()
        cfg = ALConfig(**VARIANTS[variant])
        if variant == "greedy":
            results["al_config"] = cfg.as_dict()
            results["old_R@10_before"] = old_test.recall(ranker, False)
            results["heldout_old_R@10_before"] = check_old.recall(ranker, False)
        cycle = ActiveLearningCycle(ranker, {i: texts[i] for i in al_ids}, {i: old_gold[i] for i in al_ids},
                                    new_names, pools, cfg, make_strategy(cfg.strategy))
        cycle.remember_vectors(al_ids, memory_vectors)
        measured: set[int] = set()

        def measure(r: Any, it: int, variant: str = variant, cycle: Any = cycle, measured: set = measured) -> dict:
            per_label = sum(h.asked for h in cycle.history) / len(new_ids)
            due = [a for a in MEASURE_AT if a not in measured and (per_label >= a or it == args.iterations)]
            out: dict[str, Any] = {"answers_per_label": per_label}
            if due:
                measured.update(due)
                out["new_R@10"] = new_test.recall(r, False)
                out["heldout_new_R@10"] = check_new.recall(r, False)
                if variant == "greedy":
                    out["new_only_R@10"] = new_test.only_new(r)
                log(f"{variant} iteration {it}: {out}")
            return out

        history = cycle.run(SimulatedOracle(oracle_gold), args.iterations, measure, progress_printer(variant))
        results.setdefault("curves", {})[variant] = [
            {"iteration": h.number, "asked": h.asked, "yes": h.positives, "seconds": round(h.seconds, 1),
             "phases": h.train.get("seconds", {}), **h.metrics} for h in history]
        if variant != "random":  # a setting's end state on the held-out training records (what chooses it)
            results.setdefault("settings", {})[variant] = {
                "config": VARIANTS[variant], "new_R@10": history[-1].metrics.get("new_R@10"),
                "heldout_new_R@10": check_new.recall(ranker, False), "heldout_old_R@10": check_old.recall(ranker, False)}
            log(f"{variant} at the end: {results['settings'][variant]}")
        if variant != "greedy":
            continue
        results["iteration_s_median"] = float(np.median([h.seconds for h in history[1:]]))
        results["old_R@10_after_frozen"] = old_test.recall(ranker, False)
        results["heldout_old_R@10_after_frozen"] = check_old.recall(ranker, False)
        results["heldout_new_R@10_after_frozen"] = check_new.recall(ranker, False)
        log(f"old R@10 {results['old_R@10_before']:.3f} -> {results['old_R@10_after_frozen']:.3f} (frozen)")
        if args.no_consolidate or args.add:
            continue
        # The bi-encoder learns the campaign with replay (ALConfig.consolidate_replay), as a campaign's end does.
        results["consolidation"] = cycle.consolidate(progress_printer("consolidate"))
        results["old_R@10_after_learning"] = old_test.recall(ranker, False, True)
        results["heldout_old_R@10_after_learning"] = check_old.recall(ranker, False, True)
        results["heldout_new_R@10_after_learning"] = check_new.recall(ranker, False, True)
        results["new_R@10_after_learning"] = new_test.recall(ranker, False, True)
        results["new_only_R@10_after_learning"] = new_test.only_new(ranker)
        log(f"old R@10 after learning {results['old_R@10_after_learning']:.3f}")
    summarise(results)
    if args.no_write:
        print(json.dumps(results, indent=2))
        return
    write(results)


def summarise(r: dict[str, Any]) -> None:
    """The issue's keys; the default (bi-encoder frozen or learning) follows the held-out training records."""
    greedy = r["curves"]["greedy"]
    r["new_R@10_at_50"] = at_answers(greedy, 50, "new_R@10")
    r["new_R@10_at_100"] = at_answers(greedy, 100, "new_R@10")
    r["new_only_R@10_at_100"] = at_answers(greedy, 100, "new_only_R@10")
    r["fraction_of_ceiling_at_50"] = (r["new_R@10_at_50"] or 0.0) / r["ceiling_new_R@10"]
    r["fraction_of_ceiling_at_100"] = (r["new_R@10_at_100"] or 0.0) / r["ceiling_new_R@10"]
    learning = "heldout_old_R@10_after_learning" in r
    # Chosen on held-out training records: learning where it reads higher there, old and new subjects together, against
    # the same campaign frozen (a setting added later may have changed the campaign's defaults since).
    if learning:
        twin = _campaign_twin(r)
        frozen = (twin["heldout_old_R@10"] + twin["heldout_new_R@10"] if twin else
                  r["heldout_old_R@10_after_frozen"] + r["heldout_new_R@10_after_frozen"])
        learnt = r["heldout_old_R@10_after_learning"] + r["heldout_new_R@10_after_learning"]
        r["default_by_heldout"] = "learning" if learnt > frozen else "frozen"
    else:
        r["default_by_heldout"] = "frozen"
    r["old_R@10_after"] = r["old_R@10_after_learning" if r["default_by_heldout"] == "learning" else "old_R@10_after_frozen"]
    settings = r.setdefault("settings", {})
    settings.setdefault("greedy", {"config": {}, "new_R@10": r["new_R@10_at_100"],
                                   "heldout_new_R@10": r["heldout_new_R@10_after_frozen"],
                                   "heldout_old_R@10": r["heldout_old_R@10_after_frozen"]})
    # The heads' setting by held-out training records, PubMed's rule: most new-subject recall with the old subjects
    # losing under a point.
    kept = {v: m for v, m in settings.items() if m["heldout_old_R@10"] > r["heldout_old_R@10_before"] - 0.01}
    r["setting_by_heldout"] = max(kept, key=lambda v: kept[v]["heldout_new_R@10"]) if kept else "greedy"
    if "random" in r["curves"]:
        pairs = [(g["new_R@10"], x["new_R@10"]) for g, x in zip(greedy[1:], r["curves"]["random"][1:], strict=False)
                 if g.get("new_R@10") is not None and x.get("new_R@10") is not None]
        r["greedy_above_random_everywhere"] = all(g > x for g, x in pairs)


def write(results: dict[str, Any]) -> None:
    name = "active_learning_tibkat"
    RESULTS.write_text(json.dumps(results, indent=2))
    plot(results, ROOT / "bench" / "results" / f"{name}.png")
    update_benchmarks(name, render(results))
    log(f"wrote bench/results/{name}.json, {name}.png and BENCHMARKS.md")


def points(curve: list[dict], key: str) -> tuple[list[float], list[float]]:
    rows = [row for row in curve if row.get(key) is not None]
    return [row["answers_per_label"] for row in rows], [row[key] for row in rows]


def plot(r: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(1, 2, figsize=(12, 4.2))
    for variant, style in (("greedy", "s-"), ("random", "^--")):
        if variant in r["curves"]:
            ax[0].plot(*points(r["curves"][variant], "new_R@10"), style, label=f"all subjects ranked ({variant})")
    ax[0].plot(*points(r["curves"]["greedy"], "new_only_R@10"), "o:", label="only the 30 new ranked (greedy)")
    ax[0].axhline(r["ceiling_new_R@10"], color="black", ls="--", label="ceiling (full gold), all ranked")
    ax[0].axhline(0.9 * r["ceiling_new_R@10"], color="black", ls=":", lw=0.8, label="90% of the ceiling")
    ax[0].set(xlabel="oracle answers per new subject", ylabel="new-subject Recall@10 (dev_en)",
              title="TIBKAT: 30 new subjects")
    ax[0].legend(fontsize=7)
    for variant, style in (("greedy", "s-"), ("random", "^--")):
        if variant in r["curves"]:
            ax[1].plot(*points(r["curves"][variant], "heldout_new_R@10"), style, label=variant)
    ax[1].set(xlabel="oracle answers per new subject", ylabel="new-subject Recall@10",
              title="The campaign's check: held-out train_en records")
    ax[1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _campaign_twin(r: dict[str, Any]) -> dict[str, Any] | None:
    """The settings row of the campaign the consolidation learned, where the defaults changed since it ran."""
    learned = r.get("consolidation_al_config")
    if not learned or learned == r["al_config"]:
        return None
    for row in r.get("settings", {}).values():
        if {**r["al_config"], **row["config"], "consolidate_replay": learned["consolidate_replay"]} == learned:
            return row
    return None


def _twin_note(r: dict[str, Any]) -> str:
    """Where the consolidation learned a campaign of other settings: which, and that campaign frozen."""
    twin = _campaign_twin(r)
    if "consolidation_al_config" not in r or r["consolidation_al_config"] == r["al_config"]:
        return ""
    note = f"; measured on the campaign of `{json.dumps(_changed(r['consolidation_al_config'], r['al_config']))}`"
    return note + (f" (that campaign frozen: held-out old {_f(twin['heldout_old_R@10'])}, new "
                   f"{_f(twin['heldout_new_R@10'])}; the default above compares the two)" if twin else "")


def _changed(before: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The settings of ``before`` that differ from ``now``."""
    return {k: v for k, v in before.items() if now.get(k) != v}


def _f(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}"


def render(r: dict[str, Any]) -> str:
    curves = r["curves"]
    lines = [
        "## New subjects by active learning at scale (`bench/active_learning_tibkat.py`)", "",
        f"Command: `{r['command']}` · machine: {r['machine']}.", "",
        f"30 subjects with {LO}-{HI} `train_en` records (seed {SEED}), taken out of the taxonomy and the gold before "
        f"the initial model was trained ({r['initial_train_minutes']} min, the ceiling's budget and settings); "
        f"campaign settings (the app's defaults): `{json.dumps(r['al_config'])}`; pools of 1,000 records per subject "
        f"({r.get('pool_encoder', 'gpl')} encoder) from the {r['documents']['asked_from']:,} records the initial model "
        f"trained on; Recall@10 on the "
        f"{r['documents']['dev_new']:,} `dev_en` records that carry a new subject.", "",
        "| answers per subject | new R@10, all ranked (greedy) | new R@10, all ranked (random) | new R@10, only the 30 "
        "ranked (greedy) | held-out train_en new R@10 (greedy / random) | seconds (greedy) |",
        "|---|---|---|---|---|---|",
    ]
    random_rows = {row["iteration"]: row for row in curves.get("random", [])}
    for row in curves["greedy"]:
        if row.get("new_R@10") is None:
            continue
        other = random_rows.get(row["iteration"], {})
        lines.append(f"| {row['answers_per_label']:.0f} | {_f(row['new_R@10'])} | {_f(other.get('new_R@10'))} | "
                     f"{_f(row.get('new_only_R@10'))} | {_f(row['heldout_new_R@10'])} / "
                     f"{_f(other.get('heldout_new_R@10'))} | {row['seconds']} |")
    lines += [
        "",
        f"- Ceiling (the project's model, trained with every subject's full gold): new R@10 all ranked "
        f"{_f(r['ceiling_new_R@10'])}, only the 30 ranked {_f(r['ceiling_new_only_R@10'])}.",
        f"- At 50 / 100 answers per subject: {_f(r['new_R@10_at_50'])} / {_f(r['new_R@10_at_100'])} "
        f"({r['fraction_of_ceiling_at_50']:.0%} / {r['fraction_of_ceiling_at_100']:.0%} of the ceiling); only the new "
        f"ranked at 100: {_f(r['new_only_R@10_at_100'])}. Greedy above random wherever both were read: "
        f"{r.get('greedy_above_random_everywhere')}.",
        f"- Old subjects, R@10 on {r['documents']['dev_old_read']:,} dev_en records: before {_f(r['old_R@10_before'])}; "
        f"after, bi-encoder frozen {_f(r['old_R@10_after_frozen'])}, learning with replay "
        f"{_f(r.get('old_R@10_after_learning'))}. On {r['documents']['held_out_train_old_read']:,} held-out train_en "
        f"records (what the default is chosen on): before {_f(r['heldout_old_R@10_before'])}, frozen "
        f"{_f(r['heldout_old_R@10_after_frozen'])}, learning {_f(r.get('heldout_old_R@10_after_learning'))}; new "
        f"subjects there frozen {_f(r['heldout_new_R@10_after_frozen'])}, learning "
        f"{_f(r.get('heldout_new_R@10_after_learning'))}: default **{r['default_by_heldout']}**.",
        f"- After the bi-encoder's learning: new R@10 all ranked {_f(r.get('new_R@10_after_learning'))}, only the new "
        f"{_f(r.get('new_only_R@10_after_learning'))} ({json.dumps(r.get('consolidation', {}).get('seconds'))} s)"
        + _twin_note(r) + ".",
        "- Pool recall@k (share of a subject's records asked about inside its pool): pretrained encoder "
        + ", ".join(f"@{k} {v:.3f}" for k, v in r["pool_recall_pretrained"].items()) + "; GPL-adapted ("
        f"{r['gpl'].get('triples')} triples from {r['gpl']['config']['max_docs']:,} records, "
        f"{r['gpl']['total_seconds'] / 60:.1f} min) " + ", ".join(f"@{k} {v:.3f}" for k, v in r["pool_recall_gpl"].items())
        + "".join(f"; {name.replace('_', ' ')} " + ", ".join(f"@{k} {v:.3f}" for k, v in rec.items())
                  for name, rec in r.get("pool_recall_other", {}).items()) + ".",
        f"- Median wall time per iteration (select + learn, 150 answers): {r['iteration_s_median']:.1f} s "
        f"({phase_medians(curves['greedy'])}).",
        "- Plot: `bench/results/active_learning_tibkat.png`.",
        "",
        "The sparse heads' settings after 100 answers per subject (greedy, bi-encoder frozen; `greedy` is the default, "
        "chosen on PubMed's and these held-out training records), chosen by the held-out train_en records (most "
        "new-subject recall with the old subjects losing under a point): "
        f"**{r.get('setting_by_heldout', 'greedy')}**. Settings are added to the same campaign by `--add` "
        f"(last: `{(r.get('commands_added') or [r.get('command_added', r['command'])])[-1]}`).",
        "",
        "| setting | held-out new R@10 | held-out old R@10 (before "
        f"{_f(r['heldout_old_R@10_before'])}) | dev_en new R@10 |",
        "|---|---|---|---|",
        *(f"| {v} `{json.dumps(m['config'])}` | {_f(m['heldout_new_R@10'])} | {_f(m['heldout_old_R@10'])} | "
          f"{_f(m['new_R@10'])} |" for v, m in sorted(r.get("settings", {}).items(),
                                                       key=lambda vm: -vm[1]["heldout_new_R@10"])),
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
