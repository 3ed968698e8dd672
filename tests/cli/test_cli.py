"""The ``xmtc`` command line on real files: each command, its one-line errors, and the README's four-command path."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from core.cli import main
from core.config import ROOT

TTL = """@prefix skos: <http://www.w3.org/2004/02/skos/core#> .
@prefix ex: <http://example.org/t/> .
ex:med a skos:Concept ; skos:prefLabel "Medicine"@en .
ex:card a skos:Concept ; skos:prefLabel "Cardiology"@en ; skos:broader ex:med .
ex:mi a skos:Concept ; skos:prefLabel "Myocardial Infarction"@en ; skos:altLabel "Heart Attack"@en ; skos:broader ex:card .
ex:onc a skos:Concept ; skos:prefLabel "Oncology"@en ; skos:broader ex:med .
ex:bc a skos:Concept ; skos:prefLabel "Breast Neoplasms"@en ; skos:broader ex:onc .
"""
TOPICS = [("Heart attack outcomes", "Acute myocardial infarction patients were followed.", "Myocardial Infarction|Cardiology"),
          ("Tumour growth", "Breast tumours grew slowly in the cohort.", "Breast Neoplasms|Oncology"),
          ("Coronary care", "Infarct size after thrombolysis in the coronary unit.", "Myocardial Infarction"),
          ("Radiotherapy", "Radiation for breast cancer patients.", "Breast Neoplasms"),
          ("Heart failure clinic", "Outpatients of the cardiology clinic.", "Cardiology")]


def corpus_csv(n: int = 15) -> str:
    rows = [f'{i},"{TOPICS[i % 5][0]} {i}","{TOPICS[i % 5][1]}",{TOPICS[i % 5][2]}' for i in range(n)]
    return "id,title,abstract,labels\n" + "\n".join(rows) + "\n"


def xmtc(*args: str, stdin: str | None = None, capsys=None, monkeypatch=None) -> tuple[int, str, str]:
    if stdin is not None:
        import io

        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(["--quiet", *args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path):
    (tmp_path / "taxonomy.ttl").write_text(TTL)
    (tmp_path / "corpus.csv").write_text(corpus_csv())
    return tmp_path


def test_import_commands_report_and_hold_out_a_test_split(data_dir, files, capsys, monkeypatch):
    code, out, _ = xmtc("import-taxonomy", "Mine", str(files / "taxonomy.ttl"), "--create", capsys=capsys)
    assert code == 0 and "Mine: taxonomy 5 read, 5 imported" in out
    code, out, _ = xmtc("import-docs", "Mine", str(files / "corpus.csv"), capsys=capsys)
    assert code == 0 and "15 imported" in out and "3 of its 15 documents (20%" in out
    code, out, _ = xmtc("users", "add", "sam", "--password-stdin", stdin="long enough\n", capsys=capsys,
                        monkeypatch=monkeypatch)
    assert code == 0 and "user sam (annotator) created" in out
    assert xmtc("users", "list", capsys=capsys)[1] == "sam\tannotator\n"


@pytest.mark.parametrize(("args", "message"), [
    (["import-taxonomy", "Mine", "missing.ttl", "--create"], r"missing\.ttl: no such file\."),
    (["import-docs", "Nope", "corpus.csv"], r"No project 'Nope'; projects: "),
    (["train", "Nope"], r"No project 'Nope'"),
    (["eval", "Mine"], r"no active model: train one"),
    (["suggest", "Mine", "empty.txt"], r"No text to suggest labels for in .*empty\.txt"),
    (["suggest", "Mine", "empty.txt", "--threshold", "nan"], r"--threshold must be a number, not NaN"),
    (["pools", "Mine", "Quantum Gravity"], r"No label 'Quantum Gravity' in this project"),
    (["pools", "Mine", "Oncology", "--corpus", "nowhere/"], r"nowhere: no such file"),
    (["tokens", "create", "--name", "catalogue", "--project", "Nope"], r"No project 'Nope'"),
    (["tokens", "create", "--project", "Mine"], r"needs --name and at least one --project"),
    (["tokens", "revoke", "42"], r"API token 42 does not exist"),
])
def test_bad_input_exits_2_with_one_line_and_no_traceback(data_dir, files, capsys, monkeypatch, args, message):
    monkeypatch.chdir(files)
    (files / "empty.txt").write_text("  \n")
    xmtc("import-taxonomy", "Mine", "taxonomy.ttl", "--create", capsys=capsys)
    code, _, err = xmtc(*args, capsys=capsys)
    assert code == 2 and re.search(message, err), err
    assert err.count("\n") == 1 and "Traceback" not in err


def test_tokens_are_created_once_listed_and_revoked(data_dir, files, capsys):
    from core.accounts.tokens import token_projects
    from core.config import Settings
    from storage.db import Database

    xmtc("import-taxonomy", "Mine", str(files / "taxonomy.ttl"), "--create", capsys=capsys)
    code, out, err = xmtc("tokens", "create", "--name", "catalogue", "--project", "Mine", "--days", "30", capsys=capsys)
    token = out.strip()
    assert code == 0 and "shown once" in err and token.startswith("xmtc_")
    db = Database(Settings.from_env().db_url)
    assert token_projects(db, token) == {1}
    code, out, _ = xmtc("tokens", "list", capsys=capsys)
    assert re.fullmatch(r"1\tcatalogue\tprojects 1\texpires \d{4}-\d\d-\d\d\n", out)
    assert xmtc("tokens", "revoke", "1", capsys=capsys)[:2] == (0, "token 1 revoked\n")
    assert token_projects(db, token) is None and "revoked" in xmtc("tokens", "list", capsys=capsys)[1]
    db.dispose()


def test_a_bad_corpus_row_names_the_problem(data_dir, files, capsys):
    xmtc("import-taxonomy", "Mine", str(files / "taxonomy.ttl"), "--create", capsys=capsys)
    (files / "bad.csv").write_text("id,title,abstract,labels\n1,A,B,Not A Label\n")
    code, _, err = xmtc("import-docs", "Mine", str(files / "bad.csv"), capsys=capsys)
    assert code == 2 and "unknown label(s) not in the taxonomy, e.g. 'Not A Label'" in err


@pytest.mark.slow  # trains a real model for several seconds
def test_train_eval_and_suggest_on_a_small_project(data_dir, files, capsys, monkeypatch):
    xmtc("import-taxonomy", "Mine", str(files / "taxonomy.ttl"), "--create", capsys=capsys)
    xmtc("import-docs", "Mine", str(files / "corpus.csv"), capsys=capsys)
    code, out, err = xmtc("train", "Mine", "--no-cross", "--minutes", "2", capsys=capsys)
    assert code == 0, err
    assert re.search(r"trained version \d+ \(active\) in [\d.]+ min; on 3 test documents: P@1", out)
    code, out, _ = xmtc("eval", "Mine", "--json", capsys=capsys)
    result = json.loads(out)
    assert code == 0 and result["documents"] == 3 and 0 <= result["R@10"] <= 1 and result["source"] == "the test split"
    # a file of documents with gold labels: the same metrics, computed on it
    (files / "gold.csv").write_text("id,title,abstract,labels\n1,Heart attack,Myocardial infarction in the elderly.,"
                                    "Myocardial Infarction\n")
    code, out, _ = xmtc("eval", "Mine", str(files / "gold.csv"), "--json", capsys=capsys)
    assert code == 0 and json.loads(out)["documents"] == 1
    code, out, _ = xmtc("suggest", "Mine", "-k", "3", stdin="Breast cancer tumour growth after radiotherapy.",
                        capsys=capsys, monkeypatch=monkeypatch)
    lines = [line.split("\t") for line in out.strip().splitlines()]
    assert code == 0 and len(lines) == 3 and {name for name, _ in lines} <= {"Medicine", "Cardiology", "Oncology",
                                                                          "Myocardial Infarction", "Breast Neoplasms"}
    scores = [float(s) for _, s in lines]
    assert scores == sorted(scores, reverse=True)
    (files / "a.txt").write_text("Heart attack and infarct size.")
    (files / "b.txt").write_text("Breast tumours.")
    code, out, _ = xmtc("suggest", "Mine", str(files / "a.txt"), str(files / "b.txt"), "--json", "-k", "2", capsys=capsys)
    docs = json.loads(out)
    assert code == 0 and [d["document"] for d in docs] == [str(files / "a.txt"), str(files / "b.txt")]
    assert all(len(d["suggestions"]) == 2 for d in docs)


def readme_commands() -> list[str]:
    """The shell commands of the README's bring-your-own-data section."""
    text = (ROOT / "README.md").read_text()
    block = text.split("<!-- byod -->", 1)[1].split("<!-- /byod -->", 1)[0]
    code = block.split("```bash", 1)[1].split("```", 1)[0]
    return [line.split("#", 1)[0].strip() for line in code.splitlines() if line.split("#", 1)[0].strip()]


@pytest.mark.slow
def test_the_readmes_four_commands_take_own_data_to_a_trained_and_evaluated_model(tmp_path):
    commands = readme_commands()
    assert len(commands) == 4 and all(c.startswith("xmtc ") for c in commands)
    (tmp_path / "my-taxonomy.ttl").write_text(TTL)
    (tmp_path / "my-corpus.csv").write_text(corpus_csv(30))
    env = {**os.environ, "XMTC_DATA_DIR": str(tmp_path / "var"), "XMTC_START_WORKER": "0",
           "PATH": f"{os.path.dirname(sys.executable)}{os.pathsep}{os.environ['PATH']}"}
    env.pop("XMTC_DATABASE_URL", None)
    outputs = []
    for command in commands:
        done = subprocess.run(command, shell=True, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, f"{command}: {done.stderr[-2000:]}"
        outputs.append(done.stdout)
    assert "6 of its 30 documents (20%" in outputs[1]
    assert "trained version" in outputs[2] and "on 6 test documents" in outputs[2]
    assert re.search(r"R@10\t[01]\.\d{4}", outputs[3])
