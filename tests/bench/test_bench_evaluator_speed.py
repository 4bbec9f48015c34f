"""The evaluator-speed benchmark in its small form: same metrics, and faster than per-dim."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.bench


def test_evaluator_speed_small(tmp_path, tiny_model_dir):
    from bench.evaluator_speed import main

    result = main(
        [
            "--small",
            "--model",
            str(tiny_model_dir),
            "--dims",
            "64,32,16,8",
            "--max-queries",
            "200",
            "--out",
            str(tmp_path / "speed.json"),
        ]
    )
    assert result["queries"] == 200 and result["corpus"] == 167
    assert result["max_abs_diff"] <= 1e-6  # identical metrics
    # One encoding instead of four: clearly faster even on a tiny model.
    assert result["ratio"] > 1.5, result
    assert (tmp_path / "speed.json").exists()


def test_beir_folders_load_the_judged_queries_only(tmp_path):
    import json

    from bench.evaluator_speed import load_beir

    (tmp_path / "qrels").mkdir()
    (tmp_path / "corpus.jsonl").write_text(
        "".join(json.dumps({"_id": i, "text": f"doc {i}"}) + "\n" for i in (1, 2, 3))
    )
    (tmp_path / "queries.jsonl").write_text(
        "".join(json.dumps({"_id": f"q{i}", "text": f"query {i}"}) + "\n" for i in (1, 2, 4))
    )
    qrels = "query-id\tcorpus-id\tscore\nq1\t1\t1\nq1\t2\t0\nq2\t2\t2\nq2\t3\t1\n"
    (tmp_path / "qrels" / "test.tsv").write_text(qrels)
    queries, corpus, relevant = load_beir(tmp_path, "test")
    assert corpus == {"1": "doc 1", "2": "doc 2", "3": "doc 3"}
    assert queries == {"q1": "query 1", "q2": "query 2"}  # q4 has no judgement
    assert relevant == {"q1": {"1"}, "q2": {"2", "3"}}  # a score of 0 is not relevant
    assert load_beir(tmp_path, "test", max_queries=1)[::2] == ({"q1": "query 1"}, {"q1": {"1"}})


def test_metrics_are_compared_per_dim_and_tabled():
    from bench.evaluator_speed import compare, speed_table

    ours = {64: {"ndcg@10": 0.5, "mrr@10": 0.4}, 32: {"ndcg@10": 0.45, "mrr@10": 0.35}}
    reference = {"dim_64_cosine_ndcg@10": 0.5, "dim_64_cosine_mrr@10": 0.4}
    reference.update({"dim_32_cosine_ndcg@10": 0.4501, "dim_32_cosine_mrr@10": 0.3502})
    compared = compare(reference, ours, [64, 32], "cosine")
    assert compared["max_abs_diff"] == pytest.approx(0.0002)  # mrr@10 at dim 32
    assert compared["reference_ndcg@10"] == [0.5, 0.4501]
    assert compared["ours_ndcg@10"] == [0.5, 0.45]

    result = {"queries": 200, "corpus": 167, "dims": [64, 32], "reference_s": 12.34}
    result.update(ours_s=3.08, ratio=12.34 / 3.08, max_abs_diff=compared["max_abs_diff"])
    result["machine"] = {"device_name": "CPU (2 cores, x86_64)", "date": "2026-12-07"}
    assert speed_table("demo data", "tiny", result, compared).splitlines() == [
        "demo data: 200 queries, 167 documents, dims [64, 32], model `tiny` on "
        "CPU (2 cores, x86_64), 2026-12-07",
        "",
        "| evaluator | seconds | ndcg@10 per dim |",
        "|---|---:|---|",
        "| SequentialEvaluator of 2 IR evaluators | 12.3 | 0.5000, 0.4501 |",
        "| MatryoshkaIREvaluator (encode once) | 3.1 | 0.5000, 0.4500 |",
        "",
        "Speed ratio **4.01x** (target >= 3x at 4 dims); largest metric difference 2.00e-04 "
        "(DIFFERENT).",
    ]
    result["max_abs_diff"] = 1e-7
    assert speed_table("x", "m", result, compared).endswith("1.00e-07 (identical).")
