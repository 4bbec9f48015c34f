"""Watch an Argilla dataset and update the ``argilla_annotations`` asset when enough new
annotations were submitted; ``retrain_embeddings`` runs on that asset (or its nightly cron).

``wait_for_annotations`` (a deferrable sensor: no worker slot while it waits) counts responses
with status ``submitted`` whose ``updated_at`` is later than the committed annotation watermark of
the dataset; ``emit_annotations_event`` then updates the asset with extra
``{dataset, workspace, count, newest, since}`` and records ``newest`` as the pending mark.

Runs are ``@continuous`` with one active run: a sensor is always waiting, and a new run starts as
soon as one fires. While the retrain run it triggered is in flight, counting starts after the
pending mark, so the same annotations do not fire twice; the mark is dropped once the retrain
run commits a watermark at or past it, or after ``pending_timeout_minutes`` (a failed run's
annotations then fire again). Five failed runs in a row (wrong key, missing dataset, Argilla down
for long) pause the DAG instead of looping.

Params (defaults from the environment of the DAG processor): ``dataset``
(``EMBED_ARGILLA_DATASET``), ``workspace`` (``EMBED_ARGILLA_WORKSPACE``), ``min_responses``
(``EMBED_ARGILLA_MIN_RESPONSES``, 50), ``poll_interval`` in seconds
(``EMBED_ARGILLA_POLL_INTERVAL``, 60), ``pending_timeout_minutes``
(``EMBED_ARGILLA_PENDING_TIMEOUT_MINUTES``, 720). The Argilla URL and key come from the
connection ``argilla_default``.

Both tasks are light: under the CeleryExecutor they (and the sensor's resumption once its trigger
fired) run on the CPU workers' queue (``EMBED_CPU_QUEUE``).
"""

from __future__ import annotations

import os
from datetime import datetime, timedelta

from airflow.sdk import DAG, Param
from embedding_ops.argilla_sensor import ArgillaAnnotationSensor
from embedding_ops.queues import cpu_queue
from embedding_ops.watermark import EmitAnnotationsEventOperator

DAG_ID = "watch_annotations"


def _env_number(name: str, default: float) -> float:
    value = os.environ.get(name, "").strip()
    return float(value) if value else default


with DAG(
    dag_id=DAG_ID,
    description="Update the argilla_annotations asset when enough annotations were submitted",
    schedule="@continuous",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    max_consecutive_failed_dag_runs=5,
    default_args={
        "retries": 3,
        "retry_delay": timedelta(minutes=1),
        "retry_exponential_backoff": 2.0,
        "max_retry_delay": timedelta(minutes=30),
        "owner": "ml-platform",
        # the sensor waits in the triggerer; what runs on a worker is light
        "queue": cpu_queue(),
    },
    params={
        "dataset": Param(
            os.environ.get("EMBED_ARGILLA_DATASET", ""),
            type="string",
            title="Argilla dataset",
            description="Dataset whose submitted responses are counted (EMBED_ARGILLA_DATASET).",
        ),
        "workspace": Param(
            os.environ.get("EMBED_ARGILLA_WORKSPACE", "") or None,
            type=["null", "string"],
            title="Argilla workspace",
            description="Its workspace; empty = the only dataset of that name the key can see.",
        ),
        "min_responses": Param(
            int(_env_number("EMBED_ARGILLA_MIN_RESPONSES", 50)),
            type="integer",
            minimum=1,
            title="Minimum new responses",
            description="Submitted responses after the watermark needed to start a retrain run.",
        ),
        "poll_interval": Param(
            _env_number("EMBED_ARGILLA_POLL_INTERVAL", 60),
            type="number",
            exclusiveMinimum=0,
            title="Poll interval (s)",
            description="Seconds between checks of the Argilla API.",
        ),
        "pending_timeout_minutes": Param(
            _env_number("EMBED_ARGILLA_PENDING_TIMEOUT_MINUTES", 720),
            type="number",
            minimum=0,
            title="Pending timeout (min)",
            description="How long annotations that already fired are not counted again while "
            "their retrain run is in flight.",
        ),
    },
    tags=["embeddings", "argilla", "annotations"],
    doc_md=__doc__,
) as dag:
    wait = ArgillaAnnotationSensor(
        task_id="wait_for_annotations",
        dataset="{{ params.dataset }}",
        workspace="{{ params.workspace or '' }}",
        min_responses="{{ params.min_responses }}",
        poll_interval="{{ params.poll_interval }}",
        pending_timeout_minutes="{{ params.pending_timeout_minutes }}",
    )

    emit = EmitAnnotationsEventOperator(task_id="emit_annotations_event")
    wait >> emit
