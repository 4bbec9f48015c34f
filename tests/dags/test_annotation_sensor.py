"""The deferrable annotation sensor: where it starts counting, when it fires at once, when it
defers (and to what), and how it resumes; the trigger's serialized form."""

from __future__ import annotations

import importlib
import json
from datetime import UTC, datetime, timedelta

import pytest

pytestmark = pytest.mark.dag

W = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


class MemoryStore:
    def __init__(self) -> None:
        self.data: dict[str, dict] = {}

    def get(self, key):
        return self.data.get(key)

    def set(self, key, value):
        self.data[key] = dict(value)


@pytest.fixture
def argilla_conn(monkeypatch):
    monkeypatch.setenv(
        "AIRFLOW_CONN_ARGILLA_SENSOR_TEST",
        json.dumps({"conn_type": "argilla", "host": "http://argilla:6900", "password": "k.key"}),
    )
    return "argilla_sensor_test"


@pytest.fixture
def counts(monkeypatch):
    """Replace the Argilla check with a scripted one; records what it was asked."""
    from embedding_ops import argilla_sensor
    from embedding_ops.argilla_trigger import AnnotationCount
    from embedding_ops.watermark import format_timestamp

    calls: list[dict] = []
    script = {"count": 0, "error": None}

    async def fake_check(api_url, api_key, dataset, workspace="", since=None):
        calls.append({"api_url": api_url, "api_key": api_key, "dataset": dataset, "since": since})
        if script["error"] is not None:
            raise script["error"]
        return AnnotationCount(
            count=script["count"],
            newest=format_timestamp(W + timedelta(hours=1)) if script["count"] else None,
            since=format_timestamp(since),
            dataset=dataset,
            workspace=workspace,
            dataset_id="d-1",
            records_scanned=10,
        )

    monkeypatch.setattr(argilla_sensor, "check_once", fake_check)
    return calls, script


def _sensor(conn_id, store, **kwargs):
    from embedding_ops.argilla_sensor import ArgillaAnnotationSensor

    settings = {"dataset": "faq", "min_responses": 3, "poll_interval": 30}
    settings.update(kwargs)
    return ArgillaAnnotationSensor(
        task_id="wait_for_annotations", argilla_conn_id=conn_id, store=store, **settings
    )


def test_fires_at_once_when_enough_responses_are_there(argilla_conn, counts):
    from embedding_ops.watermark import commit

    calls, script = counts
    store = MemoryStore()
    commit("faq", "", W, dag_id="retrain_embeddings", run_id="r1", store=store)
    script["count"] = 3
    payload = _sensor(argilla_conn, store).execute({})
    assert payload["status"] == "fired" and payload["count"] == 3
    assert calls[-1]["since"] == W  # counts after the committed watermark
    assert (calls[-1]["api_url"], calls[-1]["api_key"]) == ("http://argilla:6900", "k.key")


def test_defers_to_the_trigger_when_not_enough(argilla_conn, counts):
    from airflow.sdk.exceptions import TaskDeferred
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger
    from embedding_ops.watermark import commit, parse_timestamp

    _, script = counts
    store = MemoryStore()
    commit("faq", "", W, dag_id="retrain_embeddings", run_id="r1", store=store)
    script["count"] = 2
    before = datetime.now(UTC)
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(argilla_conn, store, recheck_minutes=30).execute({})
    trigger = deferred.value.trigger
    assert isinstance(trigger, ArgillaAnnotationTrigger)
    assert deferred.value.method_name == "execute_complete"
    _, kwargs = trigger.serialize()
    assert (kwargs["dataset"], kwargs["min_responses"], kwargs["poll_interval"]) == ("faq", 3, 30)
    assert parse_timestamp(kwargs["since"]) == W
    assert kwargs["argilla_conn_id"] == argilla_conn and "k.key" not in json.dumps(kwargs)
    recheck = parse_timestamp(kwargs["recheck_at"])
    assert before + timedelta(minutes=30) <= recheck <= datetime.now(UTC) + timedelta(minutes=30)


