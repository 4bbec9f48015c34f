"""``prepare --source argilla`` against a real Argilla 2.8 server (tests/support/argilla_server.py).

Two annotators submit, discard, draft and edit responses through the REST API, as the UI does;
``python -m tasks prepare`` exports them with the owner's key from ``ARGILLA_API_URL`` /
``ARGILLA_API_KEY`` and must train on exactly the submitted answers, count what it skipped, record
the watermark, end as "nothing to do" when nothing changed and run again when an annotation came in.
Every user error is one line on stderr with the step contract's exit code.
"""

from __future__ import annotations

import time
import uuid

import httpx
import pytest
from conftest import last_json, make_pairs, run_cli

from tasks.io import EXIT_FAILED, EXIT_INVALID_INPUT, read_json, read_jsonl, write_json

pytestmark = pytest.mark.services

A1, A2 = "annotator-1", "annotator-2"


def _settings():
    import argilla as rg

    return rg.Settings(
        fields=[rg.TextField(name="document")],
        questions=[rg.TextQuestion(name="query", title="Search query for this passage")],
    )


def _create_dataset(server, documents: list[str], settings=None) -> tuple[str, dict[str, str]]:
    """Create and fill a dataset; returns (name, {document: record id})."""
    import argilla as rg

    name = f"pairs-{uuid.uuid4().hex[:8]}"
    client = server.client()
    dataset = rg.Dataset(
        name=name, workspace=server.workspace, settings=settings or _settings(), client=client
    )
    dataset.create()
    dataset.records.log([{"document": doc} for doc in documents])
    listing = httpx.get(
        f"{server.url}/api/v1/datasets/{dataset.id}/records",
        params={"limit": 1000},
        headers=server.headers(server.owner_key),
        timeout=60,
    )
    listing.raise_for_status()
    ids = {item["fields"]["document"]: item["id"] for item in listing.json()["items"]}
    assert len(ids) == len(documents)
    return name, ids


