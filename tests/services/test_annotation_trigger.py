"""The annotation trigger's ``run()`` against a real Argilla 2.8 server (asyncio, no scheduler):
it fires exactly when enough responses were submitted after the watermark, keeps retrying an
unreachable server before it gives up, and ends at once on a wrong key or a missing dataset."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid

import httpx
import pytest

pytestmark = pytest.mark.services


def _connection(monkeypatch, url: str, key: str) -> str:
    conn_id = f"argilla_{uuid.uuid4().hex[:8]}"
    monkeypatch.setenv(
        f"AIRFLOW_CONN_{conn_id.upper()}",
        json.dumps({"conn_type": "argilla", "host": url, "password": key}),
    )
    return conn_id


async def _first_event(trigger, timeout: float):
    """The trigger's first event, or None when it has none within ``timeout`` seconds."""
    events = trigger.run()
    try:
        return (await asyncio.wait_for(events.__anext__(), timeout)).payload
    except TimeoutError:
        return None
    finally:
        await events.aclose()


def _dataset(server, n_records: int) -> tuple[str, list[str]]:
    """A new dataset of query/document records with a relevance question: (name, record ids)."""
    import argilla as rg

    client = server.client()
    name = f"pairs-{uuid.uuid4().hex[:8]}"
    settings = rg.Settings(
        fields=[rg.TextField(name="query"), rg.TextField(name="document")],
        questions=[rg.LabelQuestion(name="relevant", labels=["yes", "no"])],
    )
    dataset = rg.Dataset(name=name, workspace=server.workspace, settings=settings, client=client)
    dataset.create()
    dataset.records.log(
        [{"query": f"question {i}", "document": f"passage {i}"} for i in range(n_records)]
    )
    ids = [str(record._server_id) for record in dataset.records]  # the server-side UUIDs
    assert len(ids) == n_records
    return name, ids


def _respond(server, annotator: str, record_id: str, status: str = "submitted") -> str:
    """Submit (or save as draft) ``annotator``'s response; returns its ``updated_at``."""
    response = httpx.post(
        f"{server.url}/api/v1/records/{record_id}/responses",
        headers=server.headers(server.annotator_keys[annotator]),
        json={"values": {"relevant": {"value": "yes"}}, "status": status},
        timeout=30,
    )
    assert response.status_code == 201, response.text
    return response.json()["updated_at"]


def test_fires_when_enough_responses_follow_the_watermark(argilla_server, monkeypatch):
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger
    from embedding_ops.watermark import parse_timestamp

    conn_id = _connection(monkeypatch, argilla_server.url, argilla_server.owner_key)
    name, ids = _dataset(argilla_server, 4)
    watermark = _respond(argilla_server, "annotator-1", ids[0])  # already trained on
    _respond(argilla_server, "annotator-1", ids[1])
    _respond(argilla_server, "annotator-2", ids[0])
    _respond(argilla_server, "annotator-2", ids[3], status="draft")  # drafts do not count

    def trigger(since):
        return ArgillaAnnotationTrigger(
            dataset=name,
            workspace=argilla_server.workspace,
            min_responses=3,
            poll_interval=0.2,
            since=since,
            argilla_conn_id=conn_id,
        )

    # N-1 new submitted responses: no event within several polls.
    assert asyncio.run(_first_event(trigger(watermark), timeout=2.0)) is None
    # Without a watermark all three submitted responses count.
    everything = asyncio.run(_first_event(trigger(None), timeout=10.0))
    assert (everything["status"], everything["count"]) == ("fired", 3)

    newest = _respond(argilla_server, "annotator-1", ids[2])
    # Rebuilt from its serialized form, as the triggerer does.
    path, kwargs = trigger(watermark).serialize()
    assert path == "embedding_ops.argilla_trigger.ArgillaAnnotationTrigger"
    assert argilla_server.owner_key not in json.dumps(kwargs)
    event = asyncio.run(_first_event(ArgillaAnnotationTrigger(**kwargs), timeout=10.0))
    assert event["status"] == "fired"
    assert event["count"] == 3
    assert parse_timestamp(event["newest"]) == parse_timestamp(newest)
    assert parse_timestamp(event["since"]) == parse_timestamp(watermark)
    assert (event["dataset"], event["workspace"]) == (name, argilla_server.workspace)


