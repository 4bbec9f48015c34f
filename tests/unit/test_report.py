"""The report step: chart, markdown and metrics of base vs fine-tuned."""

from __future__ import annotations

import pytest

from tasks.config import RunConfig
from tasks.io import read_json, write_json
from tasks.report import OUTPUTS, format_table, report

CFG = RunConfig(data_path="x", matryoshka_dims=[64, 32, 16], best_metric_dim=32)

pytestmark = pytest.mark.unit


def _eval(values):
    dims = [64, 32, 16]
    metrics = {}
    for dim, ndcg in zip(dims, values):
        metrics[str(dim)] = {
            "ndcg@10": ndcg,
            "mrr@10": ndcg - 0.05,
            "recall@1": ndcg - 0.2,
            "recall@5": ndcg,
            "recall@10": ndcg + 0.05,
            "map@100": ndcg - 0.04,
        }
    return {"dims": dims, "metrics": metrics, "model_fingerprint": "m", "eval_fingerprint": "e"}


def test_report_writes_chart_markdown_and_metrics(tmp_path):
    run_dir = tmp_path / "run"
    write_json(run_dir / "eval" / "base.json", _eval([0.50, 0.45, 0.40]))
    write_json(run_dir / "eval" / "finetuned.json", _eval([0.60, 0.58, 0.39]))
    summary = report(run_dir, CFG)
    chart = run_dir / "report" / "ndcg_by_dim.png"
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and chart.stat().st_size > 10_000
    text = (run_dir / "report" / "report.md").read_text()
    assert "| 64 | 0.5000 | 0.6000 | +0.1000 | +20.0% |" in text
    assert "| 16 | 0.4000 | 0.3900 | -0.0100 | -2.5% |" in text
    assert "at 2 of 3 dims" in text
    metrics = read_json(run_dir / "report" / "metrics.json")
    assert metrics["models"]["finetuned"]["metrics"]["32"]["ndcg@10"] == 0.58
    assert metrics["models"]["base"]["metrics"]["64"]["map@100"] == pytest.approx(0.46)
    assert summary["improved_dims"] == 2
    # OUTPUTS (what register logs) is exactly what the step wrote
    assert sorted(p.name for p in (run_dir / "report").iterdir()) == sorted(OUTPUTS)


def test_missing_evaluation_is_a_clear_error(tmp_path):
    from tasks.io import StepError

    write_json(tmp_path / "eval" / "base.json", _eval([0.5, 0.4, 0.3]))
    with pytest.raises(StepError, match="finetuned"):
        report(tmp_path, CFG)


def _eval_of(values: dict[str, list[float]]) -> dict:
    """An evaluation at dims 64/32/16 with the given values of each metric, per dim."""
    dims = [64, 32, 16]
    metrics = {str(d): {m: v[i] for m, v in values.items()} for i, d in enumerate(dims)}
    return {"dims": dims, "metrics": metrics, "model_fingerprint": "m", "eval_fingerprint": "e"}


#: Every number differs between metrics, models and dims, and so does every delta and relative
#: change: a figure read from the wrong metric, model, row or column changes the table.
BASE = _eval_of({"ndcg@10": [0.5, 0.4, 0.3], "mrr@10": [0.25, 0.2, 0.5]})
CHAMPION = {**_eval_of({"ndcg@10": [0.52, 0.42, 0.35], "mrr@10": [0.3, 0.1, 0.45]}), "version": "2"}
FINETUNED = _eval_of({"ndcg@10": [0.6, 0.38, 0.45], "mrr@10": [0.275, 0.32, 0.4]})


def test_table_format():
    """Every number of the table, in its row and column: values, delta and relative change per
    dim, for the default metric and another one."""
    evals = {"base": BASE, "finetuned": FINETUNED}
    assert format_table(evals).splitlines() == [
        "| dim | base ndcg@10 | fine-tuned ndcg@10 | delta | relative |",
        "|---:|---:|---:|---:|---:|",
        "| 64 | 0.5000 | 0.6000 | +0.1000 | +20.0% |",
        "| 32 | 0.4000 | 0.3800 | -0.0200 | -5.0% |",
        "| 16 | 0.3000 | 0.4500 | +0.1500 | +50.0% |",
    ]
    assert format_table(evals, "mrr@10").splitlines() == [
        "| dim | base mrr@10 | fine-tuned mrr@10 | delta | relative |",
        "|---:|---:|---:|---:|---:|",
        "| 64 | 0.2500 | 0.2750 | +0.0250 | +10.0% |",
        "| 32 | 0.2000 | 0.3200 | +0.1200 | +60.0% |",
        "| 16 | 0.5000 | 0.4000 | -0.1000 | -20.0% |",
    ]


