"""A search engine for the Argilla server that answers from the server's own database.

TEST ENGINE, NOT FOR PRODUCTION. It exists so that the test suite can run a real
``argilla-server==2.8.0`` without Elasticsearch or OpenSearch. It is loaded inside the Argilla
server's virtualenv (by ``argilla_launch.py``, before uvicorn or the worker start) and selected with
``ARGILLA_SEARCH_ENGINE=database``.

The server calls its search engine for record search
(``POST /api/v1/datasets/{id}/records/search`` and ``/api/v1/me/datasets/{id}/records/search``;
the SDK's ``dataset.records(query=...)``), dataset progress and per-user metrics, metadata metrics
and similarity search. Elasticsearch keeps a copy of every record in an index; this engine keeps
none: the database is the truth, so the index/update/delete hooks do nothing, and every question
is answered by loading the dataset's records, responses and suggestions from the database and
filtering, sorting and paging them in Python, with the semantics of the Elasticsearch engine
(``argilla_server/search_engine/commons.py``):

- filters: record ``id``/``external_id``/``status``/``inserted_at``/``updated_at``, metadata terms
  and ranges, suggestion ``value``/``score``/``agent``/``type``, response ``status`` (``pending``
  means "no response", or "no response by this user" on the ``/me`` endpoint) and response values
  per question; a filter on responses matches when one single response satisfies it.
- date ranges take ISO 8601 strings (naive means UTC) or numbers of milliseconds since the epoch,
  as an Elasticsearch ``date`` field does.
- sort: any of those scopes, several keys, missing values last in both directions; without a sort,
  text queries are ordered by score and other queries by insertion order (``/me`` searches in a
  stable per-user shuffled order, as Elasticsearch's ``random_score`` does).
- text: the words of the query must all occur in the record's text fields (or in the one field
  asked for); ``"a phrase"``, ``-word``, ``prefix*`` and ``a | b`` are understood, the rest of
  Elasticsearch's ``simple_query_string`` syntax is not.
- similarity: cosine similarity over the vectors stored in the database, scored ``(1 + cos) / 2``.

Known difference: Elasticsearch stores a record's ``updated_at`` when the record is (re)indexed and
does not change it when a response is submitted or the record status changes; this engine reads the
database, where the record's ``updated_at`` also moves when its status changes. Code that needs the
time of a response should read the response's own ``updated_at``.

It loads a whole dataset per request, which is fine for the thousands of records of a test and
nothing more.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections import Counter
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import Enum
from typing import Any
from uuid import UUID

from argilla_server._version import __version__ as ARGILLA_SERVER_VERSION
from argilla_server.database import AsyncSessionLocal
from argilla_server.enums import (
    MetadataPropertyType,
    ResponseStatusFilter,
    SimilarityOrder,
    SortOrder,
)
from argilla_server.models import (
    Dataset,
    Field,
    MetadataProperty,
    Question,
    Record,
    Response,
    Suggestion,
    User,
    Vector,
    VectorSettings,
)
from argilla_server.search_engine.base import (
    AndFilter,
    FloatMetadataMetrics,
    IntegerMetadataMetrics,
    MetadataFilterScope,
    MetadataMetrics,
    Order,
    RangeFilter,
    RecordFilterScope,
    ResponseFilterScope,
    SearchEngine,
    SearchResponseItem,
    SearchResponses,
    SuggestionFilterScope,
    TermsFilter,
    TermsMetrics,
    TextQuery,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_object_session

ENGINE_NAME = "database"
_DATE_PROPERTIES = ("inserted_at", "updated_at")
_WORD = re.compile(r"\w+", re.UNICODE)


class _Doc:
    """One record as the engine sees it (what Elasticsearch would hold in its index)."""

    __slots__ = (
        "id",
        "external_id",
        "status",
        "fields",
        "metadata",
        "inserted_at",
        "updated_at",
        "responses",
        "suggestions",
        "score",
    )

    def __init__(self, row: Any) -> None:
        self.id: UUID = row.id
        self.external_id: str | None = row.external_id
        self.status: str = _plain(row.status)
        self.fields: dict = row.fields or {}
        self.metadata: dict = row.metadata_ or {}
        self.inserted_at: datetime = row.inserted_at
        self.updated_at: datetime = row.updated_at
        self.responses: list[dict] = []
        self.suggestions: dict[str, dict] = {}
        self.score: float | None = 1.0


def _plain(value: Any) -> Any:
    """Enum members as their values, so that they compare with the strings of a query."""
    return value.value if isinstance(value, Enum) else value


def _term(value: Any) -> str:
    """A value as an Elasticsearch keyword term."""
    value = _plain(value)
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _as_list(value: Any) -> list:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value if v is not None]
    return [_plain(value)]


def _to_datetime(value: Any) -> datetime:
    """A range bound for a date field: ISO 8601 text or epoch milliseconds, as naive UTC."""
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, (int, float)) or (isinstance(value, str) and value.strip().isdigit()):
        moment = datetime.fromtimestamp(float(value) / 1000.0, tz=UTC)
    else:
        moment = datetime.fromisoformat(str(value).strip())
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _to_number(value: Any) -> float | None:
    value = _plain(value)
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _in_range(values: Iterable[Any], ge: Any, le: Any, dates: bool) -> bool:
    convert = _to_datetime if dates else _to_number
    low = None if ge is None else convert(ge)
    high = None if le is None else convert(le)
    for value in values:
        value = value if dates else _to_number(value)
        if value is None:
            continue
        if (low is None or value >= low) and (high is None or value <= high):
            return True
    return False


def _sort_key(value: Any) -> tuple:
    if isinstance(value, datetime):
        return (0, value.timestamp())
    number = _to_number(value) if not isinstance(value, str) else None
    if number is not None:
        return (0, number)
    return (1, _term(value))


def _words(text: str) -> list[str]:
    return [word.lower() for word in _WORD.findall(text)]


class _TextMatcher:
    """A subset of Elasticsearch's ``simple_query_string`` (default operator AND)."""

    def __init__(self, query: str) -> None:
        self.alternatives: list[list[tuple[bool, list[str], bool]]] = []
        for part in query.split("|"):
            clauses: list[tuple[bool, list[str], bool]] = []
            for match in re.finditer(r'(-?)"([^"]*)"|(-?)(\S+)', part):
                if match.group(2) is not None:
                    negate, words, prefix = bool(match.group(1)), _words(match.group(2)), False
                else:
                    token = match.group(4)
                    negate, prefix = bool(match.group(3)), token.endswith("*")
                    words = _words(token)
                if words:
                    clauses.append((negate, words, prefix))
            if clauses:
                self.alternatives.append(clauses)

    def score(self, tokens: list[str]) -> float:
        """0 when the text does not match, else the number of matched occurrences."""
        best = 0.0
        for clauses in self.alternatives:
            total = 0.0
            for negate, words, prefix in clauses:
                hits = self._occurrences(tokens, words, prefix)
                if negate == (hits > 0):
                    total = 0.0
                    break
                total += hits
            else:
                best = max(best, total if total > 0 else 1.0)
        return best

    @staticmethod
    def _occurrences(tokens: list[str], words: list[str], prefix: bool) -> int:
        n = len(words)
        hits = 0
        for i in range(len(tokens) - n + 1):
            window = tokens[i : i + n]
            if window[:-1] != words[:-1]:
                continue
            last = window[-1]
            if last == words[-1] or (prefix and last.startswith(words[-1])):
                hits += 1
        return hits


