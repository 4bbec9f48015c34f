"""The register step: its errors when MLflow cannot be reached or the registry fails, retries
against a real (SQLite) MLflow store, and the tracking helpers. What it records is tested in
test_mlflow_record.py."""

from __future__ import annotations

import json

import pytest

from tasks.config import RunConfig
from tasks.io import StepError, write_json
from tasks.tracking import airflow_ids, register, registered_version, tracking_uri

pytestmark = pytest.mark.unit


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


# --- register against a real (SQLite) MLflow store ------------------------------------------------
def _saved_model_dir(path):
    """A saved sentence-transformers directory with its configs only: register copies it and reads
    the configs, it never loads the weights."""
    (path / "1_Pooling").mkdir(parents=True)
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    (path / "modules.json").write_text(json.dumps(modules))
    (path / "config.json").write_text(
        json.dumps({"architectures": ["BertModel"], "hidden_size": 8})
    )
    (path / "1_Pooling" / "config.json").write_text(json.dumps({"embedding_dimension": 8}))
    return path


def _run_dir_for_register(tmp_path):
    """A run directory as prepare/train/evaluate/report leave it, written by hand."""
    from tasks.report import OUTPUTS

    run_dir = tmp_path / "runs" / "retrain_embeddings" / "manual__register"
    _saved_model_dir(run_dir / "train" / "model")
    fingerprints = {"data": "d", "eval": "e", "train": "t", "run": "r"}
    write_json(
        run_dir / "data" / "manifest.json",
        {"fingerprints": fingerprints, "source": {"type": "local", "path": "/data/pairs.jsonl"}},
    )
    (run_dir / "data" / "train.jsonl").write_text(
        json.dumps({"query": "q", "document": "d"}) + "\n"
    )
    write_json(
        run_dir / "data" / "eval.json",
        {"queries": {"q0": "q"}, "corpus": {"c0": "d"}, "relevant_docs": {"q0": ["c0"]}},
    )
    write_json(
        run_dir / "train" / "summary.json",
        {"hardware": {"device": "cpu", "device_name": "test CPU"}, "train_loss": 1.5},
    )
    write_json(run_dir / "train" / "history.json", [{"loss": 2.0, "step": 1}])
    per_dim = {"8": {"ndcg@10": 0.5}}
    write_json(
        run_dir / "report" / "metrics.json",
        {
            "models": {
                "base": {"model_fingerprint": "b", "metrics": per_dim},
                "finetuned": {"model_fingerprint": "f", "metrics": {"8": {"ndcg@10": 0.6}}},
            }
        },
    )
    gate = {
        "promoted": True,
        "decision": "promoted",
        "reason": "beats the base model",
        "reference": "base",
        "reference_version": None,
        "metric": "ndcg@10",
        "dim": 8,
        "challenger_value": 0.6,
        "reference_value": 0.5,
        "delta": 0.1,
    }
    write_json(run_dir / "report" / "gate.json", gate)
    for name in OUTPUTS:
        if not (run_dir / "report" / name).exists():
            (run_dir / "report" / name).write_bytes(b"x")
    return run_dir


def test_a_registry_error_on_the_retry_lookup_fails_without_registering_again(
    tmp_path, monkeypatch
):
    """Only "no such registered model" means "not registered yet": any other error of the lookup
    fails the step (so the task is retried) instead of registering a second version."""
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import TEMPORARILY_UNAVAILABLE
    from mlflow.tracking import MlflowClient

    from tasks.io import read_json

    cfg = RunConfig(data_path="x", matryoshka_dims=[8], best_metric_dim=8)
    run_dir = _run_dir_for_register(tmp_path)
    first = register(cfg, run_dir)
    assert first["model_version"] == "1"

    # a failure after the model was registered: the retry runs the step again
    (run_dir / "register" / "result.json").unlink()
    lookup = MlflowClient.search_model_versions

    def hiccup(self, filter_string=None, *args, **kwargs):
        if filter_string and "run_id=" in filter_string:
            raise MlflowException("registry hiccup", error_code=TEMPORARILY_UNAVAILABLE)
        return lookup(self, filter_string, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "search_model_versions", hiccup)
    with pytest.raises(StepError) as info:
        register(cfg, run_dir)
    assert "\n" not in str(info.value)
    assert not (run_dir / "register" / "result.json").exists()
    monkeypatch.setattr(MlflowClient, "search_model_versions", lookup)
    client = MlflowClient(tracking_uri=first["tracking_uri"], registry_uri=first["tracking_uri"])
    versions = client.search_model_versions(f"name='{cfg.registered_model_name}'")
    assert [str(v.version) for v in versions] == ["1"]

    # with the registry back, the retry finds version 1 instead of registering another
    again = register(cfg, run_dir)
    assert again["model_version"] == "1" and again["mlflow_run_id"] == first["mlflow_run_id"]
    assert read_json(run_dir / "register" / "result.json") == again


