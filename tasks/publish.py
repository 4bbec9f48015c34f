"""The ``publish`` step: push a promoted model (and optionally its data snapshot) to the Hub.

Reads from the run directory:

- ``register/result.json``: the MLflow run, registered model version and the gate's decision;
- ``data/manifest.json``, ``report/metrics.json``, ``train/summary.json``: what the model card says;
- ``train/model/``: the saved SentenceTransformer that is pushed (never modified);
- ``data/train.jsonl``, ``val_pairs.jsonl``, ``eval_pairs.jsonl``, ``eval.json``: the data snapshot
  (only with ``hub_push_dataset``).

Writes ``publish/staging/`` (a hard-linked copy of ``train/model`` plus the model card
``README.md`` that :mod:`tasks.model_card` writes: exactly what was pushed) and, last,
``publish/result.json`` (repo, commit, tag, files). A failure leaves no ``result.json``, so a
retry pushes again; files the Hub already holds unchanged are not sent twice, and an existing tag
is kept.

On the Hub: the model repo ``hub_repo_id`` (created private unless ``hub_private`` is off) gets one
commit whose message names the MLflow version, tagged ``mlflow-v<version>``. With
``hub_push_dataset`` the snapshot goes first to the dataset repo (``hub_dataset_repo_id``, default
``<hub_repo_id>-data``), tagged ``data-<data fingerprint>``, and the model card names it.

Settings come from the environment (the Airflow connection ``huggingface_default`` sets them):
``HF_TOKEN`` (a token with write access; never printed) and ``HF_ENDPOINT`` (default
``https://huggingface.co``). ``HF_HUB_OFFLINE`` must be off.

:func:`publish` reads as the list of what it does: check that the model was promoted, read the
records, open the Hub client, push the data snapshot (:func:`push_dataset_snapshot`), write the
card, stage the model (:func:`stage_model`), push it (:func:`push_model`) and record the result.
Hub failures become one-line errors that never name the token.

Example::

    from tasks.config import RunConfig
    from tasks.publish import publish

    summary = publish(RunConfig(data_path="pairs.jsonl", hub_repo_id="acme/embedder"), run_dir)
    print(summary["url"], summary["tag"])
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import (
    InvalidInputError,
    NothingToDo,
    StepError,
    dag_id_of,
    prepared,
    read_json,
    write_atomic,
    write_json,
)
from tasks.model_card import DEFAULT_ENDPOINT, build_dataset_card, build_model_card
from tasks.report_files import METRICS_FILE, REPORT_DIR

DATA_FILES = ("train.jsonl", "val_pairs.jsonl", "eval_pairs.jsonl", "eval.json", "manifest.json")


# --- settings ---------------------------------------------------------------------------------
def hub_endpoint() -> str:
    """``HF_ENDPOINT`` without a trailing slash, else the public Hub."""
    return (os.environ.get("HF_ENDPOINT") or DEFAULT_ENDPOINT).strip().rstrip("/")


def hub_token() -> str:
    """``HF_TOKEN``; a StepError saying where to set it when it is missing."""
    token = (os.environ.get("HF_TOKEN") or "").strip()
    if not token:
        raise StepError(
            "no Hugging Face token: set the password of the Airflow connection "
            "huggingface_default (or HF_TOKEN when running the CLI) to a token with write access"
        )
    return token


def check_repo_id(repo_id: str, setting: str) -> str:
    """``repo_id`` if it is a valid ``org/name`` Hub id, else an InvalidInputError naming
    ``setting``."""
    from huggingface_hub.errors import HFValidationError
    from huggingface_hub.utils import validate_repo_id

    if repo_id.count("/") != 1:
        raise InvalidInputError(
            f"{setting}={repo_id!r} is not of the form org/name: name the repo with its owner"
        )
    try:
        validate_repo_id(repo_id)
    except HFValidationError as exc:
        reason = str(exc).splitlines()[0][:200]
        raise InvalidInputError(
            f"{setting}={repo_id!r} is not a valid Hub repo id ({reason}): fix {setting}"
        ) from None
    return repo_id


def dataset_repo_id(cfg: RunConfig) -> str:
    """The snapshot's dataset repo: ``hub_dataset_repo_id``, else ``<hub_repo_id>-data``."""
    return check_repo_id(
        cfg.hub_dataset_repo_id or f"{cfg.hub_repo_id}-data", "hub_dataset_repo_id"
    )


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


