"""The ``register`` step: record the run in MLflow and register the fine-tuned model.

One MLflow run per Airflow DAG run (found again by its ``airflow_dag_id``/``airflow_run_id`` tags
on retries), holding: the config as params, hardware and library versions, per-dim metrics of all
models, the training curves, the report with its charts, the data snapshot as dataset inputs, and
the fine-tuned model logged with the ``sentence_transformers`` flavor (:mod:`tasks.mlflow_model`)
and registered as a new version of ``registered_model_name``, tagged with the Airflow ids,
data/eval fingerprints, annotation watermark, model fingerprint and gate value. The version then
gets the alias ``challenger`` and, when the report's gate decision says so, ``champion``
(:func:`tasks.promotion.apply_decision`; once per version, so retries move nothing twice).

:func:`register` reads as the list of what it does; what it records is built by the pure
functions of :mod:`tasks.mlflow_record`, under the names of :mod:`tasks.mlflow_tags`, through the
client of :mod:`tasks.mlflow_client` (which also says where the tracking store is).

Example::

    from tasks.tracking import register

    summary = register(RunConfig.from_mapping(read_json(run_dir / "config.json")), run_dir)
    summary["model_version"], summary["promoted"]
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import StepError, dag_id_of, last_success_file, read_json, read_jsonl, write_json
from tasks.mlflow_client import (
    connect,
    default_tracking_uri,
    experiment_id,
    is_missing,
    redacted_uri,
    tracking_uri,
    unreachable,
)
from tasks.mlflow_model import log_model
from tasks.mlflow_record import (
    GATE_DELTA_METRIC,
    MetricPoint,
    dataset_source_uri,
    eval_rows,
    lineage_tags,
    outcome_tags,
    run_metrics,
    run_params,
    version_tags,
)
from tasks.mlflow_tags import TAG_AIRFLOW_DAG_ID, TAG_AIRFLOW_RUN_ID
from tasks.promotion import apply_decision
from tasks.report_files import GATE_FILE, METRICS_FILE, OUTPUTS, REPORT_DIR

#: The public names; ``default_tracking_uri``, ``redacted_uri`` and ``tracking_uri`` live in
#: :mod:`tasks.mlflow_client` and are importable from here too.
__all__ = [
    "airflow_ids",
    "dataset_source_uri",
    "default_tracking_uri",
    "find_or_create_run",
    "redacted_uri",
    "register",
    "registered_version",
    "tracking_uri",
    "unreachable",
]

#: MLflow takes at most this many metrics per ``log_batch`` call.
METRICS_PER_BATCH = 1000
#: The packages whose versions the logged model pins.
PINNED_PACKAGES = ("torch", "transformers", "sentence-transformers", "tokenizers", "safetensors")
#: The logged model's input example.
INPUT_EXAMPLE = ["How do I retrain the embedding model nightly?"]


@dataclass(frozen=True)
class RunFiles:
    """What the earlier steps left in the run directory that ``register`` records."""

    manifest: dict[str, Any]
    train_summary: dict[str, Any]
    metrics: dict[str, Any]
    gate: dict[str, Any]

    #: The files that must be there, relative to the run directory.
    NEEDED = (
        "data/manifest.json",
        "train/summary.json",
        f"{REPORT_DIR}/{METRICS_FILE}",
        f"{REPORT_DIR}/{GATE_FILE}",
    )

    @classmethod
    def read(cls, run_dir: Path) -> RunFiles:
        """Read them; a StepError naming the first missing one."""
        for needed in cls.NEEDED:
            if not (run_dir / needed).exists():
                raise StepError(f"{run_dir / needed} is missing: run the earlier steps first")
        return cls(
            manifest=read_json(run_dir / "data" / "manifest.json"),
            train_summary=read_json(run_dir / "train" / "summary.json"),
            metrics=read_json(run_dir / REPORT_DIR / METRICS_FILE),
            gate=read_json(run_dir / REPORT_DIR / GATE_FILE),
        )


def airflow_ids(run_dir: Path) -> dict[str, str]:
    """The Airflow dag/run ids of this step, from Airflow's context variables or the run dir."""
    run_dir = Path(run_dir)
    return {
        TAG_AIRFLOW_DAG_ID: dag_id_of(run_dir),
        TAG_AIRFLOW_RUN_ID: os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or run_dir.name,
    }


