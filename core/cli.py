"""The command line (``xmtc ...``), as Annif users expect: import, train, evaluate and suggest from the shell and
from cron, on the same database and data folder as the app (``XMTC_DATA_DIR`` / ``XMTC_DATABASE_URL``).

Long work runs as the app's jobs do (queued, then run here with a progress bar), so it shows on the app's pages
too. Bad input ends the command with one line on stderr and exit status 2; no traceback.
"""

from __future__ import annotations

import argparse
import getpass
import json
import math
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.config import Settings
from core.data.concepts import name_columns
from core.data.corpus import CORPUS_FORMATS, checked_corpus, guess_format
from core.errors import NotFound, XmtcError
from storage.db import Database

EXIT_BAD_INPUT = 2


class CliError(XmtcError):
    """A bad command line (a missing file, an unknown project): reported in one line."""


def _db(settings: Settings, prepare: bool = True) -> Database:
    from storage.migrate import SchemaBehind

    db = Database(settings.db_url)
    if prepare:
        try:
            db.prepare()
        except SchemaBehind as exc:
            raise CliError(str(exc)) from exc
    return db


def _project(db: Database, ref: str, create: bool = False) -> int:
    """A project by name or id; ``create`` makes one by that name when there is none."""
    from sqlalchemy import select

    from core.accounts.projects import create_project
    from storage.models import Project

    with db.session() as s:
        found = s.scalar(select(Project.id).where(Project.name == ref))
        if found is None and ref.isdigit():
            found = s.scalar(select(Project.id).where(Project.id == int(ref)))
        names = list(s.scalars(select(Project.name).order_by(Project.name)))
    if found is not None:
        return found
    if create:
        return create_project(db, ref)
    raise NotFound(f"No project {ref!r}; projects: {', '.join(names) or 'none yet'} (import-taxonomy --create makes one).")


def _existing(path: Path) -> Path:
    if not path.is_file():
        raise CliError(f"{path}: no such file.")
    return path


def run_job(db: Database, settings: Settings, kind: str, project_id: int | None, params: dict[str, Any],
            quiet: bool = False) -> dict[str, Any]:
    """Queue a job and run it in this process, with a progress bar on stderr; returns its result.

    Raises:
        XmtcError: the job failed (its message).
    """
    from tqdm import tqdm

    from core.jobs import enqueue, get_job
    from core.worker import WorkerProcess

    job_id = enqueue(db, kind, project_id, params, settings=settings)
    worker = WorkerProcess(db, settings)
    worker.register()
    runner = threading.Thread(target=worker.run_one, kwargs={"only": job_id}, daemon=True)
    runner.start()
    with tqdm(total=100, disable=quiet, file=sys.stderr, bar_format="{l_bar}{bar}| {elapsed}{postfix}") as bar:
        while runner.is_alive():
            runner.join(0.5)
            job = get_job(db, job_id)
            bar.n = round(100 * job.progress)
            bar.set_description_str(job.message[:70], refresh=False)
            bar.refresh()
    job = get_job(db, job_id)
    if job.status != "done":
        raise XmtcError(f"{job.title} {job.status}: {(job.error or job.message).splitlines()[0]}")
    return job.result


# --- commands --------------------------------------------------------------------------------------------------


