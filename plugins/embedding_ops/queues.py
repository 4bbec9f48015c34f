"""Which worker queue a task goes to: heavy steps to the GPU workers, everything else to CPU ones.

With the CeleryExecutor a task runs on a worker that listens on its queue
(``airflow celery worker --queues gpu``). The heavy steps, :data:`HEAVY_STEPS` (``train``, every
``evaluate`` and ``mine``), go to ``EMBED_GPU_QUEUE`` (default ``gpu``); the light ones (prepare,
report, register, publish, the watermark commit, the annotation watcher's tasks, a deferrable
sensor's resumption after its trigger fired) to ``EMBED_CPU_QUEUE`` (default ``cpu``).

Queues are part of the parsed DAG, so these variables belong to the DAG processor's environment;
workers listen on the same names. The LocalExecutor (and the KubernetesExecutor) ignore queues:
with them nothing changes. Set Airflow's ``[operators] default_queue`` to the CPU queue as well,
so tasks of other DAGs land on a CPU worker too.

Example::

    queue_for("train")    # "gpu"
    queue_for("prepare")  # "cpu"
"""

from __future__ import annotations

import os
import re

#: The steps that need a GPU host: they load a model and encode or train. One home for the set;
#: the step factory (:func:`embedding_ops.runners.step_operator`) routes by it.
HEAVY_STEPS = frozenset({"train", "evaluate", "mine"})

DEFAULT_GPU_QUEUE = "gpu"
DEFAULT_CPU_QUEUE = "cpu"

# Celery takes any name, but ``--queues`` splits on commas and shells on blanks.
_QUEUE_NAME = re.compile(r"^[A-Za-z0-9_.:@-]+$")


def _queue(variable: str, default: str) -> str:
    name = (os.environ.get(variable) or "").strip() or default
    if not _QUEUE_NAME.match(name):
        raise ValueError(
            f"{variable}={name!r} is not a queue name: use letters, digits and _ . : @ - only"
        )
    return name


def gpu_queue() -> str:
    """The queue of the heavy steps: ``EMBED_GPU_QUEUE``, default ``gpu``."""
    return _queue("EMBED_GPU_QUEUE", DEFAULT_GPU_QUEUE)


def cpu_queue() -> str:
    """The queue of every other task: ``EMBED_CPU_QUEUE``, default ``cpu``."""
    return _queue("EMBED_CPU_QUEUE", DEFAULT_CPU_QUEUE)


def queue_for(step: str) -> str:
    """The queue of a step: :func:`gpu_queue` for :data:`HEAVY_STEPS`, else :func:`cpu_queue`."""
    return gpu_queue() if step in HEAVY_STEPS else cpu_queue()