@SearchEngine.register(engine_name=ENGINE_NAME)
class DatabaseSearchEngine(SearchEngine):
    """Answers the server's search-engine calls from its own database (test engine)."""

    @classmethod
    async def new_instance(cls) -> DatabaseSearchEngine:
        return cls()

    async def close(self) -> None:
        pass

    async def ping(self) -> bool:
        return True

    async def info(self) -> dict:
        return {
            "name": ENGINE_NAME,
            "version": {"number": ARGILLA_SERVER_VERSION, "distribution": "database (test engine)"},
        }

    # The database is the index: nothing to create, update or delete.
    async def create_index(self, dataset: Dataset) -> None:
        pass

    async def delete_index(self, dataset: Dataset) -> None:
        pass

    async def configure_metadata_property(
        self, dataset: Dataset, metadata_property: MetadataProperty
    ) -> None:
        pass

    async def configure_index_vectors(self, vector_settings: VectorSettings) -> None:
        pass

    async def index_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        pass

    async def partial_record_update(self, record: Record, **update: Any) -> None:
        pass

    async def delete_records(self, dataset: Dataset, records: Iterable[Record]) -> None:
        pass

    async def update_record_response(self, response: Response) -> None:
        pass

    async def delete_record_response(self, response: Response) -> None:
        pass

    async def update_record_suggestion(self, suggestion: Suggestion) -> None:
        pass

    async def delete_record_suggestion(self, suggestion: Suggestion) -> None:
        pass

    # Progress and metrics

    async def get_dataset_progress(self, dataset: Dataset) -> dict:
        if dataset.is_draft:
            return {}
        async with _session_for(dataset) as db:
            rows = await db.execute(select(Record.status).where(Record.dataset_id == dataset.id))
            counts = Counter(_plain(status) for (status,) in rows.all())
        return {"total": sum(counts.values()), **counts}

    async def get_dataset_user_progress(self, dataset: Dataset, user: User) -> dict:
        if dataset.is_draft:
            return {}
        async with _session_for(dataset) as db:
            rows = await db.execute(
                select(Response.status)
                .join(Record, Response.record_id == Record.id)
                .where(Record.dataset_id == dataset.id, Response.user_id == user.id)
            )
            counts = Counter(_plain(status) for (status,) in rows.all())
        return {"total": sum(counts.values()), **counts}

    async def compute_metrics_for(self, metadata_property: MetadataProperty) -> MetadataMetrics:
        async with _session_for(metadata_property) as db:
            rows = await db.execute(
                select(Record.metadata_).where(Record.dataset_id == metadata_property.dataset_id)
            )
            values = [
                value
                for (metadata,) in rows.all()
                for value in _as_list((metadata or {}).get(metadata_property.name))
            ]
        if metadata_property.type == MetadataPropertyType.terms:
            counts = Counter(_term(value) for value in values)
            ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
            return TermsMetrics(
                total=len(values),
                values=[TermsMetrics.TermCount(term=term, count=count) for term, count in ordered],
            )
        numbers = [n for n in (_to_number(value) for value in values) if n is not None]
        if metadata_property.type == MetadataPropertyType.integer:
            return IntegerMetadataMetrics(
                min=int(min(numbers)) if numbers else None,
                max=int(max(numbers)) if numbers else None,
            )
        return FloatMetadataMetrics(
            min=min(numbers) if numbers else None, max=max(numbers) if numbers else None
        )

    # Search

    async def search(
        self,
        dataset: Dataset,
        query: TextQuery | str | None = None,
        filter: AndFilter | TermsFilter | RangeFilter | None = None,
        sort: list[Order] | None = None,
        offset: int = 0,
        limit: int = 100,
        user_id: str | None = None,
    ) -> SearchResponses:
        async with _session_for(dataset) as db:
            docs = await _load_docs(db, dataset.id)
            text_fields = await _text_fields(db, dataset.id)
        docs = _apply_text_query(docs, query, text_fields)
        if filter is not None:
            docs = [doc for doc in docs if _matches(doc, filter)]
        if sort:
            docs = _sorted(docs, sort)
            for doc in docs:
                doc.score = None  # Elasticsearch returns no score when it sorts by fields
        elif query is not None:
            docs.sort(key=lambda doc: -(doc.score or 0.0))
        elif user_id is not None:
            docs.sort(key=lambda doc: hashlib.sha1(f"{user_id}:{doc.id}".encode()).hexdigest())
        page = docs[offset : offset + limit]
        return SearchResponses(
            items=[SearchResponseItem(record_id=doc.id, score=doc.score) for doc in page],
            total=len(docs),
        )

    async def similarity_search(
        self,
        dataset: Dataset,
        vector_settings: VectorSettings,
        value: list[float] | None = None,
        record: Record | None = None,
        query: TextQuery | str | None = None,
        filter: AndFilter | TermsFilter | RangeFilter | None = None,
        max_results: int = 100,
        order: SimilarityOrder = SimilarityOrder.most_similar,
        threshold: float | None = None,
    ) -> SearchResponses:
        if bool(value) == bool(record):
            raise ValueError(
                "Must provide either vector value or record to compute the similarity search"
            )
        async with _session_for(dataset) as db:
            excluded = None
            if not value:
                excluded = record.id
                rows = await db.execute(
                    select(Vector.value).where(
                        Vector.record_id == record.id,
                        Vector.vector_settings_id == vector_settings.id,
                    )
                )
                value = rows.scalar_one_or_none()
            if not value:
                raise ValueError("Cannot find a vector value to apply with provided info")
            docs = await _load_docs(db, dataset.id)
            text_fields = await _text_fields(db, dataset.id)
            rows = await db.execute(
                select(Vector.record_id, Vector.value).where(
                    Vector.vector_settings_id == vector_settings.id
                )
            )
            vectors = {record_id: vector for record_id, vector in rows.all()}
        if order == SimilarityOrder.least_similar:
            value = [-x for x in value]
        if query is not None:
            docs = _apply_text_query(docs, query, text_fields)
        if filter is not None:
            docs = [doc for doc in docs if _matches(doc, filter)]
        scored = []
        for doc in docs:
            vector = vectors.get(doc.id)
            if doc.id == excluded or not vector:
                continue
            score = (1.0 + _cosine(value, vector)) / 2.0
            if threshold is None or score >= threshold:
                scored.append((score, doc))
        scored.sort(key=lambda item: -item[0])
        items = [SearchResponseItem(record_id=doc.id, score=score) for score, doc in scored]
        return SearchResponses(items=items[:max_results], total=min(len(items), max_results))


