"""Benchmark of the LLM judge against a real local OpenAI-compatible server on the PubMed/MeSH test split.

Usage:
    ../shared/tools/local-llm-server.sh 8765 &      # a real small LLM (Qwen2.5-Coder-1.5B, llama.cpp) on 127.0.0.1
    python -m bench.judge [--base-url http://127.0.0.1:8765/v1] [--model judge] [--documents 100] [--no-write]

Setup (real, in a temporary data folder): the demo project, the zero-shot label index (the active version),
its top-10 predictions for the test split. Then the bulk judging job runs twice through the worker:
1. the first run judges ``--documents`` test documents x 10 labels; every label must end rated or explicitly
   unrated (a timeout or rate limit leaves it 'not judged', reported);
2. the rerun must cost zero new calls (the cache).
With no SME at hand, the gold MeSH labels stand in for a reviewer: agreement of the LLM's 2-point verdict
(1 and 2 = relevant) with "the label is gold", and labels judged correct in the top-10 by the LLM vs by gold.
"""

from __future__ import annotations

import argparse
import json
import time

from bench.common import ROOT, command_line, machine, temp_data_dir, update_benchmarks
from bench.ranking import log


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--base-url", default="http://127.0.0.1:8765/v1")
    parser.add_argument("--model", default="judge")
    parser.add_argument("--model-description", default="",
                        help="what the server serves under --model, recorded with the results (e.g. the GGUF file)")
    parser.add_argument("--api-key", default="local")
    parser.add_argument("--documents", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=1, help="one llama.cpp slot on a 2-core CPU")
    parser.add_argument("--timeout", type=float, default=600.0)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    command = command_line("bench.judge", argv)
    with temp_data_dir(XMTC_LLM_BASE_URL=args.base_url, XMTC_LLM_MODEL=args.model, XMTC_LLM_API_KEY=args.api_key,
                       XMTC_LLM_CONCURRENCY=str(args.concurrency), XMTC_LLM_TIMEOUT=str(args.timeout),
                       XMTC_LLM_RETRIES="2"):
        out = run(args.documents)
    out.update({"machine": machine(), "command": command, "server": args.base_url, "model": args.model,
                "model_description": args.model_description})
    log(json.dumps({k: v for k, v in out.items() if k != "examples"}, indent=1))
    if args.no_write:
        return
    (ROOT / "bench" / "results" / "judge.json").write_text(json.dumps(out, indent=2))
    update_benchmarks("judge", render(out))
    log("wrote bench/results/judge.json and BENCHMARKS.md")


