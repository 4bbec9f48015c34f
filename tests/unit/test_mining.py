"""Hard-negative mining on embeddings made by hand, so every rule can be checked exactly."""

from __future__ import annotations

import pytest

from tasks.mining import MiningRow, MiningSettings, mine_negatives, query_chunk

pytestmark = pytest.mark.unit


def _unit(*rows):
    import torch

    t = torch.tensor(rows, dtype=torch.float32)
    return t / t.norm(dim=1, keepdim=True)


def _pool():
    """One query along x; documents at falling angles from it: cos 1.0, .99, .9, .8, .7, .1."""
    import math

    import torch

    cosines = [1.0, 0.99, 0.9, 0.8, 0.7, 0.1]
    docs = torch.tensor([[c, math.sqrt(max(0.0, 1 - c * c))] for c in cosines])
    return _unit([1.0, 0.0]), docs


def test_the_positive_aware_margin_keeps_out_what_scores_like_the_positive():
    query, docs = _pool()
    # the positive is doc 2 (cos .9): doc 0 (1.0) and doc 1 (.99) score above it: unlabeled
    # matches, not negatives; with a 5% margin the ceiling is .855, so doc 3 (.8) is the hardest
    picked, stats = mine_negatives(
        query, docs, [MiningRow(0, 2)], {0: {2}}, MiningSettings(num_negatives=2, margin=0.05)
    )
    assert picked == [[3, 4]]
    assert stats["rejected_by_margin"] == 2 and stats["rejected_known_positive"] == 1
    assert stats["mean_positive_score"] == pytest.approx(0.9, abs=1e-4)
    assert stats["mean_negative_score"] == pytest.approx(0.75, abs=1e-4)


def test_a_larger_margin_keeps_further_away_and_known_positives_never_come_back():
    query, docs = _pool()
    picked, _ = mine_negatives(
        query, docs, [MiningRow(0, 2)], {0: {2, 3}}, MiningSettings(num_negatives=1, margin=0.15)
    )
    assert picked == [[4]]  # doc 3 is another positive of the query; .7 <= .9 - .135


def test_range_min_skips_the_hardest_candidates_that_pass():
    query, docs = _pool()
    picked, _ = mine_negatives(
        query, docs, [MiningRow(0, 0)], {0: {0}}, MiningSettings(1, margin=0.0, range_min=2)
    )
    assert picked == [[3]]  # 1 and 2 pass (<= 1.0) and are skipped


def test_rows_of_one_query_get_negatives_relative_to_their_own_positive():
    query, docs = _pool()
    rows = [MiningRow(0, 1), MiningRow(0, 4)]
    picked, _ = mine_negatives(query, docs, rows, {0: {1, 4}}, MiningSettings(1, margin=0.05))
    assert picked == [[2], [5]]  # ceilings .9405 and .665


def test_a_small_pool_gives_fewer_and_says_so():
    query, docs = _pool()
    picked, stats = mine_negatives(
        query, docs, [MiningRow(0, 5)], {0: {5}}, MiningSettings(num_negatives=3, margin=0.05)
    )
    assert picked == [[]]  # nothing scores below .095
    assert stats["rows_with_fewer_than_asked"] == 1 and stats["negatives"] == 0


def test_a_query_whose_top_candidates_are_all_rejected_is_ranked_in_full(monkeypatch):
    """Many near-duplicates above the positive fill the kept top candidates: the rule goes on
    down the whole ranking instead of giving up."""
    import torch

    import tasks.mining as mining

    monkeypatch.setattr(mining, "SLACK", 0)
    n = 40
    near = [[1.0, 0.001 * i] for i in range(n)]  # all ~cos 1
    far = [[0.5, 0.8660], [0.2, 0.98]]
    docs = _unit(*near, *far)
    picked, stats = mine_negatives(
        _unit([1.0, 0.0]), docs, [MiningRow(0, 0)], {0: {0}}, MiningSettings(1, margin=0.05)
    )
    assert picked == [[n]] and stats["rows_ranked_in_full"] == 1
    assert torch.allclose(docs[n] @ _unit([1.0, 0.0])[0], torch.tensor(0.5), atol=1e-3)


def test_chunked_scoring_gives_the_same_picks(monkeypatch):
    import torch

    import tasks.mining as mining

    gen = torch.Generator().manual_seed(0)
    queries = torch.nn.functional.normalize(torch.randn(50, 16, generator=gen), dim=1)
    # the first 50 documents answer the 50 queries (close to them), 30 others are random
    noise = torch.randn(50, 16, generator=gen)
    answers = torch.nn.functional.normalize(queries + 0.3 * noise, dim=1)
    others = torch.nn.functional.normalize(torch.randn(30, 16, generator=gen), dim=1)
    docs = torch.cat([answers, others])
    rows = [MiningRow(q, q) for q in range(50)]
    positives = {q: {q} for q in range(50)}
    settings = MiningSettings(num_negatives=3, margin=0.05, range_min=1)
    whole, _ = mine_negatives(queries, docs, rows, positives, settings)
    monkeypatch.setattr(mining, "SCORE_BUDGET", 80 * 7)  # 7 queries at a time
    assert query_chunk(80, 80 * 7) == 7
    chunked, _ = mine_negatives(queries, docs, rows, positives, settings)
    assert chunked == whole
    assert all(len(p) == 3 and q not in p for q, p in enumerate(whole))


def test_pairs_whose_positive_the_base_model_cannot_find_get_no_mined_negative():
    query, docs = _pool()
    settings = MiningSettings(num_negatives=1, margin=0.05, max_positive_rank=2)
    # positive doc 1 (.99): only doc 0 scores above it, rank 1 < 2: mined
    # positive doc 4 (.7): docs 0-3 score above it, rank 4: skipped
    rows = [MiningRow(0, 1), MiningRow(0, 4)]
    picked, stats = mine_negatives(query, docs, rows, {0: {1, 4}}, settings)
    assert picked == [[2], []]
    assert stats["rows_skipped_positive_not_found"] == 1
    assert stats["rows_with_fewer_than_asked"] == 0  # a skipped row is not a short one
    # known positives above the positive do not count against it
    picked, _ = mine_negatives(query, docs, [MiningRow(0, 4)], {0: {0, 1, 2, 4}}, settings)
    assert picked == [[5]]  # only doc 3 counts above it: rank 1
