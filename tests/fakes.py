"""Fakes written as code: small corpora, taxonomies and job handlers for tests."""

from __future__ import annotations

import time
from pathlib import Path

from core.jobs import JobContext, job_handler

TAXONOMY_CSV = """id,label,parents,alt_labels,description
med,Medicine,,,
card,Cardiology,med,Heart medicine,Diseases of the heart
mi,Myocardial Infarction,card,Heart Attack|MI,Death of heart muscle
onc,Oncology,med,Cancer medicine,
bc,Breast Neoplasms,onc|card,Breast Cancer,A poly-hierarchy example with two parents
"""

CORPUS_CSV = """doc_id,title,abstract,tags,split
1,Heart attack outcomes,Patients with acute myocardial infarction were followed.,"['Myocardial Infarction', 'Cardiology']",train
2,Tumour growth,Breast tumours grew slowly in the cohort.,"[""Breast Neoplasms""]",train
3,Cardio-oncology,Heart damage after breast cancer therapy.,Cardiology|Breast Neoplasms,test
"""


def write(path: Path, text: str | bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


@job_handler("test_sleep", "Sleep (test)")
def sleep_job(ctx: JobContext) -> dict:
    """Reports progress for ``seconds``; used to kill a worker mid-job and to cancel a job."""
    seconds = float(ctx.params.get("seconds", 1.0))
    steps = max(1, int(seconds / 0.1))
    for i in range(steps):
        time.sleep(seconds / steps)
        ctx.progress((i + 1) / steps, f"step {i + 1}/{steps}", force=True)
    return {"slept": seconds}


@job_handler("test_fail", "Fail (test)")
def fail_job(ctx: JobContext) -> dict:
    raise RuntimeError("boom")
