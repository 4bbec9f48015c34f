"""What every runner needs to run one step: the command line, the environment and the secrets.

Runners differ only in *where* ``python -m tasks <step> --run-dir DIR <options>`` runs; this
module gives all of them the same command (built from the run's params and the step's own
arguments), the same public environment (Airflow ids, unbuffered output, where run directories
live) and the same secrets (everything that comes from Airflow connections: MLflow settings for
every step, the Argilla URL and API key for ``prepare`` only, the Hub token for ``publish``
only). Secrets are kept apart so that runners can hand them over without logging them
(``private_environment`` in Docker, Kubernetes Secrets).
"""

from __future__ import annotations

import os
from typing import Any

from embedding_ops.argilla_hook import ArgillaConnectionError, ArgillaHook
from embedding_ops.contract import run_dir_for, step_command
from embedding_ops.hf_hook import HuggingFaceHook
from embedding_ops.mlflow_hook import MlflowHook

#: The task image the container runners (docker, kubernetes) start when ``EMBED_TASK_IMAGE`` is
#: not set: what ``docker build -f docker/Dockerfile`` tags in the compose stack.
DEFAULT_IMAGE = "embedding-tasks:latest"


def step_options(context: Any, step_args: list[str]) -> list[str]:
    """The step's options: the run's params as CLI options, then the step's own arguments."""
    from tasks.config import config_to_cli_args

    return config_to_cli_args(dict(context["params"])) + list(step_args)


def run_dir(context: Any) -> str:
    """The run directory of this DAG run (the same path in every runner)."""
    ti = context["ti"]
    return str(run_dir_for(ti.dag_id, ti.run_id))


def command(context: Any, step: str, step_args: list[str], python: str = "python") -> list[str]:
    """``[python, -m, tasks, step, --run-dir, DIR, *options]`` for this task instance."""
    return step_command(python, step, run_dir(context), step_options(context, step_args))


def public_env(context: Any) -> dict[str, str]:
    """Environment that may be shown: Airflow ids, unbuffered output, the artifact root."""
    from tasks.io import artifact_root

    ti = context["ti"]
    return {
        "AIRFLOW_CTX_DAG_ID": ti.dag_id,
        "AIRFLOW_CTX_DAG_RUN_ID": ti.run_id,
        "AIRFLOW_CTX_TASK_ID": ti.task_id,
        "AIRFLOW_CTX_TRY_NUMBER": str(ti.try_number),
        "PYTHONUNBUFFERED": "1",
        "EMBED_ARTIFACT_ROOT": str(artifact_root()),
    }


def secret_env(step: str) -> dict[str, str]:
    """Values from Airflow connections (never logged): MLflow for every step, the Argilla URL and
    API key for ``prepare`` only, the Hub token and endpoint for ``publish`` only."""
    env = MlflowHook().step_env()
    if step == "prepare":
        env.update(_argilla_env())
    if step == "publish":
        env.update(HuggingFaceHook().step_env())
    return env


def _argilla_env() -> dict[str, str]:
    """The ``argilla_default`` connection as environment; empty when it is missing or incomplete.

    Only runs whose source is Argilla need it, and those fail in ``prepare`` with a line that says
    to set the connection; every other run must not depend on it.
    """
    try:
        return ArgillaHook().step_env()
    except ArgillaConnectionError:
        return {}


def task_image() -> str:
    """The task image of the container runners: ``EMBED_TASK_IMAGE``, else :data:`DEFAULT_IMAGE`."""
    return os.environ.get("EMBED_TASK_IMAGE") or DEFAULT_IMAGE


def gpu_request() -> str:
    """``EMBED_GPUS``: empty/``0`` = no GPU, ``all``, a count (``2``) or device ids (``0,1``)."""
    return (os.environ.get("EMBED_GPUS") or "").strip().lower()
