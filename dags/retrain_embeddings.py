"""Retrain the embedding model: prepare -> (evaluate champion | mine hard negatives -> train ->
evaluate base and fine-tuned, which train has put in the evaluation cache) -> report (comparison +
promotion gate) -> register (MLflow version, challenger/champion aliases) -> publish (Hub push,
only when promoted and a repo is set) -> commit_watermark (Argilla runs: move the annotation
watermark to what this run trained on).

Runs nightly (``EMBED_RETRAIN_CRON``, UTC) OR when the watcher DAG updates the
``argilla_annotations`` asset, and from the trigger form. With ``EMBED_ARGILLA_DATASET`` set, the
form's defaults (and so every scheduled or asset-triggered run) read that Argilla dataset
(``source=argilla``, workspace ``EMBED_ARGILLA_WORKSPACE``). ``commit_watermark`` runs when no task
failed (skipped steps are fine: a "nothing to do" run or an unpublished model still commit).

Thin wiring only: the trigger form's Params come from ``tasks.config``, every step runs as
``python -m tasks <step>`` through the runner factory, and nothing heavy is imported here.
Under the CeleryExecutor the factory sends the heavy steps (train, the evaluations) to the GPU
workers' queue (``EMBED_GPU_QUEUE``) and every other task runs on the CPU queue
(``EMBED_CPU_QUEUE``); other executors ignore queues.
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, AssetOrTimeSchedule, CronTriggerTimetable, Param
from embedding_ops.queues import cpu_queue
from embedding_ops.runners import step_operator
from embedding_ops.watermark import ANNOTATIONS_ASSET, CommitWatermarkOperator

from tasks.config import RunConfig, airflow_param_specs

DAG_ID = "retrain_embeddings"
NIGHTLY_CRON = os.environ.get("EMBED_RETRAIN_CRON", "0 3 * * *")


def form_defaults() -> RunConfig:
    """The run config's defaults; ``source=argilla`` on ``EMBED_ARGILLA_DATASET`` when it is set,
    so runs started by the annotations asset (which carry no conf) train on the watched dataset."""
    dataset = os.environ.get("EMBED_ARGILLA_DATASET", "").strip()
    if not dataset:
        return RunConfig()
    return RunConfig(
        source="argilla",
        argilla_dataset=dataset,
        argilla_workspace=os.environ.get("EMBED_ARGILLA_WORKSPACE", "").strip(),
    )


with DAG(
    dag_id=DAG_ID,
    description="Fine-tune, evaluate and register a Matryoshka sentence-transformers model",
    schedule=AssetOrTimeSchedule(
        timetable=CronTriggerTimetable(NIGHTLY_CRON, timezone="UTC"), assets=ANNOTATIONS_ASSET
    ),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={
        "retries": 2,
        "retry_delay": timedelta(seconds=30),
        "retry_exponential_backoff": 2.0,
        "owner": "ml-platform",
        # the light tasks; step_operator gives the heavy steps the GPU queue
        "queue": cpu_queue(),
    },
    params={name: Param(**spec) for name, spec in airflow_param_specs(form_defaults()).items()},
    tags=["embeddings", "sentence-transformers", "mlflow", "retraining"],
    doc_md=__doc__,
) as dag:
    prepare = step_operator("prepare")
    mine = step_operator("mine")
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

    prepare >> [evaluate_champion, mine]
    mine >> train
    # train evaluates the base model (which it loads anyway) and the model it saved into the
    # evaluation cache: both evaluate tasks read it there and only evaluate when it is missing
    train >> [evaluate_base, evaluate_finetuned]
    [evaluate_base, evaluate_champion, evaluate_finetuned] >> report >> register >> publish

    commit_watermark = CommitWatermarkOperator(task_id="commit_watermark")
    # Every task is upstream: one failed (or upstream-failed) task keeps the watermark in place.
    [
        prepare,
        mine,
        evaluate_base,
        evaluate_champion,
        train,
        evaluate_finetuned,
        report,
        register,
        publish,
    ] >> commit_watermark