class _session_for:  # noqa: N801 - used like a function: ``async with _session_for(obj) as db``
    """The session the server already holds for ``obj``, or a new one (closed on exit)."""

    def __init__(self, obj: Any) -> None:
        self._session: AsyncSession | None = async_object_session(obj)
        self._own: AsyncSession | None = None

    async def __aenter__(self) -> AsyncSession:
        if self._session is not None:
            return self._session
        self._own = AsyncSessionLocal()
        return self._own

    async def __aexit__(self, *exc: object) -> None:
        if self._own is not None:
            await self._own.close()


async def _load_docs(db: AsyncSession, dataset_id: UUID) -> list[_Doc]:
    """The dataset's records with their responses and suggestions, in insertion order."""
    rows = await db.execute(
        select(
            Record.id,
            Record.external_id,
            Record.status,
            Record.fields,
            Record.metadata_,
            Record.inserted_at,
            Record.updated_at,
        )
        .where(Record.dataset_id == dataset_id)
        .order_by(Record.inserted_at.asc(), Record.id.asc())
    )
    docs = {row.id: _Doc(row) for row in rows.all()}
    rows = await db.execute(
        select(Response.record_id, Response.user_id, Response.status, Response.values)
        .join(Record, Response.record_id == Record.id)
        .where(Record.dataset_id == dataset_id)
        .order_by(Response.inserted_at.asc())
    )
    for record_id, user_id, status, values in rows.all():
        answers = {name: (item or {}).get("value") for name, item in (values or {}).items()}
        docs[record_id].responses.append(
            {"user_id": user_id, "status": _plain(status), "values": answers}
        )
    rows = await db.execute(
        select(
            Suggestion.record_id,
            Question.name,
            Suggestion.value,
            Suggestion.score,
            Suggestion.agent,
            Suggestion.type,
        )
        .join(Record, Suggestion.record_id == Record.id)
        .join(Question, Suggestion.question_id == Question.id)
        .where(Record.dataset_id == dataset_id)
    )
    for record_id, question, value, score, agent, kind in rows.all():
        docs[record_id].suggestions[question] = {
            "value": value,
            "score": score,
            "agent": agent,
            "type": _plain(kind),
        }
    return list(docs.values())