def test_pending_mark_moves_the_start_until_it_expires(argilla_conn, counts):
    from airflow.sdk.exceptions import TaskDeferred
    from embedding_ops.watermark import commit, parse_timestamp, record_pending

    calls, _ = counts
    store = MemoryStore()
    commit("faq", "", W, dag_id="retrain_embeddings", run_id="r1", store=store)
    fired_at = datetime.now(UTC)
    record_pending(
        "faq", "", W + timedelta(hours=1), count=3, run_id="w", store=store, now=fired_at
    )
    with pytest.raises(TaskDeferred) as deferred:
        _sensor(argilla_conn, store, pending_timeout_minutes="10").execute({})
    assert calls[-1]["since"] == W + timedelta(hours=1)
    _, kwargs = deferred.value.trigger.serialize()
    # The trigger hands back when the pending mark expires, so counting restarts at W.
    assert parse_timestamp(kwargs["recheck_at"]) == fired_at + timedelta(minutes=10)


def test_unreachable_at_first_check_defers_and_bad_request_fails(argilla_conn, counts):
    from airflow.sdk.exceptions import AirflowException, TaskDeferred
    from embedding_ops.argilla_trigger import ArgillaRequestError, ArgillaUnavailableError

    _, script = counts
    script["error"] = ArgillaUnavailableError("cannot reach Argilla at http://argilla:6900")
    with pytest.raises(TaskDeferred):  # the trigger retries with backoff
        _sensor(argilla_conn, MemoryStore()).execute({})
    script["error"] = ArgillaRequestError("Argilla dataset 'faq' not found: create it")
    with pytest.raises(AirflowException, match="dataset 'faq' not found"):
        _sensor(argilla_conn, MemoryStore()).execute({})


def test_wrong_settings_fail_with_what_to_fix(argilla_conn, counts, monkeypatch):
    from airflow.sdk.exceptions import AirflowFailException

    with pytest.raises(AirflowFailException, match="set EMBED_ARGILLA_DATASET"):
        _sensor(argilla_conn, MemoryStore(), dataset="  ").execute({})
    with pytest.raises(AirflowFailException, match="min_responses must be >= 1"):
        _sensor(argilla_conn, MemoryStore(), min_responses="0").execute({})
    with pytest.raises(AirflowFailException, match="must be numbers"):
        _sensor(argilla_conn, MemoryStore(), poll_interval="often").execute({})
    with pytest.raises(AirflowFailException, match="'argilla_nowhere' does not exist"):
        _sensor("argilla_nowhere", MemoryStore()).execute({})


def test_execute_complete_returns_fails_or_rechecks(argilla_conn, counts):
    from airflow.sdk.exceptions import AirflowException, TaskDeferred
    from embedding_ops.watermark import commit

    calls, _ = counts
    store = MemoryStore()
    sensor = _sensor(argilla_conn, store)
    fired = {"status": "fired", "count": 4, "newest": "2026-03-01T13:00:00+00:00", "dataset": "faq"}
    assert sensor.execute_complete({}, fired) == fired
    with pytest.raises(AirflowException, match="watching Argilla failed: .*rejected the API key"):
        sensor.execute_complete({}, {"status": "error", "message": "rejected the API key"})
    # recheck: the start is read again (here a nightly run committed meanwhile), then it waits on.
    commit("faq", "", W, dag_id="retrain_embeddings", run_id="nightly", store=store)
    with pytest.raises(TaskDeferred):
        sensor.execute_complete({}, {"status": "recheck", "count": 0})
    assert calls[-1]["since"] == W


def test_trigger_serialization_round_trip():
    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger

    trigger = ArgillaAnnotationTrigger(
        dataset="faq",
        workspace="support",
        min_responses=7,
        poll_interval=15,
        since="2026-03-01T12:00:00",
        argilla_conn_id="argilla_prod",
        recheck_at="2026-03-01T13:00:00Z",
    )
    path, kwargs = trigger.serialize()
    assert path == "embedding_ops.argilla_trigger.ArgillaAnnotationTrigger"
    module, name = path.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module), name)(**kwargs)
    assert rebuilt.serialize() == (path, kwargs)
    assert kwargs["since"] == "2026-03-01T12:00:00+00:00"  # naive Argilla time taken as UTC
    assert json.loads(json.dumps(kwargs)) == kwargs  # storable as JSON in the trigger table
    assert not any("key" in k.lower() and k != "argilla_conn_id" for k in kwargs)


