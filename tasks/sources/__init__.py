"""Data sources: where ``prepare`` gets its raw records from, one module per source.

Each source module has ``NAME`` (the value of ``RunConfig.source`` that selects it) and
``load(cfg) -> (records, info)``: the raw records (dicts keyed by the source's column names) and
the manifest's description of the source (``{"type": NAME, ...}``). Column mapping, cleaning and
splitting happen after, in :mod:`tasks.data`, the same for every source.

A new source is one module here, its name in :data:`SOURCES` below and in
``tasks.config.SOURCES`` (the form's and CLI's choices; a test keeps the two equal), and its
settings in :class:`tasks.config.RunConfig`.

Example::

    from tasks.sources import load_source

    records, info = load_source(RunConfig(data_path="pairs.jsonl"))   # info["type"] == "local"
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any

from tasks.config import RunConfig
from tasks.io import InvalidInputError

#: source name (``RunConfig.source``) -> its module under ``tasks.sources``. Imported on use, so
#: choosing ``local`` never imports the ``datasets`` or ``argilla`` packages.
SOURCES: dict[str, str] = {
    "local": "tasks.sources.local",
    "huggingface": "tasks.sources.huggingface",
    "argilla": "tasks.sources.argilla",
}


def source_module(name: str) -> ModuleType:
    """The module of source ``name``; an :class:`InvalidInputError` naming the choices if none."""
    try:
        module = importlib.import_module(SOURCES[name])
    except KeyError:
        raise InvalidInputError(
            f"unknown source {name!r}: use one of {', '.join(SOURCES)}"
        ) from None
    if module.NAME != name:  # pragma: no cover - a registry typo, caught by the unit tests
        raise RuntimeError(f"{module.__name__} declares NAME {module.NAME!r}, not {name!r}")
    return module


def load_source(cfg: RunConfig) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The configured source's raw records and its manifest description."""
    return source_module(cfg.source).load(cfg)
