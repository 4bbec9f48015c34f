"""The Argilla source: the submitted annotations of one dataset as training pairs.

``source = "argilla"`` (see :mod:`tasks.sources`); settings ``argilla_dataset`` and
``argilla_workspace``. The dataset lookup (:func:`pick_dataset`) is shared with the annotation
watcher in ``plugins/``, which imports this module without the ``argilla`` package: the SDK is
imported only inside the functions that talk to the server.

The server and the API key come from ``ARGILLA_API_URL`` / ``ARGILLA_API_KEY`` (in Airflow: the
connection ``argilla_default``, see ``plugins/embedding_ops/argilla_hook.py``). The key must be an
owner's, or an admin's of the dataset's workspace: only they may read every annotator's responses.

**Mapping.** The column mapping of every source (``column_preset``, ``query_column``,
``document_column``, ``negative_column``) names the dataset's fields, questions or metadata
properties (Argilla keeps these names unique within a dataset):

- a *field* gives the record's text (e.g. the document, or a generated query);
- a *question* gives an annotator's submitted answer, e.g. a TextQuestion ``query`` whose
  suggestion is the generated query and whose answer is the query as the annotator corrected it
  (text and label questions only);
- a *metadata property* gives the record's metadata value.

**Which responses count.**

- Only SUBMITTED responses. Draft and discarded responses are never trained on; a record with no
  submitted response is skipped and counted by reason (``no_response``, ``draft_only``,
  ``discarded``).
- Several annotators on one record: every submitted response gives a candidate pair; identical
  candidates collapse into one, different answers (two annotators phrasing the query differently)
  are each a pair. Annotators' answers here are free text, for which a vote rarely has a majority,
  and every faithful rephrasing is a good positive for the ranking loss; an annotator who thinks
  a record is unfit discards it, which removes only that annotator's response (records where one
  annotator discarded and another submitted are counted as ``records_with_discard_and_submit``).
- Edits: Argilla keeps one response per annotator and record; editing it overwrites the value and
  moves its ``updated_at``. The export reads the current state, so the latest submitted value
  counts, and a response moved back to draft (or discarded) no longer counts.
- Snapshot: a response whose ``updated_at`` is at or after the moment the export started (the
  server's clock: the Date header of its first reply, which has a resolution of a second and may
  lag by about as much) is left for the next run, so every response older than the watermark is
  in this export and none newer is; one submitted in the last second or two before the export
  simply counts for the next run.

**Watermark and fingerprint.** The annotation watermark is the newest ``updated_at`` among the
submitted responses the export included (ISO 8601, UTC). The annotation fingerprint is an
order-independent hash of (record id, annotator id, ``updated_at``) of those responses; prepare
mixes it into the data fingerprint, so any change to a submitted annotation changes the data.

**Streaming.** Records are read in pages of ``batch_size`` from the listing that
``Dataset.records(with_responses=True)`` pages through (``GET /api/v1/datasets/{id}/records``),
through the ``argilla`` client's authenticated HTTP session, as JSON: the SDK's record objects
drop the responses' ``updated_at`` (and, in argilla 2.8.0, building them fails on a discarded
response without values). Each page is converted as it arrives and then dropped; only the
pairs are kept.

Example::

    from tasks.config import RunConfig
    from tasks.sources.argilla import load_argilla

    cfg = RunConfig(source="argilla", argilla_dataset="support-pairs", query_column="query")
    rows, info = load_argilla(cfg)   # rows: {"query": ..., "document": ...}; info["watermark"]
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from tasks.columns import ColumnMapping, resolve_columns
from tasks.config import RunConfig
from tasks.io import InvalidInputError, StepError

ENV_URL = "ARGILLA_API_URL"
ENV_KEY = "ARGILLA_API_KEY"
CONNECTION = "argilla_default"
#: Records per page (the server allows up to 1000).
DEFAULT_BATCH_SIZE = 500
#: Field and question types whose values are text.
TEXT_FIELD_TYPES = ("text",)
TEXT_QUESTION_TYPES = ("text", "label_selection")
_MOD = 1 << 256


@dataclass(frozen=True)
class DatasetSchema:
    """Names and types of a dataset's fields, questions and metadata properties."""

    fields: dict[str, str]
    questions: dict[str, str]
    metadata: dict[str, str]

    def kind_of(self, name: str) -> str | None:
        """``question`` | ``field`` | ``metadata`` for a name, or None when it is none of them."""
        if name in self.questions:
            return "question"
        if name in self.fields:
            return "field"
        if name in self.metadata:
            return "metadata"
        return None

    def names(self) -> set[str]:
        return set(self.fields) | set(self.questions) | set(self.metadata)

    def describe(self) -> str:
        """``fields: a, b; questions: c (text), d (rating); metadata: e`` for error messages."""

        def part(items: dict[str, str], typed: bool) -> str:
            if not items:
                return "(none)"
            return ", ".join(f"{n} ({t})" if typed else n for n, t in sorted(items.items()))

        return (
            f"fields: {part(self.fields, False)}; questions: {part(self.questions, True)}; "
            f"metadata: {part(self.metadata, False)}"
        )