def test_watcher_dag_wiring():
    from airflow.dag_processing.dagbag import DagBag
    from conftest import ROOT
    from embedding_ops.argilla_sensor import ArgillaAnnotationSensor

    dag = DagBag(dag_folder=str(ROOT / "dags" / "watch_annotations.py")).dags["watch_annotations"]
    sensor = dag.get_task("wait_for_annotations")
    assert isinstance(sensor, ArgillaAnnotationSensor)
    assert sensor.dataset == "{{ params.dataset }}"
    assert dag.get_task("emit_annotations_event").upstream_task_ids == {"wait_for_annotations"}
    assert type(dag.timetable).__name__ == "ContinuousTimetable"
    assert dag.max_consecutive_failed_dag_runs == 5
    assert dag.params.get_param("min_responses").resolve() == 50


# --- one dataset lookup for the watcher and the Argilla source ------------------------------------
#: What an API key sees: workspaces ``{id: name}`` and datasets ``(id, name, workspace id)``.
ONE_WORKSPACE = ({"w1": "support"}, [("d1", "faq", "w1"), ("d2", "other", "w1")])
TWO_WORKSPACES = (
    {"w1": "support", "w2": "sales"},
    [("d1", "faq", "w1"), ("d2", "leads", "w2"), ("d3", "shared", "w1"), ("d4", "shared", "w2")],
)
LOOKUPS = [
    (ONE_WORKSPACE, "faq", ""),  # the key's only workspace
    (ONE_WORKSPACE, "faq", "support"),
    (ONE_WORKSPACE, "missing", ""),
    (ONE_WORKSPACE, "faq", "nowhere"),
    (TWO_WORKSPACES, "leads", ""),  # the only workspace that holds it
    (TWO_WORKSPACES, "shared", ""),  # in both: ambiguous
    (TWO_WORKSPACES, "shared", "sales"),
    (TWO_WORKSPACES, "missing", ""),  # in neither
    (TWO_WORKSPACES, "leads", "support"),
]


def _source_lookup(seen, name, workspace):
    """The Argilla source's lookup (``tasks``) against an SDK client that sees ``seen``."""
    from types import SimpleNamespace as NS

    from tasks.io import InvalidInputError
    from tasks.sources.argilla import find_dataset

    spaces, datasets = seen
    api = NS(
        workspaces=NS(list=lambda: [NS(id=i, name=n) for i, n in spaces.items()]),
        datasets=NS(list=lambda: [NS(id=i, name=n, workspace_id=w) for i, n, w in datasets]),
    )
    try:
        return find_dataset(NS(api=api), name, workspace).id
    except InvalidInputError as exc:
        return str(exc)


def _watcher_lookup(seen, name, workspace):
    """The trigger's lookup (``plugins``) against a REST API that serves ``seen``."""
    import asyncio

    import httpx
    from embedding_ops.argilla_trigger import ArgillaRequestError, resolve_dataset

    spaces, datasets = seen
    pages = {
        "/api/v1/me/workspaces": [{"id": i, "name": n} for i, n in spaces.items()],
        "/api/v1/me/datasets": [{"id": i, "name": n, "workspace_id": w} for i, n, w in datasets],
    }
    transport = httpx.MockTransport(
        lambda r: httpx.Response(200, json={"items": pages[r.url.path]})
    )

    async def lookup():
        async with httpx.AsyncClient(transport=transport, base_url="http://argilla.test") as client:
            return await resolve_dataset(client, name, workspace)

    try:
        return asyncio.run(lookup())
    except ArgillaRequestError as exc:
        return str(exc)


@pytest.mark.parametrize(("seen", "name", "workspace"), LOOKUPS)
def test_the_watcher_and_the_source_find_the_same_dataset(seen, name, workspace):
    """Both ask one function: the same dataset, or the same reason (only the setting the message
    tells to change differs: the watcher's params, the run config's argilla_* settings)."""
    source = _source_lookup(seen, name, workspace)
    watcher = _watcher_lookup(seen, name, workspace)
    assert source.split(". Set ")[0] == watcher.split(". Set ")[0], (source, watcher)
    if source.startswith("Argilla"):  # an error: one line that says what to change
        assert "\n" not in source and "argilla_workspace" in source.split(". Set ")[1]
        assert "param" in watcher.split(". Set ")[1]
