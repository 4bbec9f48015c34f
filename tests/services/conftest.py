"""Fixtures of the services tier: a whole Airflow deployment (PostgreSQL, api-server, scheduler,
triggerer, dag-processor) on 127.0.0.1 for the test session, and one with the CeleryExecutor
(Redis broker, a CPU and a GPU worker) for the tests that use it.

The helpers of ``tests/conftest.py`` (``make_pairs``, ``write_jsonl``, ``service_unavailable``,
...) are importable from here too (``from conftest import make_pairs`` in this folder's tests).
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest


def _root_conftest():
    """The module of ``tests/conftest.py``.

    Test folders without ``__init__.py`` share the module name ``conftest``, so this file cannot
    ``import conftest`` for its parent's helpers; the parent is loaded once more under its own
    name, with its changes to the environment undone.
    """
    name = "_embed_tests_root_conftest"
    if name in sys.modules:
        return sys.modules[name]
    path = Path(__file__).resolve().parents[1] / "conftest.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    saved = dict(os.environ)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    shutil.rmtree(getattr(module, "_SESSION_HOME", ""), ignore_errors=True)
    return module


def _helpers(module) -> dict:
    """The parent's helpers (its functions and UPPER_CASE constants; not fixtures or imports)."""
    from _pytest.fixtures import FixtureFunctionDefinition

    helpers = {}
    for name, value in vars(module).items():
        if name.startswith(("_", "pytest_")) or isinstance(value, FixtureFunctionDefinition):
            continue
        if isinstance(value, (type, type(_helpers))):
            if value.__module__ == module.__name__:
                helpers[name] = value
        elif name.isupper():
            helpers[name] = value
    return helpers


globals().update(_helpers(_root_conftest()))
DEMO_MODEL = globals()["DEMO_MODEL"]
service_unavailable = globals()["service_unavailable"]

#: The Argilla dataset the stack's watcher DAG watches (``EMBED_ARGILLA_DATASET``).
ANNOTATION_DATASET = "embed-e2e-annotations"
#: New submitted responses that fire the watcher (``EMBED_ARGILLA_MIN_RESPONSES``). Runs started
#: by the annotations asset carry no conf, so they train with the DAG's defaults (batch size 32,
#: dims 384..64 on the demo model): 60 pairs leave more than 32 after the eval/val split.
ANNOTATION_MIN_RESPONSES = 60
#: Seconds between the watcher's checks of the Argilla API (``EMBED_ARGILLA_POLL_INTERVAL``).
ANNOTATION_POLL_INTERVAL = 2


def _serve(stack, what: str):
    """Starts ``stack`` (a service that cannot start is :func:`service_unavailable`), points its
    ``mlflow_default`` connection at a SQLite store in the stack's folder, yields it, stops it."""
    from support.airflow_stack import StackError

    try:
        stack.start()
    except (StackError, RuntimeError, OSError, subprocess.SubprocessError) as exc:
        print(stack.logs())
        stack.stop()
        service_unavailable(what, str(exc).splitlines()[0][:300])
    print(f"\n{what} up in {stack.startup_seconds:.1f}s at {stack.url} ({stack.root})")
    try:
        stack.mlflow_uri = f"sqlite:///{stack.root / 'mlflow' / 'mlflow.db'}"
        (stack.root / "mlflow").mkdir(exist_ok=True)
        stack.set_connection("mlflow_default", "mlflow", host=stack.mlflow_uri)
        yield stack
    finally:
        stack.stop()


@pytest.fixture(scope="session")
def airflow_stack(tmp_path_factory):
    """PostgreSQL + Airflow 3 (api-server, scheduler, triggerer, dag-processor) for the session.

    The stack runs the project's ``dags/`` and ``plugins/`` with the local runner; MLflow is a
    SQLite store in the stack's folder, reached through the ``mlflow_default`` connection
    (``stack.mlflow_uri``). The watcher DAG is configured for :data:`ANNOTATION_DATASET` (DAGs
    start paused, so it watches nothing until a test unpauses it).
    """
    try:
        import psycopg2  # noqa: F401
    except ImportError:
        service_unavailable(
            "Airflow stack", "psycopg2 is not installed: pip install -r requirements-dev.txt"
        )
    from support.airflow_stack import AirflowStack

    root = tmp_path_factory.mktemp("airflow-stack")
    stack = AirflowStack(
        root,
        env={
            "EMBED_ARGILLA_DATASET": ANNOTATION_DATASET,
            "EMBED_ARGILLA_MIN_RESPONSES": str(ANNOTATION_MIN_RESPONSES),
            "EMBED_ARGILLA_POLL_INTERVAL": str(ANNOTATION_POLL_INTERVAL),
            "EMBED_BASE_MODEL": DEMO_MODEL,
        },
    )
    yield from _serve(stack, "Airflow stack")


@pytest.fixture
def stopwatch():
    """Prints the wall time of the test that uses it."""
    started = time.monotonic()
    yield
    print(f"\nwall time: {time.monotonic() - started:.1f}s")


#: The Celery workers of :func:`celery_stack`: each stands for a host, named by its queue.
CPU_WORKER = "cpu-1"
GPU_WORKER = "gpu-1"
#: Seconds without a heartbeat after which the scheduler fails a running task (a dead worker's).
CELERY_HEARTBEAT_TIMEOUT = 20


@pytest.fixture(scope="module")
def celery_stack(tmp_path_factory):
    """Airflow 3 with the CeleryExecutor: PostgreSQL (metadata DB and Celery result backend), a
    private ``redis-server`` as broker, the api-server, scheduler, triggerer and dag-processor,
    and two ``airflow celery worker`` processes: :data:`CPU_WORKER` on the queue ``cpu`` and
    :data:`GPU_WORKER` on ``gpu``, one task at a time each.

    Each worker records its own name as the task instances' ``hostname``. A running task that
    sends no heartbeat for :data:`CELERY_HEARTBEAT_TIMEOUT` seconds (its worker died) is failed
    and retried. MLflow is a SQLite store in the stack's folder (connection ``mlflow_default``).
    """
    try:
        import celery  # noqa: F401
        import psycopg2  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        service_unavailable(
            "Airflow Celery stack", f"{exc.name} is not installed: pip install -r requirements.txt"
        )
    from support.airflow_stack import AirflowStack

    root = tmp_path_factory.mktemp("airflow-celery")
    stack = AirflowStack(
        root,
        executor="CeleryExecutor",
        workers={CPU_WORKER: "cpu", GPU_WORKER: "gpu"},
        env={
            "EMBED_BASE_MODEL": DEMO_MODEL,
            "EMBED_GPU_QUEUE": "gpu",
            "EMBED_CPU_QUEUE": "cpu",
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": str(CELERY_HEARTBEAT_TIMEOUT),
            "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "2",
            # as in the compose stack: a skipped task ends within a second, not five
            "AIRFLOW__WORKERS__MIN_HEARTBEAT_INTERVAL": "1",
        },
    )
    yield from _serve(stack, "Airflow Celery stack")
