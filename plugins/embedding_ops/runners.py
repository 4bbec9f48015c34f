"""The runner factory: one function turns a step into an operator, whatever runs it.

The runner is chosen by the ``EMBED_RUNNER`` environment variable of the DAG processor and
workers (default ``local``):

- ``local``: a subprocess on the worker (:mod:`embedding_ops.step_operator`);
- ``docker``: a container of the task image (:mod:`embedding_ops.docker_runner`);
- ``kubernetes``: a pod of the task image (:mod:`embedding_ops.kubernetes_runner`).

All three run the same ``python -m tasks <step> --run-dir DIR <options>`` on the same run
directories and return the same summary. The DAG calls :func:`step_operator` and never names a
runner, so the DAG code does not change between runners.

Every step also gets its worker queue (:func:`embedding_ops.queues.queue_for`): the heavy steps
go to the GPU workers' queue, the rest to the CPU workers' (CeleryExecutor; other executors
ignore queues).
"""

from __future__ import annotations

import os
from typing import Any

from airflow.sdk import BaseOperator

from embedding_ops.queues import queue_for

RUNNERS = ("local", "docker", "kubernetes")


def selected_runner() -> str:
    """The configured runner name (``EMBED_RUNNER``, default ``local``)."""
    name = (os.environ.get("EMBED_RUNNER") or "local").strip().lower()
    if name not in RUNNERS:
        raise ValueError(
            f"EMBED_RUNNER={name!r} is not a known runner; use one of {', '.join(RUNNERS)}"
        )
    return name


def step_operator(
    step: str,
    *,
    task_id: str | None = None,
    step_args: list[str] | None = None,
    runner: str | None = None,
    **kwargs: Any,
) -> BaseOperator:
    """An operator running ``python -m tasks <step>`` with the selected runner, on the step's
    queue (``queue=`` overrides it).

    Example::

        train = step_operator("train")
        evaluate_base = step_operator("evaluate", task_id="evaluate_base",
                                      step_args=["--model", "base"])
    """
    runner = runner or selected_runner()
    task_id = task_id or step
    kwargs.setdefault("queue", queue_for(step))
    if runner == "local":
        from embedding_ops.step_operator import LocalStepOperator

        return LocalStepOperator(task_id=task_id, step=step, step_args=step_args, **kwargs)
    if runner == "docker":
        from embedding_ops.docker_runner import DockerStepOperator

        return DockerStepOperator(task_id=task_id, step=step, step_args=step_args, **kwargs)
    if runner == "kubernetes":
        from embedding_ops.kubernetes_runner import KubernetesStepOperator

        return KubernetesStepOperator(task_id=task_id, step=step, step_args=step_args, **kwargs)
    raise ValueError(f"runner {runner!r} is not available; use one of {', '.join(RUNNERS)}")
