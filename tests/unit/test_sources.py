"""The sources registry: one module per ``RunConfig.source``, found by name."""

from __future__ import annotations

import sys

import pytest

from tasks.config import SOURCES as CONFIG_SOURCES
from tasks.config import RunConfig
from tasks.io import InvalidInputError
from tasks.sources import SOURCES, load_source, source_module

pytestmark = pytest.mark.unit


def test_the_registry_and_the_config_offer_the_same_sources():
    assert tuple(SOURCES) == CONFIG_SOURCES


@pytest.mark.parametrize("name", CONFIG_SOURCES)
def test_each_source_module_declares_its_name_and_a_loader(name):
    module = source_module(name)
    assert module.NAME == name
    assert callable(module.load)


def test_an_unknown_source_names_the_choices():
    with pytest.raises(InvalidInputError, match="unknown source 'gcs': use one of local, "):
        source_module("gcs")


def test_the_local_source_reads_without_the_hub_or_argilla_packages(tmp_path, monkeypatch):
    path = tmp_path / "pairs.jsonl"
    path.write_text('{"query": "q", "document": "d"}\n')
    for heavy in ("datasets", "argilla"):
        monkeypatch.setitem(sys.modules, heavy, None)  # importing it would now fail
    records, info = load_source(RunConfig(data_path=str(path)))
    assert records == [{"query": "q", "document": "d"}]
    assert info["type"] == "local" and info["files"] == {str(path): 1}
