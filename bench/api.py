"""The REST API under load: one-document suggest latency, then 50 concurrent clients, without and with batching.

It builds the PubMed/MeSH demo project in a throw-away data folder with a first model trained in a short time
budget (bi-encoder, cross-encoder and fusion: what a project serves), creates an API token as an admin would, and
runs ``xmtc serve`` twice in its own process, the same model on the same machine: once with each request ranked
alone (``XMTC_API_BATCH_MS=0``), once with concurrent requests gathered into batches (``--batch-ms``). Each time it
calls it over HTTP with the TEST documents' titles and abstracts:

1. one client, one request at a time: p50/p95 of a one-document suggest;
2. ``--clients`` clients at once for ``--minutes``: errors (any non-200 or transport failure), p50/p95 under load,
   requests per second.

``throughput_ratio_batched`` is the batched server's requests per second over the unbatched one's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

from bench.common import ROOT, build_demo, command_line, machine, publish, temp_data_dir
from core.accounts.tokens import create_token
from core.data.catalog import documents
from core.model.versions import active_version


def _percentiles(ms: list[float]) -> tuple[float, float]:
    return round(float(np.percentile(ms, 50)), 1), round(float(np.percentile(ms, 95)), 1)


def _serve(port: int, workers: int, batch_ms: float) -> subprocess.Popen:
    env = {**os.environ, "XMTC_API_BATCH_MS": str(batch_ms)}
    proc = subprocess.Popen([sys.executable, "-m", "core.cli", "serve", "--port", str(port), "--workers", str(workers)],
                            cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v1/health", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            time.sleep(0.3)
        if proc.poll() is not None:
            break
    proc.kill()
    raise SystemExit(f"the API did not start: {proc.stderr.read()}")


async def _load(url: str, headers: dict[str, str], texts: list[str], clients: int, seconds: float) -> dict:
    latencies: list[float] = []
    errors: list[str] = []
    stop = time.monotonic() + seconds

    async def client(n: int, http: httpx.AsyncClient) -> None:
        rng = random.Random(n)
        while time.monotonic() < stop:
            started = time.perf_counter()
            try:
                got = await http.post(url, json={"text": rng.choice(texts), "k": 10}, headers=headers)
                if got.status_code != 200:
                    errors.append(f"{got.status_code}: {got.text[:200]}")
                    continue
            except httpx.HTTPError as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            latencies.append((time.perf_counter() - started) * 1000)

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(timeout=120, limits=limits) as http:
        started = time.monotonic()
        await asyncio.gather(*(client(n, http) for n in range(clients)))
        elapsed = time.monotonic() - started
    p50, p95 = _percentiles(latencies) if latencies else (None, None)
    return {"errors": len(errors), "first_errors": errors[:5], "load_requests": len(latencies),
            "load_rps": round(len(latencies) / elapsed, 2), "load_p50_ms": p50, "load_p95_ms": p95,
            "load_max_ms": round(max(latencies), 1) if latencies else None}


def _measure(port: int, workers: int, batch_ms: float, token: str, texts: list[str], single: int, clients: int,
             minutes: float) -> dict:
    """One server: sequential one-document latency, then the load."""
    proc = _serve(port, workers, batch_ms)
    try:
        url = f"http://127.0.0.1:{port}/v1/projects/1/suggest"
        headers = {"Authorization": f"Bearer {token}"}
        one: list[float] = []
        with httpx.Client(timeout=120, headers=headers) as http:
            for i in range(single + 5):
                t0 = time.perf_counter()
                got = http.post(url, json={"text": texts[i % len(texts)], "k": 10})
                got.raise_for_status()
                if i >= 5:  # the first calls load the model
                    one.append((time.perf_counter() - t0) * 1000)
        p50, p95 = _percentiles(one)
        load = asyncio.run(_load(url, headers, texts, clients, minutes * 60))
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return {"batch_ms": batch_ms, "single_requests": len(one), "p50_ms": p50, "p95_ms": p95, **load}


def run(data: Path, train_minutes: float, clients: int, minutes: float, single: int, workers: int, port: int,
        batch_ms: float) -> dict:
    with temp_data_dir(XMTC_DEMO_DATA=str(data)):
        db, _, setup_s = build_demo(train_minutes)
        version = active_version(db, 1)
        token, _ = create_token(db, "bench", [1], None)
        texts = [d.text for d in documents(db, 1, split="test", with_gold=False)]
        db.dispose()
        # Alone on the machine, one after the other: the same model and texts, batching off then on.
        unbatched = _measure(port, workers, 0.0, token, texts, single, clients, minutes)
        batched = _measure(port, workers, batch_ms, token, texts, single, clients, minutes)
    return {"model": version.name, "model_metrics": {k: version.metrics.get(k) for k in ("P@1", "R@10")},
            "setup_minutes": round(setup_s / 60, 2), "train_minutes": train_minutes, "server_workers": workers,
            "clients": clients, "load_minutes": minutes, "unbatched": unbatched, "batched": batched,
            "throughput_ratio_batched": round(batched["load_rps"] / unbatched["load_rps"], 3),
            "load_p95_ms_batched": batched["load_p95_ms"], "load_p95_ms_unbatched": unbatched["load_p95_ms"],
            "p50_ms": batched["p50_ms"], "p95_ms": batched["p95_ms"],
            "errors": batched["errors"] + unbatched["errors"]}


def render(r: dict) -> str:
    rows = "\n".join(
        f"| {name} | {m['p50_ms']} / {m['p95_ms']} ms | {m['load_requests']:,} ({m['load_rps']} per second) | "
        f"{m['load_p50_ms']} / {m['load_p95_ms']} / {m['load_max_ms']} ms | {m['errors']} |"
        for name, m in (("each request alone (`XMTC_API_BATCH_MS=0`)", r["unbatched"]),
                        (f"batched (`XMTC_API_BATCH_MS={r['batched']['batch_ms']:g}`)", r["batched"])))
    return f"""## The REST API under load (`bench/api.py`)

Command: `{r['command']}` · machine: {r['machine']}

Served: the demo project's {r['model']} (its first training, {r['train_minutes']:g} min: bi-encoder, sparse backend, \
neighbours and the learned fusion, no cross-encoder; P@1 {r['model_metrics']['P@1']:.3f}, \
R@10 {r['model_metrics']['R@10']:.3f} on TEST), by `xmtc serve` with {r['server_workers']} server process(es), over \
HTTP on this machine; request texts are TEST titles and abstracts, k = 10. The same model served twice in one run: \
each request ranked alone, then concurrent requests gathered into one ranking call. Load: {r['clients']} concurrent \
clients for {r['load_minutes']:g} min each.

| server | one client: p50 / p95 | under load: answered | under load: p50 / p95 / max | errors |
|---|---|---|---|---|
{rows}

**Throughput, batched over alone: {r['throughput_ratio_batched']}x**; p95 under load batched \
{r['load_p95_ms_batched']} ms (alone {r['load_p95_ms_unbatched']} ms); errors {r['errors']}.
"""


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    parser.add_argument("--train-minutes", type=float, default=3.0, help="time budget of the served model's training")
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=2.0)
    parser.add_argument("--single", type=int, default=200, help="sequential one-document requests")
    parser.add_argument("--workers", type=int, default=1, help="server processes")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--batch-ms", type=float, default=5.0, help="the batched server's gathering window")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    out = {**run(args.data, args.train_minutes, args.clients, args.minutes, args.single, args.workers, args.port,
               args.batch_ms),
           "machine": machine(), "command": command_line("bench.api", argv)}
    publish("api", out, render, not args.no_write)


if __name__ == "__main__":
    main()
