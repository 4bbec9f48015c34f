"""Annotations in Argilla start a retraining run, end to end, in a real Airflow deployment.

A real Argilla 2.8 server (``argilla_server``) and the Airflow stack (``airflow_stack``: api-server,
scheduler, triggerer, dag-processor on PostgreSQL) run side by side on 127.0.0.1. The stack's
watcher DAG ``watch_annotations`` watches the dataset named by its ``EMBED_ARGILLA_DATASET`` and
fires after ``EMBED_ARGILLA_MIN_RESPONSES`` new submitted responses (polling every
``EMBED_ARGILLA_POLL_INTERVAL`` seconds; see ``tests/services/conftest.py``); its asset event
schedules
``retrain_embeddings``, which exports the submitted annotations (``source=argilla``, the DAG's
defaults: the run carries no conf), trains the demo model and, last, moves the annotation
watermark (an Airflow Variable).

Measured and printed: seconds from the last submission until the sensor fired, until the asset
event and until the retrain run started; the run id and its duration; rows trained on; the
watermark before and after.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import TRAINING_STEPS, make_pairs

pytestmark = [pytest.mark.services, pytest.mark.dag]

WATCHER = "watch_annotations"
RETRAIN = "retrain_embeddings"
ANNOTATORS = ("annotator-1", "annotator-2")


def _utc(text: str | None) -> datetime | None:
    if not text:
        return None
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _create_dataset(server: Any, name: str, documents: list[str]) -> list[str]:
    """The watched dataset (field ``document``, text question ``query``); returns record ids in
    the order of ``documents``."""
    import argilla as rg

    client = server.client()  # first: the SDK objects below use the latest client by default
    settings = rg.Settings(
        fields=[rg.TextField(name="document")],
        questions=[rg.TextQuestion(name="query", title="Search query for this passage")],
    )
    dataset = rg.Dataset(
        name=name,
        workspace=server.workspace,
        settings=settings,
        client=client,
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
    return [ids[doc] for doc in documents]


def _respond(server: Any, annotator: str, record_id: str, status: str, query: str) -> dict:
    """An annotator's response, through the REST API the UI uses."""
    reply = httpx.post(
        f"{server.url}/api/v1/records/{record_id}/responses",
        json={"status": status, "values": {"query": {"value": query}}},
        headers=server.headers(server.annotator_keys[annotator]),
        timeout=30,
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


def _wait(what: str, check: Any, timeout: float, interval: float = 1.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")


def _ti(stack: Any, dag_id: str, run_id: str, task_id: str) -> dict[str, Any]:
    return stack.api("GET", f"/api/v2/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}")


def _asset_event(stack: Any, watch_run: str) -> dict[str, Any]:
    """The asset event the watcher's run ``watch_run`` emitted."""
    events = stack.api(
        "GET", "/api/v2/assets/events", params={"source_dag_id": WATCHER, "limit": 100}
    )["asset_events"]
    return next(e for e in events if e["source_run_id"] == watch_run)


def _read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_annotations_trigger_a_retrain_run(argilla_server, airflow_stack, stopwatch):
    from embedding_ops.watermark import WATERMARK_PREFIX, variable_key

    stack, server = airflow_stack, argilla_server
    dataset = stack.env["EMBED_ARGILLA_DATASET"]
    n = int(stack.env["EMBED_ARGILLA_MIN_RESPONSES"])
    documents = [row["document"] for row in make_pairs(n_docs=n + 4, queries_per_doc=1, seed=7)]
    record_ids = _create_dataset(server, dataset, documents)
    stack.set_connection("argilla_default", "argilla", host=server.url, password=server.owner_key)
    watermark_key = variable_key(WATERMARK_PREFIX, dataset, "")
    watermark_before = stack.get_variable(watermark_key)

    try:
        stack.unpause(RETRAIN)
        stack.unpause(WATCHER)

        def deferred_sensor() -> str | None:
            runs = [r for r in stack.runs(WATCHER) if r["state"] == "running"]
            for run in runs:
                ti = _ti(stack, WATCHER, run["dag_run_id"], "wait_for_annotations")
                if ti["state"] == "deferred":
                    return run["dag_run_id"]
                if ti["state"] == "failed":
                    stack.print_failed_logs(stack.wait_for_run(WATCHER, run["dag_run_id"], 60))
            return None

        watch_run = _wait("the watcher's sensor to defer", deferred_sensor, timeout=300)

        # Drafts never count; then exactly n submissions, alternating annotators.
        for i in range(2):
            _respond(server, ANNOTATORS[0], record_ids[n + i], "draft", f"draft query {i}")
        expected: set[tuple[str, str]] = set()
        newest = None
        for i in range(n):
            query = f"which passage explains item {i}"
            reply = _respond(server, ANNOTATORS[i % 2], record_ids[i], "submitted", query)
            expected.add((query, documents[i]))
            newest = max(filter(None, (newest, _utc(reply["updated_at"]))))
        submitted_at = datetime.now(UTC)
        assert _ti(stack, WATCHER, watch_run, "wait_for_annotations")["state"] == "deferred"

        watched = stack.wait_for_run(WATCHER, watch_run, timeout=300)
        assert watched.state == "success", watched.tasks
        assert watched.tasks == dict.fromkeys(
            ("wait_for_annotations", "emit_annotations_event"), "success"
        )
        sensor = _ti(stack, WATCHER, watch_run, "wait_for_annotations")
        fired = stack.xcom(WATCHER, watch_run, "wait_for_annotations")
        assert fired["count"] == n and _utc(fired["newest"]) == newest

        event = _asset_event(stack, watch_run)
        assert event["extra"]["count"] == n and event["extra"]["dataset"] == dataset

        def asset_run() -> dict[str, Any] | None:
            runs = [r for r in stack.runs(RETRAIN) if r["run_type"] == "asset_triggered"]
            return runs[-1] if runs else None

        run = _wait("the asset-triggered retrain run", asset_run, timeout=300)
        retrain_id = run["dag_run_id"]
        result = stack.wait_for_run(RETRAIN, retrain_id, timeout=2400)
        assert result.state == "success", result.tasks
        watermark_after = stack.get_variable(watermark_key)
    finally:
        stack.pause(WATCHER)
        stack.pause(RETRAIN)

    run = stack.api("GET", f"/api/v2/dags/{RETRAIN}/dagRuns/{retrain_id}")
    assert {step: result.tasks.get(step) for step in TRAINING_STEPS} == dict.fromkeys(
        TRAINING_STEPS, "success"
    )
    assert result.tasks["publish"] == "skipped"  # no hub_repo_id
    assert result.tasks["commit_watermark"] == "success"
    event = _asset_event(stack, watch_run)
    assert retrain_id in {r["run_id"] for r in event["created_dagruns"]}

    prepared = stack.xcom(RETRAIN, retrain_id, "prepare")
    run_dir = Path(prepared["manifest"]).parent.parent
    manifest = json.loads(Path(prepared["manifest"]).read_text())
    rows = [
        *_read_jsonl(run_dir / "data" / "train.jsonl"),
        *_read_jsonl(run_dir / "data" / "val_pairs.jsonl"),
        *_read_jsonl(run_dir / "data" / "eval_pairs.jsonl"),
    ]
    trained = {(row["query"], row["document"]) for row in rows}
    assert manifest["source"]["type"] == "argilla"
    assert manifest["source"]["counts"]["submitted_responses"] == n
    assert manifest["counts"]["pairs"] == n
    assert trained == expected  # exactly the submitted annotations, no draft
    assert _utc(prepared["annotation_watermark"]) == newest

    assert watermark_before is None
    committed = json.loads(watermark_after)
    assert _utc(committed["watermark"]) == newest and committed["run_id"] == retrain_id

    registered = stack.xcom(RETRAIN, retrain_id, "register")
    numbers = {
        "annotations submitted": n,
        "poll interval (s)": stack.env["EMBED_ARGILLA_POLL_INTERVAL"],
        "sensor fired after last submission (s)": round(
            (_utc(sensor["end_date"]) - submitted_at).total_seconds(), 1
        ),
        "asset event after last submission (s)": round(
            (_utc(event["timestamp"]) - submitted_at).total_seconds(), 1
        ),
        "retrain run started after last submission (s)": round(
            (_utc(run["start_date"]) - submitted_at).total_seconds(), 1
        ),
        "retrain run id": retrain_id,
        "retrain run duration (s)": round(result.seconds, 1),
        "rows trained on (train/val/eval pairs)": (
            f"{manifest['counts']['pairs']} ({manifest['counts']['train_pairs']}/"
            f"{manifest['counts']['val_pairs']}/{manifest['counts']['eval_pairs']})"
        ),
        "watermark before": watermark_before,
        "watermark after": committed["watermark"],
        "model version": registered["model_version"],
        "promoted": registered["promoted"],
    }
    print("\nannotation-driven retraining:")
    for name, value in numbers.items():
        print(f"  {name}: {value}")
