"""Argilla settings for steps and sensors, from the Airflow connection ``argilla_default``.

The connection's host is the Argilla server's URL: with scheme (``http://argilla:6900``), or host +
port + schema (schema default ``http``); an extra ``api_url`` wins over both. The password (or the
extra ``api_key``) is the API key. :meth:`ArgillaHook.step_env` hands them to the ``prepare`` step
as ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY``, the variables the ``argilla`` SDK reads. The key is
never logged and never part of a summary or XCom.

Example connection (as an environment variable)::

    AIRFLOW_CONN_ARGILLA_DEFAULT='{"conn_type": "argilla", "host": "http://argilla:6900",
                                   "password": "argilla.apikey"}'

Example::

    from embedding_ops.argilla_hook import ArgillaHook

    api_url, api_key = ArgillaHook().connection_values()
"""

from __future__ import annotations

from typing import Any

from airflow.sdk import BaseHook
from airflow.sdk.exceptions import AirflowException, AirflowNotFoundException


class ArgillaConnectionError(AirflowException):
    """The Argilla connection is missing or incomplete; the message names it and what to set."""


class ArgillaHook(BaseHook):
    """Reads the Argilla server URL and API key from an Airflow connection.

    :param argilla_conn_id: the Airflow connection to read (default ``argilla_default``).
    """

    conn_name_attr = "argilla_conn_id"
    default_conn_name = "argilla_default"
    conn_type = "argilla"
    hook_name = "Argilla"

    def __init__(self, argilla_conn_id: str = default_conn_name) -> None:
        super().__init__()
        self.argilla_conn_id = argilla_conn_id

    def connection_values(self) -> tuple[str, str]:
        """``(api_url, api_key)`` of the connection.

        :raises ArgillaConnectionError: (one line, naming the connection) when the connection does
            not exist or lacks the URL or the key.
        """
        try:
            conn = self.get_connection(self.argilla_conn_id)
        except AirflowNotFoundException:
            raise ArgillaConnectionError(
                f"Airflow connection {self.argilla_conn_id!r} does not exist: create it with "
                f"the Argilla URL as host and the API key as password"
            ) from None
        extra = conn.extra_dejson or {}
        api_url = _url(conn.host, conn.port, conn.schema, extra.get("api_url"))
        api_key = str(conn.password or extra.get("api_key") or "").strip()
        missing = [
            name
            for name, value in (("host (URL)", api_url), ("password (API key)", api_key))
            if not value
        ]
        if missing:
            raise ArgillaConnectionError(
                f"Airflow connection {self.argilla_conn_id!r} has no {' and no '.join(missing)}: "
                f"set the Argilla URL as host and the API key as password"
            )
        return api_url, api_key

    def step_env(self) -> dict[str, str]:
        """``{"ARGILLA_API_URL": ..., "ARGILLA_API_KEY": ...}`` for a step's environment.

        :raises ArgillaConnectionError: when the connection is missing or incomplete.
        """
        api_url, api_key = self.connection_values()
        return {"ARGILLA_API_URL": api_url, "ARGILLA_API_KEY": api_key}


def _url(host: str | None, port: int | None, schema: str | None, extra_url: Any) -> str:
    if extra_url:
        return str(extra_url).strip().rstrip("/")
    host = (host or "").strip()
    if not host:
        return ""
    if "://" in host:
        return host.rstrip("/")
    scheme = (schema or "").strip() or "http"
    return f"{scheme}://{host}" + (f":{port}" if port else "")
