"""Three retraining runs against a real ``mlflow server``: promoted, promoted, rejected.

The DAG runs with ``dag.test()`` (local runner) and reaches MLflow through the ``mlflow_default``
connection, pointed at the ``mlflow server`` the harness started on 127.0.0.1. Publishing goes to a
local stand-in for the Hugging Face Hub (``tests/support/hub_standin.py``; it is not the Hub)
through the ``huggingface_default`` connection.

Run 1 (first model) must beat the base model, run 2 trains longer and beats the champion, run 3
barely trains and is rejected: the champion stays, nothing is pushed, and the reason is recorded.
"""

from __future__ import annotations

import json
import os

import pytest
from conftest import make_pairs, run_cli, write_jsonl
from support.hub_standin import HubStandIn

pytestmark = [pytest.mark.services, pytest.mark.dag]

TOKEN = "hf_e2e_write_token_0123456789"
MODEL = "e2e-embedder"
REPO = "acme/e2e-embedder"


def _states(dagrun) -> dict[str, str]:
    return {ti.task_id: str(ti.state).split(".")[-1] for ti in dagrun.get_task_instances()}


def _seconds(dagrun, task_id: str) -> float:
    ti = dagrun.get_task_instance(task_id)
    return (ti.end_date - ti.start_date).total_seconds()


def test_three_runs_promote_promote_reject(
    tmp_path, tiny_model_dir, airflow_db, mlflow_server, monkeypatch
):
    from airflow.dag_processing.dagbag import DagBag
    from mlflow.tracking import MlflowClient

    from tasks.io import read_json, run_dir_for

    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=48))
    conf = {
        "data_path": str(data),
        "base_model": str(tiny_model_dir),
        "matryoshka_dims": [64, 32, 16],
        "best_metric_dim": 32,
        "batch_size": 8,
        "registered_model_name": MODEL,
        "experiment_name": "e2e-promotion",
        "hub_repo_id": REPO,
    }
    runs = {
        "first": {"epochs": 1, "learning_rate": 1e-4},  # a little better than the base model
        "better": {"epochs": 3, "learning_rate": 1e-3},  # much better: the new champion
        "worse": {"epochs": 1, "learning_rate": 1e-6},  # about the base model: rejected
    }
    client = MlflowClient(tracking_uri=mlflow_server.url, registry_uri=mlflow_server.url)
    monkeypatch.setenv(
        "AIRFLOW_CONN_MLFLOW_DEFAULT",
        json.dumps({"conn_type": "mlflow", "host": mlflow_server.url}),
    )
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("HF_HUB_DISABLE_XET", "1")  # the stand-in speaks LFS, not Xet
    dag = DagBag(dag_folder=os.environ["AIRFLOW__CORE__DAGS_FOLDER"]).dags["retrain_embeddings"]

    with HubStandIn(tokens={TOKEN: "write"}) as hub:
        monkeypatch.setenv(
            "AIRFLOW_CONN_HUGGINGFACE_DEFAULT",
            json.dumps({"conn_type": "huggingface", "host": hub.url, "password": TOKEN}),
        )
        results = {}
        for name, overrides in runs.items():
            dagrun = dag.test(run_conf={**conf, **overrides})
            assert str(dagrun.state).endswith("success"), (name, _states(dagrun))
            run_dir = run_dir_for("retrain_embeddings", dagrun.run_id)
            results[name] = {
                "dagrun": dagrun,
                "run_dir": run_dir,
                "register": read_json(run_dir / "register" / "result.json"),
                "gate": read_json(run_dir / "report" / "gate.json"),
                "states": _states(dagrun),
                "commits": len(hub.repo(REPO).pushed_commits) if hub.has_repo(REPO) else 0,
            }
            gate = results[name]["gate"]
            print(
                f"{name}: v{results[name]['register']['model_version']} "
                f"{gate['decision']} ({gate['reason']}); aliases "
                f"{client.get_registered_model(MODEL).aliases}"
            )

        first, better, worse = results["first"], results["better"], results["worse"]
        # Run 1: no champion yet -> compared with the base model, promoted, published.
        assert first["gate"]["reference"] == "base" and first["register"]["promoted"]
        assert first["register"]["model_version"] == "1"
        assert first["states"]["publish"] == "success" and first["commits"] == 1
        # Run 2: compared with champion v1 on the same eval set, promoted, published.
        assert better["gate"]["reference"] == "champion"
        assert better["gate"]["reference_version"] == "1"
        assert better["register"]["promoted"] and better["register"]["previous_champion"] == "1"
        assert better["states"]["publish"] == "success" and better["commits"] == 2
        # Run 3: worse than champion v2 -> rejected; the run itself succeeds, nothing is pushed.
        assert worse["gate"]["reference_version"] == "2"
        assert not worse["register"]["promoted"]
        assert worse["states"]["publish"] == "skipped" and worse["commits"] == 2
        assert "does not beat" in worse["gate"]["reason"]

        aliases = client.get_registered_model(MODEL).aliases
        assert aliases == {"champion": "2", "challenger": "3"}
        v3 = client.get_model_version(MODEL, "3")
        assert v3.tags["gate_decision"] == "rejected"
        assert v3.tags["gate_reason"] == worse["register"]["gate"]["reason"]
        assert v3.tags["airflow_run_id"] == worse["dagrun"].run_id
        for key in ("data_fingerprint", "eval_fingerprint", "annotation_watermark"):
            assert v3.tags[key]
        run3 = client.get_run(v3.run_id)
        assert run3.data.tags["gate_decision"] == "rejected"
        assert "champion_dim_32_ndcg_at_10" in run3.data.metrics
        text = (worse["run_dir"] / "report" / "report.md").read_text()
        assert "Decision: **not promoted**" in text and "champion v2" in text
        assert (worse["run_dir"] / "report" / "gate_history.png").exists()
        # The champion was evaluated from the cache: same model, same eval set as run 2.
        champion_eval = read_json(worse["run_dir"] / "eval" / "champion.json")
        assert champion_eval["version"] == "2" and champion_eval["cached"] is True

        # The Hub got what run 2 promoted, tagged with its MLflow version.
        repo = hub.repo(REPO)
        assert repo.private and set(repo.tags) == {"mlflow-v1", "mlflow-v2"}
        card = repo.tree["README.md"].decode()
        assert "mlflow-v2" in repo.tags and "2" in card and "ndcg" in card.lower()

        # Retrying register for an already registered run creates nothing and moves nothing.
        for name in ("better", "worse"):
            run_dir = results[name]["run_dir"]
            (run_dir / "register" / "result.json").unlink()
            monkeypatch.setenv("MLFLOW_TRACKING_URI", mlflow_server.url)
            monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", results[name]["dagrun"].run_id)
            code, _, err = run_cli("register", "--run-dir", str(run_dir))
            assert code == 0, err[-2000:]
            again = read_json(run_dir / "register" / "result.json")
            assert again["model_version"] == results[name]["register"]["model_version"]
            assert again["promoted"] == results[name]["register"]["promoted"]
        assert len(client.search_model_versions(f"name='{MODEL}'")) == 3
        assert client.get_registered_model(MODEL).aliases == {"champion": "2", "challenger": "3"}

    # What the gate costs when the champion's evaluation is cached (run 3, tasks in sequence).
    total = sum(_seconds(worse["dagrun"], t) for t in worse["states"])
    gate = _seconds(worse["dagrun"], "evaluate_champion")
    print(
        f"gate cost: evaluate_champion {gate:.1f}s of {total:.1f}s task time "
        f"({total / (total - gate):.3f}x the run without it)"
    )