# --- errors ----------------------------------------------------------------------------------
def _scrub(text: str, token: str) -> str:
    return text.replace(token, "***") if token else text


def _first_line(text: str, token: str) -> str:
    lines = [line.strip() for line in _scrub(str(text), token).splitlines() if line.strip()]
    return (lines[0] if lines else "")[:200]


def _hub_error(exc: BaseException, *, endpoint: str, repo_id: str, token: str) -> StepError | None:
    """The one-line StepError for a Hub failure (HTTP status, network, offline), else None."""
    import httpx2
    from huggingface_hub.errors import HfHubHTTPError, HFValidationError, OfflineModeIsEnabled

    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, HfHubHTTPError) and current.response is not None:
            code = current.response.status_code
            if code in (401, 403):
                return StepError(
                    f"the Hub refused the token for {repo_id} (HTTP {code}): check the "
                    f"huggingface_default connection's password (a token with write access to "
                    f"{repo_id.split('/')[0]})"
                )
            detail = _first_line(current.server_message or str(current), token)
            return StepError(f"the Hub at {endpoint} answered HTTP {code} for {repo_id}: {detail}")
        if isinstance(current, OfflineModeIsEnabled):
            return _offline_error()
        if isinstance(current, HFValidationError):
            return InvalidInputError(
                f"{repo_id!r} is not a valid Hub repo id ({_first_line(str(current), token)}): "
                f"fix hub_repo_id / hub_dataset_repo_id"
            )
        if isinstance(current, (httpx2.TransportError, ConnectionError, TimeoutError)):
            detail = _first_line(str(current), token) or type(current).__name__
            return StepError(
                f"cannot reach the Hub at {endpoint} ({type(current).__name__}: {detail}): "
                f"check network access or HF_ENDPOINT"
            )
        current = current.__cause__ or current.__context__
    return None


def _offline_error() -> StepError:
    return StepError(
        "huggingface_hub is in offline mode (HF_HUB_OFFLINE or TRANSFORMERS_OFFLINE is set), so "
        "it will not contact the Hub: unset HF_HUB_OFFLINE (or set it to 0) for the publish step"
    )


@contextmanager
def _hub_errors(endpoint: str, repo_id: str, token: str) -> Iterator[None]:
    """Turn Hub failures inside the block into one-line StepErrors that never name the token."""
    try:
        yield
    except StepError:
        raise
    except Exception as exc:
        error = _hub_error(exc, endpoint=endpoint, repo_id=repo_id, token=token)
        if error is None:
            raise
        raise error from None


# --- pushing ----------------------------------------------------------------------------------
def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)


def stage_model(model_dir: Path, staging: Path, card: str) -> list[Path]:
    """A fresh staging copy of ``model_dir`` (hard links where possible) with ``README.md`` set
    to ``card``; ``model_dir`` itself is never modified. Returns the files to push, sorted."""
    if staging.exists():
        shutil.rmtree(staging)
    staging.parent.mkdir(parents=True, exist_ok=True)
    shutil.copytree(
        model_dir,
        staging,
        ignore=shutil.ignore_patterns(".*", "checkpoint-*", "__pycache__"),
        copy_function=_link_or_copy,
    )
    readme = staging / "README.md"
    readme.unlink(missing_ok=True)  # a hard link: replace the name, never write through it
    write_atomic(readme, card)
    return sorted(p for p in staging.rglob("*") if p.is_file())


def _commit_files(
    api: Any,
    repo_id: str,
    *,
    repo_type: str,
    files: dict[str, Path | bytes],
    message: str,
    description: str,
) -> Any:
    """One commit adding ``files`` (path in repo -> local file or bytes); returns CommitInfo."""
    from huggingface_hub import CommitOperationAdd

    operations = [
        CommitOperationAdd(
            path_in_repo=path, path_or_fileobj=str(src) if isinstance(src, Path) else src
        )
        for path, src in sorted(files.items())
    ]
    return api.create_commit(
        repo_id,
        operations,
        commit_message=message,
        commit_description=description,
        repo_type=repo_type,
    )


def _size(src: Path | bytes) -> int:
    return len(src) if isinstance(src, bytes) else src.stat().st_size


