"""End to end: the retrain DAG run with dag.test() in local mode on a tiny model."""

from __future__ import annotations

import json
import os

import pytest
from conftest import make_pairs, write_jsonl

pytestmark = pytest.mark.dag


def test_dag_test_run_local_mode(tmp_path, tiny_model_dir, isolated_state, airflow_db, monkeypatch):
    """The whole DAG; MLflow goes where the ``mlflow_default`` connection points."""
    from airflow.dag_processing.dagbag import DagBag
    from mlflow.tracking import MlflowClient

    from tasks.io import read_json, run_dir_for

    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=48))
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retrain_embeddings"]
    conf = {
        "data_path": str(data),
        "base_model": str(tiny_model_dir),
        "matryoshka_dims": [64, 32, 16],
        "best_metric_dim": 32,
        "batch_size": 8,
        "epochs": 1,
        "registered_model_name": "dag-test-model",
    }
    store = tmp_path / "conn-store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT", json.dumps({"conn_type": "mlflow", "host": uri})
    )
    dagrun = dag.test(run_conf=conf)
    assert str(dagrun.state).endswith("success"), dagrun.state
    run_dir = run_dir_for("retrain_embeddings", dagrun.run_id)
    for rel in (
        "config.json",
        "data/manifest.json",
        "train/summary.json",
        "eval/base.json",
        "eval/finetuned.json",
        "report/ndcg_by_dim.png",
        "report/report.md",
        "report/metrics.json",
        "report/gate.json",
        "report/gate_history.png",
        "eval/champion.json",
        "register/result.json",
    ):
        assert (run_dir / rel).exists(), rel
    assert read_json(run_dir / "config.json")["matryoshka_dims"] == [64, 32, 16]

    assert not (isolated_state / "mlflow" / "mlflow.db").exists()  # the connection won
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    versions = client.search_model_versions("name='dag-test-model'")
    assert len(versions) == 1
    assert versions[0].tags["airflow_run_id"] == dagrun.run_id
    run = client.get_run(versions[0].run_id)
    assert run.info.status == "FINISHED"
    assert "finetuned_dim_32_ndcg_at_10" in run.data.metrics
    # No champion before the first run: the gate compared with the base model.
    assert read_json(run_dir / "eval" / "champion.json")["absent"] is True
    assert read_json(run_dir / "report" / "gate.json")["reference"] == "base"
    assert str(client.get_registered_model("dag-test-model").aliases["challenger"]) == "1"
    # hub_repo_id is empty: publish is skipped, the run still succeeds.
    assert str(dagrun.get_task_instance("publish").state).endswith("skipped")

    # The same inputs again: prepare says "nothing to do" and every later step is skipped.
    again = dag.test(run_conf=conf)
    assert str(again.state).endswith("success"), again.state
    states = {ti.task_id: str(ti.state) for ti in again.get_task_instances()}
    assert all(state.endswith("skipped") for state in states.values()), states
    assert len(client.search_model_versions("name='dag-test-model'")) == 1


def test_invalid_input_fails_without_retry(tmp_path, tiny_model_dir, airflow_db):
    from airflow.dag_processing.dagbag import DagBag

    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retrain_embeddings"]
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    dagrun = dag.test(
        run_conf={
            "data_path": str(empty),
            "base_model": str(tiny_model_dir),
            "matryoshka_dims": [64, 32],
            "best_metric_dim": 32,
        }
    )
    assert str(dagrun.state).endswith("failed")
    ti = dagrun.get_task_instance("prepare")
    assert str(ti.state).endswith("failed")
    assert ti.try_number == 1  # exit code 3 = invalid input: no retries spent on it
