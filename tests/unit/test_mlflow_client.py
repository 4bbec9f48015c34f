"""The connection to MLflow: the embedded store, its experiments, and telling errors apart."""

from __future__ import annotations

from pathlib import Path

import pytest

from tasks.mlflow_client import connect, experiment_id, is_missing, tracking_uri, unreachable

pytestmark = pytest.mark.unit


def test_only_resource_does_not_exist_counts_as_missing():
    from mlflow.exceptions import MlflowException
    from mlflow.protos.databricks_pb2 import RESOURCE_DOES_NOT_EXIST, TEMPORARILY_UNAVAILABLE

    assert is_missing(MlflowException("no such model", error_code=RESOURCE_DOES_NOT_EXIST))
    assert not is_missing(MlflowException("try later", error_code=TEMPORARILY_UNAVAILABLE))
    assert not is_missing(ConnectionError("RESOURCE_DOES_NOT_EXIST"))


def test_the_embedded_store_keeps_artifacts_beside_the_database(isolated_state):
    client = connect()
    assert client.tracking_uri == tracking_uri()
    first = experiment_id(client, "exp")
    assert experiment_id(client, "exp") == first  # found again, not created twice
    location = client.get_experiment(first).artifact_location
    assert location == (isolated_state / "mlflow" / "artifacts" / "exp").as_uri()
    assert Path(tracking_uri().removeprefix("sqlite:///")).exists()


def test_unreachable_is_one_line_without_credentials(monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "https://user:s3cret@mlflow.example.com")
    error = unreachable(ConnectionError("refused\nsecond line"))
    assert str(error) == (
        "MLflow at https://***@mlflow.example.com is unreachable or refused the request "
        "(ConnectionError: refused): check MLFLOW_TRACKING_URI / the mlflow_default connection"
    )
