"""The connection to MLflow: where the tracking and registry store is, a client for it, its errors.

Tracking URI: ``MLFLOW_TRACKING_URI`` when set (the Airflow connection ``mlflow_default`` sets it),
else an embedded SQLite store in ``$EMBED_HOME/mlflow``. The same URI serves as registry URI.

mlflow is imported only inside the functions that need it, so the URI helpers stay cheap for the
Airflow UI's report view and the CLI.

Example::

    from tasks.mlflow_client import connect, redacted_uri, tracking_uri, unreachable

    try:
        client = connect()
        client.search_experiments()
    except Exception as exc:
        raise unreachable(exc) from None
    print(redacted_uri(tracking_uri()))   # never prints a password
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Any

from tasks.io import StepError, state_dir

#: MLflow's error code for "no such registered model / version / run".
RESOURCE_DOES_NOT_EXIST = "RESOURCE_DOES_NOT_EXIST"
SQLITE_PREFIX = "sqlite:///"


def default_tracking_uri() -> str:
    """The embedded store: SQLite in the project's state directory."""
    return f"{SQLITE_PREFIX}{state_dir() / 'mlflow' / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def redacted_uri(uri: str) -> str:
    """The URI without user and password (safe to print and to put in XCom)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def _sqlite_file(uri: str) -> Path | None:
    return Path(uri[len(SQLITE_PREFIX) :]) if uri.startswith(SQLITE_PREFIX) else None


def connect() -> Any:
    """An ``MlflowClient`` for the tracking and registry store (see :func:`tracking_uri`); also
    points the ``mlflow`` module's fluent API (``mlflow.start_run``, ...) at it."""
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri()
    if (db := _sqlite_file(uri)) is not None:
        db.parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def experiment_id(client: Any, name: str) -> str:
    """The id of the experiment ``name``, created the first time.

    With the embedded SQLite store its artifacts live beside the database (a database file has
    no artifact server), not in ``./mlruns``.
    """
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    if (db := _sqlite_file(tracking_uri())) is not None:
        location = (db.parent / "artifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def is_missing(exc: BaseException) -> bool:
    """Whether ``exc`` is MLflow saying that the thing asked for does not exist (yet)."""
    from mlflow.exceptions import MlflowException

    return isinstance(exc, MlflowException) and exc.error_code == RESOURCE_DOES_NOT_EXIST


def unreachable(exc: Exception) -> StepError:
    """The one-line error for an MLflow server that cannot be reached or refused a request."""
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return StepError(
        f"MLflow at {redacted_uri(tracking_uri())} is unreachable or refused the request "
        f"({type(exc).__name__}: {first}): check MLFLOW_TRACKING_URI / the mlflow_default "
        f"connection"
    )