class _Registry:
    """A registry whose version search answers with ``versions`` or raises ``error``."""

    def __init__(self, versions=(), error=None):
        self.versions, self.error, self.filters = list(versions), error, []

    def search_model_versions(self, filter_string):
        self.filters.append(filter_string)
        if self.error is not None:
            raise self.error
        return self.versions


def test_the_retry_lookup_tells_none_yet_from_a_registry_error():
    from types import SimpleNamespace

    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import (
        INTERNAL_ERROR,
        RESOURCE_DOES_NOT_EXIST,
        TEMPORARILY_UNAVAILABLE,
    )

    found = _Registry([SimpleNamespace(version=4)])
    assert registered_version(found, "m", "run1") == "4"
    assert found.filters == ["name='m' and run_id='run1'"]
    assert registered_version(_Registry([]), "m", "run1") is None
    missing = MlflowException("Registered Model with name=m not found", RESOURCE_DOES_NOT_EXIST)
    assert registered_version(_Registry(error=missing), "m", "run1") is None
    for error in (
        MlflowException("registry hiccup", error_code=TEMPORARILY_UNAVAILABLE),
        MlflowException("database is locked", error_code=INTERNAL_ERROR),
        ConnectionError("connection reset by peer"),
    ):
        with pytest.raises(StepError) as info:
            registered_version(_Registry(error=error), "m", "run1")
        assert type(error).__name__ in str(info.value) and "\n" not in str(info.value)


def test_register_records_the_run_and_the_version(tmp_path):
    from mlflow.tracking import MlflowClient

    cfg = RunConfig(data_path="x", matryoshka_dims=[8], best_metric_dim=8)
    run_dir = _run_dir_for_register(tmp_path)
    summary = register(cfg, run_dir)
    assert summary["model_version"] == "1" and summary["promoted"] is True
    assert summary["champion_version"] == "1" and summary["previous_champion"] is None
    client = MlflowClient(
        tracking_uri=summary["tracking_uri"], registry_uri=summary["tracking_uri"]
    )
    run = client.get_run(summary["mlflow_run_id"])
    lineage = {
        "airflow_dag_id": "retrain_embeddings",
        "airflow_run_id": "manual__register",
        "data_fingerprint": "d",
        "eval_fingerprint": "e",
        "annotation_watermark": "none",
        "base_model": cfg.base_model,
        "device": "test CPU",
    }
    outcome = {
        "gate_decision": "promoted",
        "gate_reason": "beats the base model",
        "model_version": "1",
    }
    assert {k: run.data.tags.get(k) for k in {**lineage, **outcome}} == {**lineage, **outcome}
    assert run.data.metrics == {
        "base_dim_8_ndcg_at_10": 0.5,
        "finetuned_dim_8_ndcg_at_10": 0.6,
        "train_loss": 2.0,  # the curve's point at step 1 (the summary's 1.5 is at step 0)
        "gate_delta": 0.1,
    }
    curve = client.get_metric_history(run.info.run_id, "train_loss")
    assert sorted((m.step, m.value) for m in curve) == [(0, 1.5), (1, 2.0)]
    assert run.data.params["hw_device_name"] == "test CPU"
    assert run.data.params["matryoshka_dims"] == "8"
    assert {i.dataset.name: i.dataset.digest for i in run.inputs.dataset_inputs} == {
        "train": "t",
        "eval": "e",
    }
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert artifacts == {
        f"report/{name}"
        for name in (
            "report.md",
            "metrics.json",
            "gate.json",
            "ndcg_by_dim.png",
            "gate_history.png",
        )
    }
    version = client.get_model_version(cfg.registered_model_name, "1")
    assert {k: version.tags.get(k) for k in lineage} == lineage
    assert version.tags["model_fingerprint"] == "f"
    assert (version.tags["gate_metric"], version.tags["gate_dim"]) == ("ndcg@10", "8")
    assert version.tags["gate_value"] == "0.6"
    assert (version.tags["gate_decision"], version.tags["gate_applied"]) == ("promoted", "true")
    aliases = client.get_registered_model(cfg.registered_model_name).aliases
    assert {k: str(v) for k, v in aliases.items()} == {"champion": "1", "challenger": "1"}
