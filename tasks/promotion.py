"""The promotion gate: champion vs challenger in the MLflow model registry.

Every run registers its fine-tuned model as a new version with the alias ``challenger``. The
version with the alias ``champion`` is the model in use. A challenger becomes the champion only
when, on the *current* eval set,

- its gate metric (``gate_metric`` at ``gate_dim``, default NDCG@10 at 128) beats the champion's by
  more than ``gate_margin``, and
- no Matryoshka dim's gate metric falls more than ``gate_tolerance`` below the champion's.

With no champion yet, the same rules compare it with the base model. A rejected challenger is a
successful run that says why (task log, report, MLflow tags).

This module holds:

- :func:`gate_decision`: the pure rule (no MLflow, no torch), used by the ``report`` step;
- :func:`evaluate_champion`: ``python -m tasks evaluate --model champion``. It finds the current
  champion, evaluates it on this run's eval set (cached by model and eval fingerprints, so an
  unchanged champion is neither downloaded nor re-encoded), and snapshots the registry's history of
  gate values. It writes ``eval/champion.json`` and ``eval/history.json``;
- :func:`apply_decision`: used by ``register`` to move the aliases exactly once per version.

Example::

    decision = gate_decision(cfg, base=base_eval, challenger=finetuned_eval, champion=None)
    decision["promoted"], decision["reason"]
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import StepError, cache_dir, read_json, safe_name, write_json

CHAMPION = "champion"
CHALLENGER = "challenger"
#: Version tags that record the gate (read back for the history chart).
TAG_GATE_VALUE = "gate_value"
TAG_GATE_DECISION = "gate_decision"
TAG_GATE_REASON = "gate_reason"
TAG_GATE_APPLIED = "gate_applied"
TAG_MODEL_FINGERPRINT = "model_fingerprint"
#: Differences this small are float noise: 0.52 - 0.50 does not beat a margin of 0.02.
EPSILON = 1e-9


# --- the rule ------------------------------------------------------------------------------------
def _value(result: dict[str, Any], dim: int, metric: str) -> float:
    try:
        return float(result["metrics"][str(dim)][metric])
    except KeyError:
        raise StepError(
            f"the evaluation has no {metric} at dim {dim}: evaluate with these dims again"
        ) from None


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
    if champion is not None:
        reference, ref_name = champion, f"champion v{champion.get('version')}"
        ref_kind, ref_version = CHAMPION, champion.get("version")
    else:
        reference, ref_name, ref_kind, ref_version = base, "the base model", "base", None
    per_dim = {}
    regressions = []
    for d in cfg.matryoshka_dims:
        new, old = _value(challenger, d, metric), _value(reference, d, metric)
        per_dim[str(d)] = {"challenger": new, "reference": old, "delta": new - old}
        if old - new > cfg.gate_tolerance + EPSILON:
            regressions.append(d)
    new, old = _value(challenger, dim, metric), _value(reference, dim, metric)
    delta = new - old
    label = f"{metric.upper()} at dim {dim}"
    numbers = f"{label} {new:.4f} vs {ref_name} {old:.4f} ({delta:+.4f})"
    if not math.isfinite(delta) or delta <= cfg.gate_margin + EPSILON:
        promoted = False
        reason = f"{numbers} does not beat it by more than the margin {cfg.gate_margin:.4f}"
    elif regressions:
        promoted = False
        worst = min(regressions, key=lambda d: per_dim[str(d)]["delta"])
        reason = (
            f"{numbers} beats it, but dim {worst} fell {-per_dim[str(worst)]['delta']:.4f} "
            f"(more than the tolerance {cfg.gate_tolerance:.4f}; dims {regressions})"
        )
    else:
        promoted = True
        reason = (
            f"{numbers} beats it by more than the margin {cfg.gate_margin:.4f}, and no dim fell "
            f"more than {cfg.gate_tolerance:.4f}"
        )
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


# --- the registry --------------------------------------------------------------------------------
def registry_aliases(client: Any, name: str) -> dict[str, str]:
    """``{alias: version}`` of the registered model ``name`` ({} when it does not exist yet)."""
    from mlflow.exceptions import MlflowException

    try:
        model = client.get_registered_model(name)
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def registry_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every version of ``name`` with its recorded gate value and decision, oldest first."""
    from mlflow.exceptions import MlflowException

    try:
        versions = client.search_model_versions(f"name='{name}'")
    except MlflowException as exc:
        if exc.error_code == "RESOURCE_DOES_NOT_EXIST":
            return []
        raise
    aliases = registry_aliases(client, name)
    by_version: dict[str, list[str]] = {}
    for alias, version in aliases.items():
        by_version.setdefault(version, []).append(alias)
    history = []
    for v in sorted(versions, key=lambda v: int(v.version)):
        tags = v.tags or {}
        value = tags.get(TAG_GATE_VALUE)
        history.append(
            {
                "version": str(v.version),
                "created": v.creation_timestamp,
                "gate_value": float(value) if value not in (None, "") else None,
                "gate_metric": tags.get("gate_metric"),
                "gate_dim": tags.get("gate_dim"),
                "decision": tags.get(TAG_GATE_DECISION),
                "airflow_run_id": tags.get("airflow_run_id"),
                "eval_fingerprint": tags.get("eval_fingerprint"),
                "aliases": sorted(by_version.get(str(v.version), [])),
            }
        )
    return history


def _model_dir_in(root: Path) -> Path:
    """The SentenceTransformer directory inside a downloaded MLflow model."""
    for candidate in [root, *sorted(p.parent for p in root.rglob("modules.json"))]:
        if (candidate / "modules.json").exists():
            return candidate
    raise StepError(
        f"the champion's MLflow artifacts at {root} hold no sentence-transformers model"
    )


