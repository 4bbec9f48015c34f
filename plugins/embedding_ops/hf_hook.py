"""Hugging Face Hub settings for steps, from the Airflow connection ``huggingface_default``.

The connection's password (or its extra ``token``) becomes ``HF_TOKEN``: the token the publish step
pushes with, so it needs write access. Its host, when set, becomes ``HF_ENDPOINT`` (with scheme,
e.g. ``https://hub.internal``, or host + port + schema, schema default ``https``); without a host
the public Hub is used. Without the connection, steps get nothing from here (a worker's own
``HF_TOKEN`` still applies). Values are handed to steps as environment variables and never logged.

Example connection (as an environment variable)::

    AIRFLOW_CONN_HUGGINGFACE_DEFAULT='{"conn_type": "huggingface", "password": "hf_..."}'
"""

from __future__ import annotations

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowNotFoundException


class HuggingFaceHook(BaseHook):
    """Reads the Hugging Face Hub token and endpoint from an Airflow connection."""

    conn_name_attr = "hf_conn_id"
    default_conn_name = "huggingface_default"
    conn_type = "huggingface"
    hook_name = "Hugging Face Hub"

    def __init__(self, hf_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.hf_conn_id = hf_conn_id

    def step_env(self) -> dict[str, str]:
        """Environment variables for steps; empty when the connection does not exist."""
        try:
            conn = self.get_connection(self.hf_conn_id)
        except AirflowNotFoundException:
            return {}
        env: dict[str, str] = {}
        extra = conn.extra_dejson or {}
        token = conn.password or extra.get("token")
        if token:
            env["HF_TOKEN"] = str(token)
        host = (conn.host or "").strip()
        if host:
            if "://" in host:
                endpoint = host
            else:
                scheme = conn.schema or "https"
                endpoint = f"{scheme}://{host}" + (f":{conn.port}" if conn.port else "")
            env["HF_ENDPOINT"] = endpoint.rstrip("/")
        return env