def run(n_docs: int) -> dict:
    from sqlalchemy import select

    from core.config import Settings
    from core.data.demo import build_demo
    from core.evaluation.agreement import agreement_scales
    from core.evaluation.jobs import JUDGE_PREDICTIONS
    from core.jobs import enqueue, get_job
    from core.model.versions import active_version
    from core.worker import WorkerProcess
    from storage.db import Database
    from storage.models import DocumentLabel, Label, LLMJudgment, PredictionRecord, Rating

    settings = Settings.from_env()
    db = Database(settings.db_url)
    db.create_all()
    started = time.monotonic()
    demo = build_demo(db, settings.demo_data_dir)
    worker = WorkerProcess(db, settings)
    worker.register()
    worker.run_one()  # the zero-shot label index
    version = active_version(db, demo.project_id)
    job = enqueue(db, "predict_documents", demo.project_id, {"split": "test", "version_id": version.id})
    worker.run_one()
    assert get_job(db, job).status == "done", get_job(db, job).error
    log(f"setup (demo, zero-shot index, test predictions) {time.monotonic() - started:.0f} s")

    def judge_once() -> tuple[dict, float]:
        t0 = time.monotonic()
        job = enqueue(db, JUDGE_PREDICTIONS, demo.project_id, {"version_ids": [version.id], "max_documents": n_docs})
        worker.run_one()
        view = get_job(db, job)
        if view.status != "done":
            raise RuntimeError(f"judging failed: {view.error}")
        return view.result, time.monotonic() - t0

    first, first_s = judge_once()
    log(f"first run {first_s:.0f} s: {first['report']}")
    second, second_s = judge_once()
    log(f"rerun {second_s:.1f} s: {second['report']}")

    with db.session() as s:
        preds = s.execute(select(PredictionRecord.document_id, PredictionRecord.label_id)
                          .where(PredictionRecord.model_version_id == version.id, PredictionRecord.rank <= 10)).all()
        llm = {(d, lab): r for d, lab, r in s.execute(select(Rating.document_id, Rating.label_id, Rating.rating)
                                                      .where(Rating.model_version_id == version.id, Rating.kind == "llm"))}
        gold = set(s.execute(select(DocumentLabel.document_id, DocumentLabel.label_id)).all())
        names = dict(s.execute(select(Label.id, Label.pref_label).where(Label.project_id == demo.project_id)).all())
        unrated = s.scalars(select(LLMJudgment).where(LLMJudgment.status == "unrated")).all()
        examples = [{"label": names[lab], "llm": r, "gold": (d, lab) in gold} for (d, lab), r in list(llm.items())[:12]]
    judged = [(d, lab) for d, lab in preds if (d, lab) in llm]
    judged_docs = {d for d, _ in judged}
    scales = agreement_scales([llm[p] for p in judged], [2 if p in gold else 0 for p in judged])
    two = scales["2-point"]
    return {
        "documents": first["documents"], "labels": first["rated"] + first["unrated"] + first["not_judged"],
        "rated": first["rated"], "unrated": first["unrated"], "not_judged": first["not_judged"],
        "calls": first["calls"], "reasks": first["calls"] - first["documents"],
        "prompt_tokens": first["prompt_tokens"], "completion_tokens": first["completion_tokens"],
        "seconds": round(first_s, 1), "seconds_per_document": round(first_s / max(1, first["documents"]), 1),
        "rerun_calls": second["calls"], "rerun_cached_labels": second["cached_labels"], "rerun_seconds": round(second_s, 2),
        "llm_vs_gold_agreement_2point": round(two.percent, 4) if two.percent is not None else None,
        "llm_vs_gold_kappa_2point": round(two.kappa, 4) if two.kappa is not None else None,
        "llm_vs_gold_matrix_2point": two.matrix,
        "llm_score_counts": {str(k): sum(1 for p in judged if llm[p] == k) for k in (0, 1, 2)},
        "correct_in_top10_per_doc_llm": round(sum(1 for p in judged if llm[p] >= 1) / max(1, len(judged_docs)), 2),
        "gold_in_top10_per_doc": round(sum(1 for p in judged if p in gold) / max(1, len(judged_docs)), 2),
        "unrated_reasons": sorted({u.explanation for u in unrated})[:5],
        "examples": examples,
    }


def render(r: dict) -> str:
    m = r["llm_vs_gold_matrix_2point"]
    judged = max(1, sum(map(sum, m)))
    relevant = sum(m[1])
    return "\n".join([
        "## LLM judge against a real local LLM (`bench/judge.py`)", "",
        f"Command: `{r['command']}` · server: {r['server']}, model {r['model']!r} "
        f"({r.get('model_description') or 'what it serves was not recorded by this run'}) on the same CPU · "
        f"machine: {r['machine']}.", "",
        f"- Judged {r['documents']} test documents x the zero-shot version's top-10 = {r['labels']} labels: "
        f"**{r['rated']} rated, {r['unrated']} explicitly unrated, {r['not_judged']} not judged** "
        f"(timeouts/rate limits). {r['calls']} calls ({r['reasks']} re-asks for labels a reply missed or garbled), "
        f"{r['prompt_tokens']:,} prompt + {r['completion_tokens']:,} completion tokens, {r['seconds']:.0f} s "
        f"({r['seconds_per_document']:.0f} s per document on 2 CPU cores).",
        f"- Rerun: **{r['rerun_calls']} new calls**, {r['rerun_cached_labels']} labels from the cache, "
        f"{r['rerun_seconds']:.1f} s.",
        f"- LLM scores: {r['llm_score_counts']}. With the gold MeSH labels standing in for an SME (gold = relevant): "
        f"2-point agreement {100 * (r['llm_vs_gold_agreement_2point'] or 0):.1f}%, kappa "
        f"{r['llm_vs_gold_kappa_2point']}; matrix rows LLM irrelevant/relevant, columns not gold/gold: {m}. "
        f"Labels judged correct in the top-10 per document: LLM {r['correct_in_top10_per_doc_llm']}, gold "
        f"{r['gold_in_top10_per_doc']}.",
        "- Unrated reasons seen: " + ("; ".join(r["unrated_reasons"]) or "none") + ".",
        f"- Reading: the small model is lenient ({100 * relevant / judged:.0f}% of judged top-10 labels relevant, "
        f"{100 * (m[0][1] + m[1][1]) / judged:.0f}% gold) but rarely rejects a gold label ({m[0][1]} of "
        f"{m[0][1] + m[1][1]}). Gold MeSH indexing is not exhaustive, so part of the disagreement is the gold's; "
        "an SME's verification (the Evaluate page) is the real reference, and a larger judge model the real fix.",
    ])


if __name__ == "__main__":
    main()