def map_columns(schema: DatasetSchema, cfg: RunConfig, where: str) -> tuple[ColumnMapping, dict]:
    """Resolve the column mapping against a dataset's schema.

    Returns the mapping and ``{name: kind}`` of the mapped names (kind ``field``, ``question`` or
    ``metadata``). Raises InvalidInputError (naming what exists and which setting to change) when
    a mapped name is not in the dataset or does not hold text.
    """
    try:
        mapping = resolve_columns(schema.names(), cfg, where=where)
    except InvalidInputError as exc:
        reason = str(exc).split("; columns:")[0]
        raise InvalidInputError(
            f"{reason}; {schema.describe()}. Set query_column / document_column (and "
            f"negative_column) to a field, question or metadata name, or column_preset"
        ) from None
    columns: dict[str, str] = {}
    for role, name in (
        ("query", mapping.query),
        ("document", mapping.document),
        ("negative", mapping.negative),
    ):
        if name is None:
            continue
        kind = schema.kind_of(name)
        if kind == "question" and schema.questions[name] not in TEXT_QUESTION_TYPES:
            raise InvalidInputError(
                f"{role} maps to {schema.questions[name]} question {name!r} of {where}, whose "
                f"answers are not text; map {role}_column to a text field or a text/label question "
                f"({schema.describe()})"
            )
        if kind == "field" and schema.fields[name] not in TEXT_FIELD_TYPES:
            raise InvalidInputError(
                f"{role} maps to {schema.fields[name]} field {name!r} of {where}, which is not "
                f"text; map {role}_column to a text field or question ({schema.describe()})"
            )
        columns[name] = kind
    return mapping, columns


# --- converting records ----------------------------------------------------------------------
def parse_time(value: Any) -> datetime:
    """A server timestamp (ISO 8601; naive means UTC) as an aware UTC datetime."""
    if isinstance(value, datetime):
        moment = value
    else:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        return moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC)


def iso_utc(moment: datetime | None) -> str | None:
    """``2026-11-30T01:50:12.123456+00:00`` (None stays None)."""
    return None if moment is None else moment.astimezone(UTC).isoformat()


