"""Retrain the embedding model: prepare -> (evaluate base | evaluate champion | train ->
evaluate fine-tuned) -> report (comparison + promotion gate) -> register (MLflow version,
challenger/champion aliases) -> publish (Hub push, only when promoted and a repo is set).

Thin wiring only: the trigger form's Params come from ``tasks.config``, every step runs as
``python -m tasks <step>`` through the runner factory, and nothing heavy is imported here.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from embedding_ops.runners import step_operator

from tasks.config import airflow_param_specs

DAG_ID = "retrain_embeddings"
NIGHTLY_CRON = os.environ.get("EMBED_RETRAIN_CRON", "0 3 * * *")

with DAG(
    dag_id=DAG_ID,
    description="Fine-tune, evaluate and register a Matryoshka sentence-transformers model",
    schedule=NIGHTLY_CRON,
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "owner": "ml-platform",
    },
    params={name: Param(**spec) for name, spec in airflow_param_specs().items()},
    tags=["embeddings", "sentence-transformers", "mlflow", "retraining"],
    doc_md=__doc__,
) as dag:
    prepare = step_operator("prepare")
    evaluate_base = step_operator(
        "evaluate", task_id="evaluate_base", step_args=["--model", "base"]
    )
    train = step_operator("train", execution_timeout=timedelta(hours=12))
    evaluate_finetuned = step_operator(
        "evaluate", task_id="evaluate_finetuned", step_args=["--model", "finetuned"]
    )
    evaluate_champion = step_operator(
        "evaluate", task_id="evaluate_champion", step_args=["--model", "champion"]
    )
    report = step_operator("report")
    register = step_operator("register")
    publish = step_operator("publish")

    prepare >> [evaluate_base, evaluate_champion, train]
    train >> evaluate_finetuned
    [evaluate_base, evaluate_champion, evaluate_finetuned] >> report >> register >> publish
