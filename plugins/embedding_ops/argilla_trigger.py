"""A trigger that waits for new submitted annotations in an Argilla dataset.

:class:`ArgillaAnnotationTrigger` runs in the triggerer: every ``poll_interval`` seconds it asks
the Argilla REST API (``httpx.AsyncClient``, header ``X-Argilla-Api-Key``) for the dataset's records
with their responses and counts the responses with status ``submitted`` whose ``updated_at`` is
later than ``since`` (the watermark). It fires once that count reaches ``min_responses``.

Events (the payload is what the sensor's ``execute_complete`` receives):

- ``{"status": "fired", "count", "newest", "since", "dataset", "workspace", "dataset_id"}``:
  enough new responses; ``newest`` is the latest ``updated_at`` among them (ISO 8601, UTC);
- ``{"status": "recheck", ...}``: ``recheck_at`` passed (the sensor recomputes ``since`` and waits
  again: the watcher's pending mark expired, or the committed watermark may have moved);
- ``{"status": "error", "message", ...}``: a one-line reason. Wrong key (401/403), unknown
  dataset or workspace and rejected requests end at once; an unreachable server or 5xx answers
  are retried with exponential backoff (``poll_interval`` doubling, at most ``max_backoff``
  seconds) and end in an error after ``max_failures`` failures in a row.

The API key is never part of the trigger's kwargs (they are stored in the metadata database):
``run()`` reads it from the Airflow connection ``argilla_conn_id`` through
:class:`~embedding_ops.argilla_hook.ArgillaHook`.

Example::

    from embedding_ops.argilla_trigger import ArgillaAnnotationTrigger

    trigger = ArgillaAnnotationTrigger(dataset="faq-pairs", min_responses=50, poll_interval=60,
                                       since="2026-01-02T03:04:05+00:00")
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from embedding_ops.watermark import format_timestamp, parse_timestamp
from tasks.io import InvalidInputError
from tasks.sources.argilla import pick_dataset

#: Records per search request (the most Argilla 2 accepts).
PAGE_SIZE = 1000
REQUEST_TIMEOUT_S = 30.0


class ArgillaRequestError(RuntimeError):
    """Argilla answered, but no retry can help (bad key, unknown dataset, rejected request)."""


class ArgillaUnavailableError(RuntimeError):
    """Argilla could not be reached or failed on its side (connection error, timeout, 5xx)."""


@dataclass
class AnnotationCount:
    """What one check found: responses submitted after ``since``."""

    count: int
    newest: str | None
    since: str | None
    dataset: str
    workspace: str
    dataset_id: str
    records_scanned: int

    def payload(self, status: str) -> dict[str, Any]:
        """The event payload for ``status`` (``fired`` or ``recheck``)."""
        return {"status": status, **asdict(self)}


def _raise_for_status(response: httpx.Response, what: str, url: str) -> None:
    code = response.status_code
    if code < 400:
        return
    if code >= 500:
        raise ArgillaUnavailableError(f"Argilla at {url} answered HTTP {code} to {what}")
    if code in (401, 403):
        raise ArgillaRequestError(
            f"Argilla at {url} rejected the API key (HTTP {code}) for {what}: set a valid key "
            "(owner or admin of the dataset's workspace) as the connection's password"
        )
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = response.text[:200]
    raise ArgillaRequestError(f"Argilla at {url} refused {what} (HTTP {code}): {detail}")


async def _get(client: httpx.AsyncClient, path: str, what: str, **kwargs: Any) -> Any:
    return await _call(client, "GET", path, what, **kwargs)


async def _call(client: httpx.AsyncClient, method: str, path: str, what: str, **kwargs: Any) -> Any:
    url = str(client.base_url).rstrip("/")
    try:
        response = await client.request(method, path, **kwargs)
    except (httpx.TransportError, httpx.TimeoutException) as exc:
        raise ArgillaUnavailableError(
            f"cannot reach Argilla at {url} ({type(exc).__name__}: {exc or 'no answer'})"
        ) from None
    _raise_for_status(response, what, url)
    try:
        return response.json()
    except ValueError:
        raise ArgillaUnavailableError(f"Argilla at {url} sent no JSON for {what}") from None


async def resolve_dataset(client: httpx.AsyncClient, dataset: str, workspace: str = "") -> str:
    """The id of ``dataset`` in ``workspace``, by the Argilla source's own rule
    (:func:`tasks.sources.argilla.pick_dataset`), so the watcher counts the responses of the
    dataset that the run it triggers will export.

    :raises ArgillaRequestError: when the workspace or dataset does not exist for this key, or the
        name is ambiguous without a workspace; the one line lists what exists.
    """
    datasets = (await _get(client, "/api/v1/me/datasets", "listing datasets")).get("items", [])
    spaces = (await _get(client, "/api/v1/me/workspaces", "listing workspaces")).get("items", [])
    try:
        found = pick_dataset(
            dataset,
            workspace,
            {str(w.get("id")): str(w.get("name")) for w in spaces},
            [(str(d.get("id")), str(d.get("name")), str(d.get("workspace_id"))) for d in datasets],
            dataset_setting="the watcher's dataset param (EMBED_ARGILLA_DATASET)",
            workspace_setting="its workspace param (EMBED_ARGILLA_WORKSPACE)",
        )
    except InvalidInputError as exc:
        raise ArgillaRequestError(str(exc)) from None
    return found.id


async def count_submitted_since(
    client: httpx.AsyncClient,
    dataset: str,
    workspace: str = "",
    since: Any = None,
    dataset_id: str | None = None,
) -> AnnotationCount:
    """Count the dataset's responses with status ``submitted`` and ``updated_at > since``.

    Pages through ``POST /api/v1/datasets/{id}/records/search?include=responses`` filtered to
    records that have a submitted response, and counts every annotator's response.

    :param dataset_id: the dataset's id when already known (else looked up by name).
    """
    since_dt = parse_timestamp(since)
    dataset_id = dataset_id or await resolve_dataset(client, dataset, workspace)
    body = {
        "filters": {
            "and": [
                {
                    "type": "terms",
                    "scope": {"entity": "response", "property": "status"},
                    "values": ["submitted"],
                }
            ]
        }
    }
    count, newest, scanned, offset = 0, None, 0, 0
    while True:
        page = await _call(
            client,
            "POST",
            f"/api/v1/datasets/{dataset_id}/records/search",
            "searching records",
            params={"include": "responses", "offset": offset, "limit": PAGE_SIZE},
            json=body,
        )
        items = page.get("items") or []
        for item in items:
            record = item.get("record", item)
            for response in record.get("responses") or []:
                if response.get("status") != "submitted":
                    continue
                updated = parse_timestamp(response.get("updated_at"))
                if updated is None or (since_dt is not None and updated <= since_dt):
                    continue
                count += 1
                newest = updated if newest is None or updated > newest else newest
        scanned += len(items)
        offset += len(items)
        if not items or offset >= int(page.get("total") or 0):
            break
    return AnnotationCount(
        count=count,
        newest=format_timestamp(newest),
        since=format_timestamp(since_dt),
        dataset=dataset,
        workspace=workspace,
        dataset_id=dataset_id,
        records_scanned=scanned,
    )


def api_client(api_url: str, api_key: str) -> httpx.AsyncClient:
    """An ``httpx.AsyncClient`` for the Argilla REST API (the key only in its headers)."""
    return httpx.AsyncClient(
        base_url=api_url.rstrip("/"),
        headers={"X-Argilla-Api-Key": api_key},
        timeout=REQUEST_TIMEOUT_S,
    )


async def check_once(
    api_url: str, api_key: str, dataset: str, workspace: str = "", since: Any = None
) -> AnnotationCount:
    """One count with a fresh client (used by the sensor before it defers)."""
    async with api_client(api_url, api_key) as client:
        return await count_submitted_since(client, dataset, workspace, since)


class ArgillaAnnotationTrigger(BaseTrigger):
    """Fire when ``min_responses`` responses were submitted in an Argilla dataset after ``since``.

    :param dataset: Argilla dataset name.
    :param workspace: its workspace (empty: the only dataset of that name the key can see).
    :param min_responses: submitted responses after ``since`` needed to fire.
    :param poll_interval: seconds between checks.
    :param since: ISO 8601 watermark; None counts every submitted response.
    :param argilla_conn_id: Airflow connection with the URL (host) and API key (password).
    :param recheck_at: ISO 8601 time after which the trigger ends with a ``recheck`` event.
    :param max_failures: unreachable/5xx checks in a row before an ``error`` event.
    :param max_backoff: longest wait (seconds) between retries of an unreachable server.
    """

    def __init__(
        self,
        *,
        dataset: str,
        workspace: str = "",
        min_responses: int = 1,
        poll_interval: float = 60.0,
        since: str | None = None,
        argilla_conn_id: str = "argilla_default",
        recheck_at: str | None = None,
        max_failures: int = 10,
        max_backoff: float = 600.0,
    ) -> None:
        super().__init__()
        self.dataset = dataset
        self.workspace = workspace or ""
        self.min_responses = int(min_responses)
        self.poll_interval = float(poll_interval)
        self.since = format_timestamp(parse_timestamp(since))
        self.argilla_conn_id = argilla_conn_id
        self.recheck_at = format_timestamp(parse_timestamp(recheck_at))
        self.max_failures = int(max_failures)
        self.max_backoff = float(max_backoff)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        """``(import path, kwargs)``; the kwargs never hold the API key."""
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "dataset": self.dataset,
                "workspace": self.workspace,
                "min_responses": self.min_responses,
                "poll_interval": self.poll_interval,
                "since": self.since,
                "argilla_conn_id": self.argilla_conn_id,
                "recheck_at": self.recheck_at,
                "max_failures": self.max_failures,
                "max_backoff": self.max_backoff,
            },
        )

    def _error(self, message: str) -> TriggerEvent:
        return TriggerEvent(
            {
                "status": "error",
                "message": message,
                "dataset": self.dataset,
                "workspace": self.workspace,
            }
        )

    async def _connection(self) -> tuple[str, str]:
        from asgiref.sync import sync_to_async

        from embedding_ops.argilla_hook import ArgillaHook

        return await sync_to_async(ArgillaHook(self.argilla_conn_id).connection_values)()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Poll until enough new responses (``fired``), ``recheck_at`` (``recheck``) or an
        error that retries cannot fix (``error``)."""
        try:
            api_url, api_key = await self._connection()
        except Exception as exc:  # a missing connection: one line that names it
            yield self._error(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            return
        recheck_at = parse_timestamp(self.recheck_at)
        failures = 0
        last_count = -1
        dataset_id: str | None = None
        async with api_client(api_url, api_key) as client:
            while True:
                try:
                    dataset_id = dataset_id or await resolve_dataset(
                        client, self.dataset, self.workspace
                    )
                    found = await count_submitted_since(
                        client, self.dataset, self.workspace, self.since, dataset_id
                    )
                except ArgillaRequestError as exc:
                    yield self._error(str(exc))
                    return
                except ArgillaUnavailableError as exc:
                    failures += 1
                    if failures >= self.max_failures:
                        yield self._error(f"{exc}; gave up after {failures} attempts in a row")
                        return
                    delay = min(self.poll_interval * 2**failures, self.max_backoff)
                    self.log.warning(
                        "%s (attempt %d of %d); retrying in %.1f s",
                        exc,
                        failures,
                        self.max_failures,
                        delay,
                    )
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                if found.count != last_count:  # one line per change, not per poll
                    self.log.info(
                        "Argilla dataset %r: %d submitted responses after %s (need %d)",
                        self.dataset,
                        found.count,
                        found.since or "the beginning",
                        self.min_responses,
                    )
                    last_count = found.count
                if found.count >= self.min_responses:
                    yield TriggerEvent(found.payload("fired"))
                    return
                if recheck_at is not None and datetime.now(UTC) >= recheck_at:
                    yield TriggerEvent(found.payload("recheck"))
                    return
                await asyncio.sleep(self.poll_interval)
