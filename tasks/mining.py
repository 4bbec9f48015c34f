"""Hard-negative mining: documents the base model ranks high for a query that are not its answer.

Training pairs from annotations or plain (query, document) files usually bring no negatives, and
in-batch negatives are mostly easy ones. This module picks, for every training pair, documents of
the candidate pool that the base model scores high for the pair's query but that are

- not a known positive of that query (any document paired with it anywhere in the data), and
- *positive-aware*: scored at most ``positive - |positive| x margin``, the pair's own positive's
  score less a relative margin (NV-Retriever's "TopK-PercPos"), so an unlabeled true match,
  which the base model scores like the positive, is not pushed away.

With ``max_positive_rank``, only pairs whose positive the base model itself ranks within that many
documents get negatives: where the base model cannot find the positive, the documents it scores just
below it are as likely unlabeled matches as negatives (seen on data from a domain the base model
knows little of). Of the candidates that pass those rules, the ``range_min`` best-scoring ones are
skipped (the very top is where unlabeled matches hide) and the next ``num_negatives`` are taken: the
hardest negatives the rules allow. Scoring runs over the pool in chunks of queries and keeps only
each query's top candidates, so memory stays bounded by ``chunk x pool`` scores whatever the data
size; a query whose top candidates are mostly rejected is ranked again in full.

Pure: the functions take embeddings (torch tensors) and ids and return indices; loading models
and files is the ``mine`` step's work (:mod:`tasks.mine`).

Example::

    settings = MiningSettings(num_negatives=1, margin=0.05, range_min=0)
    picked, stats = mine_negatives(query_emb, doc_emb, rows, positives, settings)
    # picked[i]: pool indices of the negatives of row i
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

#: Scores held at once while ranking: a chunk of queries times the whole pool (128 MB of float32).
SCORE_BUDGET = 32 * 2**20
#: Candidates kept per query beyond those a row needs, for the ones the rules reject.
SLACK = 32


@dataclass(frozen=True)
class MiningSettings:
    """How negatives are picked (the run config's ``num_negatives``, ``mining_*`` settings)."""

    num_negatives: int = 1
    #: relative margin: a negative scores at most ``positive - |positive| x margin``
    margin: float = 0.05
    #: candidates that pass the rules and are skipped before picking (the hardest ones)
    range_min: int = 0
    #: mine only for pairs whose positive the base model ranks within this many documents of the
    #: pool (0 = every pair): where it cannot find the positive, its scores cannot tell a hard
    #: negative from an unlabeled match
    max_positive_rank: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class MiningRow:
    """One training pair in pool terms: its query's index and its positive's pool index."""

    query: int
    positive: int


def query_chunk(pool_size: int, budget: int = SCORE_BUDGET) -> int:
    """Queries scored at once so that ``chunk x pool_size`` stays within ``budget`` scores."""
    return max(1, min(4096, budget // max(pool_size, 1)))


def mine_negatives(
    query_emb: Any,
    doc_emb: Any,
    rows: Sequence[MiningRow],
    positives: dict[int, set[int]],
    settings: MiningSettings,
) -> tuple[list[list[int]], dict[str, Any]]:
    """Pick ``settings.num_negatives`` pool documents per row; returns (picks per row, stats).

    Args:
        query_emb: ``(queries, dim)`` L2-normalised query embeddings.
        doc_emb: ``(pool, dim)`` L2-normalised embeddings of the candidate pool.
        rows: the training pairs; ``row.positive`` must be a pool index.
        positives: query index -> pool indices of every known positive of that query.
        settings: the mining settings.

    Stats: rows, negatives picked, rows that got fewer than asked (a tiny pool), candidates
    rejected as known positives and by the margin, and the mean score of positives and negatives.
    """
    import torch

    want = settings.num_negatives
    depth = settings.range_min + want + SLACK
    by_query: dict[int, list[int]] = {}
    for i, row in enumerate(rows):
        by_query.setdefault(row.query, []).append(i)
    picked: list[list[int]] = [[] for _ in rows]
    counts: Counter = Counter()
    pos_scores: list[float] = []
    neg_scores: list[float] = []
    pool = doc_emb.shape[0]
    query_ids = sorted(by_query)
    step = query_chunk(pool)
    for start in range(0, len(query_ids), step):
        chunk = query_ids[start : start + step]
        scores = query_emb[chunk] @ doc_emb.T  # (chunk, pool)
        known = max((len(positives.get(q, ())) for q in chunk), default=0)
        k = min(pool, depth + known)
        top = torch.topk(scores, k, dim=1)
        for j, q in enumerate(chunk):
            ranked = list(zip(top.indices[j].tolist(), top.values[j].tolist()))
            known_q = positives.get(q, set())
            for i in by_query[q]:
                positive_score = float(scores[j, rows[i].positive])
                if settings.max_positive_rank and (
                    _rank_of(scores[j], positive_score, known_q) >= settings.max_positive_rank
                ):
                    counts["positive_not_found"] += 1
                    pos_scores.append(positive_score)
                    continue
                chosen, why = _pick(ranked, positive_score, known_q, settings)
                if len(chosen) < want and k < pool:
                    # the top candidates were mostly rejected: the rule over the whole pool
                    chosen, why = _pick(
                        _allowed_top(scores[j], positive_score, known_q, settings),
                        positive_score,
                        known_q,
                        settings,
                    )
                    why["full_ranking"] += 1
                counts.update(why)
                picked[i] = [c for c, _ in chosen]
                pos_scores.append(positive_score)
                neg_scores += [s for _, s in chosen]
                counts["short"] += len(chosen) < want
    stats = {
        "rows": len(rows),
        "negatives": sum(len(p) for p in picked),
        "rows_with_fewer_than_asked": counts["short"],
        "rejected_known_positive": counts["positive"],
        "rejected_by_margin": counts["margin"],
        "rows_ranked_in_full": counts["full_ranking"],
        "rows_skipped_positive_not_found": counts["positive_not_found"],
        "mean_positive_score": rounded_mean(pos_scores),
        "mean_negative_score": rounded_mean(neg_scores),
    }
    return picked, stats


def _pick(
    ranked: list[tuple[int, float]],
    positive_score: float,
    known: set[int],
    settings: MiningSettings,
) -> tuple[list[tuple[int, float]], Counter]:
    """The negatives of one row from its query's ranked candidates (best first).

    Candidates that are known positives or score above the margin are rejected; of those that
    pass, the first ``range_min`` are skipped and the next ``num_negatives`` taken.
    """
    why: Counter = Counter()
    passed = 0
    chosen: list[tuple[int, float]] = []
    for index, score in ranked:
        if index in known:
            why["positive"] += 1
            continue
        if not below_margin(score, positive_score, settings.margin):
            why["margin"] += 1
            continue
        passed += 1
        if passed <= settings.range_min:
            continue
        chosen.append((index, score))
        if len(chosen) == settings.num_negatives:
            break
    return chosen, why


def below_margin(negative_score: float, positive_score: float, margin: float) -> bool:
    """Whether a negative scores at most ``positive - |positive| x margin`` and strictly below the
    positive (a tie is a copy of the positive): the positive-aware rule of mining, also what
    ``filter_data_negatives`` holds a data set's own negatives to."""
    return negative_score <= _ceiling(positive_score, margin) and negative_score < positive_score


def _rank_of(scores: Any, positive_score: float, known: set[int]) -> int:
    """How many documents of the pool, known positives aside, score above the positive."""
    above = int((scores > positive_score).sum())
    return above - sum(1 for k in known if float(scores[k]) > positive_score)


def _allowed_top(
    scores: Any, positive_score: float, known: set[int], settings: MiningSettings
) -> list[tuple[int, float]]:
    """The best ``range_min + num_negatives`` candidates of the whole pool that pass the rules,
    best first: one masked pass over the pool's scores, not a sort of it."""
    import torch

    allowed = scores.clone()
    allowed[allowed > _ceiling(positive_score, settings.margin)] = -torch.inf
    if known:
        allowed[torch.tensor(sorted(known), dtype=torch.long, device=scores.device)] = -torch.inf
    k = min(allowed.shape[0], settings.range_min + settings.num_negatives)
    top = torch.topk(allowed, k)
    return [(i, v) for i, v in zip(top.indices.tolist(), top.values.tolist()) if v != -float("inf")]


def _ceiling(positive_score: float, margin: float) -> float:
    """The highest score a negative may have: the positive's less ``margin`` of it."""
    return positive_score - abs(positive_score) * margin


def rounded_mean(values: list[float]) -> float | None:
    if not values:
        return None
    mean = sum(values) / len(values)
    return round(mean, 4) if math.isfinite(mean) else None
