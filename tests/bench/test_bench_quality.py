"""The quality benchmark runs end to end in its small form (so it cannot rot), on a tiny model."""

from __future__ import annotations

import json

import pytest

pytestmark = pytest.mark.bench


def test_quality_benchmark_small(tmp_path, tiny_model_dir):
    from bench.quality import main

    out = tmp_path / "quality.json"
    extra = {"epochs": 1, "use_negatives": False, "matryoshka_dims": [64, 32]}
    extra["best_metric_dim"] = 32
    result = main(
        [
            "--small",
            "--model",
            str(tiny_model_dir),
            "--recipes",
            "ours,phil",
            "--extra",
            json.dumps(extra),
            "--work",
            str(tmp_path / "work"),
            "--out",
            str(out),
        ]
    )
    assert set(result["ndcg@10"]) == {"base", "ours", "phil"}
    for per_dim in result["ndcg@10"].values():
        assert set(per_dim) == {"64", "32"}
        assert all(0.0 <= v["mean"] <= 1.0 and v["n"] == 1 for v in per_dim.values())
    assert json.loads(out.read_text())["recipes"]["phil"]["gradient_accumulation_steps"] == 16
    assert result["seconds_per_run"]["ours"] > 0


def test_update_docs_replaces_only_its_own_block(tmp_path):
    from bench.common import update_docs

    docs = tmp_path / "benchmarks.md"
    docs.write_text("# Benchmarks\n\nintro\n\n<!-- bench:x -->\nold\n<!-- /bench:x -->\n\nafter\n")
    update_docs("x", "| new |", docs)
    text = docs.read_text()
    assert "| new |" in text and "old" not in text and "intro" in text and "after" in text
    update_docs("y", "table y", docs)
    assert "## y" in docs.read_text() and "<!-- bench:y -->\ntable y\n<!-- /bench:y -->" in (
        docs.read_text()
    )
