"""The promotion gate in the registry: moving aliases exactly once, the history, the champion's
evaluation (real MLflow registry). The rule itself is tested in test_gate.py."""

from __future__ import annotations

import pytest

from tasks.config import RunConfig
from tasks.mlflow_tags import CHALLENGER, CHAMPION
from tasks.promotion import apply_decision, evaluate_champion, registry_aliases, registry_history

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
