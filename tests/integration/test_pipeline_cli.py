"""All steps through their command line on a tiny model, checked in the run dir and MLflow."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import last_json, make_pairs, run_cli, write_jsonl

pytestmark = pytest.mark.integration


def test_steps_end_to_end_and_mlflow_records(tmp_path, tiny_model_dir, isolated_state, monkeypatch):
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=48, negatives=True))
    run_dir = tmp_path / "runs" / "retrain_embeddings" / "manual__test"
    options = [
        "--data-path",
        str(data),
        "--base-model",
        str(tiny_model_dir),
        "--matryoshka-dims",
        "64,32,16",
        "--best-metric-dim",
        "32",
        "--batch-size",
        "8",
        "--epochs",
        "1",
        "--registered-model-name",
        "tiny-embedder",
    ]
    code, out, err = run_cli("prepare", "--run-dir", str(run_dir), *options)
    assert code == 0, err
    prepared = last_json(out)
    assert prepared["train_pairs"] > 8 and prepared["eval_queries"] > 0
    # later steps read the run's config.json: no options needed
    summaries = {}
    for argv in (
        ["train"],
        ["evaluate", "--model", "base"],
        ["evaluate", "--model", "finetuned"],
        ["evaluate", "--model", "champion"],
        ["report"],
        ["register"],
    ):
        code, out, err = run_cli(*argv, "--run-dir", str(run_dir))
        assert code == 0, f"{argv}: {err[-2000:]}"
        summary = last_json(out)
        assert summary["step"] == argv[0]
        summaries[" ".join(argv)] = summary
    assert summary["model_version"] == "1"

    # train evaluated the base model and its own into the cache: the evaluate steps read them,
    # and evaluating afresh gives the same numbers
    assert summaries["evaluate --model finetuned"]["cached"] is True
    assert summaries["evaluate --model base"]["cached"] is True  # evaluated by train, before it
    primed = json.loads((run_dir / "eval" / "finetuned.json").read_text())
    (run_dir / "eval" / "finetuned.json").unlink()
    code, out, err = run_cli(
        "evaluate", "--model", "finetuned", "--no-cache", "--run-dir", str(run_dir)
    )
    assert code == 0, err[-2000:]
    assert last_json(out)["cached"] is False
    fresh = json.loads((run_dir / "eval" / "finetuned.json").read_text())
    assert fresh["model_fingerprint"] == primed["model_fingerprint"]
    assert fresh["metrics"] == primed["metrics"]

    for name in ("ndcg_by_dim.png", "report.md", "metrics.json"):
        assert (run_dir / "report" / name).exists()

    # retrying register does not create a second version
    code, out, _ = run_cli("register", "--run-dir", str(run_dir))
    assert code == 0 and last_json(out)["model_version"] == "1"

    import mlflow
    from mlflow.tracking import MlflowClient

    from tasks.report import OUTPUTS

    uri = f"sqlite:///{isolated_state / 'mlflow' / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.get_experiment_by_name("embedding-finetuning")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.data.tags["airflow_run_id"] == "manual__test"
    assert run.data.tags["data_fingerprint"] == prepared["data_fingerprint"]
    assert run.data.params["matryoshka_dims"] == "64,32,16"
    assert run.data.params["hw_device"] == "cpu" and "hw_torch" in run.data.params
    for model in ("base", "finetuned"):
        for dim in (64, 32, 16):
            assert f"{model}_dim_{dim}_ndcg_at_10" in run.data.metrics
    assert client.get_metric_history(run.info.run_id, "train_loss")
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "report")}
    assert {f"report/{name}" for name in OUTPUTS} <= artifacts
    # the chart in MLflow is the report step's own file, not a second drawing
    logged = client.download_artifacts(run.info.run_id, "report/ndcg_by_dim.png", str(tmp_path))
    assert Path(logged).read_bytes() == (run_dir / "report" / "ndcg_by_dim.png").read_bytes()
    contexts = {i.tags[0].value for i in run.inputs.dataset_inputs}
    assert contexts == {"training", "evaluation"}
    version = client.get_model_version("tiny-embedder", "1")
    assert version.run_id == run.info.run_id
    assert version.tags["airflow_dag_id"] == "retrain_embeddings"
    assert version.tags["eval_fingerprint"] == prepared["eval_fingerprint"]
    # the registered model loads back as a sentence-transformers model
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    loaded = mlflow.sentence_transformers.load_model("models:/tiny-embedder/1")
    assert loaded.encode(["hello"]).shape == (1, 64)

    # A later run evaluates the champion from the registry: downloaded once (empty cache here),
    # then scored on that run's eval set: the same numbers as when it was the fine-tuned model.
    client.set_registered_model_alias("tiny-embedder", "champion", "1")
    later = tmp_path / "runs" / "retrain_embeddings" / "manual__later"
    code, _, err = run_cli("prepare", "--run-dir", str(later), *options, "--force")
    assert code == 0, err
    monkeypatch.setenv("EMBED_CACHE_DIR", str(tmp_path / "fresh-cache"))
    code, out, err = run_cli("evaluate", "--model", "champion", "--run-dir", str(later))
    assert code == 0, err[-2000:]
    summary = last_json(out)
    assert summary["version"] == "1" and summary["cached"] is False
    assert "downloading tiny-embedder v1" in out
    champion = json.loads((later / "eval" / "champion.json").read_text())
    finetuned = json.loads((run_dir / "eval" / "finetuned.json").read_text())
    for dim in ("64", "32", "16"):
        assert champion["metrics"][dim]["ndcg@10"] == pytest.approx(
            finetuned["metrics"][dim]["ndcg@10"], abs=1e-6
        )
    history = json.loads((later / "eval" / "history.json").read_text())["versions"]
    assert [h["version"] for h in history] == ["1"] and "champion" in history[0]["aliases"]


def test_failing_step_gives_one_line_reason(tmp_path):
    code, out, err = run_cli(
        "train", "--run-dir", str(tmp_path / "empty"), "--data-path", "x.jsonl"
    )
    assert code == 1
    assert err.strip().splitlines()[-1].startswith("error: ")
    assert "prepare" in err
