"""MLflow settings for steps, from the Airflow connection ``mlflow_default``.

The connection's host (with scheme, e.g. ``http://mlflow:5000``, or host + port + schema) becomes
``MLFLOW_TRACKING_URI``; login/password become ``MLFLOW_TRACKING_USERNAME/PASSWORD``. Without the
connection, the worker's own ``MLFLOW_TRACKING_URI`` is used, else the embedded SQLite store.
Values are handed to steps as environment variables and never logged.
"""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException


class MlflowHook(BaseHook):
    """Reads MLflow tracking settings from an Airflow connection."""

    conn_name_attr = "mlflow_conn_id"
    default_conn_name = "mlflow_default"
    conn_type = "mlflow"
    hook_name = "MLflow"

    def __init__(self, mlflow_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.mlflow_conn_id = mlflow_conn_id

    def step_env(self) -> dict[str, str]:
        """Environment variables for steps; empty when the connection does not exist."""
        try:
            conn = self.get_connection(self.mlflow_conn_id)
        except AirflowNotFoundException:
            return {}
        host = conn.host or ""
        if "://" in host:
            uri = host
        else:
            scheme = conn.schema or "http"
            uri = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
        env = {"MLFLOW_TRACKING_URI": uri}
        if conn.login:
            env["MLFLOW_TRACKING_USERNAME"] = conn.login
        if conn.password:
            env["MLFLOW_TRACKING_PASSWORD"] = conn.password
        return env