async def _text_fields(db: AsyncSession, dataset_id: UUID) -> dict[str, str]:
    """Field name -> field type for the dataset's fields that text queries look into."""
    rows = await db.execute(
        select(Field.name, Field.settings).where(Field.dataset_id == dataset_id)
    )
    return {
        name: (settings or {}).get("type", "text")
        for name, settings in rows.all()
        if (settings or {}).get("type", "text") != "image"
    }


def _field_text(value: Any, kind: str) -> str:
    if value is None:
        return ""
    if kind == "chat" and isinstance(value, list):
        return " ".join(
            str(message.get("content", "")) for message in value if isinstance(message, dict)
        )
    return str(value)


def _apply_text_query(
    docs: list[_Doc], query: TextQuery | str | None, text_fields: dict[str, str]
) -> list[_Doc]:
    if query is None:
        return docs
    if isinstance(query, str):
        query = TextQuery(q=query)
    names = [query.field] if query.field else list(text_fields)
    if query.field and query.field not in text_fields:
        raise ValueError(f"Field {query.field} not found in dataset")
    matcher = _TextMatcher(query.q)
    kept = []
    for doc in docs:
        score = max(
            (matcher.score(_words(_field_text(doc.fields.get(n), text_fields[n]))) for n in names),
            default=0.0,
        )
        if score > 0:
            doc.score = score
            kept.append(doc)
    return kept


