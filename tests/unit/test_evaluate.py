"""The one-pass Matryoshka evaluator equals sentence-transformers' evaluator, dim by dim."""

from __future__ import annotations

import pytest
from conftest import DEMO_MODEL, make_pairs

from tasks.data import build_retrieval_set
from tasks.evaluate import MatryoshkaIREvaluator, evaluate_model
from tasks.io import write_json
from tasks.models import load_model, resolve_model

pytestmark = pytest.mark.unit


def _reference(model, rset, dim):
    from sentence_transformers.sentence_transformer.evaluation import (
        InformationRetrievalEvaluator,
    )

    evaluator = InformationRetrievalEvaluator(
        rset["queries"],
        rset["corpus"],
        {q: set(c) for q, c in rset["relevant_docs"].items()},
        truncate_dim=dim,
        name="ref",
        write_csv=False,
        batch_size=64,
    )
    out = evaluator(model)
    prefix = f"ref_{model.similarity_fn_name}_"
    return {k[len(prefix) :]: v for k, v in out.items() if k.startswith(prefix)}


def _assert_equal(ours, reference):
    assert set(reference) <= set(ours), set(reference) - set(ours)
    for key, value in reference.items():
        assert ours[key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.parametrize("model_ref", ["tiny", "minilm"])
def test_matches_information_retrieval_evaluator_with_truncate_dim(model_ref, tiny_model_dir):
    pairs = make_pairs(n_docs=48, queries_per_doc=2, seed=3)
    # extra distractors and a query with two relevant documents
    pairs.append({"query": pairs[0]["query"], "document": pairs[5]["document"]})
    rset = build_retrieval_set(pairs, [f"distractor text number {i}" for i in range(30)])
    if model_ref == "tiny":
        model, dims = load_model(tiny_model_dir, device="cpu"), [64, 32, 16, 8]
    else:
        model, dims = load_model(resolve_model(DEMO_MODEL), device="cpu"), [384, 256, 128, 64]
    ours = MatryoshkaIREvaluator(rset["queries"], rset["corpus"], rset["relevant_docs"], dims)
    results = ours.compute(model)
    assert list(results) == dims
    for dim in dims:
        _assert_equal(results[dim], _reference(model, rset, dim))
    # headline metrics are all there and in range
    for metric in ("ndcg@10", "mrr@10", "recall@1", "recall@5", "recall@10", "map@100"):
        assert 0.0 <= results[dims[0]][metric] <= 1.0


def test_ties_are_broken_like_the_reference(tiny_model_dir):
    """Identical documents under different ids score exactly the same: order by corpus id."""
    model = load_model(tiny_model_dir, device="cpu")
    corpus = {f"d{i:03d}": "the very same text about cron schedules" for i in range(15)}
    corpus.update({f"e{i:03d}": f"other text {i} about docker images" for i in range(5)})
    queries = {"q1": "cron schedule", "q2": "docker image"}
    relevant = {"q1": ["d012"], "q2": ["d003", "e004"]}
    rset = {"queries": queries, "corpus": corpus, "relevant_docs": relevant}
    ours = MatryoshkaIREvaluator(queries, corpus, relevant, [64, 16]).compute(model)
    for dim in (64, 16):
        _assert_equal(ours[dim], _reference(model, rset, dim))


def test_trainer_protocol_names_metrics_per_dim(tiny_model_dir):
    model = load_model(tiny_model_dir, device="cpu")
    rset = build_retrieval_set(make_pairs(n_docs=10), [])
    evaluator = MatryoshkaIREvaluator(
        rset["queries"], rset["corpus"], rset["relevant_docs"], [64, 32], name="val", main_dim=32
    )
    flat = evaluator(model)
    assert evaluator.primary_metric == "dim_32_cosine_ndcg@10"
    assert "val_dim_32_cosine_ndcg@10" in flat and "val_dim_64_cosine_recall@5" in flat


def test_per_query_ndcg_averages_to_the_metric_and_the_trainer_wrapper_names_its_similarity(
    tiny_model_dir,
):
    from tasks.evaluate import as_trainer_evaluator

    model = load_model(tiny_model_dir, device="cpu")
    rset = build_retrieval_set(make_pairs(n_docs=10), [])
    inner = MatryoshkaIREvaluator(
        rset["queries"], rset["corpus"], rset["relevant_docs"], [64, 32], name="val", main_dim=32
    )
    assert inner.per_query_mean_ndcg() == []  # nothing computed yet
    results = inner.compute(model)
    for dim in (64, 32):
        per_query = inner.per_query_ndcg[dim]
        assert len(per_query) == len(inner.queries)
        assert sum(per_query) / len(per_query) == pytest.approx(results[dim]["ndcg@10"])
    both = zip(inner.per_query_ndcg[64], inner.per_query_ndcg[32])
    assert inner.per_query_mean_ndcg() == pytest.approx([(a + b) / 2 for a, b in both])
    model.similarity_fn_name = "dot"  # the metric names follow the model's similarity
    wrapper = as_trainer_evaluator(inner)
    flat = wrapper(model)
    assert wrapper.primary_metric == "val_dim_32_dot_ndcg@10" and wrapper.primary_metric in flat
    assert wrapper.inner is inner


def test_evaluate_model_caches_by_model_and_eval_fingerprint(tmp_path, tiny_model_dir):
    rset = build_retrieval_set(make_pairs(n_docs=12), [])
    eval_file = write_json(tmp_path / "eval.json", rset)
    first = evaluate_model(tiny_model_dir, eval_file, [64, 32])
    assert first["cached"] is False
    second = evaluate_model(tiny_model_dir, eval_file, [64, 32])
    assert second["cached"] is True
    assert second["metrics"] == first["metrics"]
    # a different eval set is a different cache entry
    other = write_json(
        tmp_path / "eval2.json", build_retrieval_set(make_pairs(n_docs=12, seed=9), [])
    )
    assert evaluate_model(tiny_model_dir, other, [64, 32])["cached"] is False


def test_a_cached_result_of_another_metric_set_is_not_reused(tmp_path, tiny_model_dir, monkeypatch):
    """A metric added to the evaluation must not be missing from a cached result (report)."""
    import tasks.evaluate as evaluate
    from tasks.io import read_json

    rset = build_retrieval_set(make_pairs(n_docs=12), [])
    eval_file = write_json(tmp_path / "eval.json", rset)
    first = evaluate_model(tiny_model_dir, eval_file, [64, 32])
    path = evaluate.evaluation_cache_file(
        first["model_fingerprint"], first["eval_fingerprint"], [64, 32]
    )
    assert path.exists()
    # the metric set is part of the key ...
    fewer = evaluate.recorded_metrics()[:-1]
    with monkeypatch.context() as patched:
        patched.setattr(evaluate, "recorded_metrics", lambda: fewer)
        other_key = evaluate.evaluation_cache_file("m", "e", [64])
    assert other_key != evaluate.evaluation_cache_file("m", "e", [64])
    # ... and a cached file that lacks a recorded metric is evaluated again, then complete
    stale = read_json(path)
    del stale["metrics"]["32"]["map@100"]
    write_json(path, stale)
    again = evaluate_model(tiny_model_dir, eval_file, [64, 32])
    assert again["cached"] is False and "map@100" in again["metrics"]["32"]
    assert evaluate_model(tiny_model_dir, eval_file, [64, 32])["cached"] is True


def test_a_rewritten_model_card_keeps_the_fingerprint(tmp_path, tiny_model_dir):
    """sentence-transformers rewrites README.md on every save; the same weights must still hit
    the evaluation cache, while any change to what the model computes must not."""
    import shutil

    from tasks.io import fingerprint_dir

    copy = tmp_path / "model"
    shutil.copytree(tiny_model_dir, copy)
    before = fingerprint_dir(copy)
    (copy / "README.md").write_text("---\ntrained: just now\n---\n")
    assert fingerprint_dir(copy) == before
    config = copy / "config_sentence_transformers.json"
    config.write_text(config.read_text().replace("{", '{"x": 1, ', 1))
    assert fingerprint_dir(copy) != before
