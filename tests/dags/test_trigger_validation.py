"""The api-server middleware that refuses a trigger whose run config breaks a cross-field rule."""

from __future__ import annotations

import pytest
from embedding_ops import trigger_validation
from embedding_ops.trigger_validation import TriggerConfValidation, conf_error, trigger_error
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from tasks.config import RunConfig, airflow_param_specs

pytestmark = pytest.mark.dag

DEFAULTS = {
    name: spec["default"]
    for name, spec in airflow_param_specs(RunConfig(data_path="/data/pairs.jsonl")).items()
}


def test_conf_error_names_the_broken_rule():
    assert conf_error(DEFAULTS, {}) is None
    assert conf_error(DEFAULTS, {"epochs": 1, "unknown_key": 3}) is None
    wrong_order = conf_error(DEFAULTS, {"matryoshka_dims": [64, 128, 256, 384]})
    assert wrong_order is not None and "large to small" in wrong_order
    assert "use [384, 256, 128, 64]" in wrong_order
    no_data = conf_error(DEFAULTS, {"data_path": None})
    assert no_data is not None and "data_path is empty" in no_data
    assert "batch_size=0 is below its minimum 2" in conf_error(DEFAULTS, {"batch_size": 0})
    hf = conf_error(DEFAULTS, {"source": "huggingface"})
    assert hf is not None and "hf_dataset is empty" in hf


def _app(monkeypatch, defaults):
    seen = []

    async def trigger(request: Request) -> JSONResponse:
        seen.append(await request.json())
        return JSONResponse({"dag_run_id": "manual__1"})

    async def other(request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    monkeypatch.setattr(trigger_validation, "dag_param_defaults", lambda dag_id: defaults)
    app = Starlette(
        routes=[
            Route("/api/v2/dags/{dag_id}/dagRuns", trigger, methods=["POST"]),
            Route("/api/v2/dags/{dag_id}", other, methods=["GET", "PATCH"]),
        ]
    )
    app.add_middleware(TriggerConfValidation)
    return TestClient(app), seen


def test_middleware_refuses_a_broken_rule_with_one_line(monkeypatch):
    client, seen = _app(monkeypatch, DEFAULTS)
    resp = client.post(
        "/api/v2/dags/retrain_embeddings/dagRuns",
        json={"logical_date": None, "conf": {"matryoshka_dims": [64, 384]}},
    )
    assert resp.status_code == 400
    detail = resp.json()["detail"]
    assert detail.startswith("Invalid run config for retrain_embeddings: matryoshka_dims must")
    assert "\n" not in detail
    assert seen == []  # the run was never created


def test_middleware_passes_a_valid_trigger_with_its_body(monkeypatch):
    client, seen = _app(monkeypatch, DEFAULTS)
    body = {"logical_date": None, "conf": {"epochs": 2, "matryoshka_dims": [384, 64]}}
    body["conf"]["best_metric_dim"] = 64
    resp = client.post("/api/v2/dags/retrain_embeddings/dagRuns", json=body)
    assert resp.status_code == 200, resp.text
    assert seen == [body]


def test_middleware_leaves_other_dags_and_routes_alone(monkeypatch):
    client, seen = _app(monkeypatch, None)  # not a run-config DAG
    resp = client.post("/api/v2/dags/other/dagRuns", json={"conf": {"batch_size": 0}})
    assert resp.status_code == 200 and seen == [{"conf": {"batch_size": 0}}]
    client, _ = _app(monkeypatch, DEFAULTS)
    assert client.patch("/api/v2/dags/retrain_embeddings", json={}).json() == {"ok": True}


def test_trigger_error_lets_through_what_airflow_reports_itself(monkeypatch):
    monkeypatch.setattr(trigger_validation, "dag_param_defaults", lambda dag_id: DEFAULTS)
    assert trigger_error("retrain_embeddings", b"not json") is None
    assert trigger_error("retrain_embeddings", b'{"conf": "text"}') is None
    assert trigger_error("retrain_embeddings", b'{"conf": null}') is None

    def broken(dag_id):
        raise RuntimeError("database is locked")

    monkeypatch.setattr(trigger_validation, "dag_param_defaults", broken)
    assert trigger_error("retrain_embeddings", b'{"conf": {"batch_size": 0}}') is None