def _scope_values(doc: _Doc, scope: Any) -> list[Any]:
    """The values a non-response scope has in one record (an empty list when missing)."""
    if isinstance(scope, RecordFilterScope):
        return _as_list(getattr(doc, scope.property))
    if isinstance(scope, MetadataFilterScope):
        return _as_list(doc.metadata.get(scope.metadata_property))
    if isinstance(scope, SuggestionFilterScope):
        suggestion = doc.suggestions.get(scope.question)
        if suggestion is None:
            return []
        return _as_list(suggestion.get(scope.property or "value"))
    raise ValueError(f"Cannot process request for search scope {scope}")


def _responses_in_scope(doc: _Doc, scope: ResponseFilterScope) -> list[dict]:
    if scope.user is None:
        return doc.responses
    return [response for response in doc.responses if response["user_id"] == scope.user.id]


def _matches(doc: _Doc, filter: Any) -> bool:
    if isinstance(filter, AndFilter):
        return all(_matches(doc, inner) for inner in filter.filters)
    scope = filter.scope
    if isinstance(scope, ResponseFilterScope):
        return _matches_responses(doc, filter)
    values = _scope_values(doc, scope)
    if isinstance(filter, TermsFilter):
        wanted = {_term(value) for value in filter.values}
        return any(_term(value) in wanted for value in values)
    if isinstance(filter, RangeFilter):
        dates = isinstance(scope, RecordFilterScope) and scope.property in _DATE_PROPERTIES
        return _in_range(values, filter.ge, filter.le, dates)
    raise ValueError(f"Cannot process request for filter {filter}")


def _matches_responses(doc: _Doc, filter: Any) -> bool:
    scope: ResponseFilterScope = filter.scope
    responses = _responses_in_scope(doc, scope)
    if scope.question:
        answers = [_as_list(r["values"].get(scope.question)) for r in responses]
        if isinstance(filter, TermsFilter):
            wanted = {_term(value) for value in filter.values}
            return any(_term(v) in wanted for values in answers for v in values)
        if isinstance(filter, RangeFilter):
            return any(_in_range(values, filter.ge, filter.le, False) for values in answers)
        raise ValueError(f"Cannot process filter {filter}")
    if scope.property == "status" and isinstance(filter, TermsFilter):
        wanted = {_term(value) for value in filter.values}
        if ResponseStatusFilter.pending.value in wanted and not responses:
            return True
        return any(response["status"] in wanted for response in responses)
    raise ValueError(f"Cannot process filter scope {scope}")


def _order_values(doc: _Doc, scope: Any) -> list[Any]:
    if isinstance(scope, ResponseFilterScope):
        responses = _responses_in_scope(doc, scope)
        if scope.question:
            return [v for r in responses for v in _as_list(r["values"].get(scope.question))]
        return [r["status"] for r in responses]
    return _scope_values(doc, scope)


def _sorted(docs: list[_Doc], sort: list[Order]) -> list[_Doc]:
    """Docs in the order of the sort keys; missing values go last, ties keep insertion order."""
    ordered = list(docs)
    for order in reversed(sort):
        descending = order.order == SortOrder.desc
        present, missing = [], []
        for doc in ordered:
            keys = [_sort_key(value) for value in _order_values(doc, order.scope)]
            if not keys:
                missing.append(doc)
                continue
            numeric = [k[1] for k in keys if k[0] == 0]
            if (
                isinstance(order.scope, ResponseFilterScope)
                and numeric
                and len(numeric) == len(keys)
            ):
                key = (0, sum(numeric) / len(numeric))  # Elasticsearch's nested "avg" mode
            else:
                key = max(keys) if descending else min(keys)
            present.append((key, doc))
        present.sort(key=lambda item: item[0], reverse=descending)
        ordered = [doc for _, doc in present] + missing
    return ordered


def _cosine(a: list[float], b: list[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0