def download_version(client: Any, name: str, version: str) -> Path:
    """The model directory of ``name`` version ``version``, downloaded once into the cache."""
    import mlflow

    target = cache_dir() / "models" / safe_name(name) / f"v{version}"
    done = target / ".complete"
    if done.exists():
        return _model_dir_in(target / "artifacts")
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    print(f"evaluate: downloading {name} v{version} from the MLflow registry", flush=True)
    mlflow.artifacts.download_artifacts(
        artifact_uri=f"models:/{name}/{version}", dst_path=str(target / "artifacts")
    )
    model_dir = _model_dir_in(target / "artifacts")
    done.write_text(str(model_dir))
    return model_dir


def evaluate_champion(cfg: RunConfig, run_dir: Path, *, use_cache: bool = True) -> dict[str, Any]:
    """The current champion evaluated on this run's eval set (``eval/champion.json``).

    Also writes ``eval/history.json`` (see :func:`registry_history`). With no champion the result
    is ``{"absent": true}`` and the gate compares the challenger with the base model.
    """
    from tasks.evaluate import evaluate_for_run
    from tasks.tracking import connect

    run_dir = Path(run_dir)
    out = run_dir / "eval" / "champion.json"
    if out.exists():
        print(f"evaluate: {out} already complete; nothing to redo")
        return read_json(out)
    manifest_path = run_dir / "data" / "manifest.json"
    if not manifest_path.exists():
        raise StepError(f"{manifest_path} is missing: run the prepare step first")
    manifest = read_json(manifest_path)
    name = cfg.registered_model_name
    client = connect()
    try:
        aliases = registry_aliases(client, name)
        history = registry_history(client, name)
    except Exception as exc:
        from tasks.tracking import unreachable

        raise unreachable(exc) from None
    write_json(run_dir / "eval" / "history.json", {"registered_model": name, "versions": history})
    version = aliases.get(CHAMPION)
    if version is None:
        print(f"evaluate: {name!r} has no champion yet; the gate compares with the base model")
        result: dict[str, Any] = {"model": CHAMPION, "absent": True, "registered_model": name}
        write_json(out, result)
        return result
    mv = client.get_model_version(name, version)
    model_fp = (mv.tags or {}).get(TAG_MODEL_FINGERPRINT)
    print(f"evaluate: champion is {name} v{version} (model fingerprint {model_fp})", flush=True)
    cached = None
    if model_fp and use_cache:
        cached = _cached(model_fp, manifest["fingerprints"]["eval"], cfg)
    if cached is not None:
        result = cached
    else:
        model_dir = download_version(client, name, version)
        result = evaluate_for_run(
            cfg,
            run_dir,
            model_dir,
            eval_fingerprint=manifest["fingerprints"]["eval"],
            model_fingerprint=model_fp,
            use_cache=use_cache,
        )
    result.update({"model": CHAMPION, "absent": False, "registered_model": name})
    result["version"] = str(version)
    write_json(out, result)
    return result


def _cached(model_fp: str, eval_fp: str, cfg: RunConfig) -> dict[str, Any] | None:
    """A cached evaluation of ``model_fp`` on ``eval_fp`` (no download, no torch), or None."""
    from tasks.evaluate import evaluation_cache_file

    path = evaluation_cache_file(model_fp, eval_fp, cfg.matryoshka_dims, cfg.max_seq_length)
    if not path.exists():
        return None
    print(f"evaluate: cache hit for model {model_fp} on eval set {eval_fp}")
    result = read_json(path)
    result["cached"] = True
    return result


def apply_decision(
    client: Any, name: str, version: str, decision: dict[str, Any]
) -> dict[str, Any]:
    """Move the aliases for ``version`` once: ``challenger`` always, ``champion`` if promoted.

    Idempotent: a version whose decision was already applied (tag ``gate_applied``) moves nothing
    again. If the champion changed since the gate compared against it, the version is not
    promoted (the decision would be about a model that is no longer the champion). Returns the
    decision as applied, with ``champion_version`` (after) and ``previous_champion``.
    """
    applied = dict(decision)
    mv = client.get_model_version(name, version)
    tags = mv.tags or {}
    aliases = registry_aliases(client, name)
    current = aliases.get(CHAMPION)
    if tags.get(TAG_GATE_APPLIED) == "true":
        applied["decision"] = tags.get(TAG_GATE_DECISION, applied["decision"])
        applied["promoted"] = applied["decision"] == "promoted"
        applied["reason"] = tags.get(TAG_GATE_REASON, applied["reason"])
        applied["previous_champion"] = decision.get("reference_version")
        applied["champion_version"] = current
        print(f"register: the gate was already applied to v{version}; aliases left as they are")
        return applied
    applied["previous_champion"] = current
    if aliases.get(CHALLENGER) != version:
        client.set_registered_model_alias(name, CHALLENGER, version)
    if decision["promoted"]:
        expected = decision.get("reference_version")  # None: there was no champion
        if current != expected:
            applied["promoted"] = False
            applied["decision"] = "rejected"
            compared = f"champion {_v(expected)}" if expected else "the base model"
            applied["reason"] = (
                f"the champion is now {_v(current)} but the gate compared with {compared} "
                f"(the champion changed during the run); not promoted: trigger a new run to "
                f"compare with {_v(current)}"
            )
        else:
            client.set_registered_model_alias(name, CHAMPION, version)
            current = version
    applied["champion_version"] = current
    for key, value in {
        TAG_GATE_DECISION: applied["decision"],
        TAG_GATE_REASON: applied["reason"][:5000],
        TAG_GATE_APPLIED: "true",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return applied


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"