def push_dataset_snapshot(
    api: Any, cfg: RunConfig, run_dir: Path, manifest: dict[str, Any]
) -> dict[str, Any]:
    """Push the prepared data (and a dataset card) to the dataset repo and tag it
    ``data-<data fingerprint, 16 hex digits>``; returns ``{repo_id, url, commit, tag, files}``."""
    repo_id = dataset_repo_id(cfg)
    data_dir = run_dir / "data"
    names = [name for name in DATA_FILES if (data_dir / name).exists()]
    for needed in ("train.jsonl", "eval_pairs.jsonl", "manifest.json"):
        prepared(data_dir / needed)
    fingerprint = manifest["fingerprints"]["data"]
    files: dict[str, Path | bytes] = {name: data_dir / name for name in names}
    files["README.md"] = build_dataset_card(cfg, manifest, names, api.endpoint).encode("utf-8")
    total = sum(_size(src) for src in files.values())
    print(
        f"publish: data snapshot {fingerprint}: {len(files)} files ({_human_bytes(total)}) to "
        f"dataset repo {repo_id} ({'private' if cfg.hub_private else 'public'})",
        flush=True,
    )
    url = api.create_repo(repo_id, repo_type="dataset", private=cfg.hub_private, exist_ok=True)
    commit = _commit_files(
        api,
        repo_id,
        repo_type="dataset",
        files=files,
        message=f"Data snapshot {fingerprint}",
        description=f"Prepared train/validation/eval pairs; data fingerprint {fingerprint}.",
    )
    tag = f"data-{fingerprint[:16]}"
    api.create_tag(
        repo_id,
        tag=tag,
        revision=commit.oid,
        repo_type="dataset",
        tag_message=f"data fingerprint {fingerprint}",
        exist_ok=True,
    )
    print(f"publish: dataset commit {commit.oid}, tag {tag}", flush=True)
    return {
        "repo_id": repo_id,
        "url": str(url),
        "commit": commit.oid,
        "tag": tag,
        "files": sorted(files),
    }


# --- the step ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class RunRecords:
    """What the earlier steps recorded that the publish step pushes or writes into the card."""

    registered: dict[str, Any]
    #: The registered model version that is pushed.
    version: str
    manifest: dict[str, Any]
    metrics: dict[str, Any]
    train_summary: dict[str, Any] | None


