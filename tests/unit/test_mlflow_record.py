"""What the register step records in MLflow (pure: no MLflow store, no files)."""

from __future__ import annotations

import json

import pytest

from tasks.config import RunConfig
from tasks.mlflow_record import (
    curve_points,
    dataset_source_uri,
    eval_rows,
    lineage_tags,
    metric_key,
    outcome_tags,
    run_metrics,
    run_params,
    version_tags,
)

pytestmark = pytest.mark.unit

CFG = RunConfig(data_path="x", base_model="org/base", matryoshka_dims=[64, 32], best_metric_dim=32)
IDS = {"airflow_dag_id": "retrain_embeddings", "airflow_run_id": "manual__x"}
MANIFEST = {"fingerprints": {"data": "dfp", "eval": "efp", "train": "tfp"}, "watermark": None}
TRAIN_SUMMARY = {"hardware": {"device": "cuda", "device_name": "H100"}, "train_loss": 1.25}
METRICS = {
    "models": {
        "base": {"model_fingerprint": "bfp", "metrics": {"64": {"ndcg@10": 0.5, "mrr@10": 0.4}}},
        "finetuned": {"model_fingerprint": "ffp", "metrics": {"64": {"ndcg@10": 0.6}}},
    }
}
GATE = {"metric": "ndcg@10", "dim": 32, "challenger_value": 0.55, "delta": 0.05}


def test_metric_names_are_mlflow_safe():
    assert metric_key("ndcg@10") == "ndcg_at_10"


def test_training_curves_from_trainer_history():
    history = [
        {"loss": 2.0, "learning_rate": 1e-5, "grad_norm": 3.0, "step": 10, "epoch": 0.5},
        {"eval_val_dim_128_cosine_ndcg@10": 0.7, "eval_runtime": 1.0, "step": 20},
    ]
    points = curve_points(history)
    assert ("train_loss", 2.0, 10) in points
    assert ("learning_rate", 1e-5, 10) in points
    assert ("val_dim_128_ndcg_at_10", 0.7, 20) in points
    assert not any(name == "eval_runtime" for name, _, _ in points)


def test_run_metrics_are_the_evaluation_the_curves_and_the_training_summary_in_order():
    history = [{"loss": 2.0, "step": 5}]
    assert run_metrics(METRICS, history, TRAIN_SUMMARY) == [
        ("base_dim_64_ndcg_at_10", 0.5, 0),
        ("base_dim_64_mrr_at_10", 0.4, 0),
        ("finetuned_dim_64_ndcg_at_10", 0.6, 0),
        ("train_loss", 2.0, 5),
        ("train_loss", 1.25, 0),
    ]
    # figures the summary lacks (or has as null) are left out
    assert run_metrics({"models": {}}, [], {"train_runtime_s": None}) == []


def test_params_are_the_config_and_the_hardware_without_those_already_logged():
    params = run_params(CFG, TRAIN_SUMMARY)
    assert params["base_model"] == "org/base" and params["matryoshka_dims"] == "64,32"
    assert params["hw_device"] == "cuda" and params["hw_device_name"] == "H100"
    again = run_params(CFG, TRAIN_SUMMARY, existing={"base_model": "org/base", "hw_device": "x"})
    assert "base_model" not in again and "hw_device" not in again
    assert set(params) - set(again) == {"base_model", "hw_device"}
    long = run_params(CFG, {"hardware": {"note": "x" * 7000}})
    assert len(long["hw_note"]) == 6000


def test_lineage_and_version_tags():
    lineage = lineage_tags(CFG, IDS, MANIFEST, TRAIN_SUMMARY)
    assert lineage == {
        **IDS,
        "data_fingerprint": "dfp",
        "eval_fingerprint": "efp",
        "annotation_watermark": "none",
        "base_model": "org/base",
        "device": "H100",
    }
    no_name = {"hardware": {"device": "cpu"}}
    watermark = lineage_tags(CFG, IDS, {**MANIFEST, "watermark": "2026-01-01T00:00:00Z"}, no_name)
    assert watermark["annotation_watermark"] == "2026-01-01T00:00:00Z"
    assert watermark["device"] == "None"
    assert version_tags(lineage, METRICS, GATE) == {
        **lineage,
        "model_fingerprint": "ffp",
        "gate_metric": "ndcg@10",
        "gate_dim": "32",
        "gate_value": "0.55",
    }


def test_outcome_tags_cut_a_long_reason():
    applied = {"decision": "rejected", "reason": "r" * 6000}
    tags = outcome_tags(applied, "7")
    assert tags["gate_decision"] == "rejected" and tags["model_version"] == "7"
    assert tags["gate_reason"] == "r" * 5000


def test_eval_rows_carry_each_querys_relevant_documents():
    eval_set = {
        "queries": {"q0": "first?", "q1": "second?"},
        "corpus": {"c0": "doc zero", "c1": "doc one"},
        "relevant_docs": {"q0": ["c1"], "q1": ["c0", "c1"]},
    }
    assert eval_rows(eval_set) == [
        {"query": "first?", "relevant_documents": ["doc one"]},
        {"query": "second?", "relevant_documents": ["doc zero", "doc one"]},
    ]


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

    uri = dataset_source_uri(source)
    assert uri == expected
    dataset = mlflow.data.from_pandas(pd.DataFrame({"query": ["q"]}), source=uri, name="train")
    assert expected.rstrip("/") in json.dumps(dataset.source.to_dict())


def test_the_trains_choices_are_metrics_and_the_interpolation_a_curve():
    from tasks.mlflow_record import training_choices

    summary = {
        "schedule": {"epochs": 12, "total_steps": 120, "learning_rate": 6e-5},
        "negatives": {"source": "mined with the base model", "per_pair": 2},
        "wise_ft": {"alpha": 0.75, "curve": {"1.0": 0.61, "0.25": 0.5, "0.75": 0.63, "0.5": 0.6}},
    }
    assert training_choices(summary) == [
        ("train_epochs", 12.0, 0),
        ("train_planned_steps", 120.0, 0),
        ("train_learning_rate", 6e-5, 0),
        ("negatives_per_pair", 2.0, 0),
        ("wise_ft_alpha", 0.75, 0),
        ("wise_ft_val_ndcg_at_10", 0.5, 25),
        ("wise_ft_val_ndcg_at_10", 0.6, 50),
        ("wise_ft_val_ndcg_at_10", 0.63, 75),
        ("wise_ft_val_ndcg_at_10", 0.61, 100),
    ]
    assert training_choices({}) == []
