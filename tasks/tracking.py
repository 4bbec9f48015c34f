"""The ``register`` step: record the run in MLflow and register the fine-tuned model.

One MLflow run per Airflow DAG run (found again by its ``airflow_dag_id``/``airflow_run_id`` tags
on retries), holding: the config as params, hardware and library versions, per-dim metrics of both
models, the training curves, the report with its charts, the data snapshot as dataset
inputs, and the fine-tuned model logged with the ``sentence_transformers`` flavor and registered as
a new version of ``registered_model_name``, tagged with the Airflow ids, data/eval fingerprints,
annotation watermark, model fingerprint and gate value. The version then gets the alias
``challenger`` and, when the report's gate decision says so, ``champion``
(:func:`tasks.promotion.apply_decision`; once per version, so retries move nothing twice).

Tracking URI: ``MLFLOW_TRACKING_URI`` when set (the Airflow connection ``mlflow_default`` sets it),
else an embedded SQLite store in ``$EMBED_HOME/mlflow``.
"""

from __future__ import annotations

import os
import re
import urllib.parse
import warnings
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import (
    StepError,
    dag_id_of,
    last_success_file,
    read_json,
    read_jsonl,
    state_dir,
    write_json,
)
from tasks.promotion import apply_decision
from tasks.report import OUTPUTS as REPORT_OUTPUTS

SIMILARITY_PART = r"_(cosine|dot|euclidean|manhattan)_"
CURVE_KEYS = {"loss": "train_loss", "learning_rate": "learning_rate", "grad_norm": "grad_norm"}


def default_tracking_uri() -> str:
    """The embedded store: SQLite in the project's state directory."""
    return f"sqlite:///{state_dir() / 'mlflow' / 'mlflow.db'}"


def tracking_uri() -> str:
    """``MLFLOW_TRACKING_URI`` if set, else the embedded SQLite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_tracking_uri()


def redacted_uri(uri: str) -> str:
    """The URI without user and password (safe to print and to put in XCom)."""
    parts = urllib.parse.urlsplit(uri)
    if parts.username is None and parts.password is None:
        return uri
    host = parts.hostname or ""
    if parts.port:
        host += f":{parts.port}"
    return urllib.parse.urlunsplit(parts._replace(netloc=f"***@{host}"))


def metric_key(name: str) -> str:
    """MLflow-safe metric name (``ndcg@10`` -> ``ndcg_at_10``)."""
    return name.replace("@", "_at_")


def airflow_ids(run_dir: Path) -> dict[str, str]:
    """The Airflow dag/run ids of this step, from Airflow's context variables or the run dir."""
    run_dir = Path(run_dir)
    return {
        "airflow_dag_id": dag_id_of(run_dir),
        "airflow_run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or run_dir.name,
    }


def unreachable(exc: Exception) -> StepError:
    """The one-line error for an MLflow server that cannot be reached or refused a request."""
    first = str(exc).splitlines()[0][:200] if str(exc) else ""
    return StepError(
        f"MLflow at {redacted_uri(tracking_uri())} is unreachable or refused the request "
        f"({type(exc).__name__}: {first}): check MLFLOW_TRACKING_URI / the mlflow_default "
        f"connection"
    )


def connect() -> Any:
    """An ``MlflowClient`` for the tracking and registry store (see :func:`tracking_uri`)."""
    return _client()


def _client() -> Any:
    import mlflow
    from mlflow.tracking import MlflowClient

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


def _experiment_id(client: Any, name: str) -> str:
    exp = client.get_experiment_by_name(name)
    if exp is not None:
        return exp.experiment_id
    location = None
    uri = tracking_uri()
    if uri.startswith("sqlite:///"):
        # A database file has no artifact server: keep artifacts beside it, not in ./mlruns.
        location = (Path(uri[len("sqlite:///") :]).parent / "artifacts" / name).as_uri()
    return client.create_experiment(name, artifact_location=location)


def find_or_create_run(client: Any, experiment_id: str, ids: dict[str, str]) -> str:
    """The MLflow run of this Airflow run: reused on retries, created the first time."""
    filt = " and ".join(f"tags.{k} = '{v}'" for k, v in ids.items())
    runs = client.search_runs([experiment_id], filter_string=filt, max_results=1)
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment_id, run_name=ids["airflow_run_id"], tags=ids)
    return run.info.run_id