def _respond(server, annotator: str, record_id: str, status: str, query: str | None = None):
    """Create an annotator's response (as the UI does); returns the server's response JSON."""
    body = {"status": status, "values": {"query": {"value": query}} if query else None}
    reply = httpx.post(
        f"{server.url}/api/v1/records/{record_id}/responses",
        json=body,
        headers=server.headers(server.annotator_keys[annotator]),
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def _edit(server, annotator: str, response_id: str, query: str) -> dict:
    reply = httpx.put(
        f"{server.url}/api/v1/responses/{response_id}",
        json={"status": "submitted", "values": {"query": {"value": query}}},
        headers=server.headers(server.annotator_keys[annotator]),
        timeout=30,
    )
    assert reply.status_code == 200, reply.text
    return reply.json()


def _wait_for_server_clock(server, updated_at: str, limit: float = 30.0) -> None:
    """Wait until the server's clock (its Date header, as the export reads it) is past
    ``updated_at``: the export leaves responses newer than its start for the next run."""
    from email.utils import parsedate_to_datetime

    from tasks.sources.argilla import parse_time

    moment, deadline = parse_time(updated_at), time.monotonic() + limit
    while time.monotonic() < deadline:
        reply = httpx.get(f"{server.url}/api/v1/me", headers=server.headers(server.owner_key))
        if parsedate_to_datetime(reply.headers["date"]) > moment:
            return
        time.sleep(0.5)
    raise AssertionError(f"the server's clock did not pass {updated_at} in {limit} s")


def _options(tiny_model_dir, run_dir, *extra: str) -> list[str]:
    return [
        "prepare",
        "--run-dir",
        str(run_dir),
        "--source",
        "argilla",
        "--base-model",
        str(tiny_model_dir),
        "--matryoshka-dims",
        "64,32",
        "--best-metric-dim",
        "32",
        "--batch-size",
        "4",
        *extra,
    ]


@pytest.fixture
def fresh_logging(monkeypatch):
    """Logging as in a new ``python -m tasks`` process: no handlers, root level WARNING (other
    tests of the session may have left handlers on streams that pytest has closed since)."""
    import logging

    root = logging.getLogger()
    monkeypatch.setattr(root, "handlers", [])
    monkeypatch.setattr(root, "level", logging.WARNING)
    for name in ("argilla", "argilla.sdk", "httpx"):
        logger = logging.getLogger(name)
        monkeypatch.setattr(logger, "handlers", [])
        monkeypatch.setattr(logger, "level", logging.NOTSET)


def _in_process(capsys, argv: list[str]) -> tuple[int, str, str]:
    """``python -m tasks ...`` in this process (the CLI's own ``main``): no second torch import."""
    from tasks.cli import main

    capsys.readouterr()
    code = main(argv, exit=lambda c: c)
    out, err = capsys.readouterr()
    return code, out, err


def _all_pairs(run_dir) -> set[tuple[str, str]]:
    data = run_dir / "data"
    rows = [
        *read_jsonl(data / "train.jsonl"),
        *read_jsonl(data / "val_pairs.jsonl"),
        *read_jsonl(data / "eval_pairs.jsonl"),
    ]
    return {(r["query"], r["document"]) for r in rows}


def test_prepare_trains_on_submitted_annotations_only(
    argilla_server, tiny_model_dir, tmp_path, monkeypatch, capsys, fresh_logging
):
    server = argilla_server
    documents = [row["document"] for row in make_pairs(n_docs=20, queries_per_doc=1)]
    name, ids = _create_dataset(server, documents)
    rid = [ids[doc] for doc in documents]
    expected: set[tuple[str, str]] = set()
    for i in range(14):  # annotator 1 submits a query for records 0..13
        query = f"what does passage {i} explain"
        response = _respond(server, A1, rid[i], "submitted", query)
        if i == 6:
            to_edit = response["id"]
        else:
            expected.add((query, documents[i]))
    for i in range(2):  # annotator 2 phrases 0 and 1 differently: a second pair each
        query = f"passage {i} in other words"
        _respond(server, A2, rid[i], "submitted", query)
        expected.add((query, documents[i]))
    _respond(server, A2, rid[2], "submitted", "what does passage 2 explain")  # same words
    _respond(server, A1, rid[14], "discarded")
    _respond(server, A1, rid[15], "draft", "a draft that must not be trained on")
    _respond(server, A1, rid[16], "discarded")  # ... while annotator 2 submits: that counts
    _respond(server, A2, rid[16], "submitted", "passage 16 according to annotator 2")
    expected.add(("passage 16 according to annotator 2", documents[16]))
    _respond(server, A1, rid[17], "discarded")
    _respond(server, A2, rid[17], "draft", "another draft")
    # records 18 and 19: nobody answered. Last, annotator 1 corrects the query of record 6.
    edited = _edit(server, A1, to_edit, "corrected query for passage 6")
    expected.add(("corrected query for passage 6", documents[6]))
    _wait_for_server_clock(server, edited["updated_at"])  # the export starts after the edit

    monkeypatch.setenv("ARGILLA_API_URL", server.url)
    monkeypatch.setenv("ARGILLA_API_KEY", server.owner_key)
    runs = tmp_path / "runs" / "retrain_argilla"
    code, out, err = run_cli(*_options(tiny_model_dir, runs / "r1", "--argilla-dataset", name))
    assert code == 0, err
    summary = last_json(out)
    manifest = read_json(runs / "r1" / "data" / "manifest.json")
    source = manifest["source"]

    assert _all_pairs(runs / "r1") == expected
    assert not any("draft" in q or "what does passage 6 " in q for q, _ in _all_pairs(runs / "r1"))
    assert summary["annotation_watermark"] == manifest["watermark"] == source["watermark"]
    assert summary["annotation_watermark"] == edited["updated_at"] + "+00:00"  # the edit, in UTC
    assert source["type"] == "argilla" and source["dataset"] == f"{server.workspace}/{name}"
    assert source["columns"] == {"query": "question", "document": "field"}
    assert source["counts"] == {
        "records": 20,
        "records_with_submitted": 15,
        "submitted_responses": 18,
        "pairs": 17,
        "same_answer_as_other_annotator": 1,
        "records_with_discard_and_submit": 1,
    }
    assert source["skipped"] == {"discarded": 2, "draft_only": 1, "no_response": 2}
    assert source["responses"] == {"discarded": 3, "draft": 2, "submitted": 18}
    assert manifest["counts"]["pairs"] == 17
    assert server.owner_key not in out + err

    # Nothing changed since a successful run: "nothing to do", watermark still reported. (The
    # later runs call the CLI's main in this process: the same code, without a second start.)
    from tasks.io import last_success_file

    write_json(
        last_success_file("retrain_argilla"),
        {"run_fingerprint": summary["run_fingerprint"], "airflow_run_id": "r1"},
    )
    code, out, err = _in_process(capsys, _options(tiny_model_dir, runs / "r2", "--argilla", name))
    assert code == 99, err
    assert last_json(out)["nothing_to_do"] is True
    assert last_json(out)["annotation_watermark"] == summary["annotation_watermark"]

    # A new submission: new data, new fingerprint, the watermark moves to it.
    added = _respond(server, A2, rid[18], "submitted", "a late question on passage 18")
    _wait_for_server_clock(server, added["updated_at"])
    code, out, err = _in_process(capsys, _options(tiny_model_dir, runs / "r3", "--argilla", name))
    assert code == 0, err
    third = last_json(out)
    assert third["annotation_watermark"] == added["updated_at"] + "+00:00"
    assert third["data_fingerprint"] != summary["data_fingerprint"]
    assert ("a late question on passage 18", documents[18]) in _all_pairs(runs / "r3")


def test_user_errors_are_one_line_each(
    argilla_server, tiny_model_dir, tmp_path, monkeypatch, capsys, fresh_logging
):
    import argilla as rg
    from support.argilla_server import free_port

    server = argilla_server
    documents = [row["document"] for row in make_pairs(n_docs=4, queries_per_doc=1)]
    unannotated, ids = _create_dataset(server, documents)
    _respond(server, A1, ids[documents[0]], "draft", "just a draft")
    _respond(server, A1, ids[documents[1]], "discarded")
    labels = rg.Settings(
        fields=[rg.TextField(name="document")],
        questions=[rg.LabelQuestion(name="relevant", labels=["yes", "no"])],
    )
    mismatched, _ = _create_dataset(server, documents, settings=labels)
    dead_port = free_port()  # nothing listens there
    bad_key = "argilla.not-a-valid-key-0000"
    cases = [
        (
            {"url": f"http://127.0.0.1:{dead_port}"},
            [unannotated],
            EXIT_FAILED,
            f"cannot reach the Argilla server at http://127.0.0.1:{dead_port}",
        ),
        ({"key": bad_key}, [unannotated], EXIT_INVALID_INPUT, "refused the API key (HTTP 401)"),
        (
            {},
            ["missing-dataset"],
            EXIT_INVALID_INPUT,
            f"Argilla dataset 'missing-dataset' not found in workspace '{server.workspace}'; "
            f"datasets there:",
        ),
        (
            {},
            [unannotated, "--argilla-workspace", "nowhere"],
            EXIT_INVALID_INPUT,
            f"Argilla workspace 'nowhere' not found; the API key sees: '{server.workspace}'",
        ),
        (
            {},
            [mismatched],
            EXIT_INVALID_INPUT,
            "fields: document; questions: relevant (label_selection); metadata: (none). Set "
            "query_column / document_column",
        ),
        (
            {},
            [unannotated],
            EXIT_INVALID_INPUT,
            "has no submitted responses (4 records: discarded=1, draft_only=1, no_response=2)",
        ),
        (
            {"key": server.annotator_keys[A1]},
            [unannotated],
            EXIT_INVALID_INPUT,
            "may not read every annotator's responses",
        ),
    ]
    secrets = [server.owner_key, bad_key, *server.annotator_keys.values()]
    for n, (env, args, code, expected) in enumerate(cases):
        monkeypatch.setenv("ARGILLA_API_URL", env.get("url", server.url))
        monkeypatch.setenv("ARGILLA_API_KEY", env.get("key", server.owner_key))
        argv = _options(tiny_model_dir, tmp_path / f"run{n}", "--argilla", *args)
        got, out, err = _in_process(capsys, argv)
        lines = [line for line in err.splitlines() if line.strip()]
        assert got == code, (expected, err)
        assert "Traceback" not in err and lines[-1].startswith("error: "), err
        assert expected in lines[-1], lines[-1]
        assert not any(secret in out + err for secret in secrets)