def cmd_import_taxonomy(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    pid = _project(db, args.project, create=args.create)
    labels = name_columns(args.label)
    result = run_job(db, settings, "import_taxonomy", pid, {"path": str(_existing(args.file).resolve()),
                                                           "format": args.format, "version_name": args.version_name,
                                                           "label_columns": labels}, args.quiet)
    print(f"{args.project}: taxonomy {result['report']}")


def cmd_import_docs(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.data.imports import HOLDOUT_NOTE

    pid = _project(db, args.project)
    mapping = {"id": args.id, "title": args.title or None, "abstract": args.abstract or None,
               "keywords": args.keywords or None, "labels": args.labels or None, "split": args.split or None}
    result = run_job(db, settings, "import_corpus", pid, {
        "path": str(_existing(args.file).resolve()), "format": args.format or guess_format(args.file),
        "mapping": mapping, "on_error": "skip" if args.skip_bad_rows else "abort", "holdout": args.holdout,
        "split_value": args.as_split or None}, args.quiet)
    print(f"{args.project}: documents {result['report']}")
    for warning in result.get("warnings", []):
        if not warning.startswith(HOLDOUT_NOTE):  # already in the report line
            print(f"warning: {warning}", file=sys.stderr)


def cmd_train(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.model.training import TrainConfig

    pid = _project(db, args.project)
    cfg = TrainConfig(train_cross=not args.no_cross, epochs=args.epochs, time_budget_min=args.minutes,
                      cross_loss=args.cross_loss, label_text=args.label_text)
    result = run_job(db, settings, "train_model", pid, {"config": cfg.as_dict(), "eval_docs": args.eval_docs}, args.quiet)
    out = result.get("bicross", {})
    metrics = out.get("metrics", {})
    line = ", ".join(f"{k} {v:.3f}" for k, v in metrics.items() if k != "test_docs")
    print(f"{args.project}: trained version {out.get('model_version_id')} (active) in {result.get('minutes')} min"
          + (f"; on {metrics['test_docs']:,} test documents: {line}" if metrics else ""))
    for note in result.get("budget_notes", []):
        print(f"note: {note}", file=sys.stderr)
    if result.get("warning"):
        print(f"warning: {result['warning']}", file=sys.stderr)


def _version(db: Database, pid: int, number: int | None) -> Any:
    from core.model.versions import SERVING_KINDS, active_version, list_versions

    if number is None:
        version = active_version(db, pid)
        if version is None:
            raise CliError("The project has no active model: train one (xmtc train) first.")
        return version
    found = next((v for v in list_versions(db, pid) if v.number == number and v.kind in SERVING_KINDS), None)
    if found is None:
        raise CliError(f"The project has no servable version v{number}.")
    return found


def cmd_eval(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.data.catalog import documents
    from core.data.corpus import ColumnMapping, read_corpus
    from core.data.imports import label_lookup
    from core.data.reports import ImportReport
    from core.model.bicross import evaluate_ranker
    from core.model.loading import load_ranker

    pid = _project(db, args.project)
    version = _version(db, pid, args.version)  # a missing model is the first thing to say
    if args.file is not None:
        lookup = label_lookup(db, pid)
        mapping = ColumnMapping(id=args.id, title=args.title or None, abstract=args.abstract or None,
                                labels=args.labels)
        texts, gold, unknown = [], [], set()
        for rec in read_corpus(_existing(args.file), args.format or guess_format(args.file), mapping, ImportReport()):
            texts.append(rec.text)
            gold.append({lookup[n] for n in rec.labels if n in lookup})
            unknown |= {n for n in rec.labels if n not in lookup}
        source = str(args.file)
        if unknown:
            print(f"warning: {len(unknown)} label(s) not in the taxonomy ignored, e.g. {sorted(unknown)[:3]}",
                  file=sys.stderr)
    else:
        docs = documents(db, pid, args.split)
        texts, gold, source = [d.text for d in docs], [set(d.gold) for d in docs], f"the {args.split} split"
    if not texts:
        raise CliError(f"No documents to evaluate in {source}.")
    metrics = evaluate_ranker(load_ranker(version.path, settings.device), texts, gold)
    if args.json:
        print(json.dumps({"version": version.name, "documents": len(texts), "source": source, **metrics}))
    else:
        print(f"{version.name} on {len(texts):,} documents of {source}")
        for k, v in metrics.items():
            print(f"{k}\t{v:.4f}")


def cmd_suggest(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    if math.isnan(args.threshold):
        raise CliError("--threshold must be a number, not NaN.")
    pid = _project(db, args.project)
    files = [(str(p), _existing(p).read_text(encoding="utf-8")) for p in args.files]
    named = files or [("-", sys.stdin.read())]
    empty = [name for name, text in named if not text.strip()]
    if empty:
        raise CliError(f"No text to suggest labels for in {', '.join(empty)}.")
    from core.data.catalog import label_places
    from core.model.labels import shown
    from core.model.loading import load_ranker

    ranker = load_ranker(_version(db, pid, args.version).path, settings.device)
    ranked = ranker.rank([text for _, text in named], k=args.limit)
    places = label_places(db, pid, [p.label_id for preds in ranked for p in preds])
    rows = [[{"label_id": p.label_id, "label": places[p.label_id][0], "score": score}
             for p, score in shown(preds, 4, args.threshold)] for preds in ranked]
    if args.json:
        print(json.dumps([{"document": name, "suggestions": r} for (name, _), r in zip(named, rows, strict=True)]))
        return
    for (name, _), suggestions in zip(named, rows, strict=True):
        for r in suggestions:
            print("\t".join(([name] if len(named) > 1 else []) + [r["label"], f"{r['score']:.4f}"]))


def cmd_users(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from sqlalchemy import select

    from core.accounts import auth
    from storage.models import User

    if args.action == "list":
        with db.session() as s:
            for u in s.scalars(select(User).order_by(User.username)):
                print(f"{u.username}\t{u.role}")
        return
    if not args.username:
        raise CliError("users add needs a username.")
    password = sys.stdin.readline().rstrip("\n") if args.password_stdin else getpass.getpass(f"Password for {args.username}: ")
    user = auth.create_user(db, args.username, password, args.role)
    print(f"user {user.username} ({user.role}) created")


def cmd_tokens(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.accounts import tokens

    if args.action == "create":
        if not args.name or not args.project:
            raise CliError("tokens create needs --name and at least one --project.")
        token, token_id = tokens.create_token(db, args.name, [_project(db, p) for p in args.project], None, args.days)
        print(f"token {token_id} ({args.name}) created; it is shown once, keep it secret:", file=sys.stderr)
        print(token)
    elif args.action == "revoke":
        if args.id is None:
            raise CliError("tokens revoke needs the token's id (see `xmtc tokens list`).")
        tokens.revoke_token(db, args.id, None)
        print(f"token {args.id} revoked")
    else:
        for t in tokens.list_tokens(db):
            state = "revoked" if t.revoked else f"expires {t.expires_at:%Y-%m-%d}" if t.expires_at else "active"
            print(f"{t.id}\t{t.name}\tprojects {','.join(map(str, t.project_ids))}\t{state}")


def cmd_serve(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.api import serve

    db.dispose()  # each server process opens its own
    print(f"API on http://{args.host}:{args.port}/v1 (OpenAPI: /docs); Ctrl+C stops it", file=sys.stderr)
    serve(args.host, args.port, args.workers)


def cmd_pools(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.newlabels.jobs import BUILD_POOLS

    pid = _project(db, args.project)
    ids = [_label(db, pid, ref) for ref in args.labels]
    params = {"label_ids": ids, "pool_size": args.size}
    if args.corpus:
        params.update(corpus=str(checked_corpus(_existing(args.corpus).resolve(), settings.corpus_folders)),
                      mapping={"id": args.id, "title": args.title or None, "abstract": args.abstract or None})
    result = run_job(db, settings, BUILD_POOLS, pid, params, args.quiet)
    print(f"{args.project}: {result['labels']} pool(s) of up to {result['pool_size']} documents, "
          f"{result['documents']} distinct documents" + (f", from {result['corpus_documents']:,} corpus documents "
                                                        f"({result['engine']})" if "corpus" in result else ""))


def _label(db: Database, project_id: int, ref: str) -> int:
    """A label by external id, preferred name or row id."""
    from core.data.catalog import find_label

    found = find_label(db, project_id, ref, by_name=True)
    if found is None:
        raise NotFound(f"No label {ref!r} in this project (give its id, external id or preferred name).")
    return found


def cmd_worker(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from core.worker import main as worker_main

    worker_main((["--once"] if args.once else []) + ([f"--capabilities={args.capabilities}"] if args.capabilities is not None else []))


def cmd_db(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    from storage import migrate

    url = db.engine.url.render_as_string(hide_password=True)
    if args.action == "current":
        print(f"{url}: schema revision {migrate.current(db.engine) or '(empty database)'}; the code needs {migrate.head()}")
        return
    before, after = migrate.upgrade(db.engine)
    print(f"{url}: schema revision {before or '(empty database)'} -> {after}")


def cmd_demo(args: argparse.Namespace, db: Database, settings: Settings) -> None:
    result = run_job(db, settings, "build_demo", None, {"train_minutes": args.train_minutes}, args.quiet)
    print(f"demo project {result['project_id']}: {result['report']}; label index queued as job {result['index_job_id']}"
          + (" and a first training after it" if args.train_minutes else "")
          + " (the app's worker runs them, or: xmtc worker)")


# --- the parser ------------------------------------------------------------------------------------------------


def _mapping_args(p: argparse.ArgumentParser, labels_default: str = "labels") -> None:
    p.add_argument("--format", choices=CORPUS_FORMATS, default=None,
                   help="default: from the file name (.csv, .tsv, .jsonl, .parquet; .gz allowed)")
    p.add_argument("--id", default="id", help="column (or JSON key) of the document id")
    p.add_argument("--title", default="title", help="column of the title ('' for none)")
    p.add_argument("--abstract", default="abstract", help="column of the abstract ('' for none)")
    p.add_argument("--labels", default=labels_default, help="column of the labels (ids or names; a|b or a list)")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="xmtc", description="Keep an extreme multi-label classifier current "
                                     "(the same database and data folder as the app: XMTC_DATA_DIR, XMTC_DATABASE_URL).")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    sub = parser.add_subparsers(dest="command", required=True, metavar="command")

    p = sub.add_parser("import-taxonomy", help="import a taxonomy (SKOS RDF/XML, Turtle, JSON-LD; MeSH tree TSV; CSV)")
    p.add_argument("project", help="project name (or id)")
    p.add_argument("file", type=Path)
    p.add_argument("--format", choices=["skos", "mesh-tree", "csv"], default=None,
                   help="default: from the file name (csv also reads a .tsv table)")
    p.add_argument("--label", default="", help="a table's columns of names, best first (e.g. name_en,name_de): the "
                                               "first non-empty is the preferred name, the others alternatives")
    p.add_argument("--version-name", default=None, help="default: the file's name")
    p.add_argument("--create", action="store_true", help="create the project when there is none by this name")
    p.set_defaults(fn=cmd_import_taxonomy)

    p = sub.add_parser("import-docs", help="import documents with their labels (CSV/TSV, JSON Lines, Annif TSV)")
    p.add_argument("project")
    p.add_argument("file", type=Path)
    _mapping_args(p)
    p.add_argument("--keywords", default="", help="column of the keywords")
    p.add_argument("--split", default="", help="column of the split (train/test)")
    p.add_argument("--as-split", default="", help="put every document of the file in this split (e.g. train, or "
                                                  "test for an evaluation file); nothing is held out then")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="without a test split, hold out this share as the test split (seeded; 0: none)")
    p.add_argument("--skip-bad-rows", action="store_true", help="leave bad rows out (listed) instead of importing nothing")
    p.set_defaults(fn=cmd_import_docs)

    p = sub.add_parser("train", help="train the label ranking model on the train split; it becomes the active version")
    p.add_argument("project")
    p.add_argument("--minutes", type=float, default=0.0, help="time budget for the whole job (0: none)")
    p.add_argument("--epochs", type=int, default=1)
    p.add_argument("--no-cross", action="store_true", help="no cross-encoder (much faster on a CPU)")
    p.add_argument("--cross-loss", choices=("pointwise", "listwise"), default="listwise",
                   help="how the cross-encoder learns: pairs with mined negatives, or each document's shortlist")
    p.add_argument("--label-text", choices=("auto", "name", "terms"), default="auto",
                   help="what the encoders read for a label: its name, or its name and its records' words "
                        "(auto: the one the starting encoder ranks validation documents better with)")
    p.add_argument("--eval-docs", type=int, default=0, help="test documents to evaluate (0: all)")
    p.set_defaults(fn=cmd_train)

    p = sub.add_parser("eval", help="P@k/R@k/nDCG@k of a version on a split, or on a file of documents with gold labels")
    p.add_argument("project")
    p.add_argument("file", type=Path, nargs="?", default=None, help="documents with gold labels (default: the split)")
    p.add_argument("--split", default="test")
    p.add_argument("--version", type=int, default=None, help="version number (default: the active one)")
    p.add_argument("--json", action="store_true")
    _mapping_args(p)
    p.set_defaults(fn=cmd_eval)

    p = sub.add_parser("suggest", help="top labels for texts: each file one document, or stdin")
    p.add_argument("project")
    p.add_argument("files", type=Path, nargs="*")
    p.add_argument("--limit", "-k", type=int, default=10)
    p.add_argument("--threshold", type=float, default=float("-inf"), help="leave out scores below this")
    p.add_argument("--version", type=int, default=None)
    p.add_argument("--json", action="store_true", help="JSON instead of TSV (label<TAB>score)")
    p.set_defaults(fn=cmd_suggest)

    p = sub.add_parser("users", help="list users, or add one (password from a prompt or --password-stdin)")
    p.add_argument("action", choices=["list", "add"])
    p.add_argument("username", nargs="?")
    p.add_argument("--role", choices=["annotator", "admin"], default="annotator")
    p.add_argument("--password-stdin", action="store_true")
    p.set_defaults(fn=cmd_users)

    p = sub.add_parser("pools", help="build new labels' document pools, from the project's documents or a corpus")
    p.add_argument("project")
    p.add_argument("labels", nargs="+", help="labels (external id, name or id)")
    p.add_argument("--corpus", type=Path, default=None,
                   help="a JSONL/Parquet/CSV file or folder of them (embedded with Ray when installed; only the "
                        "documents that enter a pool are copied into the project)")
    p.add_argument("--size", type=int, default=0, help="documents per pool (0: 1,000, or the corpus when smaller)")
    p.add_argument("--id", default="id", help="corpus key of the document id")
    p.add_argument("--title", default="title", help="corpus key of the title ('' for none)")
    p.add_argument("--abstract", default="abstract", help="corpus key of the abstract ('' for none)")
    p.set_defaults(fn=cmd_pools)

    p = sub.add_parser("tokens", help="REST API bearer tokens: create (scoped to projects), list, revoke")
    p.add_argument("action", choices=["create", "list", "revoke"])
    p.add_argument("id", type=int, nargs="?", help="the token to revoke")
    p.add_argument("--name", default="", help="which system uses it")
    p.add_argument("--project", action="append", default=[], help="a project it reaches (name or id; repeat)")
    p.add_argument("--days", type=float, default=None, help="expires after this many days (default: never)")
    p.set_defaults(fn=cmd_tokens)

    p = sub.add_parser("serve", help="run the REST API (FastAPI + uvicorn) on the app's database")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (each keeps its own model cache)")
    p.set_defaults(fn=cmd_serve)

    p = sub.add_parser("worker", help="run queued jobs in the foreground (e.g. on a GPU machine)")
    p.add_argument("--once", action="store_true")
    p.add_argument("--capabilities", default=None, help="what it can run, e.g. gpu (default: detected)")
    p.set_defaults(fn=cmd_worker)

    p = sub.add_parser("db", help="the database's schema: 'current' shows its revision, 'upgrade' migrates it (keeps every row)")
    p.add_argument("action", choices=["current", "upgrade"])
    p.set_defaults(fn=cmd_db, raw_db=True)

    p = sub.add_parser("demo", help="build the PubMed/MeSH demo project (downloads the public files when needed)")
    p.add_argument("--train-minutes", type=float, default=0.0, help="also queue a first training with this budget")
    p.set_defaults(fn=cmd_demo)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "limit", 1) < 1:
        print("error: --limit must be at least 1", file=sys.stderr)
        return EXIT_BAD_INPUT
    settings = Settings.from_env()
    started = time.monotonic()
    try:
        db = _db(settings, prepare=not getattr(args, "raw_db", False))
        args.fn(args, db, settings)
    except XmtcError as exc:
        print(f"error: {str(exc).splitlines()[0]}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"interrupted after {time.monotonic() - started:.0f} s", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
