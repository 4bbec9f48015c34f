"""What the ``register`` step records in MLflow, as plain data: params, tags, metrics, dataset rows.

Pure functions of the run directory's contents (no MLflow, no files): :mod:`tasks.tracking`
reads the files, calls these and logs what they return. Tag names come from
:mod:`tasks.mlflow_tags`.

- :func:`run_params`: the config (``RunConfig.mlflow_params``) and the hardware (``hw_*``);
- :func:`lineage_tags`: the tags of the run and its model version (Airflow ids, fingerprints,
  watermark, base model, device); :func:`version_tags` adds the model fingerprint and the gate;
  :func:`outcome_tags`: the decision as applied, on the run;
- :func:`run_metrics`: per-dim metrics of every model, the training curves and the training
  summary's figures, as ``(key, value, step)``;
- :func:`eval_rows`: the eval set as one row per query (the run's ``eval`` dataset input);
- :func:`dataset_source_uri`: where the data came from, as a URI MLflow resolves.

Example::

    metric_key("ndcg@10")                                     # 'ndcg_at_10'
    run_metrics({"models": {"base": {"metrics": {"64": {"ndcg@10": 0.5}}}}}, [], {})
    # [('base_dim_64_ndcg_at_10', 0.5, 0)]
"""

from __future__ import annotations

import re
from typing import Any

from tasks.config import RunConfig
from tasks.mlflow_tags import (
    MAX_TAG_VALUE,
    TAG_ANNOTATION_WATERMARK,
    TAG_BASE_MODEL,
    TAG_DATA_FINGERPRINT,
    TAG_DEVICE,
    TAG_EVAL_FINGERPRINT,
    TAG_GATE_DECISION,
    TAG_GATE_DIM,
    TAG_GATE_METRIC,
    TAG_GATE_REASON,
    TAG_GATE_VALUE,
    TAG_MODEL_FINGERPRINT,
    TAG_MODEL_VERSION,
)

#: The similarity function in the trainer's validation metric names (dropped from the keys).
SIMILARITY_PART = r"_(cosine|dot|euclidean|manhattan)_"
#: Trainer log entries recorded as training curves, and their MLflow keys.
CURVE_KEYS = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}
#: The prefix of the trainer's validation metrics (``eval_val_dim_128_cosine_ndcg@10``).
VALIDATION_PREFIX = "eval_val_dim_"
#: Figures of ``train/summary.json`` recorded as metrics (when present).
TRAIN_SUMMARY_METRICS = ("train_runtime_s", "train_samples_per_second", "train_loss")
#: The gate's delta at its dim, recorded on the run once the decision is applied.
GATE_DELTA_METRIC = "gate_delta"
#: The longest param value written (MLflow refuses longer ones).
MAX_PARAM_VALUE = 6000

#: ``(key, value, step)`` of one metric point.
MetricPoint = tuple[str, float, int]


def metric_key(name: str) -> str:
    """MLflow-safe metric name (``ndcg@10`` -> ``ndcg_at_10``)."""
    return name.replace("@", "_at_")


def evaluation_metrics(models: dict[str, Any]) -> list[MetricPoint]:
    """Every metric of every model at every dim (``report/metrics.json``'s ``models``), keyed
    ``{model}_dim_{dim}_{metric}`` (``finetuned_dim_128_ndcg_at_10``), at step 0."""
    return [
        (f"{model_name}_dim_{dim}_{metric_key(metric)}", float(value), 0)
        for model_name, block in models.items()
        for dim, values in block["metrics"].items()
        for metric, value in values.items()
    ]


def curve_points(history: list[dict[str, Any]]) -> list[MetricPoint]:
    """The training curves in the trainer's log history: loss, learning rate, gradient norm and
    the validation metrics (``eval_val_dim_128_cosine_ndcg@10`` -> ``val_dim_128_ndcg_at_10``),
    each at its step."""
    points = []
    for entry in history:
        step = int(entry.get("step", 0))
        for key, name in CURVE_KEYS.items():
            if key in entry:
                points.append((name, float(entry[key]), step))
        for key, value in entry.items():
            if key.startswith(VALIDATION_PREFIX) and isinstance(value, (int, float)):
                name = metric_key(re.sub(SIMILARITY_PART, "_", key[len("eval_") :]))
                points.append((name, float(value), step))
    return points


def run_metrics(
    metrics: dict[str, Any], history: list[dict[str, Any]], train_summary: dict[str, Any]
) -> list[MetricPoint]:
    """Everything the run records as metrics, in logging order: the evaluation
    (:func:`evaluation_metrics`), the curves (:func:`curve_points`) and the training summary's
    :data:`TRAIN_SUMMARY_METRICS`."""
    points = evaluation_metrics(metrics["models"])
    points += curve_points(history)
    for key in TRAIN_SUMMARY_METRICS:
        if train_summary.get(key) is not None:
            points.append((key, float(train_summary[key]), 0))
    return points + training_choices(train_summary)


