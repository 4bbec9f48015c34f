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


def _part(seed: int, ours: float, seconds: float) -> dict:
    return {
        "data": {"train": "t", "eval": "e", "corpus": ""},
        "model": "m",
        "recipes": {"ours": {}},
        "extra": {},
        "seeds": [seed],
        "per_seed": {"base": [{"64": 0.2, "32": 0.1}], "ours": [{"64": ours, "32": ours / 2}]},
        "timings": {"ours": [seconds]},
        "machine": {"device_name": "cpu", "torch": "x", "sentence_transformers": "y", "date": "d"},
    }


def test_merge_combines_the_seeds_of_separate_runs(tmp_path):
    from bench.quality import markdown, merge

    paths = []
    for seed, ours, secs in ((42, 0.30, 10.0), (43, 0.34, 14.0)):
        path = tmp_path / f"q{seed}.json"
        path.write_text(json.dumps(_part(seed, ours, secs)))
        paths.append(str(path))
    result = merge(paths)
    assert result["seeds"] == [42, 43]
    assert result["ndcg@10"]["ours"]["64"]["n"] == 2
    assert result["ndcg@10"]["ours"]["64"]["mean"] == pytest.approx(0.32)
    assert result["ndcg@10"]["ours"]["64"]["spread"] == pytest.approx(0.04)
    assert result["ndcg@10"]["base"]["64"]["n"] == 1  # the base model is evaluated once
    assert result["seconds_per_run"]["ours"] == pytest.approx(12.0)
    assert "0.3200 ± 0.0200 (+60%)" in markdown(result)
    with pytest.raises(SystemExit, match="repeat"):
        merge([paths[0], paths[0]])
    other = _part(44, 0.3, 1.0) | {"model": "another"}
    (tmp_path / "other.json").write_text(json.dumps(other))
    with pytest.raises(SystemExit, match="differs .* in model"):
        merge([paths[0], str(tmp_path / "other.json")])
