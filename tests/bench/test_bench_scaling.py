"""The scaling benchmark runs end to end in its small form (so it cannot rot), on a tiny model;
its synthetic data is deterministic and grows like real data."""

from __future__ import annotations

import json
import math
import statistics

import pytest

pytestmark = pytest.mark.bench


def test_synthetic_pairs_are_deterministic_and_realistic():
    from bench.scaling import length_stats, synthetic_pairs

    pairs = synthetic_pairs(3000, seed=1)
    assert len(pairs) == 3000
    assert pairs == synthetic_pairs(3000, seed=1)
    assert pairs != synthetic_pairs(3000, seed=2)
    assert synthetic_pairs(300, seed=1) == pairs[:300]  # a larger set extends a smaller one
    assert len({(p["query"], p["document"]) for p in pairs}) == len(pairs)
    stats = length_stats(pairs)
    assert 2.5 <= stats["pairs"] / stats["documents"] <= 3.5
    assert 60 <= stats["doc_words_median"] <= 100 and stats["doc_words_p95"] > 150
    assert 6 <= stats["query_words_median"] <= 12
    assert min(len(p["document"].split()) for p in pairs) >= 10
    assert statistics.median(len(p["query"].split()) for p in pairs) < stats["doc_words_median"]


def test_train_phases():
    from bench.scaling import train_phases

    marks = {
        "train_call": 10.0,
        "step_begin": [12.0, 13.0, 14.0],
        "step_end": [13.0, 14.0, 15.5],
        "step_end_cpu": [5.0, 7.0, 10.0],
        "epoch_end": 16.0,
        "evaluate": [19.0],
        "save": [15.7, 19.5],
        "train_return": 20.0,
    }
    phases = train_phases(marks, started=0.0, ended=21.0)
    assert phases["to_trainer_s"] == 10.0 and phases["to_first_step_s"] == 2.0
    assert phases["setup_s"] == 12.0
    assert phases["steps"] == 3 and phases["step_s_median"] == pytest.approx(1.25)
    assert phases["val_eval_s"] == 3.0 and phases["checkpoints_s"] == pytest.approx(0.7)
    assert phases["after_trainer_s"] == 1.0 and phases["loop_s"] == 3.5
    assert phases["step_cpu_s_median"] == pytest.approx(2.5)
    del marks["step_end_cpu"]
    assert "step_cpu_s_median" not in train_phases(marks, started=0.0, ended=21.0)


def test_scaling_benchmark_small(tmp_path, tiny_model_dir):
    from bench.scaling import main

    out = tmp_path / "scaling.json"
    result = main(
        ["--small", "--model", str(tiny_model_dir), "--work", str(tmp_path), "--out", str(out)]
    )
    assert json.loads(out.read_text())["rows"] == result["rows"]
    rows = result["rows"]
    assert [r["size"] for r in rows] == [100, 1000]
    for r in rows:
        assert r["counts"]["pairs"] == r["size"]
        # eval_corpus=all: evaluation retrieves among every document of the data
        assert r["counts"]["eval_corpus"] == r["data"]["documents"]
        # validation: its own documents plus a sample of the rest, at most val_corpus_size
        assert 0 < r["counts"]["val_corpus"] <= min(2000, r["counts"]["eval_corpus"])
        for step in ("prepare", "train", "evaluate"):
            assert r[step]["returncode"] == 0
            assert r[step]["wall_s"] > 0 and r[step]["max_rss_mb"] > 0
        t = r["train"]
        assert t["steps"] == result["steps"] == 4
        assert 0 < t["step_s_median"] < t["wall_s"] and t["val_eval_s"] > 0
        # prepare imports no torch: far below the train process's memory
        assert r["prepare"]["max_rss_mb"] < r["train"]["max_rss_mb"] / 2
        assert r["evaluate"]["encode_s"] > 0
    small, large = rows
    assert large["counts"]["eval_corpus"] > 5 * small["counts"]["eval_corpus"]
    assert large["evaluate"]["encode_s"] > small["evaluate"]["encode_s"]
    (g,) = result["growth"]
    assert (g["from"], g["to"], g["data_ratio"]) == (100, 1000, 10.0)
    assert all(v is not None and math.isfinite(v) and v > 0 for v in g["ratios"].values())
    assert all(r["train"]["step_cpu_s_median"] > 0 for r in rows)


def test_peak_rss_is_the_step_process_own(tmp_path):
    """A big parent (a pytest run holding torch) must not leak into a step's peak RSS."""
    import os
    import sys

    import numpy as np

    from bench.scaling import run_measured

    held = np.ones((64, 1024, 1024))  # 512 MB resident in this process
    small = run_measured([sys.executable, "-c", "print('ok')"], dict(os.environ))
    grow = "import numpy as np; a = np.ones((32, 1024, 1024)); print(int(a.sum()))"
    big = run_measured([sys.executable, "-c", grow], dict(os.environ))
    assert held.sum() > 0
    assert small.returncode == 0 and small.stdout.strip() == "ok"
    assert small.max_rss_mb < 100, small.max_rss_mb
    assert 256 < big.max_rss_mb < 400 and big.cpu_s > 0 and big.wall_s > 0
    slow = run_measured([sys.executable, "-c", "import time; time.sleep(30)"], {}, timeout=1)
    assert slow.returncode != 0


def test_extrapolation_scales_validation_and_evaluation_by_their_own_corpora():
    from bench.scaling import _extrapolations

    def row(model: str, size: int, val_docs: int, docs: int) -> dict:
        return {
            "model": model,
            "label": model,
            "size": size,
            "counts": {"val_queries": 10, "val_corpus": val_docs, "eval_corpus": docs},
            "train": {"val_eval_s": 100.0},
            "evaluate": {"encode_s": 300.0},
        }

    rows = [row("big", 10_000, 2000, 3000), row("tiny", 100_000, 2500, 30_000)]
    (note,) = _extrapolations(rows)
    # validation x 1.25 (2,500 / 2,000 documents), evaluation x 10 (30,000 / 3,000)
    assert "validation (2,500 documents) would take about 2 min" in note
    assert "evaluation (30,000 documents) about 50 min" in note
    assert "x 1.2 and x 10.0" in note
