"""The promotion gate's rule (pure: no MLflow, no torch)."""

from __future__ import annotations

import pytest

from tasks.config import RunConfig
from tasks.gate import gate_decision

pytestmark = pytest.mark.unit

DIMS = [64, 32, 16]


def _cfg(**overrides) -> RunConfig:
    values = {"data_path": "x", "matryoshka_dims": DIMS, "best_metric_dim": 32, **overrides}
    return RunConfig.from_mapping(values)


def _eval(values: list[float], **extra) -> dict:
    return {
        "dims": DIMS,
        "metrics": {str(d): {"ndcg@10": v, "mrr@10": v - 0.1} for d, v in zip(DIMS, values)},
        **extra,
    }


def test_first_model_must_beat_the_base_model():
    base = _eval([0.50, 0.40, 0.30])
    better = gate_decision(_cfg(), base=base, challenger=_eval([0.55, 0.45, 0.31]), champion=None)
    assert better["promoted"] and better["reference"] == "base"
    assert better["reference_version"] is None
    assert better["delta"] == pytest.approx(0.05) and better["dim"] == 32
    worse = gate_decision(_cfg(), base=base, challenger=_eval([0.55, 0.39, 0.31]), champion=None)
    assert not worse["promoted"] and "does not beat" in worse["reason"]
    assert "the base model 0.4000" in worse["reason"]


def test_challenger_is_compared_with_the_champion_not_the_base():
    base = _eval([0.10, 0.10, 0.10])
    champion = _eval([0.60, 0.50, 0.40], version="3")
    decision = gate_decision(
        _cfg(), base=base, challenger=_eval([0.58, 0.49, 0.41]), champion=champion
    )
    assert not decision["promoted"]
    assert decision["reference"] == "champion" and decision["reference_version"] == "3"
    assert "champion v3 0.5000" in decision["reason"]


def test_margin_must_be_exceeded():
    base = _eval([0.5, 0.5, 0.5])
    cfg = _cfg(gate_margin=0.02)
    assert not gate_decision(cfg, base=base, challenger=_eval([0.5, 0.52, 0.5]), champion=None)[
        "promoted"
    ]
    assert gate_decision(cfg, base=base, challenger=_eval([0.5, 0.53, 0.5]), champion=None)[
        "promoted"
    ]
    # Equal is not better, even with no margin.
    assert not gate_decision(_cfg(), base=base, challenger=base, champion=None)["promoted"]


def test_a_regression_beyond_the_tolerance_at_any_dim_blocks_promotion():
    champion = _eval([0.60, 0.50, 0.40], version="1")
    challenger = _eval([0.61, 0.60, 0.37])  # dim 16 falls 0.03
    strict = gate_decision(
        _cfg(gate_tolerance=0.02), base=champion, challenger=challenger, champion=champion
    )
    assert not strict["promoted"] and strict["regressions"] == [16]
    assert "dim 16 fell 0.0300" in strict["reason"]
    lenient = gate_decision(
        _cfg(gate_tolerance=0.05), base=champion, challenger=challenger, champion=champion
    )
    assert lenient["promoted"] and lenient["regressions"] == []


def test_gate_metric_and_dim_are_parameters():
    cfg = _cfg(gate_metric="mrr@10", gate_dim=64)
    d = gate_decision(
        cfg, base=_eval([0.5, 0.5, 0.5]), challenger=_eval([0.6, 0.5, 0.5]), champion=None
    )
    assert d["metric"] == "mrr@10" and d["dim"] == 64 and d["promoted"]
    assert d["challenger_value"] == pytest.approx(0.5)  # mrr = ndcg - 0.1 here


def test_gate_dim_must_be_one_of_the_dims():
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="gate_dim=48"):
        _cfg(gate_dim=48)


def test_the_decision_records_every_number():
    cfg = _cfg(gate_margin=0.01, gate_tolerance=0.02)
    base = _eval([0.50, 0.40, 0.30])
    d = gate_decision(cfg, base=base, challenger=_eval([0.49, 0.45, 0.29]), champion=None)
    assert d["promoted"] is True and d["decision"] == "promoted"
    assert d["reason"] == (
        "NDCG@10 at dim 32 0.4500 vs the base model 0.4000 (+0.0500) beats it by more than the "
        "margin 0.0100, and no dim fell more than 0.0200"
    )
    assert (d["metric"], d["dim"], d["margin"], d["tolerance"]) == ("ndcg@10", 32, 0.01, 0.02)
    assert d["challenger_value"] == 0.45 and d["reference_value"] == 0.40
    assert d["per_dim"] == {
        "64": {"challenger": 0.49, "reference": 0.50, "delta": pytest.approx(-0.01)},
        "32": {"challenger": 0.45, "reference": 0.40, "delta": pytest.approx(0.05)},
        "16": {"challenger": 0.29, "reference": 0.30, "delta": pytest.approx(-0.01)},
    }
    assert d["regressions"] == []


def test_a_value_that_is_not_a_number_never_promotes():
    base = _eval([0.5, 0.5, 0.5])
    d = gate_decision(_cfg(), base=base, challenger=_eval([0.6, float("nan"), 0.6]), champion=None)
    assert not d["promoted"] and "does not beat it" in d["reason"]


def test_a_metric_the_evaluation_lacks_is_a_clear_error():
    from tasks.io import StepError

    with pytest.raises(StepError, match="no recall@1 at dim 64"):
        gate_decision(
            _cfg(gate_metric="recall@1"),
            base=_eval([0.5, 0.5, 0.5]),
            challenger=_eval([0.6, 0.6, 0.6]),
            champion=None,
        )
