"""The evaluator-speed benchmark in its small form: same metrics, and faster than per-dim."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.bench


def test_evaluator_speed_small(tmp_path, tiny_model_dir):
    from bench.evaluator_speed import main

    result = main(
        [
            "--small",
            "--model",
            str(tiny_model_dir),
            "--dims",
            "64,32,16,8",
            "--max-queries",
            "200",
            "--out",
            str(tmp_path / "speed.json"),
        ]
    )
    assert result["queries"] == 200 and result["corpus"] == 167
    assert result["max_abs_diff"] <= 1e-6  # identical metrics
    # One encoding instead of four: clearly faster even on a tiny model.
    assert result["ratio"] > 1.5, result
    assert (tmp_path / "speed.json").exists()
