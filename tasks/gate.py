"""The promotion gate's rule: does the challenger replace the champion? Pure (no MLflow, no torch).

A challenger becomes the champion only when, on the *current* eval set,

- its gate metric (``gate_metric`` at ``gate_dim``, default NDCG@10 at 128) beats the champion's by
  more than ``gate_margin``, and
- no Matryoshka dim's gate metric falls more than ``gate_tolerance`` below the champion's.

With no champion yet, the same rules compare it with the base model. A rejected challenger is a
successful run that says why (task log, report, MLflow tags).

The ``report`` step decides with :func:`gate_decision` and writes ``report/gate.json``; the
``register`` step applies that decision to the registry's aliases
(:func:`tasks.promotion.apply_decision`).

Example::

    from tasks.gate import gate_decision

    decision = gate_decision(cfg, base=base_eval, challenger=finetuned_eval, champion=None)
    decision["promoted"], decision["reason"]
"""

from __future__ import annotations

import math
from typing import Any

from tasks.config import RunConfig
from tasks.io import StepError
from tasks.mlflow_tags import CHAMPION

#: Differences this small are float noise: 0.52 - 0.50 does not beat a margin of 0.02.
EPSILON = 1e-9


def _value(result: dict[str, Any], dim: int, metric: str) -> float:
    try:
        return float(result["metrics"][str(dim)][metric])
    except KeyError:
        raise StepError(
            f"the evaluation has no {metric} at dim {dim}: evaluate with these dims again"
        ) from None


def _reference(
    base: dict[str, Any], champion: dict[str, Any] | None
) -> tuple[dict[str, Any], str, str, Any]:
    """What the challenger is compared with: (result, name in the reason, kind, version)."""
    if champion is not None:
        return champion, f"champion v{champion.get('version')}", CHAMPION, champion.get("version")
    return base, "the base model", "base", None


def _per_dim(
    cfg: RunConfig, challenger: dict[str, Any], reference: dict[str, Any]
) -> tuple[dict[str, dict[str, float]], list[int]]:
    """The gate metric of both at every dim with its delta, and the dims that fell more than the
    tolerance."""
    per_dim = {}
    regressions = []
    for d in cfg.matryoshka_dims:
        new, old = _value(challenger, d, cfg.gate_metric), _value(reference, d, cfg.gate_metric)
        per_dim[str(d)] = {"challenger": new, "reference": old, "delta": new - old}
        if old - new > cfg.gate_tolerance + EPSILON:
            regressions.append(d)
    return per_dim, regressions


def _verdict(
    cfg: RunConfig,
    numbers: str,
    delta: float,
    per_dim: dict[str, dict[str, float]],
    regressions: list[int],
) -> tuple[bool, str]:
    """Promoted or not, and the one-line reason that starts with ``numbers``."""
    if not math.isfinite(delta) or delta <= cfg.gate_margin + EPSILON:
        return False, f"{numbers} does not beat it by more than the margin {cfg.gate_margin:.4f}"
    if regressions:
        worst = min(regressions, key=lambda d: per_dim[str(d)]["delta"])
        return False, (
            f"{numbers} beats it, but dim {worst} fell {-per_dim[str(worst)]['delta']:.4f} "
            f"(more than the tolerance {cfg.gate_tolerance:.4f}; dims {regressions})"
        )
    return True, (
        f"{numbers} beats it by more than the margin {cfg.gate_margin:.4f}, and no dim fell "
        f"more than {cfg.gate_tolerance:.4f}"
    )


def gate_decision(
    cfg: RunConfig,
    *,
    base: dict[str, Any],
    challenger: dict[str, Any],
    champion: dict[str, Any] | None,
) -> dict[str, Any]:
    """Decide whether ``challenger`` replaces the champion (or, with none, beats ``base``).

    Each argument is an evaluation result (``{"metrics": {dim: {metric: value}}}``) on the same
    eval set; ``champion`` may carry ``"version"``. Returns a JSON-able dict: ``promoted``,
    ``decision`` (``promoted``/``rejected``), ``reason`` (one line with the numbers), the reference
    (``champion``/``base`` and its version), the gate metric, dim, margin, tolerance, the values and
    delta at the gate dim, ``per_dim`` deltas and the dims that regressed beyond the tolerance.
    """
    metric, dim = cfg.gate_metric, cfg.effective_gate_dim
    reference, ref_name, ref_kind, ref_version = _reference(base, champion)
    per_dim, regressions = _per_dim(cfg, challenger, reference)
    new, old = _value(challenger, dim, metric), _value(reference, dim, metric)
    delta = new - old
    numbers = f"{metric.upper()} at dim {dim} {new:.4f} vs {ref_name} {old:.4f} ({delta:+.4f})"
    promoted, reason = _verdict(cfg, numbers, delta, per_dim, regressions)
    return {
        "promoted": promoted,
        "decision": "promoted" if promoted else "rejected",
        "reason": reason,
        "reference": ref_kind,
        "reference_version": ref_version,
        "metric": metric,
        "dim": dim,
        "margin": cfg.gate_margin,
        "tolerance": cfg.gate_tolerance,
        "challenger_value": new,
        "reference_value": old,
        "delta": delta,
        "per_dim": per_dim,
        "regressions": regressions,
    }
