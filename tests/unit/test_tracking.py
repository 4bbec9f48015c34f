"""Tracking helpers and the register step's error when MLflow cannot be reached."""

from __future__ import annotations

import json

import pytest

from tasks.config import RunConfig
from tasks.io import StepError, write_json
from tasks.tracking import _curves, airflow_ids, metric_key, register, tracking_uri

pytestmark = pytest.mark.unit


def test_metric_names_are_mlflow_safe():
    assert metric_key("ndcg@10") == "ndcg_at_10"


def test_tracking_uri_defaults_to_the_embedded_store(isolated_state, monkeypatch):
    assert tracking_uri() == f"sqlite:///{isolated_state / 'mlflow' / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://mlflow:5000")
    assert tracking_uri() == "http://mlflow:5000"


def test_airflow_ids_from_context_or_run_dir(tmp_path, monkeypatch):
    run_dir = tmp_path / "retrain_embeddings" / "manual__x"
    assert airflow_ids(run_dir) == {
        "airflow_dag_id": "retrain_embeddings",
        "airflow_run_id": "manual__x",
    }
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__2026-01-01T00:00:00+00:00")
    assert airflow_ids(run_dir)["airflow_run_id"] == "manual__2026-01-01T00:00:00+00:00"


def test_training_curves_from_trainer_history():
    history = [
        {"loss": 2.0, "learning_rate": 1e-5, "grad_norm": 3.0, "step": 10, "epoch": 0.5},
        {"eval_val_dim_128_cosine_ndcg@10": 0.7, "eval_runtime": 1.0, "step": 20},
    ]
    points = _curves(history)
    assert ("train_loss", 2.0, 10) in points
    assert ("learning_rate", 1e-5, 10) in points
    assert ("val_dim_128_ndcg_at_10", 0.7, 20) in points
    assert not any(name == "eval_runtime" for name, _, _ in points)


def test_unreachable_tracking_server_is_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    run_dir = tmp_path / "retrain_embeddings" / "manual__x"
    write_json(run_dir / "data" / "manifest.json", {"fingerprints": {"data": "d", "eval": "e"}})
    write_json(run_dir / "train" / "summary.json", {"hardware": {"device": "cpu"}})
    write_json(run_dir / "report" / "metrics.json", {"models": {}})
    write_json(run_dir / "report" / "gate.json", {"promoted": False})
    with pytest.raises(StepError) as info:
        register(RunConfig(data_path="x"), run_dir)
    message = str(info.value)
    assert "http://127.0.0.1:9" in message and "MLFLOW_TRACKING_URI" in message
    assert "\n" not in message
    assert not (run_dir / "register" / "result.json").exists()


def test_credentials_never_printed_in_uris():
    from tasks.tracking import redacted_uri

    assert (
        redacted_uri("postgresql://user:s3cret@db:5432/mlflow") == "postgresql://***@db:5432/mlflow"
    )
    assert redacted_uri("https://tok@mlflow.example.com") == "https://***@mlflow.example.com"
    assert redacted_uri("http://mlflow:5000") == "http://mlflow:5000"
    assert redacted_uri("sqlite:////tmp/x/mlflow.db") == "sqlite:////tmp/x/mlflow.db"


@pytest.mark.parametrize(
    "source, expected",
    [
        ({"type": "local", "path": "/data/pairs.jsonl"}, "/data/pairs.jsonl"),
        (
            {"type": "huggingface", "dataset": "org/pairs"},
            "https://huggingface.co/datasets/org/pairs",
        ),
        (
            {"type": "argilla", "url": "http://argilla:6900/", "dataset_id": "3f2a"},
            "http://argilla:6900/dataset/3f2a/annotation-mode",
        ),
    ],
)
def test_dataset_source_uri_is_one_mlflow_resolves(source, expected):
    import mlflow
    import pandas as pd

    from tasks.tracking import dataset_source_uri

    uri = dataset_source_uri(source)
    assert uri == expected
    dataset = mlflow.data.from_pandas(pd.DataFrame({"query": ["q"]}), source=uri, name="train")
    assert expected.rstrip("/") in json.dumps(dataset.source.to_dict())
