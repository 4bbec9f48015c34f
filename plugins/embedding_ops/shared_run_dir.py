"""Run directories when workers are several hosts: every step must see what ``prepare`` wrote.

With the CeleryExecutor the steps of one run land on different workers (``prepare`` on a CPU
host, ``train`` on a GPU host, ...). They share files only through the run directory
(``{EMBED_ARTIFACT_ROOT}/{dag_id}/{run_id}``), so ``EMBED_ARTIFACT_ROOT`` must be a volume that
every worker mounts at the same path (NFS or another shared file system).

To turn a missing shared volume into one clear line instead of a confusing "file not found" deep
in a step, ``prepare`` records which host wrote the run directory (an XCom under
:data:`WRITER_KEY`: ``{"host", "run_dir"}``) and every later step checks, before it starts,
whether the run directory's manifest is there; when it is not and another host wrote it, the task
fails without retrying (:func:`check_inputs_here`)::

    run directory /srv/embedding/runs/retrain_embeddings/manual__... is not on this host
    (gpu-2); prepare wrote it on cpu-1: put EMBED_ARTIFACT_ROOT on a volume every worker mounts

Host names are Airflow's (``[core] hostname_callable``), the ones the task instances show.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from airflow.sdk.exceptions import AirflowFailException

#: The XCom key under which ``prepare`` records the host that wrote the run directory.
WRITER_KEY = "run_dir_writer"
#: The task that writes a run directory's inputs.
PREPARE_TASK_ID = "prepare"
#: The file ``prepare`` writes last; a later step that cannot see it cannot see its inputs.
MANIFEST = Path("data") / "manifest.json"


def this_host(context: Any) -> str:
    """The host running this task, as Airflow records it in the task instance."""
    host = getattr(context["ti"], "hostname", None)
    if host:
        return str(host)
    from airflow.sdk.api.client import get_hostname

    return get_hostname()


def record_writer(context: Any, run_dir: str) -> None:
    """Record (XCom :data:`WRITER_KEY`) that this host wrote ``run_dir``; called by ``prepare``."""
    context["ti"].xcom_push(key=WRITER_KEY, value={"host": this_host(context), "run_dir": run_dir})


def check_inputs_here(context: Any, step: str, run_dir: str) -> None:
    """Fail (no retry) with one line when ``run_dir`` was written on another host and is not here.

    Does nothing for ``prepare``, when the manifest is visible, or when no host was recorded (the
    step then reports what it misses itself).

    :raises AirflowFailException: ``run directory X is not on this host (Y); prepare wrote it on
        Z: put EMBED_ARTIFACT_ROOT on a volume every worker mounts``.
    """
    if step == "prepare" or (Path(run_dir) / MANIFEST).exists():
        return
    record = context["ti"].xcom_pull(task_ids=PREPARE_TASK_ID, key=WRITER_KEY)
    writer = record.get("host") if isinstance(record, dict) else None
    here = this_host(context)
    if not writer or writer == here:
        return
    raise AirflowFailException(
        f"run directory {run_dir} is not on this host ({here}); prepare wrote it on {writer}: "
        "put EMBED_ARTIFACT_ROOT on a volume every worker mounts"
    )
