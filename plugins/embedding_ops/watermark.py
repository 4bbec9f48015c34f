"""The annotation watermark: how far into an Argilla dataset the trained model reaches.

The watermark of a dataset is the ``updated_at`` of the newest *submitted* response that a
successful retrain run trained on (the ``annotation_watermark`` of the ``prepare`` step's summary).
Only responses submitted after it count as "new" for the watcher DAG. Two records are kept, each
an Airflow Variable holding JSON, keyed per workspace + dataset:

- ``embedding_annotations_watermark__<workspace>__<dataset>``, the *committed* watermark::

      {"watermark": "2026-01-02T03:04:05.123456+00:00", "dag_id": "retrain_embeddings",
       "run_id": "asset_triggered__...", "updated_at": "...", "dataset": "...", "workspace": "..."}

  Written only by the ``commit_watermark`` task, the last task of ``retrain_embeddings``, which
  runs only when no task of the run failed, and only ever moved forward (:func:`commit`).
- ``embedding_annotations_pending__<workspace>__<dataset>``, the *pending* mark: the newest
  response the watcher fired for, and when (:func:`record_pending`). While a retrain run for it is
  in flight, the watcher counts only responses after it, so one batch of annotations starts one
  run. It is ignored once the committed watermark reaches it, or once it is older than the
  watcher's ``pending_timeout_minutes`` (then a failed run's annotations fire again; the nightly
  run picks them up as well, since every run exports all submitted annotations).

An empty workspace is written ``_``. Delete the committed Variable to retrain on everything at the
next trigger; set it by hand (same JSON) to skip history.

:data:`ANNOTATIONS_ASSET` is the asset the watcher updates and ``retrain_embeddings`` is scheduled
on (``AssetOrTimeSchedule``: nightly cron OR this asset); its events carry
``{"dataset", "workspace", "count", "newest", "since"}`` as extra.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from airflow.sdk import Asset, BaseOperator
from airflow.sdk.exceptions import AirflowSkipException

#: Updated by the watcher DAG when enough new annotations were submitted; ``retrain_embeddings``
#: runs on "nightly cron OR this asset".
ANNOTATIONS_ASSET = Asset(name="argilla_annotations")

WATERMARK_PREFIX = "embedding_annotations_watermark"
PENDING_PREFIX = "embedding_annotations_pending"
#: Values of ``annotation_watermark`` that mean "no watermark" (sources other than Argilla).
NO_WATERMARK = ("", "none", "null")


class KeyValueStore(Protocol):
    """Where watermark records live: JSON objects by key (Airflow Variables in production)."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def set(self, key: str, value: dict[str, Any]) -> None: ...


class VariableStore:
    """Watermark records as JSON Airflow Variables (through the task SDK: usable in tasks)."""

    def get(self, key: str) -> dict[str, Any] | None:
        """The record under ``key``, or None when there is none."""
        from airflow.sdk import Variable

        value = Variable.get(key, default=None, deserialize_json=True)
        return value if isinstance(value, dict) else None

    def set(self, key: str, value: dict[str, Any]) -> None:
        """Store ``value`` under ``key``."""
        from airflow.sdk import Variable

        Variable.set(key, value, serialize_json=True)