@dataclass
class AnnotationExport:
    """Turns raw Argilla records (the API's JSON, with responses) into candidate pairs.

    Feed records one at a time with :meth:`add`; only the rows (``{name: value}`` for the mapped
    names) and counters are kept.

    :param columns: ``{name: kind}`` of the mapped names (see :func:`map_columns`).
    :param cutoff: responses updated at or after this moment are left for the next export.

    Example::

        export = AnnotationExport({"query": "question", "document": "field"})
        for record in records:
            export.add(record)
        export.rows, export.watermark, export.info()
    """

    columns: dict[str, str]
    cutoff: datetime | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)
    responses: Counter = field(default_factory=Counter)
    skipped: Counter = field(default_factory=Counter)
    watermark: datetime | None = None
    _fingerprint: int = 0
    _page: set[str] = field(default_factory=set)
    _previous_page: set[str] = field(default_factory=set)

    def new_page(self) -> None:
        """Start a page: only the ids of this page and the last one are remembered, enough to
        read a record once when a page boundary moved between two requests (records sorted by
        insertion time, equal times in another order), without memory that grows with the
        dataset."""
        self._previous_page, self._page = self._page, set()

    def add(self, record: Mapping[str, Any]) -> None:
        """Convert one record: a row per distinct submitted answer, counters for the rest."""
        record_id = str(record.get("id"))
        if record_id in self._page or record_id in self._previous_page:
            self.counts["listed_twice"] += 1
            return
        self._page.add(record_id)
        self.counts["records"] += 1
        statuses: Counter = Counter()
        submitted: list[tuple[datetime, str, Mapping[str, Any]]] = []
        deferred = 0
        for response in record.get("responses") or []:
            status = str(response.get("status"))
            statuses[status] += 1
            self.responses[status] += 1
            if status != "submitted":
                continue
            updated = parse_time(response.get("updated_at") or response.get("inserted_at"))
            if self.cutoff is not None and updated >= self.cutoff:
                deferred += 1
                continue
            submitted.append((updated, str(response.get("user_id")), response))
        if deferred:
            self.counts["responses_after_snapshot"] += deferred
        if not submitted:
            if deferred:
                reason = "submitted_after_snapshot"
            elif statuses["discarded"]:
                reason = "discarded"
            elif statuses["draft"]:
                reason = "draft_only"
            else:
                reason = "no_response"
            self.skipped[reason] += 1
            return
        self.counts["records_with_submitted"] += 1
        if statuses["discarded"]:
            self.counts["records_with_discard_and_submit"] += 1
        distinct: set[str] = set()
        columns = list(self.columns.items())
        for updated, user_id, response in sorted(submitted, key=lambda s: (s[0], s[1])):
            self.counts["submitted_responses"] += 1
            digest = hashlib.sha256(f"{record_id}\x00{user_id}\x00{iso_utc(updated)}".encode())
            self._fingerprint = (self._fingerprint + int.from_bytes(digest.digest(), "big")) % _MOD
            if self.watermark is None or updated > self.watermark:
                self.watermark = updated
            row = {name: _value(kind, name, record, response) for name, kind in columns}
            key = json.dumps(row, sort_keys=True, default=str)
            if key in distinct:
                self.counts["same_answer_as_other_annotator"] += 1
                continue
            distinct.add(key)
            self.rows.append(row)

    @property
    def fingerprint(self) -> str:
        """Order-independent hash of the included submitted responses (id, annotator, time)."""
        return f"{self._fingerprint:064x}"[:16]

    def info(self) -> dict[str, Any]:
        """Counts, skip reasons, watermark and fingerprint for the manifest."""
        return {
            "watermark": iso_utc(self.watermark),
            "annotations_fingerprint": self.fingerprint,
            "snapshot_at": iso_utc(self.cutoff),
            "counts": {
                "records": self.counts["records"],
                "records_with_submitted": self.counts["records_with_submitted"],
                "submitted_responses": self.counts["submitted_responses"],
                "pairs": len(self.rows),
                **{
                    k: v
                    for k, v in sorted(self.counts.items())
                    if k not in ("records", "records_with_submitted", "submitted_responses")
                },
            },
            "responses": dict(sorted(self.responses.items())),
            "skipped": dict(sorted(self.skipped.items())),
        }


def _value(kind: str, name: str, record: Mapping[str, Any], response: Mapping[str, Any]) -> Any:
    if kind == "question":
        answer = (response.get("values") or {}).get(name)
        return answer.get("value") if isinstance(answer, Mapping) else None
    if kind == "field":
        return (record.get("fields") or {}).get(name)
    return (record.get("metadata") or {}).get(name)