def test_table_format_with_a_champion():
    """The champion's column and the fine-tuned model against it, for both metrics."""
    evals = {"base": BASE, "champion": CHAMPION, "finetuned": FINETUNED}
    head = "| dim | base {m} | champion v2 | fine-tuned {m} | delta | relative | vs champion |"
    rule = "|---:|---:|---:|---:|---:|---:|---:|"
    assert format_table(evals).splitlines() == [
        head.format(m="ndcg@10"),
        rule,
        "| 64 | 0.5000 | 0.5200 | 0.6000 | +0.1000 | +20.0% | +0.0800 |",
        "| 32 | 0.4000 | 0.4200 | 0.3800 | -0.0200 | -5.0% | -0.0400 |",
        "| 16 | 0.3000 | 0.3500 | 0.4500 | +0.1500 | +50.0% | +0.1000 |",
    ]
    assert format_table(evals, "mrr@10").splitlines() == [
        head.format(m="mrr@10"),
        rule,
        "| 64 | 0.2500 | 0.3000 | 0.2750 | +0.0250 | +10.0% | -0.0250 |",
        "| 32 | 0.2000 | 0.1000 | 0.3200 | +0.1200 | +60.0% | +0.2200 |",
        "| 16 | 0.5000 | 0.4500 | 0.4000 | -0.1000 | -20.0% | -0.0500 |",
    ]


def test_the_report_names_come_from_one_home():
    from tasks import report_files
    from tasks.metrics import HEADLINE_METRICS
    from tasks.report import CHART_METRIC

    assert OUTPUTS is report_files.OUTPUTS
    assert CHART_METRIC in HEADLINE_METRICS


def test_report_with_a_champion_shows_three_models_the_gate_and_its_history(tmp_path):
    run_dir = tmp_path / "run"
    write_json(run_dir / "eval" / "base.json", _eval([0.50, 0.45, 0.40]))
    write_json(run_dir / "eval" / "finetuned.json", _eval([0.60, 0.52, 0.41]))
    write_json(run_dir / "eval" / "champion.json", {**_eval([0.58, 0.55, 0.42]), "version": "2"})
    write_json(
        run_dir / "eval" / "history.json",
        {
            "registered_model": "m",
            "versions": [
                {"version": "1", "gate_value": 0.50, "decision": "promoted", "aliases": []},
                {
                    "version": "2",
                    "gate_value": 0.55,
                    "decision": "promoted",
                    "aliases": ["champion"],
                },
            ],
        },
    )
    summary = report(run_dir, CFG)
    gate = read_json(run_dir / "report" / "gate.json")
    # dim 32 is the gate dim: 0.52 vs champion 0.55 -> rejected
    assert gate["promoted"] is False and gate["reference"] == "champion"
    assert gate["reference_version"] == "2"
    assert gate["challenger_value"] == pytest.approx(0.52)
    assert summary["gate"]["decision"] == "rejected"
    assert summary["ndcg@10"]["32"] == {"base": 0.45, "champion": 0.55, "finetuned": 0.52}
    text = (run_dir / "report" / "report.md").read_text()
    assert "Decision: **not promoted**" in text and "champion v2" in text
    assert "| 32 | 0.4500 | 0.5500 | 0.5200 | +0.0700 | +15.6% | -0.0300 |" in text
    assert "![gate history](gate_history.png)" in text
    for png in ("ndcg_by_dim.png", "gate_history.png"):
        assert (run_dir / "report" / png).read_bytes()[:4] == b"\x89PNG"
    metrics = read_json(run_dir / "report" / "metrics.json")
    assert metrics["models"]["champion"]["version"] == "2"
    assert metrics["gate"]["decision"] == "rejected"


def test_report_without_champion_gates_against_the_base_model(tmp_path):
    run_dir = tmp_path / "run"
    write_json(run_dir / "eval" / "base.json", _eval([0.50, 0.45, 0.40]))
    write_json(run_dir / "eval" / "finetuned.json", _eval([0.60, 0.58, 0.39]))
    write_json(run_dir / "eval" / "champion.json", {"model": "champion", "absent": True})
    summary = report(run_dir, CFG)
    assert summary["gate"]["reference"] == "base"
    assert summary["gate"]["decision"] == "promoted"
    assert "champion" not in read_json(run_dir / "report" / "metrics.json")["models"]