def parse_timestamp(value: Any) -> datetime | None:
    """A timezone-aware UTC datetime from an ISO 8601 string or datetime; None for no value.

    Naive values (Argilla's ``updated_at``) are taken as UTC; ``"none"`` and ``""`` are None.

    Example::

        parse_timestamp("2026-01-02T03:04:05Z")  # datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    """
    if value is None:
        return None
    if isinstance(value, datetime):
        dt = value
    else:
        text = str(value).strip()
        if text.lower() in NO_WATERMARK:
            return None
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise ValueError(f"{text!r} is not an ISO 8601 timestamp") from None
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def format_timestamp(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with microseconds kept (``2026-01-02T03:04:05.000001+00:00``)."""
    return None if value is None else parse_timestamp(value).isoformat()


def variable_key(prefix: str, dataset: str, workspace: str = "") -> str:
    """``<prefix>__<workspace or _>__<dataset>`` with characters outside ``[A-Za-z0-9._-]``
    replaced by ``_`` (valid as an Airflow Variable key)."""
    if not dataset:
        raise ValueError("an Argilla dataset name is needed for its watermark")

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"

    return f"{prefix}__{safe(workspace)}__{safe(dataset)}"


def _store(store: KeyValueStore | None) -> KeyValueStore:
    return store if store is not None else VariableStore()


def _now(now: datetime | None) -> datetime:
    return parse_timestamp(now) if now is not None else datetime.now(UTC)


def read_watermark(
    dataset: str, workspace: str = "", store: KeyValueStore | None = None
) -> dict[str, Any] | None:
    """The committed watermark record of a dataset (None before the first commit)."""
    return _store(store).get(variable_key(WATERMARK_PREFIX, dataset, workspace))


def committed_watermark(
    dataset: str, workspace: str = "", store: KeyValueStore | None = None
) -> datetime | None:
    """The committed watermark of a dataset as a datetime (None before the first commit)."""
    record = read_watermark(dataset, workspace, store)
    return parse_timestamp(record.get("watermark")) if record else None


def commit(
    dataset: str,
    workspace: str,
    candidate: Any,
    *,
    dag_id: str,
    run_id: str,
    store: KeyValueStore | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Move the committed watermark to ``candidate`` if that is later; never move it back.

    :return: ``{"moved": bool, "watermark": <committed after the call>, "previous": ...,
        "candidate": ...}`` (timestamps as ISO strings).

    Example::

        commit("faq-pairs", "", "2026-01-02T03:04:05Z", dag_id="retrain_embeddings",
               run_id="manual__1")["moved"]  # True the first time, False for an older candidate
    """
    store = _store(store)
    new = parse_timestamp(candidate)
    if new is None:
        raise ValueError("no watermark to commit")
    key = variable_key(WATERMARK_PREFIX, dataset, workspace)
    record = store.get(key)
    previous = parse_timestamp(record.get("watermark")) if record else None
    result = {
        "dataset": dataset,
        "workspace": workspace,
        "candidate": format_timestamp(new),
        "previous": format_timestamp(previous),
        "moved": previous is None or new > previous,
    }
    if result["moved"]:
        store.set(
            key,
            {
                "watermark": format_timestamp(new),
                "dag_id": dag_id,
                "run_id": run_id,
                "updated_at": format_timestamp(_now(now)),
                "dataset": dataset,
                "workspace": workspace,
            },
        )
    result["watermark"] = format_timestamp(new if result["moved"] else previous)
    return result


def read_pending(
    dataset: str, workspace: str = "", store: KeyValueStore | None = None
) -> dict[str, Any] | None:
    """The watcher's pending mark of a dataset (None when it never fired)."""
    return _store(store).get(variable_key(PENDING_PREFIX, dataset, workspace))


def record_pending(
    dataset: str,
    workspace: str,
    mark: Any,
    *,
    count: int,
    run_id: str,
    store: KeyValueStore | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Remember that the watcher fired for responses up to ``mark`` (kept if already later)."""
    store = _store(store)
    key = variable_key(PENDING_PREFIX, dataset, workspace)
    old = store.get(key)
    new = parse_timestamp(mark)
    old_mark = parse_timestamp(old.get("mark")) if old else None
    if old_mark is not None and (new is None or old_mark > new):
        new = old_mark
    record = {
        "mark": format_timestamp(new),
        "fired_at": format_timestamp(_now(now)),
        "count": int(count),
        "run_id": run_id,
        "dataset": dataset,
        "workspace": workspace,
    }
    store.set(key, record)
    return record


def count_since(
    dataset: str,
    workspace: str = "",
    *,
    pending_timeout: timedelta,
    store: KeyValueStore | None = None,
    now: datetime | None = None,
) -> tuple[datetime | None, datetime | None]:
    """Where the watcher starts counting, and until when that holds.

    :return: ``(since, until)``: ``since`` is the committed watermark, or the pending mark while it
        is later and younger than ``pending_timeout``; ``until`` is when the pending mark expires
        (None when it does not apply). Responses with ``updated_at > since`` are new.
    """
    committed = committed_watermark(dataset, workspace, store)
    pending = read_pending(dataset, workspace, store)
    if not pending:
        return committed, None
    mark = parse_timestamp(pending.get("mark"))
    fired_at = parse_timestamp(pending.get("fired_at"))
    if mark is None or fired_at is None or (committed is not None and committed >= mark):
        return committed, None
    until = fired_at + pending_timeout
    if _now(now) >= until:
        return committed, None
    return mark, until


def _extra(event: Any) -> Mapping[str, Any]:
    extra = event.get("extra") if isinstance(event, Mapping) else getattr(event, "extra", None)
    return extra if isinstance(extra, Mapping) else {}


def newest_in_events(events: Iterable[Any], dataset: str, workspace: str = "") -> datetime | None:
    """The latest ``newest`` among annotation asset events for this dataset + workspace."""
    marks = [
        parse_timestamp(extra.get("newest"))
        for extra in map(_extra, events)
        if extra.get("dataset") == dataset and (extra.get("workspace") or "") == workspace
    ]
    marks = [m for m in marks if m is not None]
    return max(marks) if marks else None


def commit_for_run(
    params: Mapping[str, Any],
    prepare_summary: Mapping[str, Any] | None,
    triggering_events: Iterable[Any],
    *,
    dag_id: str,
    run_id: str,
    store: KeyValueStore | None = None,
) -> dict[str, Any]:
    """The body of the retrain DAG's ``commit_watermark`` task (runs when no task failed).

    - source other than ``argilla``: nothing to commit (skip);
    - ``prepare`` returned a summary with ``annotation_watermark``: commit it (what this run
      trained on, or, for a "nothing to do" summary, what the model already holds);
    - ``prepare`` found nothing to do and left no summary (the step runners skip without an
      XCom): the model already holds exactly this data, so the ``newest`` of the run's triggering
      annotation events is committed; without such events (a quiet nightly run) there is nothing
      to commit (skip).

    :raises AirflowSkipException: when there is nothing to commit, with the reason.
    :return: the result of :func:`commit`.
    """
    source = params.get("source")
    if source != "argilla":
        raise AirflowSkipException(f"source is {source!r}: no annotation watermark to commit")
    dataset = str(params.get("argilla_dataset") or "")
    workspace = str(params.get("argilla_workspace") or "")
    if not dataset:
        raise AirflowSkipException("argilla_dataset is empty: no annotation watermark to commit")
    summary = dict(prepare_summary or {})
    nothing_to_do = not summary or bool(summary.get("nothing_to_do"))
    candidate = parse_timestamp(summary.get("annotation_watermark"))
    if candidate is not None:
        origin = "prepare (nothing to do)" if nothing_to_do else "prepare"
    elif not nothing_to_do:
        raise AirflowSkipException("prepare reported no annotation_watermark: nothing to commit")
    else:
        candidate = newest_in_events(triggering_events, dataset, workspace)
        if candidate is None:
            raise AirflowSkipException(
                "prepare found nothing to do and no annotation event triggered this run: "
                "nothing to commit"
            )
        origin = "triggering annotation events (prepare found nothing to do)"
    result = commit(dataset, workspace, candidate, dag_id=dag_id, run_id=run_id, store=store)
    result["origin"] = origin
    return result


def annotations_event(
    payload: Mapping[str, Any],
    *,
    run_id: str,
    store: KeyValueStore | None = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The body of the watcher's ``emit_annotations_event`` task: the asset event's extra.

    Skips (no event) when the committed watermark already covers every counted response (a run
    committed while the sensor waited). Otherwise records the pending mark and returns
    ``{"dataset", "workspace", "count", "newest", "since"}``.

    :raises AirflowSkipException: when the responses were trained on meanwhile.
    """
    dataset = str(payload["dataset"])
    workspace = str(payload.get("workspace") or "")
    newest = parse_timestamp(payload.get("newest"))
    if newest is None:
        raise ValueError("the sensor's result has no 'newest' timestamp")
    committed = committed_watermark(dataset, workspace, store)
    if committed is not None and committed >= newest:
        raise AirflowSkipException(
            f"watermark {format_timestamp(committed)} already covers the "
            f"{payload.get('count')} responses up to {format_timestamp(newest)}"
        )
    extra = {
        "dataset": dataset,
        "workspace": workspace,
        "count": int(payload.get("count") or 0),
        "newest": format_timestamp(newest),
        "since": format_timestamp(parse_timestamp(payload.get("since"))),
    }
    record_pending(
        dataset, workspace, newest, count=extra["count"], run_id=run_id, store=store, now=now
    )
    return extra


class CommitWatermarkOperator(BaseOperator):
    """The retrain DAG's last task: :func:`commit_for_run` with this run's params, the
    ``prepare`` summary (XCom) and the triggering annotation events.

    Give it every other task as upstream and ``trigger_rule="none_failed"``: it runs when nothing
    failed, including runs whose later steps were skipped ("nothing to do", no Hub push). When
    ``prepare`` produced data, each of ``required_task_ids`` must have returned its summary too
    (the model was registered); a run in which one of them was skipped commits nothing.

    :param prepare_task_id: the task whose summary holds ``annotation_watermark``.
    :param required_task_ids: tasks that must have succeeded when ``prepare`` did.
    :param store: where watermarks live (tests); default Airflow Variables.
    """

    ui_color = "#eef6e8"

    def __init__(
        self,
        *,
        prepare_task_id: str = "prepare",
        required_task_ids: tuple[str, ...] = ("register",),
        store: KeyValueStore | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("trigger_rule", "none_failed")
        super().__init__(**kwargs)
        self.prepare_task_id = prepare_task_id
        self.required_task_ids = tuple(required_task_ids)
        self.store = store

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        summary = ti.xcom_pull(task_ids=self.prepare_task_id)
        if summary and not summary.get("nothing_to_do"):
            for task_id in self.required_task_ids:
                if ti.xcom_pull(task_ids=task_id) is None:
                    raise AirflowSkipException(
                        f"{task_id} did not complete in this run: the watermark stays"
                    )
        events = context.get("triggering_asset_events") or {}
        result = commit_for_run(
            context["params"],
            summary,
            events.get(ANNOTATIONS_ASSET, []) if events else [],
            dag_id=ti.dag_id,
            run_id=ti.run_id,
            store=self.store,
        )
        if result["moved"]:
            self.log.info(
                "Annotation watermark of %r moved from %s to %s (from %s)",
                result["dataset"],
                result["previous"] or "nothing",
                result["watermark"],
                result["origin"],
            )
        else:
            self.log.info(
                "Annotation watermark of %r stays at %s (this run's %s is not later)",
                result["dataset"],
                result["watermark"],
                result["candidate"],
            )
        return result


class EmitAnnotationsEventOperator(BaseOperator):
    """The watcher's second task: update :data:`ANNOTATIONS_ASSET` with the sensor's count.

    Reads the sensor's XCom, runs :func:`annotations_event` (skips when a run trained on those
    responses meanwhile) and sets the asset event's extra ``{dataset, workspace, count, newest,
    since}``.

    :param sensor_task_id: the :class:`~embedding_ops.argilla_sensor.ArgillaAnnotationSensor`.
    :param store: where watermarks live (tests); default Airflow Variables.
    """

    ui_color = "#eef6e8"

    def __init__(
        self,
        *,
        sensor_task_id: str = "wait_for_annotations",
        store: KeyValueStore | None = None,
        **kwargs: Any,
    ) -> None:
        kwargs.setdefault("outlets", [ANNOTATIONS_ASSET])
        super().__init__(**kwargs)
        self.sensor_task_id = sensor_task_id
        self.store = store

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        payload = ti.xcom_pull(task_ids=self.sensor_task_id)
        if not payload:
            raise ValueError(f"task {self.sensor_task_id!r} returned no annotation count")
        extra = annotations_event(payload, run_id=ti.run_id, store=self.store)
        context["outlet_events"][ANNOTATIONS_ASSET].extra = extra
        self.log.info("Annotations asset updated: %s", extra)
        return extra