# --- the server ------------------------------------------------------------------------------
def connection_from_env() -> tuple[str, str]:
    """``(api_url, api_key)`` from the environment; a clear error when either is missing."""
    api_url = (os.environ.get(ENV_URL) or "").strip().rstrip("/")
    api_key = (os.environ.get(ENV_KEY) or "").strip()
    missing = [name for name, value in ((ENV_URL, api_url), (ENV_KEY, api_key)) if not value]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise InvalidInputError(
            f"source is 'argilla' but {' and '.join(missing)} {verb} not set: create the Airflow "
            f"connection {CONNECTION} (Argilla URL as host, API key as password), or export both "
            f"for a run by hand"
        )
    return api_url, api_key


def connect(api_url: str, api_key: str, *, timeout: int = 60) -> Any:
    """An ``argilla.Argilla`` client, with one-line errors for the usual mistakes.

    Unreachable server: StepError (exit 1, a retry may help); bad URL, refused key, not an Argilla
    server: InvalidInputError (exit 3). The key is never part of a message.
    """
    import argilla as rg
    import httpx
    from argilla._exceptions import ArgillaAPIError, ArgillaCredentialsError

    logging.getLogger("argilla.sdk").setLevel(logging.WARNING)  # no per-request chatter
    try:
        return rg.Argilla(
            api_url=api_url,
            api_key=api_key,
            timeout=httpx.Timeout(timeout, connect=10.0),  # an unreachable host fails soon
            retries=2,
        )
    except ArgillaCredentialsError:
        raise InvalidInputError(
            f"the Argilla server at {api_url} refused the API key (HTTP 401): check the password "
            f"of the Airflow connection {CONNECTION} ({ENV_KEY})"
        ) from None
    except ArgillaAPIError as exc:
        raise InvalidInputError(
            f"{api_url} did not answer as an Argilla server (GET /api/v1/me: HTTP "
            f"{exc.status_code}): check the host of the Airflow connection {CONNECTION}"
        ) from None
    except (httpx.UnsupportedProtocol, httpx.InvalidURL):
        raise InvalidInputError(
            f"{ENV_URL} {api_url!r} is not an http(s) URL: set the host of the Airflow connection "
            f"{CONNECTION} to e.g. http://argilla:6900"
        ) from None
    except httpx.TransportError as exc:
        raise StepError(
            f"cannot reach the Argilla server at {api_url} ({type(exc).__name__}): check that it "
            f"is running and the Airflow connection {CONNECTION}"
        ) from None
    except ValueError:  # json decoding of a non-Argilla reply
        raise InvalidInputError(
            f"{api_url} did not answer as an Argilla server: check the host of the Airflow "
            f"connection {CONNECTION}"
        ) from None


@dataclass(frozen=True)
class DatasetRef:
    """A dataset found on the server."""

    id: str
    name: str
    workspace: str