def publish(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Push the promoted model of ``run_dir`` to ``cfg.hub_repo_id``; returns the summary.

    Idempotent: a complete ``publish/result.json`` is returned as is. Raises NothingToDo when
    publishing is off (empty ``hub_repo_id``) or the register step did not promote the model,
    StepError (one line, never naming the token) when the token is missing or refused, the Hub
    cannot be reached or answers with an error.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "publish"
    result_path = out_dir / "result.json"
    if result_path.exists():
        print(f"publish: {result_path} already complete; nothing to redo")
        return read_json(result_path)
    registered = _promoted_registration(cfg, run_dir)
    repo_id = check_repo_id(cfg.hub_repo_id, "hub_repo_id")
    ds_repo = dataset_repo_id(cfg) if cfg.hub_push_dataset else None
    records = _read_records(run_dir, registered)
    api, endpoint, token = _hub_api()
    run_ids = _run_ids(run_dir)

    dataset = None
    if ds_repo:
        with _hub_errors(endpoint, ds_repo, token):
            dataset = push_dataset_snapshot(api, cfg, run_dir, records.manifest)
    card = build_model_card(
        cfg,
        registered=records.registered,
        manifest=records.manifest,
        metrics=records.metrics,
        train_summary=records.train_summary,
        run_ids=run_ids,
        dataset=dataset,
    )
    staging = out_dir / "staging"
    staged = stage_model(run_dir / "train" / "model", staging, card)
    files = {p.relative_to(staging).as_posix(): p for p in staged}
    with _hub_errors(endpoint, repo_id, token):
        pushed = push_model(api, cfg, repo_id, files, records, run_ids)

    result = {
        "step": "publish",
        "repo_id": repo_id,
        **pushed,
        "registered_model": registered.get("registered_model"),
        "model_version": records.version,
        "mlflow_run_id": registered.get("mlflow_run_id"),
        "files": sorted(files),
        "bytes": sum(p.stat().st_size for p in staged),
        "dataset": dataset,
    }
    write_json(result_path, result)  # last: marks the step complete
    return result


def _promoted_registration(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """``register/result.json`` of a promoted model; NothingToDo when publishing is off or the
    model was not promoted, StepError when the register step has not run."""
    if not cfg.hub_repo_id:
        print("publish: nothing to do: publishing is off (hub_repo_id is empty)")
        raise NothingToDo({"step": "publish", "reason": "publishing is off: hub_repo_id is empty"})
    register_path = run_dir / "register" / "result.json"
    if not register_path.exists():
        raise StepError(f"{register_path} is missing: run the register step first")
    registered = read_json(register_path)
    if not registered.get("promoted"):
        reason = (registered.get("gate") or {}).get("reason") or "the gate did not promote it"
        print(f"publish: nothing to do: version {registered.get('model_version')} not promoted")
        raise NothingToDo(
            {
                "step": "publish",
                "reason": f"not promoted: {reason}",
                "model_version": registered.get("model_version"),
            }
        )
    return registered


def _read_records(run_dir: Path, registered: dict[str, Any]) -> RunRecords:
    """The manifest, the report's metrics and (if there) the training summary."""
    metrics_path = f"{REPORT_DIR}/{METRICS_FILE}"
    for needed in ("data/manifest.json", metrics_path, "train/model/config.json"):
        if not (run_dir / needed).exists():
            raise StepError(f"{run_dir / needed} is missing: run the earlier steps first")
    summary_path = run_dir / "train" / "summary.json"
    return RunRecords(
        registered=registered,
        version=str(registered["model_version"]),
        manifest=read_json(run_dir / "data" / "manifest.json"),
        metrics=read_json(run_dir / metrics_path),
        train_summary=read_json(summary_path) if summary_path.exists() else None,
    )


def _hub_api() -> tuple[Any, str, str]:
    """An ``HfApi`` for :func:`hub_endpoint` with the token, the endpoint and the token; a
    StepError when the token is missing or huggingface_hub is offline."""
    token = hub_token()
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise _offline_error()
    endpoint = hub_endpoint()
    return HfApi(endpoint=endpoint, token=token, library_name="embedding-retrain"), endpoint, token


def _run_ids(run_dir: Path) -> dict[str, str]:
    """The Airflow DAG and run of this step (the card's lineage and the commit description)."""
    return {
        "dag_id": dag_id_of(run_dir),
        "run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or run_dir.name,
    }


def _ensure_model_repo(api: Any, repo_id: str, *, private: bool) -> tuple[Any, bool]:
    """The model repo's URL, created if needed, and whether it is private (an existing repo keeps
    its visibility)."""
    url = api.create_repo(repo_id, private=private, exist_ok=True)
    is_private = bool(api.repo_info(repo_id).private)
    if is_private != private:
        print(
            f"publish: note: {repo_id} already exists as a "
            f"{'private' if is_private else 'public'} repo; the Hub keeps an existing repo's "
            f"visibility (hub_private is ignored)",
            flush=True,
        )
    return url, is_private


def push_model(
    api: Any,
    cfg: RunConfig,
    repo_id: str,
    files: dict[str, Path],
    records: RunRecords,
    run_ids: dict[str, str],
) -> dict[str, Any]:
    """Create the model repo if needed, push ``files`` in one commit and tag it
    ``mlflow-v<version>``; returns ``{url, private, commit, commit_url, tag}``."""
    registered, version = records.registered, records.version
    model = f"{registered.get('registered_model')} version {version}"
    total = sum(p.stat().st_size for p in files.values())
    visibility = "private" if cfg.hub_private else "public"
    print(
        f"publish: {len(files)} files ({_human_bytes(total)}) of {model} to {visibility} model "
        f"repo {repo_id} at {api.endpoint}",
        flush=True,
    )
    tag = f"mlflow-v{version}"
    url, private = _ensure_model_repo(api, repo_id, private=cfg.hub_private)
    gate = registered.get("gate") or {}
    commit = _commit_files(
        api,
        repo_id,
        repo_type="model",
        files=dict(files),
        message=f"MLflow {model} (run {registered.get('mlflow_run_id')})",
        description=(
            f"Promoted: {gate.get('reason') or 'passed the gate'}. Data fingerprint "
            f"{records.manifest.get('fingerprints', {}).get('data')}, eval fingerprint "
            f"{records.metrics.get('eval_fingerprint')}. Airflow run {run_ids['dag_id']}/"
            f"{run_ids['run_id']}."
        ),
    )
    print(f"publish: commit {commit.oid} ({commit.commit_url})", flush=True)
    api.create_tag(
        repo_id, tag=tag, revision=commit.oid, tag_message=f"MLflow {model}", exist_ok=True
    )
    print(f"publish: tagged {tag}; model at {url}", flush=True)
    return {
        "url": str(url),
        "private": private,
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "tag": tag,
    }
