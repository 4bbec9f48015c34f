"""The demo data set: the corpus file shipped as package data, written the same every time."""

from __future__ import annotations

import hashlib
import json

import pytest

from tasks.demo_data import CORPUS_FILE, demo_pairs, write_demo_dataset

pytestmark = pytest.mark.unit

#: sha256 of ``json.dumps(demo_pairs(0), ensure_ascii=False)``: the demo's figures in the README
#: and docs/benchmarks.md were made with exactly these rows.
DEMO_ROWS_SHA256 = "2e86c5b36cdb175513dcf9915e78ede685de2250939a59d613abfe42a6800dc9"


def test_the_demo_rows_are_the_ones_the_documented_figures_were_made_with():
    rows = demo_pairs(0)
    digest = hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode()).hexdigest()
    assert digest == DEMO_ROWS_SHA256
    assert len(rows) == 523 and len({r["document"] for r in rows}) == 167
    assert all(r["negative"] != r["document"] for r in rows)
    assert demo_pairs(1) != rows  # the seed picks negatives and order


def test_the_corpus_is_package_data_and_the_file_is_written_atomically(tmp_path):
    from importlib import resources

    assert resources.files("tasks").joinpath(CORPUS_FILE).is_file()
    out = tmp_path / "demo" / "pairs.jsonl"
    assert write_demo_dataset(out) == {"pairs": 523, "documents": 167}
    lines = out.read_text(encoding="utf-8").splitlines()
    assert [json.loads(line) for line in lines] == demo_pairs(0)
    assert not [p for p in out.parent.iterdir() if p.name != "pairs.jsonl"]  # no temp file left