def test_unreachable_server_is_retried_then_reported(monkeypatch, capsys):
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger

    with socket.socket() as sock:  # a port nothing listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    conn_id = _connection(monkeypatch, f"http://127.0.0.1:{port}", "any.key")
    trigger = ArgillaAnnotationTrigger(
        dataset="pairs",
        poll_interval=0.05,
        argilla_conn_id=conn_id,
        max_failures=4,
        max_backoff=0.2,
    )
    event = asyncio.run(_first_event(trigger, timeout=20.0))
    assert event["status"] == "error"
    assert f"cannot reach Argilla at http://127.0.0.1:{port}" in event["message"]
    assert "gave up after 4 attempts" in event["message"]
    assert "\n" not in event["message"]
    log = capsys.readouterr().out
    assert log.count("retrying in") == 3, log  # one line per failed attempt but the last
    assert "(attempt 3 of 4); retrying in 0.2 s" in log  # backoff doubles up to max_backoff


def test_wrong_key_and_missing_dataset_end_with_one_line(argilla_server, monkeypatch):
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger

    name, _ = _dataset(argilla_server, 1)
    bad = _connection(monkeypatch, argilla_server.url, "not.a.valid.key")
    event = asyncio.run(
        _first_event(
            ArgillaAnnotationTrigger(dataset=name, poll_interval=0.1, argilla_conn_id=bad), 10.0
        )
    )
    assert event["status"] == "error" and "rejected the API key (HTTP 401)" in event["message"]

    good = _connection(monkeypatch, argilla_server.url, argilla_server.owner_key)
    for dataset, workspace, expected in (
        ("no-such-dataset", argilla_server.workspace, "dataset 'no-such-dataset' not found"),
        (name, "no-such-workspace", "workspace 'no-such-workspace' not found; the API key sees"),
    ):
        trigger = ArgillaAnnotationTrigger(
            dataset=dataset, workspace=workspace, poll_interval=0.1, argilla_conn_id=good
        )
        event = asyncio.run(_first_event(trigger, 10.0))
        assert event["status"] == "error", event
        assert expected in event["message"] and "\n" not in event["message"]


def test_missing_connection_is_an_error_event():
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger

    trigger = ArgillaAnnotationTrigger(dataset="pairs", argilla_conn_id="argilla_missing")
    event = asyncio.run(_first_event(trigger, 10.0))
    assert event["status"] == "error"
    assert "'argilla_missing' does not exist" in event["message"]


def test_watcher_dag_emits_annotation_events(argilla_server, airflow_db, monkeypatch):
    """The watcher DAG end to end with dag.test(): fires at once on enough responses, updates the
    asset with the count, then waits (deferred, counting after the pending mark) for new ones."""
    import threading

    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.models.variable import Variable
    from airflow.utils.session import create_session
    from conftest import ROOT
    from embedding_ops.watermark import PENDING_PREFIX, parse_timestamp, variable_key
    from sqlalchemy import select

    monkeypatch.setenv(
        "AIRFLOW_CONN_ARGILLA_DEFAULT",
        json.dumps(
            {
                "conn_type": "argilla",
                "host": argilla_server.url,
                "password": argilla_server.owner_key,
            }
        ),
    )
    name, ids = _dataset(argilla_server, 4)
    _respond(argilla_server, "annotator-1", ids[0])
    first_newest = _respond(argilla_server, "annotator-1", ids[1])
    dag = DagBag(dag_folder=str(ROOT / "dags" / "watch_annotations.py")).dags["watch_annotations"]
    conf = {"dataset": name, "workspace": argilla_server.workspace, "min_responses": 2,
            "poll_interval": 0.5}  # fmt: skip

    def events():
        with create_session() as session:
            rows = session.scalars(
                select(AssetEvent)
                .join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .where(AssetModel.name == "argilla_annotations")
                .order_by(AssetEvent.id)
            ).all()
            return [dict(row.extra) for row in rows if row.extra.get("dataset") == name]

    run = dag.test(run_conf=conf)
    assert str(run.state).endswith("success")
    (extra,) = events()
    assert extra["count"] == 2 and extra["workspace"] == argilla_server.workspace
    assert parse_timestamp(extra["newest"]) == parse_timestamp(first_newest)
    pending = Variable.get(
        variable_key(PENDING_PREFIX, name, argilla_server.workspace), deserialize_json=True
    )
    assert parse_timestamp(pending["mark"]) == parse_timestamp(first_newest)

    # Next run: the two responses already fired, so it defers until two more are submitted.
    later: list[str] = []

    def annotate_later():
        import time

        time.sleep(3)
        later.append(_respond(argilla_server, "annotator-2", ids[0]))
        later.append(_respond(argilla_server, "annotator-2", ids[1]))

    helper = threading.Thread(target=annotate_later)
    helper.start()
    try:
        run = dag.test(run_conf=conf)
    finally:
        helper.join()
    assert str(run.state).endswith("success")
    assert len(events()) == 2
    second = events()[-1]
    assert second["count"] == 2
    assert parse_timestamp(second["since"]) == parse_timestamp(first_newest)
    assert parse_timestamp(second["newest"]) == max(map(parse_timestamp, later))