def _curves(history: list[dict[str, Any]]) -> list[tuple[str, float, int]]:
    points = []
    for entry in history:
        step = int(entry.get("step", 0))
        for key, name in CURVE_KEYS.items():
            if key in entry:
                points.append((name, float(entry[key]), step))
        for key, value in entry.items():
            if key.startswith("eval_val_dim_") and isinstance(value, (int, float)):
                # eval_val_dim_128_cosine_ndcg@10 -> val_dim_128_ndcg_at_10
                name = metric_key(re.sub(SIMILARITY_PART, "_", key[len("eval_") :]))
                points.append((name, float(value), step))
    return points


def _pip_requirements() -> list[str]:
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in ("torch", "transformers", "sentence-transformers", "tokenizers", "safetensors"):
        try:
            reqs.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            pass
    return reqs


def register(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Record everything of ``run_dir`` in MLflow and register the model; returns the summary."""
    run_dir = Path(run_dir)
    result_path = run_dir / "register" / "result.json"
    if result_path.exists():
        print(f"register: {result_path} already complete; nothing to redo")
        return read_json(result_path)
    for needed in (
        "data/manifest.json",
        "train/summary.json",
        "report/metrics.json",
        "report/gate.json",
    ):
        if not (run_dir / needed).exists():
            raise StepError(f"{run_dir / needed} is missing: run the earlier steps first")
    manifest = read_json(run_dir / "data" / "manifest.json")
    train_summary = read_json(run_dir / "train" / "summary.json")
    metrics = read_json(run_dir / "report" / "metrics.json")
    gate = read_json(run_dir / "report" / "gate.json")
    ids = airflow_ids(run_dir)

    try:
        client = _client()
        experiment_id = _experiment_id(client, cfg.experiment_name)
        run_id = find_or_create_run(client, experiment_id, ids)
    except Exception as exc:
        raise unreachable(exc) from None
    print(
        f"register: MLflow run {run_id} in experiment {cfg.experiment_name!r} at "
        f"{redacted_uri(tracking_uri())}",
        flush=True,
    )

    import mlflow
    import pandas as pd
    from mlflow.entities import Metric, Param, RunTag

    with mlflow.start_run(run_id=run_id), warnings.catch_warnings():
        # MLflow warns that a local path could be two kinds of dataset source; both are fine.
        warnings.filterwarnings("ignore", message="The specified dataset source")
        existing = client.get_run(run_id).data
        params = {
            **cfg.mlflow_params(),
            **{f"hw_{k}": str(v) for k, v in train_summary["hardware"].items()},
        }
        params = {k: v for k, v in params.items() if k not in existing.params}
        tags = {
            **ids,
            "data_fingerprint": manifest["fingerprints"]["data"],
            "eval_fingerprint": manifest["fingerprints"]["eval"],
            "annotation_watermark": str(manifest.get("watermark") or "none"),
            "base_model": cfg.base_model,
            "device": str(train_summary["hardware"].get("device_name")),
        }
        version_tags = {
            **tags,
            "model_fingerprint": metrics["models"]["finetuned"]["model_fingerprint"],
            "gate_metric": gate["metric"],
            "gate_dim": str(gate["dim"]),
            "gate_value": repr(float(gate["challenger_value"])),
        }
        batch: list[Any] = []
        for model_name, block in metrics["models"].items():
            for dim, values in block["metrics"].items():
                for metric, value in values.items():
                    batch.append(
                        Metric(f"{model_name}_dim_{dim}_{metric_key(metric)}", float(value), 0, 0)
                    )
        history = read_json(run_dir / "train" / "history.json")
        batch += [Metric(name, value, 0, step) for name, value, step in _curves(history)]
        for key in ("train_runtime_s", "train_samples_per_second", "train_loss"):
            if train_summary.get(key) is not None:
                batch.append(Metric(key, float(train_summary[key]), 0, 0))
        client.log_batch(
            run_id,
            metrics=batch[:1000],
            params=[Param(k, v[:6000]) for k, v in params.items()],
            tags=[RunTag(k, str(v)) for k, v in tags.items()],
        )
        for start in range(1000, len(batch), 1000):
            client.log_batch(run_id, metrics=batch[start : start + 1000])

        # Data snapshot as the run's dataset inputs.
        source = manifest["source"]
        source_uri = dataset_source_uri(source)
        train_df = pd.DataFrame(read_jsonl(run_dir / "data" / "train.jsonl"))
        eval_set = read_json(run_dir / "data" / "eval.json")
        eval_df = pd.DataFrame(
            [
                {
                    "query": q,
                    "relevant_documents": [
                        eval_set["corpus"][c] for c in eval_set["relevant_docs"][qid]
                    ],
                }
                for qid, q in eval_set["queries"].items()
            ]
        )
        mlflow.log_input(
            mlflow.data.from_pandas(
                train_df, source=source_uri, name="train", digest=manifest["fingerprints"]["train"]
            ),
            context="training",
        )
        mlflow.log_input(
            mlflow.data.from_pandas(
                eval_df, source=source_uri, name="eval", digest=manifest["fingerprints"]["eval"]
            ),
            context="evaluation",
        )

        mlflow.log_dict(train_summary["hardware"], "environment/hardware.json")
        mlflow.log_dict(manifest, "data/manifest.json")
        # the report step's files as they are, its charts included (no second drawing here)
        for name in REPORT_OUTPUTS:
            mlflow.log_artifact(str(run_dir / "report" / name), "report")

        version = _register_model(client, cfg, run_dir, run_id, version_tags)
        applied = apply_decision(client, cfg.registered_model_name, version, gate)
        client.log_batch(
            run_id,
            metrics=[Metric("gate_delta", float(gate["delta"]), 0, 0)],
            tags=[
                RunTag("gate_decision", applied["decision"]),
                RunTag("gate_reason", applied["reason"][:5000]),
                RunTag("model_version", version),
            ],
        )
        client.set_terminated(run_id, "FINISHED")

    summary = {
        "step": "register",
        "mlflow_run_id": run_id,
        "experiment": cfg.experiment_name,
        "registered_model": cfg.registered_model_name,
        "model_version": version,
        "promoted": applied["promoted"],
        "champion_version": applied["champion_version"],
        "previous_champion": applied["previous_champion"],
        "gate": applied,
        "tracking_uri": redacted_uri(tracking_uri()),
    }
    # The no-op check of the next run compares against this (see tasks.data.prepare).
    write_json(
        last_success_file(ids["airflow_dag_id"]),
        {
            "run_fingerprint": manifest["fingerprints"].get("run"),
            "airflow_run_id": ids["airflow_run_id"],
            "model_version": version,
            "mlflow_run_id": run_id,
        },
    )
    write_json(result_path, summary)  # last: marks the step complete
    verdict = "promoted to champion" if applied["promoted"] else "not promoted"
    print(
        f"register: model {cfg.registered_model_name!r} version {version} {verdict}: "
        f"{applied['reason']}",
        flush=True,
    )
    return summary


def dataset_source_uri(source: dict[str, Any]) -> str:
    """Where the run's data came from, as a URI MLflow can resolve (a path or an http(s) URL):
    MLflow has no resolver for ``hf://``, so a Hub dataset is its page on the Hub and an Argilla
    dataset its annotation page."""
    if source.get("path"):
        return str(source["path"])
    if source.get("type") == "argilla" and source.get("url") and source.get("dataset_id"):
        return f"{str(source['url']).rstrip('/')}/dataset/{source['dataset_id']}/annotation-mode"
    if source.get("dataset"):
        return f"https://huggingface.co/datasets/{source['dataset']}"
    return "unknown"


def _register_model(
    client: Any, cfg: RunConfig, run_dir: Path, run_id: str, tags: dict[str, str]
) -> str:
    """Log the model with the sentence_transformers flavor and register it once per run (from
    the saved directory: no model load, see :mod:`tasks.mlflow_model`)."""
    name = cfg.registered_model_name
    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except Exception:
        found = []
    if found:
        version = str(found[0].version)
        print(f"register: version {version} already registered for this run")
    else:
        from tasks.mlflow_model import log_model

        info = log_model(
            run_dir / "train" / "model",
            name="model",
            registered_model_name=name,
            pip_requirements=_pip_requirements(),
            input_example=["How do I retrain the embedding model nightly?"],
        )
        version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version
