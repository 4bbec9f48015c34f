"""The promotion gate: the rule, and moving registry aliases exactly once (real MLflow registry)."""

from __future__ import annotations

import pytest

from tasks.config import RunConfig
from tasks.promotion import (
    CHALLENGER,
    CHAMPION,
    apply_decision,
    evaluate_champion,
    gate_decision,
    registry_aliases,
    registry_history,
)

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


# --- the rule --------------------------------------------------------------------------------
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


# --- the registry ----------------------------------------------------------------------------
@pytest.fixture
def registry(tmp_path):
    from mlflow.tracking import MlflowClient

    uri = f"sqlite:///{tmp_path / 'registry.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("m")
    return client


def _new_version(client, value: float) -> str:
    mv = client.create_model_version("m", "file:///nonexistent/model")
    client.set_model_version_tag("m", mv.version, "gate_value", repr(value))
    return str(mv.version)


def _decision(promoted: bool, reference_version: str | None) -> dict:
    return {
        "promoted": promoted,
        "decision": "promoted" if promoted else "rejected",
        "reason": "numbers",
        "reference_version": reference_version,
    }


def test_aliases_move_once_per_version(registry):
    v1 = _new_version(registry, 0.4)
    applied = apply_decision(registry, "m", v1, _decision(True, None))
    assert applied["promoted"] and applied["champion_version"] == v1
    assert applied["previous_champion"] is None
    assert registry_aliases(registry, "m") == {CHAMPION: v1, CHALLENGER: v1}

    v2 = _new_version(registry, 0.3)
    rejected = apply_decision(registry, "m", v2, _decision(False, v1))
    assert not rejected["promoted"] and rejected["champion_version"] == v1
    assert registry_aliases(registry, "m") == {CHAMPION: v1, CHALLENGER: v2}
    tags = registry.get_model_version("m", v2).tags
    assert tags["gate_decision"] == "rejected" and tags["gate_applied"] == "true"

    # A retry of v1's register after v2 took the challenger alias moves nothing back.
    again = apply_decision(registry, "m", v1, _decision(True, None))
    assert again["promoted"] and again["decision"] == "promoted"
    assert registry_aliases(registry, "m") == {CHAMPION: v1, CHALLENGER: v2}


def test_a_champion_that_changed_during_the_run_is_not_replaced(registry):
    v1 = _new_version(registry, 0.4)
    v2 = _new_version(registry, 0.5)
    registry.set_registered_model_alias("m", CHAMPION, v1)
    v3 = _new_version(registry, 0.6)
    registry.set_registered_model_alias("m", CHAMPION, v2)  # moved by hand meanwhile
    applied = apply_decision(registry, "m", v3, _decision(True, v1))  # gate compared with v1
    assert not applied["promoted"] and "champion is now v2" in applied["reason"]
    assert registry_aliases(registry, "m")[CHAMPION] == v2


def test_history_lists_versions_with_gate_values_and_aliases(registry):
    v1 = _new_version(registry, 0.4)
    apply_decision(registry, "m", v1, _decision(True, None))
    v2 = _new_version(registry, 0.3)
    apply_decision(registry, "m", v2, _decision(False, v1))
    history = registry_history(registry, "m")
    assert [h["version"] for h in history] == [v1, v2]
    assert history[0]["gate_value"] == pytest.approx(0.4)
    assert history[0]["aliases"] == [CHAMPION]
    assert history[1]["decision"] == "rejected" and history[1]["aliases"] == [CHALLENGER]
    assert registry_history(registry, "no-such-model") == []


def test_champion_evaluation_uses_the_cache_without_downloading(tmp_path, monkeypatch, registry):
    """An unchanged champion on an unchanged eval set is neither downloaded nor re-encoded."""
    from tasks.evaluate import evaluation_cache_file
    from tasks.io import read_json, write_json

    monkeypatch.setenv("MLFLOW_TRACKING_URI", registry.tracking_uri)
    cfg = _cfg(registered_model_name="m")
    run_dir = tmp_path / "run"
    write_json(run_dir / "data" / "manifest.json", {"fingerprints": {"eval": "evalfp"}})

    absent = evaluate_champion(cfg, run_dir)
    assert absent["absent"] is True
    assert read_json(run_dir / "eval" / "history.json")["versions"] == []

    v1 = _new_version(registry, 0.4)  # its source does not exist: a download would fail
    registry.set_model_version_tag("m", v1, "model_fingerprint", "modelfp")
    registry.set_registered_model_alias("m", CHAMPION, v1)
    write_json(evaluation_cache_file("modelfp", "evalfp", DIMS), _eval([0.6, 0.5, 0.4]))
    run_dir2 = tmp_path / "run2"
    write_json(run_dir2 / "data" / "manifest.json", {"fingerprints": {"eval": "evalfp"}})
    result = evaluate_champion(cfg, run_dir2)
    assert result["cached"] is True and result["version"] == v1
    assert result["metrics"]["32"]["ndcg@10"] == 0.5
    assert read_json(run_dir2 / "eval" / "champion.json")["version"] == v1
