"""The scaling benchmark runs end to end in its small form (so it cannot rot), on a tiny model;
its synthetic data is deterministic and grows like real data."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

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


def _measured(wall_s: float, max_rss_mb: float = 100.0, cpu_s: float = 1.0):
    from bench.scaling import Measured

    return Measured(["x"], 0, wall_s=wall_s, max_rss_mb=max_rss_mb, cpu_s=cpu_s, started=0.0)


def test_a_sizes_folder_config_and_training_pairs():
    from bench.scaling import check_training_pairs, slug, step_values

    assert slug("tiny (2 layers, 64 dims)") == "tiny-2-layers-64-dims"
    assert slug("all-MiniLM-L6-v2") == "all-minilm-l6-v2"
    dims = {"matryoshka_dims": [64, 32], "best_metric_dim": 32}
    assert step_values(Path("/w/pairs.jsonl"), "tiny", 8, 3, dims) == {
        "data_path": "/w/pairs.jsonl",
        "base_model": "tiny",
        "use_negatives": False,
        "mine_negatives": "never",
        "batch_size": 8,
        "epochs": 1,
        "seed": 3,
        "force": True,
        "matryoshka_dims": [64, 32],
        "best_metric_dim": 32,
    }
    check_training_pairs({"train_pairs": 32}, 100, steps=4, batch_size=8)  # just enough
    with pytest.raises(SystemExit, match="^100 pairs leave 31 training pairs, fewer than 4 steps"):
        check_training_pairs({"train_pairs": 31}, 100, steps=4, batch_size=8)
    with pytest.raises(SystemExit, match="leave None training pairs"):
        check_training_pairs({}, 100, steps=4, batch_size=8)


def test_a_size_row_and_its_table_line():
    from bench.scaling import median_run, size_line, size_row

    prepares = [_measured(3.0, 150.0), _measured(1.0, 140.0), _measured(2.0004, 150.4)]
    assert median_run(prepares) is prepares[2]
    assert median_run(prepares[:2]) is prepares[0]  # of two: the slower
    counts = {"pairs": 1000, "train_pairs": 800, "val_queries": 50, "val_corpus": 2000}
    counts.update(eval_queries=100, eval_corpus=1234, eval_pairs=120)
    phases = {"setup_s": 12.3404, "step_s_median": 1.234, "step_cpu_s_median": 0.5}
    phases.update(val_eval_s=3.0, steps=4)
    row = size_row(
        "/m/st",
        "tiny (2 layers, 64 dims)",
        1000,
        {"documents": 333},
        counts,
        prepares=prepares,
        train=_measured(30.0, 900.0, 50.0),
        phases=phases,
        evaluate=_measured(10.0, 800.0, 15.0),
        timing={"encode_s": 5.00049},
    )
    assert row == {
        "model": "/m/st",
        "label": "tiny (2 layers, 64 dims)",
        "size": 1000,
        "data": {"documents": 333},
        "counts": {k: v for k, v in counts.items() if k != "eval_pairs"},
        "prepare": {
            **{"returncode": 0, "wall_s": 2.0, "max_rss_mb": 150.4, "cpu_s": 1.0},
            "repeats": 3,
            "walls_s": [3.0, 1.0, 2.0],
        },
        "train": {
            **{"returncode": 0, "wall_s": 30.0, "max_rss_mb": 900.0, "cpu_s": 50.0},
            **{"setup_s": 12.34, "step_s_median": 1.234, "step_cpu_s_median": 0.5},
            **{"val_eval_s": 3.0, "steps": 4},
        },
        "evaluate": {
            **{"returncode": 0, "wall_s": 10.0, "max_rss_mb": 800.0, "cpu_s": 15.0},
            "encode_s": 5.0,
        },
    }
    assert size_line(row) == (
        "| tiny (2 layers, 64 dims) | 1,000 | 100 x 1,234 | 2.0 s | 30.0 s | 12.3 s "
        "| 1.23 s (0.50) | 50 x 2,000 | 3.0 s | 10.0 s | 5.0 s | 150 / 900 / 800 MB |"
    )
    # results from before the CPU time per step and the validation corpus were recorded
    del row["train"]["step_cpu_s_median"]
    row["counts"]["val_corpus"] = None
    assert "| 1.23 s |  | 3.0 s |" in size_line(row)


def test_growth_ratios_and_their_table():
    from bench.scaling import growth, growth_lines

    def row(model, size, prepare_s, train_s, evaluate_s):
        return {
            "model": model,
            "label": model.upper(),
            "size": size,
            "prepare": {"wall_s": prepare_s, "cpu_s": prepare_s / 2, "max_rss_mb": 100.0},
            "train": {"wall_s": train_s},
            "evaluate": {"wall_s": evaluate_s},
        }

    rows = [row("m", 1000, 2.0, 10.0, 4.0), row("m", 10_000, 5.0, 12.0, 40.0)]
    rows.append(row("t", 100_000, 1.0, 1.0, 1.0))  # another model: no ratio to the one before
    (g,) = growth(rows)
    assert (g["label"], g["from"], g["to"], g["data_ratio"]) == ("M", 1000, 10_000, 10.0)
    assert {k: v for k, v in g["ratios"].items() if v is not None} == {
        "prepare": 2.5,
        "prepare CPU": 2.5,
        "train": 1.2,
        "evaluate": 10.0,
        "prepare RSS": 1.0,
    }
    assert growth_lines([g]) == [
        "",
        "| model | growth | prepare | prepare CPU | train | evaluate | prepare RSS |",
        "|---|---|---:|---:|---:|---:|---:|",
        "| M | 10k/1k | 2.50x | 2.50x | 1.20x | 10.00x | 1.00x |",
    ]


def test_the_command_line_leaves_out_where_results_go():
    from bench.scaling import command_line

    argv = ["--small", "--work", "/w", "--out=o.json", "--docs", "--extra", '{"a": 1}']
    assert (
        command_line("scaling.py", argv) == "python bench/scaling.py --small --extra '{\"a\": 1}'"
    )
