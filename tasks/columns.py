"""Column mapping: which source columns hold the query, the document and the hard negative.

Every source (local files, Hub datasets, Argilla annotations) hands records to the same mapping:
a preset (``column_preset``: ``auto``, ``query_document``, ``sentence_transformers``,
``zenml_distilabel``) gives the names, explicit ``query_column``/``document_column``/
``negative_column`` override them, and a missing column is an invalid-input error that lists the
columns there are.

Example::

    from tasks.columns import resolve_columns
    from tasks.config import RunConfig

    resolve_columns({"question", "context"}, RunConfig())
    # ColumnMapping(query='question', document='context', negative=None, preset='auto')
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from tasks.config import RunConfig
from tasks.io import InvalidInputError

#: Column presets: (query, document, negative) column names.
PRESETS: dict[str, tuple[str, str, str | None]] = {
    "query_document": ("query", "document", "negative"),
    "sentence_transformers": ("anchor", "positive", "negative"),
    # zenml/rag_qa_embedding_questions_0_60_0_distilabel: anchor is the documentation chunk,
    # positive the question it answers, negative an off-topic question.
    "zenml_distilabel": ("positive", "anchor", None),
}
#: ``auto`` tries these (query, document, negative) name sets in order.
AUTO_CANDIDATES: list[tuple[str, str, str | None]] = [
    ("query", "document", "negative"),
    ("query", "positive", "negative"),
    ("question", "context", "negative"),
    ("question", "answer", "negative"),
    ("anchor", "positive", "negative"),
]
ZENML_SIGNATURE = {"anchor", "positive", "distilabel_metadata"}


@dataclass(frozen=True)
class ColumnMapping:
    """Which source columns hold the query, the document and the optional hard negative."""

    query: str
    document: str
    negative: str | None
    preset: str


def resolve_columns(
    columns: Iterable[str], cfg: RunConfig, *, where: str = "data"
) -> ColumnMapping:
    """Decide the query/document/negative columns from the preset and explicit overrides."""
    cols = set(columns)
    preset = cfg.column_preset
    if preset == "auto":
        if ZENML_SIGNATURE <= cols:
            preset = "zenml_distilabel"
            query, document, negative = PRESETS[preset]
        else:
            for query, document, negative in AUTO_CANDIDATES:  # noqa: B007 (used after break)
                if {query, document} <= cols:
                    break
            else:
                query, document, negative = AUTO_CANDIDATES[0]
    else:
        query, document, negative = PRESETS[preset]
    query = cfg.query_column or query
    document = cfg.document_column or document
    if cfg.negative_column:
        negative = cfg.negative_column
        if negative not in cols:
            raise InvalidInputError(
                f"negative_column {negative!r} not found in {where}; columns: {_cols(cols)}"
            )
    elif negative not in cols:
        negative = None
    missing = [c for c in (query, document) if c not in cols]
    if missing:
        raise InvalidInputError(
            f"column(s) {', '.join(repr(c) for c in missing)} not found in {where}; columns: "
            f"{_cols(cols)}. Set query_column/document_column or column_preset"
        )
    if query == document:
        raise InvalidInputError(f"query and document both map to column {query!r}")
    return ColumnMapping(query=query, document=document, negative=negative, preset=preset)


def _cols(cols: set[str]) -> str:
    return ", ".join(sorted(str(c) for c in cols)) or "(none)"  # csv extras: key None
