"""A deferrable sensor that waits for enough newly submitted annotations in Argilla.

:class:`ArgillaAnnotationSensor` reads where counting starts (the committed annotation watermark,
or the watcher's pending mark while a retrain run it triggered is in flight: see
:func:`embedding_ops.watermark.count_since`), checks once right away, and otherwise defers to
:class:`~embedding_ops.argilla_trigger.ArgillaAnnotationTrigger`, which holds no worker slot while
it polls. Its XCom is the trigger's ``fired`` payload: ``{"count", "newest", "since", "dataset",
"workspace", ...}``.

Errors from the trigger (bad key, unknown dataset, Argilla unreachable for too long) fail the task
with the trigger's one-line reason, so the task's retries apply. Give the task retries: a deferred
task can also be failed by a late executor event in Airflow 3.3 (apache/airflow#72716).

Example::

    wait = ArgillaAnnotationSensor(task_id="wait_for_annotations", dataset="faq-pairs",
                                   min_responses=50, poll_interval=60, retries=3)
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from airflow.sdk import BaseSensorOperator
from airflow.sdk.exceptions import AirflowException, AirflowFailException

from embedding_ops.argilla_trigger import (
    ArgillaAnnotationTrigger,
    ArgillaRequestError,
    ArgillaUnavailableError,
    check_once,
)
from embedding_ops.watermark import KeyValueStore, count_since, format_timestamp


class ArgillaAnnotationSensor(BaseSensorOperator):
    """Wait until ``min_responses`` responses were submitted after the annotation watermark.

    :param dataset: Argilla dataset name (templated).
    :param workspace: its workspace; empty = the only dataset of that name the key sees
        (templated).
    :param min_responses: new submitted responses needed (templated).
    :param poll_interval: seconds between checks in the triggerer (templated).
    :param pending_timeout_minutes: how long a fired-for mark holds back counting while its
        retrain run is in flight (templated); afterwards counting restarts at the committed
        watermark, so a failed run's annotations fire again.
    :param recheck_minutes: the trigger hands back at least this often so the sensor re-reads the
        committed watermark (a nightly run may have trained on the annotations meanwhile).
    :param argilla_conn_id: Airflow connection holding the Argilla URL and API key.
    :param max_failures: unreachable checks in a row before the trigger gives up.
    :param store: where watermarks live (tests); default Airflow Variables.
    """

    template_fields = (
        "dataset",
        "workspace",
        "min_responses",
        "poll_interval",
        "pending_timeout_minutes",
    )
    ui_color = "#fdf1e6"

    def __init__(
        self,
        *,
        dataset: str,
        workspace: str = "",
        min_responses: int | str = 50,
        poll_interval: float | str = 60.0,
        pending_timeout_minutes: float | str = 720.0,
        recheck_minutes: float = 60.0,
        argilla_conn_id: str = "argilla_default",
        max_failures: int = 10,
        store: KeyValueStore | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("poke_interval", 60)
        super().__init__(**kwargs)
        self.dataset = dataset
        self.workspace = workspace
        self.min_responses = min_responses
        self.poll_interval = poll_interval
        self.pending_timeout_minutes = pending_timeout_minutes
        self.recheck_minutes = recheck_minutes
        self.argilla_conn_id = argilla_conn_id
        self.max_failures = max_failures
        self.store = store

    def _settings(self) -> tuple[str, str, int, float, float]:
        dataset = str(self.dataset or "").strip()
        workspace = str(self.workspace or "").strip()
        if not dataset:
            raise AirflowFailException(
                "no Argilla dataset to watch: set EMBED_ARGILLA_DATASET or the 'dataset' param"
            )
        try:
            min_responses = int(self.min_responses)
            poll_interval = float(self.poll_interval)
            pending_minutes = float(self.pending_timeout_minutes)
        except (TypeError, ValueError):
            raise AirflowFailException(
                "min_responses, poll_interval and pending_timeout_minutes must be numbers"
            ) from None
        if min_responses < 1 or poll_interval <= 0 or pending_minutes < 0:
            raise AirflowFailException(
                "min_responses must be >= 1, poll_interval > 0 and pending_timeout_minutes >= 0"
            )
        return dataset, workspace, min_responses, poll_interval, pending_minutes

    def _connection(self) -> tuple[str, str]:
        from embedding_ops.argilla_hook import ArgillaHook

        try:
            return ArgillaHook(self.argilla_conn_id).connection_values()
        except AirflowException as exc:
            raise AirflowFailException(str(exc)) from None

    def poke(self, context: Any) -> bool:
        """One synchronous check (poke/reschedule mode): enough new responses?"""
        return self._check(context)[0] is not None

    def _check(self, context: Any) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        """``(fired payload or None, trigger kwargs)`` from one synchronous count."""
        from datetime import UTC, datetime

        dataset, workspace, min_responses, poll_interval, pending_minutes = self._settings()
        now = datetime.now(UTC)
        since, pending_until = count_since(
            dataset,
            workspace,
            pending_timeout=timedelta(minutes=pending_minutes),
            store=self.store,
            now=now,
        )
        recheck_at = now + timedelta(minutes=self.recheck_minutes)
        if pending_until is not None:
            recheck_at = min(recheck_at, pending_until)
        trigger_kwargs = {
            "dataset": dataset,
            "workspace": workspace,
            "min_responses": min_responses,
            "poll_interval": poll_interval,
            "since": format_timestamp(since),
            "argilla_conn_id": self.argilla_conn_id,
            "recheck_at": format_timestamp(recheck_at),
            "max_failures": self.max_failures,
        }
        self.log.info(
            "Watching Argilla dataset %r%s for %d submitted responses after %s%s",
            dataset,
            f" in workspace {workspace!r}" if workspace else "",
            min_responses,
            format_timestamp(since) or "the beginning",
            " (pending mark of a triggered run)" if pending_until else "",
        )
        api_url, api_key = self._connection()
        try:
            found = asyncio.run(check_once(api_url, api_key, dataset, workspace, since))
        except ArgillaRequestError as exc:
            raise AirflowException(str(exc)) from None
        except ArgillaUnavailableError as exc:
            self.log.warning("%s; the trigger keeps trying", exc)
            return None, trigger_kwargs
        self.log.info("%d new submitted responses (need %d)", found.count, min_responses)
        if found.count >= min_responses:
            return found.payload("fired"), trigger_kwargs
        return None, trigger_kwargs

    def execute(self, context: Any) -> dict[str, Any]:
        """Fire at once when enough responses are there, else defer to the trigger."""
        payload, trigger_kwargs = self._check(context)
        if payload is not None:
            return payload
        self.defer(
            trigger=ArgillaAnnotationTrigger(**trigger_kwargs), method_name="execute_complete"
        )

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> Any:
        """Resume after the trigger: the payload on ``fired``, check again on ``recheck``,
        fail with the trigger's reason on ``error`` (retries apply)."""
        status = (event or {}).get("status")
        if status == "fired":
            self.log.info(
                "%s new submitted responses in %r, newest %s",
                event.get("count"),
                event.get("dataset"),
                event.get("newest"),
            )
            return event
        if status == "recheck":
            return self.execute(context)
        message = (event or {}).get("message") or f"unexpected trigger event {event!r}"
        raise AirflowException(f"watching Argilla failed: {message}")