def pick_dataset(
    name: str,
    workspace: str,
    workspaces: Mapping[str, str],
    datasets: Iterable[tuple[str, str, str]],
    *,
    dataset_setting: str = "argilla_dataset",
    workspace_setting: str = "argilla_workspace",
) -> DatasetRef:
    """Which dataset ``name`` in ``workspace`` is, among what an API key sees.

    The one rule of the Argilla source and of the annotation watcher (plugins), so the watcher
    counts the responses of the dataset that the next run exports: a named workspace must exist
    and hold the dataset; an empty workspace means the one workspace that holds a dataset of that
    name (with a single workspace, that one), and a name held by several is ambiguous.

    :param workspaces: ``{workspace id: name}`` (``GET /api/v1/me/workspaces``).
    :param datasets: ``(dataset id, name, workspace id)`` of every dataset the key sees
        (``GET /api/v1/me/datasets``).
    :param dataset_setting: what an error tells the user to set for the dataset name.
    :param workspace_setting: likewise for the workspace.
    :raises InvalidInputError: one line ``<reason>. Set <setting>...`` that lists what exists.

    Example::

        pick_dataset("faq", "", {"w1": "support"}, [("d1", "faq", "w1")])
        # DatasetRef(id='d1', name='faq', workspace='support')
    """
    listed = [(str(i), str(n), workspaces.get(str(w), "?")) for i, n, w in datasets]
    if workspace:
        if workspace not in workspaces.values():
            raise InvalidInputError(
                f"Argilla workspace {workspace!r} not found; the API key sees: "
                f"{_names(workspaces.values())}. Set {workspace_setting}"
            )
        where = workspace
    else:
        holding = sorted({space for _, n, space in listed if n == name})
        if len(holding) > 1:
            raise InvalidInputError(
                f"Argilla dataset {name!r} is in {len(holding)} workspaces ({_names(holding)}). "
                f"Set {workspace_setting}"
            )
        if not holding and len(workspaces) != 1:
            raise InvalidInputError(
                f"Argilla dataset {name!r} not found in the {len(workspaces)} workspaces the API "
                f"key sees ({_names(workspaces.values())}); datasets there: "
                f"{_names(n for _, n, _ in listed)}. Set {dataset_setting} (and "
                f"{workspace_setting})"
            )
        where = holding[0] if holding else next(iter(workspaces.values()))
    for dataset_id, dataset_name, space in listed:
        if space == where and dataset_name == name:
            return DatasetRef(id=dataset_id, name=name, workspace=where)
    raise InvalidInputError(
        f"Argilla dataset {name!r} not found in workspace {where!r}; datasets there: "
        f"{_names(n for _, n, space in listed if space == where)}. Set {dataset_setting} (and "
        f"{workspace_setting})"
    )


def find_dataset(client: Any, name: str, workspace: str = "") -> DatasetRef:
    """The dataset ``name`` in ``workspace`` on the server of ``client`` (an ``argilla.Argilla``),
    by the rule of :func:`pick_dataset`; errors list what exists."""
    return pick_dataset(
        name,
        workspace,
        {str(w.id): w.name for w in client.api.workspaces.list()},
        [(str(d.id), d.name, str(d.workspace_id)) for d in client.api.datasets.list()],
    )


def read_schema(client: Any, dataset: DatasetRef) -> DatasetSchema:
    """Fields, questions and metadata properties of a dataset, with their types."""

    def typed(models: Any) -> dict[str, str]:
        return {m.name: str(getattr(m.settings, "type", "?")) for m in models}

    return DatasetSchema(
        fields=typed(client.api.fields.list(dataset.id)),
        questions=typed(client.api.questions.list(dataset.id)),
        metadata=typed(client.api.metadata.list(dataset.id)),
    )


def iter_record_pages(
    client: Any, dataset: DatasetRef, batch_size: int = DEFAULT_BATCH_SIZE
) -> Iterator[tuple[list[dict[str, Any]], datetime]]:
    """Pages of raw records (with responses) and the server time of each page's reply."""
    http = client.http_client
    offset = 0
    while True:
        reply = http.get(
            f"/api/v1/datasets/{dataset.id}/records",
            params={"offset": offset, "limit": batch_size, "include": ["responses"]},
        )
        if reply.status_code == 403:
            raise InvalidInputError(
                f"the API key may not read every annotator's responses of Argilla dataset "
                f"{dataset.workspace}/{dataset.name} (HTTP 403): use an owner's key, or an "
                f"admin's of workspace {dataset.workspace!r}, in the connection {CONNECTION}"
            )
        if reply.status_code >= 400:
            raise StepError(
                f"the Argilla server answered HTTP {reply.status_code} listing the records of "
                f"{dataset.workspace}/{dataset.name}: {reply.text[:200]}"
            )
        items = reply.json().get("items") or []
        yield items, _server_time(reply.headers.get("date"))
        if len(items) < batch_size:
            return
        offset += len(items)


def _server_time(header: str | None) -> datetime:
    try:
        return parsedate_to_datetime(header).astimezone(UTC)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return datetime.now(UTC)


