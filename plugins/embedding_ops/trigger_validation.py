"""Refuse a trigger whose run config breaks a rule, before the run exists.

Airflow validates each trigger-form field against its own JSON schema (types, bounds, enums), but
not the rules that tie fields together: ``matryoshka_dims`` ordered large to small,
``best_metric_dim`` one of them, a data path for ``source=local``, ... Without this check such a
run would start and fail in its first step. :class:`TriggerConfValidation` is an ASGI middleware of
the api-server (registered by the plugin in ``plugins/embedding_ui_plugin.py``): on
``POST /api/v2/dags/{dag_id}/dagRuns`` for a DAG whose params are the run config
(:class:`tasks.config.RunConfig`), it merges the request's ``conf`` over the DAG's param defaults,
builds the config, and answers ``400 {"detail": "<one line>"}`` when a rule is broken. The
trigger form shows that line above its fields; REST clients get it as the response. Every other
request passes through untouched, and so does a trigger the check cannot judge (the DAG is
unknown or not a run-config DAG): Airflow's own handling then applies.

Example::

    from embedding_ops.trigger_validation import conf_error

    conf_error({"data_path": "pairs.jsonl"}, {"matryoshka_dims": [64, 128]})
    # "matryoshka_dims must go from large to small, got [64, 128]; use [128, 64]"
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from tasks.config import ConfigError, RunConfig, config_fields

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The REST route that creates a DAG run (the trigger form posts to it too).
TRIGGER_PATH = re.compile(r"/api/v2/dags/(?P<dag_id>[^/]+)/dagRuns/?")
CONFIG_NAMES = frozenset(f.name for f in config_fields())


def conf_error(defaults: Mapping[str, Any], conf: Mapping[str, Any] | None) -> str | None:
    """The broken rule of a trigger (one line), or ``None`` when the run config is valid.

    :param defaults: the DAG's param values (``{name: value}``), the values a trigger leaves out.
    :param conf: the trigger's ``conf``; names that are not config fields are ignored, as the
        steps ignore them.
    """
    values = {k: v for k, v in defaults.items() if k in CONFIG_NAMES}
    values.update({k: v for k, v in (conf or {}).items() if k in CONFIG_NAMES})
    try:
        RunConfig.from_mapping(values)
    except ConfigError as exc:
        return str(exc)
    return None


def dag_param_defaults(dag_id: str) -> dict[str, Any] | None:
    """The param values of the latest parsed version of ``dag_id``; ``None`` when the DAG is
    unknown or its params are not the run config."""
    from airflow.models.serialized_dag import SerializedDagModel

    dag = SerializedDagModel.get_dag(dag_id)
    if dag is None:
        return None
    if not CONFIG_NAMES <= set(dag.params):
        return None
    return dict(dag.params.dump())


def trigger_error(dag_id: str, body: bytes) -> str | None:
    """The one-line reason to refuse this trigger request, or ``None`` to let it through."""
    try:
        payload = json.loads(body or b"{}")
    except ValueError:
        return None  # Airflow answers malformed JSON itself
    if not isinstance(payload, dict):
        return None
    conf = payload.get("conf")
    if conf is not None and not isinstance(conf, dict):
        return None
    try:
        defaults = dag_param_defaults(dag_id)
    except Exception:  # the metadata DB is Airflow's to report on; never block a trigger for it
        log.warning("could not read the params of %s; trigger not checked", dag_id, exc_info=True)
        return None
    if defaults is None:
        return None
    error = conf_error(defaults, conf)
    return f"Invalid run config for {dag_id}: {error}" if error else None


class TriggerConfValidation:
    """ASGI middleware: ``400 {"detail": ...}`` for a trigger whose run config breaks a rule."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        match = None
        if scope["type"] == "http" and scope.get("method") == "POST":
            match = TRIGGER_PATH.fullmatch(scope.get("path", ""))
        if match is None:
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        from starlette.concurrency import run_in_threadpool

        error = await run_in_threadpool(trigger_error, match["dag_id"], body)
        if error:
            from starlette.responses import JSONResponse

            await JSONResponse({"detail": error}, status_code=400)(scope, receive, send)
            return
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)
