"""The promotion gate in the MLflow model registry: champion vs challenger.

Every run registers its fine-tuned model as a new version with the alias ``challenger``; the
version with the alias ``champion`` is the model in use. Whether a challenger replaces the
champion is the pure rule of :mod:`tasks.gate`; this module holds the registry's side:

- :func:`evaluate_champion`: ``python -m tasks evaluate --model champion``. It finds the current
  champion, evaluates it on this run's eval set (cached by model and eval fingerprints, so an
  unchanged champion is neither downloaded nor re-encoded), and snapshots the registry's history of
  gate values. It writes ``eval/champion.json`` and ``eval/history.json``;
- :func:`apply_decision`: used by ``register`` to move the aliases exactly once per version;
- :func:`registry_aliases`, :func:`registry_history`, :func:`download_version`: reading the
  registry.

Alias and tag names are those of :mod:`tasks.mlflow_tags`; the client is
:func:`tasks.mlflow_client.connect`.

Example::

    from tasks.mlflow_client import connect

    client = connect()
    registry_aliases(client, cfg.registered_model_name)   # {"champion": "3", "challenger": "4"}
    applied = apply_decision(client, cfg.registered_model_name, "4", decision)
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import StepError, cache_dir, prepared, read_json, safe_name, write_json
from tasks.mlflow_client import connect, is_missing, unreachable
from tasks.mlflow_tags import (
    CHALLENGER,
    CHAMPION,
    MAX_TAG_VALUE,
    TAG_AIRFLOW_RUN_ID,
    TAG_EVAL_FINGERPRINT,
    TAG_GATE_APPLIED,
    TAG_GATE_DECISION,
    TAG_GATE_DIM,
    TAG_GATE_METRIC,
    TAG_GATE_REASON,
    TAG_GATE_VALUE,
    TAG_MODEL_FINGERPRINT,
)


# --- the registry --------------------------------------------------------------------------------
def registry_aliases(client: Any, name: str) -> dict[str, str]:
    """``{alias: version}`` of the registered model ``name`` ({} when it does not exist yet)."""
    try:
        model = client.get_registered_model(name)
    except Exception as exc:
        if is_missing(exc):
            return {}
        raise
    return {alias: str(version) for alias, version in (model.aliases or {}).items()}


def registry_history(client: Any, name: str) -> list[dict[str, Any]]:
    """Every version of ``name`` with its recorded gate value and decision, oldest first."""
    try:
        versions = client.search_model_versions(f"name='{name}'")
    except Exception as exc:
        if is_missing(exc):
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
                "gate_metric": tags.get(TAG_GATE_METRIC),
                "gate_dim": tags.get(TAG_GATE_DIM),
                "decision": tags.get(TAG_GATE_DECISION),
                "airflow_run_id": tags.get(TAG_AIRFLOW_RUN_ID),
                "eval_fingerprint": tags.get(TAG_EVAL_FINGERPRINT),
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

    run_dir = Path(run_dir)
    out = run_dir / "eval" / "champion.json"
    if out.exists():
        print(f"evaluate: {out} already complete; nothing to redo")
        return read_json(out)
    manifest = read_json(prepared(run_dir / "data" / "manifest.json"))
    name = cfg.registered_model_name
    client = connect()
    try:
        aliases = registry_aliases(client, name)
        history = registry_history(client, name)
    except Exception as exc:
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
        TAG_GATE_REASON: applied["reason"][:MAX_TAG_VALUE],
        TAG_GATE_APPLIED: "true",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return applied


def _v(version: str | None) -> str:
    return f"v{version}" if version else "none"