def training_choices(train_summary: dict[str, Any]) -> list[MetricPoint]:
    """What the train step chose from the data: the planned epochs and optimizer steps, the
    negatives per pair, and the weight interpolation (``wise_ft_alpha`` and its validation curve
    ``wise_ft_val_ndcg_at_10``, one point per ``a`` at step ``100 x a``)."""
    points: list[MetricPoint] = []
    schedule = train_summary.get("schedule") or {}
    if schedule:
        points += [("train_epochs", float(schedule["epochs"]), 0)]
        points += [("train_planned_steps", float(schedule["total_steps"]), 0)]
        if schedule.get("learning_rate"):
            points += [("train_learning_rate", float(schedule["learning_rate"]), 0)]
    negatives = train_summary.get("negatives") or {}
    if "per_pair" in negatives:
        points.append(("negatives_per_pair", float(negatives["per_pair"]), 0))
    wise = train_summary.get("wise_ft") or {}
    if "alpha" in wise:
        points.append(("wise_ft_alpha", float(wise["alpha"]), 0))
    for alpha, value in sorted((wise.get("curve") or {}).items(), key=lambda kv: float(kv[0])):
        points.append(("wise_ft_val_ndcg_at_10", float(value), round(100 * float(alpha))))
    return points


def run_params(
    cfg: RunConfig, train_summary: dict[str, Any], existing: dict[str, Any] | None = None
) -> dict[str, str]:
    """The run's params: the config and the hardware (``hw_device``, ...), leaving out those the
    run already has (``existing``: MLflow refuses to change a param on a retry)."""
    params = {
        **cfg.mlflow_params(),
        **{f"hw_{k}": str(v) for k, v in train_summary["hardware"].items()},
    }
    return {k: v[:MAX_PARAM_VALUE] for k, v in params.items() if k not in (existing or {})}


def lineage_tags(
    cfg: RunConfig, ids: dict[str, str], manifest: dict[str, Any], train_summary: dict[str, Any]
) -> dict[str, str]:
    """The tags of both the run and its model version: the Airflow ``ids``, the data and eval
    fingerprints, the annotation watermark (``none`` without one), the base model and the device
    it was trained on."""
    return {
        **ids,
        TAG_DATA_FINGERPRINT: manifest["fingerprints"]["data"],
        TAG_EVAL_FINGERPRINT: manifest["fingerprints"]["eval"],
        TAG_ANNOTATION_WATERMARK: str(manifest.get("watermark") or "none"),
        TAG_BASE_MODEL: cfg.base_model,
        TAG_DEVICE: str(train_summary["hardware"].get("device_name")),
    }


def version_tags(
    lineage: dict[str, str], metrics: dict[str, Any], gate: dict[str, Any]
) -> dict[str, str]:
    """The model version's tags: ``lineage`` plus the fine-tuned model's fingerprint and the gate
    metric, dim and value (the history chart reads them back)."""
    return {
        **lineage,
        TAG_MODEL_FINGERPRINT: metrics["models"]["finetuned"]["model_fingerprint"],
        TAG_GATE_METRIC: gate["metric"],
        TAG_GATE_DIM: str(gate["dim"]),
        TAG_GATE_VALUE: repr(float(gate["challenger_value"])),
    }


def outcome_tags(applied: dict[str, Any], version: str) -> dict[str, str]:
    """The run's tags once the decision moved the aliases: the decision and reason as applied and
    the registered version."""
    return {
        TAG_GATE_DECISION: applied["decision"],
        TAG_GATE_REASON: applied["reason"][:MAX_TAG_VALUE],
        TAG_MODEL_VERSION: version,
    }


def eval_rows(eval_set: dict[str, Any]) -> list[dict[str, Any]]:
    """The eval set (``data/eval.json``) as one row per query with its relevant documents' texts."""
    return [
        {
            "query": query,
            "relevant_documents": [eval_set["corpus"][c] for c in eval_set["relevant_docs"][qid]],
        }
        for qid, query in eval_set["queries"].items()
    ]


def dataset_source_uri(source: dict[str, Any]) -> str:
    """Where the run's data came from, as a URI MLflow can resolve (a path or an http(s) URL):
    MLflow has no resolver for ``hf://``, so a Hub dataset is its page on the Hub and an Argilla
    dataset its annotation page."""
    if source.get("path"):
        return str(source["path"])
    if source.get("type") == "argilla" and source.get("url") and source.get("dataset_id"):
        return f"{str(source['url']).rstrip('/')}/dataset/{source['dataset_id']}/annotation-mode"
    if source.get("dataset"):
        return f"https://huggingface.co/datasets/{source['dataset']}"
    return "unknown"