def register(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Record everything of ``run_dir`` in MLflow and register the model; returns the summary.

    Idempotent: a complete ``register/result.json`` is returned as is, and a retry reuses the
    run and the version it registered. Raises StepError (one line) when an earlier step's file is
    missing or MLflow cannot be reached.
    """
    run_dir = Path(run_dir)
    result_path = run_dir / "register" / "result.json"
    if result_path.exists():
        print(f"register: {result_path} already complete; nothing to redo")
        return read_json(result_path)
    files = RunFiles.read(run_dir)
    ids = airflow_ids(run_dir)
    client, run_id = _open_run(cfg, ids)

    import mlflow

    with mlflow.start_run(run_id=run_id), _quiet_dataset_warnings():
        lineage = lineage_tags(cfg, ids, files.manifest, files.train_summary)
        existing_params = client.get_run(run_id).data.params
        history = read_json(run_dir / "train" / "history.json")
        _log_run_data(
            client,
            run_id,
            params=run_params(cfg, files.train_summary, existing_params),
            tags=lineage,
            metrics=run_metrics(files.metrics, history, files.train_summary),
        )
        _log_datasets(run_dir, files.manifest)
        _log_artifacts(run_dir, files)
        version = _register_model(
            client, cfg, run_dir, run_id, version_tags(lineage, files.metrics, files.gate)
        )
        applied = apply_decision(client, cfg.registered_model_name, version, files.gate)
        _log_run_data(
            client,
            run_id,
            tags=outcome_tags(applied, version),
            metrics=[(GATE_DELTA_METRIC, float(files.gate["delta"]), 0)],
        )
        client.set_terminated(run_id, "FINISHED")

    summary = _summary(cfg, run_id, version, applied)
    _record_last_success(ids, files.manifest, version, run_id)
    write_json(result_path, summary)  # last: marks the step complete
    verdict = "promoted to champion" if applied["promoted"] else "not promoted"
    print(
        f"register: model {cfg.registered_model_name!r} version {version} {verdict}: "
        f"{applied['reason']}",
        flush=True,
    )
    return summary


# --- the steps of register -----------------------------------------------------------------------
def _open_run(cfg: RunConfig, ids: dict[str, str]) -> tuple[Any, str]:
    """A client and the MLflow run of this Airflow run (a one-line StepError when unreachable)."""
    try:
        client = connect()
        run_id = find_or_create_run(client, experiment_id(client, cfg.experiment_name), ids)
    except Exception as exc:
        raise unreachable(exc) from None
    print(
        f"register: MLflow run {run_id} in experiment {cfg.experiment_name!r} at "
        f"{redacted_uri(tracking_uri())}",
        flush=True,
    )
    return client, run_id


def find_or_create_run(client: Any, experiment_id: str, ids: dict[str, str]) -> str:
    """The MLflow run of this Airflow run: reused on retries, created the first time."""
    filt = " and ".join(f"tags.{k} = '{v}'" for k, v in ids.items())
    runs = client.search_runs([experiment_id], filter_string=filt, max_results=1)
    if runs:
        return runs[0].info.run_id
    run = client.create_run(experiment_id, run_name=ids[TAG_AIRFLOW_RUN_ID], tags=ids)
    return run.info.run_id


@contextmanager
def _quiet_dataset_warnings() -> Iterator[None]:
    # MLflow warns that a local path could be two kinds of dataset source; both are fine.
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The specified dataset source")
        yield


def _log_run_data(
    client: Any,
    run_id: str,
    *,
    params: dict[str, str] | None = None,
    tags: dict[str, str] | None = None,
    metrics: Sequence[MetricPoint] = (),
) -> None:
    """Log params, tags and metrics in as few ``log_batch`` calls as MLflow allows."""
    from mlflow.entities import Metric, Param, RunTag

    batch = [Metric(key, value, 0, step) for key, value, step in metrics]
    client.log_batch(
        run_id,
        metrics=batch[:METRICS_PER_BATCH],
        params=[Param(k, v) for k, v in (params or {}).items()],
        tags=[RunTag(k, str(v)) for k, v in (tags or {}).items()],
    )
    for start in range(METRICS_PER_BATCH, len(batch), METRICS_PER_BATCH):
        client.log_batch(run_id, metrics=batch[start : start + METRICS_PER_BATCH])


def _log_datasets(run_dir: Path, manifest: dict[str, Any]) -> None:
    """The data snapshot as the run's dataset inputs: ``train`` and ``eval``, with their
    fingerprints as digests."""
    import mlflow
    import pandas as pd

    source = dataset_source_uri(manifest["source"])
    fingerprints = manifest["fingerprints"]
    frames = {
        "train": ("training", pd.DataFrame(read_jsonl(run_dir / "data" / "train.jsonl"))),
        "eval": ("evaluation", pd.DataFrame(eval_rows(read_json(run_dir / "data" / "eval.json")))),
    }
    for name, (context, frame) in frames.items():
        dataset = mlflow.data.from_pandas(
            frame, source=source, name=name, digest=fingerprints[name]
        )
        mlflow.log_input(dataset, context=context)


def _log_artifacts(run_dir: Path, files: RunFiles) -> None:
    """The hardware, the data manifest and the report step's files as they are (its charts
    included: no second drawing here)."""
    import mlflow

    mlflow.log_dict(files.train_summary["hardware"], "environment/hardware.json")
    mlflow.log_dict(files.manifest, "data/manifest.json")
    for name in OUTPUTS:
        mlflow.log_artifact(str(run_dir / REPORT_DIR / name), REPORT_DIR)


def registered_version(client: Any, name: str, run_id: str) -> str | None:
    """The version of ``name`` registered from the MLflow run ``run_id``, or None if none is.

    Only "no such registered model" (MLflow's ``RESOURCE_DOES_NOT_EXIST``) means none; any other
    error of the registry raises a one-line StepError, so the step fails (and is retried) instead
    of registering a second version of the same run.
    """
    try:
        found = client.search_model_versions(f"name='{name}' and run_id='{run_id}'")
    except Exception as exc:
        if is_missing(exc):
            return None
        raise unreachable(exc) from None
    return str(found[0].version) if found else None


def _register_model(
    client: Any, cfg: RunConfig, run_dir: Path, run_id: str, tags: dict[str, str]
) -> str:
    """Log the model with the sentence_transformers flavor and register it once per run (from
    the saved directory: no model load, see :mod:`tasks.mlflow_model`); tag the version."""
    name = cfg.registered_model_name
    version = registered_version(client, name, run_id)
    if version is not None:
        print(f"register: version {version} already registered for this run")
    else:
        info = log_model(
            run_dir / "train" / "model",
            name="model",
            registered_model_name=name,
            pip_requirements=_pip_requirements(),
            input_example=INPUT_EXAMPLE,
        )
        version = str(info.registered_model_version)
    for key, value in tags.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def _pip_requirements() -> list[str]:
    """The installed versions of :data:`PINNED_PACKAGES` (local version labels dropped)."""
    from importlib.metadata import PackageNotFoundError, version

    reqs = []
    for pkg in PINNED_PACKAGES:
        try:
            reqs.append(f"{pkg}=={version(pkg).split('+')[0]}")
        except PackageNotFoundError:
            pass
    return reqs


def _summary(cfg: RunConfig, run_id: str, version: str, applied: dict[str, Any]) -> dict[str, Any]:
    """The step's summary line (the XCom)."""
    return {
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


def _record_last_success(
    ids: dict[str, str], manifest: dict[str, Any], version: str, run_id: str
) -> None:
    """What the no-op check of the next run compares against (see :func:`tasks.data.prepare`)."""
    write_json(
        last_success_file(ids[TAG_AIRFLOW_DAG_ID]),
        {
            "run_fingerprint": manifest["fingerprints"].get("run"),
            "airflow_run_id": ids[TAG_AIRFLOW_RUN_ID],
            "model_version": version,
            "mlflow_run_id": run_id,
        },
    )
