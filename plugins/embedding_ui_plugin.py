"""The retraining pipeline in the Airflow UI: each DAG run's report as a tab of the run's page.

The plugin ``embedding_retrain`` registers

- the FastAPI app of :mod:`embedding_ops.report_view`, mounted by the Airflow API server under
  :data:`URL_PREFIX` (``/embedding-report/runs/{dag_id}/{run_id}``: the report page;
  ``/embedding-report/runs/{dag_id}``: the DAG's runs);
- :data:`REPORT_VIEW`, an external view with destination ``dag_run``: the tab "Embedding report"
  on every DAG run's page, showing the report page in the UI's iframe. Its ``href`` has no
  leading slash, so it resolves against the UI's base URL (``[api] base_url``, a sub-path too);
- the root middleware :class:`embedding_ops.trigger_validation.TriggerConfValidation`: a trigger
  (form or REST) whose run config breaks a cross-field rule is refused with the rule, in one line,
  before the run exists.

Every Airflow process imports the plugins folder (workers for macros, the DAG processor, the
scheduler), so importing this file imports nothing but Airflow's plugin class: the app (and
FastAPI with it) is built the first time the API server asks for :attr:`fastapi_apps`, and the
middleware is imported when it asks for :attr:`fastapi_root_middlewares`.

Example::

    airflow plugins            # lists embedding_retrain with its app and external view
"""

from __future__ import annotations

from functools import cache
from typing import Any

from airflow.plugins_manager import AirflowPlugin

#: Where the API server mounts the report app.
URL_PREFIX = "/embedding-report"
#: The "Embedding report" tab of the DAG-run page; ``{DAG_ID}``/``{RUN_ID}`` are filled in (URL
#: encoded) by the UI.
REPORT_VIEW: dict[str, Any] = {
    "name": "Embedding report",
    "href": f"{URL_PREFIX.lstrip('/')}/runs/{{DAG_ID}}/{{RUN_ID}}",
    "destination": "dag_run",
    "url_route": "embedding-report",
}


@cache
def report_app() -> Any:
    """The report app, built once per process (see :func:`embedding_ops.report_view.create_app`)."""
    from embedding_ops.report_view import create_app

    return create_app()


class EmbeddingRetrainPlugin(AirflowPlugin):
    """The run report tab (an external view), the app that serves it, and the trigger check."""

    name = "embedding_retrain"
    external_views = [REPORT_VIEW]

    @property
    def fastapi_apps(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The report app and its prefix, built when first asked for (by the API server)."""
        return [{"app": report_app(), "url_prefix": URL_PREFIX, "name": "Embedding run reports"}]

    @property
    def fastapi_root_middlewares(self) -> list[dict[str, Any]]:  # type: ignore[override]
        """The trigger check, imported when first asked for (by the API server)."""
        from embedding_ops.trigger_validation import TriggerConfValidation

        return [{"middleware": TriggerConfValidation, "name": "Run config check on trigger"}]