def export_annotations(
    client: Any,
    dataset: DatasetRef,
    columns: dict[str, str],
    batch_size: int = DEFAULT_BATCH_SIZE,
) -> AnnotationExport:
    """Stream every record of ``dataset`` through an :class:`AnnotationExport`.

    The server time of the first page's reply is the snapshot cutoff.
    """
    import httpx

    export = AnnotationExport(columns)
    try:
        for items, server_time in iter_record_pages(client, dataset, batch_size):
            if export.cutoff is None:
                export.cutoff = server_time
            export.new_page()
            for record in items:
                export.add(record)
    except httpx.TransportError as exc:
        raise StepError(
            f"lost the Argilla server while reading {dataset.workspace}/{dataset.name} "
            f"({type(exc).__name__}): check that it is running and the connection {CONNECTION}"
        ) from None
    return export


#: The value of ``source`` that selects this module (see :mod:`tasks.sources`).
NAME = "argilla"


def load(cfg: RunConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The source's entry point: :func:`load_argilla` with the default page size."""
    return load_argilla(cfg)


def load_argilla(
    cfg: RunConfig, *, batch_size: int = DEFAULT_BATCH_SIZE
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Export the submitted annotations of ``cfg.argilla_dataset`` as rows for ``prepare``.

    Returns ``(rows, source info)``: one row per distinct submitted answer, keyed by the mapped
    field/question/metadata names, and the manifest's source description (server, dataset,
    columns, counts, skip reasons, ``watermark``, ``annotations_fingerprint``).
    """
    api_url, api_key = connection_from_env()
    client = connect(api_url, api_key)
    dataset, schema = open_dataset(client, api_url, cfg.argilla_dataset, cfg.argilla_workspace)
    where = f"Argilla dataset {dataset.workspace}/{dataset.name}"
    _mapping, columns = map_columns(schema, cfg, where)
    export = export_annotations(client, dataset, columns, batch_size)
    info = export.info()
    check_export(info, where)
    counts = info["counts"]
    print(
        f"prepare: exported {where}: {counts['records']} records, "
        f"{counts['records_with_submitted']} with submitted responses "
        f"({counts['submitted_responses']} responses) -> {len(export.rows)} candidate pairs; "
        f"skipped {sum(info['skipped'].values())} records {info['skipped'] or ''}; "
        f"watermark {info['watermark']}"
    )
    source = {
        "type": "argilla",
        "url": api_url,
        "workspace": dataset.workspace,
        "dataset": f"{dataset.workspace}/{dataset.name}",
        "dataset_id": dataset.id,
        "columns": columns,
        "batch_size": batch_size,
        **info,
    }
    return export.rows, source


def open_dataset(
    client: Any, api_url: str, name: str, workspace: str = ""
) -> tuple[DatasetRef, DatasetSchema]:
    """Find the dataset (:func:`find_dataset`) and read its schema; server failures are
    StepError (a retry may help)."""
    import httpx
    from argilla._exceptions import ArgillaAPIError

    try:
        dataset = find_dataset(client, name, workspace)
        return dataset, read_schema(client, dataset)
    except ArgillaAPIError as exc:
        raise StepError(
            f"the Argilla server at {api_url} answered HTTP {exc.status_code} while looking up "
            f"dataset {name!r}"
        ) from None
    except httpx.TransportError as exc:
        raise StepError(
            f"lost the Argilla server at {api_url} ({type(exc).__name__}): check that it is "
            f"running and the Airflow connection {CONNECTION}"
        ) from None


def check_export(info: dict[str, Any], where: str) -> None:
    """Refuse an export with no records or no submitted response (InvalidInputError)."""
    counts = info["counts"]
    if not counts["records"]:
        raise InvalidInputError(f"{where} has no records: log records and annotate them first")
    if not counts["records_with_submitted"]:
        skipped = ", ".join(f"{k}={v}" for k, v in info["skipped"].items())
        raise InvalidInputError(
            f"{where} has no submitted responses ({counts['records']} records: {skipped}): "
            f"submit annotations in Argilla first"
        )


def _names(names: Any) -> str:
    listed = sorted(str(n) for n in names)
    return ", ".join(repr(n) for n in listed) if listed else "(none)"
