"""The ``evaluate`` step: one model, one eval set, every Matryoshka dim.

Queries and corpus are encoded once at full size; each dim then truncates and re-normalises the
same embeddings. The metrics (NDCG@10, MRR@10, MAP@100, Recall/Precision/Accuracy@k) are computed
exactly as sentence-transformers' ``InformationRetrievalEvaluator`` with ``truncate_dim`` does
(ties broken by ascending corpus id), at a fraction of the cost of one evaluator per dim.

Results are cached under ``$EMBED_HOME/cache/evaluations`` by (model fingerprint, eval
fingerprint, dims, max_seq_length, the set of recorded metrics), so an unchanged base model is
not re-encoded run after run.

Example::

    from tasks.evaluate import MatryoshkaIREvaluator

    evaluator = MatryoshkaIREvaluator(queries, corpus, relevant_docs, dims=[384, 128])
    metrics = evaluator.compute(model)   # {384: {"ndcg@10": ..., ...}, 128: {...}}
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

from tasks.io import cache_dir, fingerprint_dir, read_json, sha256_text, write_json
from tasks.metrics import (
    ACCURACY_AT_K,
    MAP_AT_K,
    MRR_AT_K,
    NDCG_AT_K,
    PRECISION_RECALL_AT_K,
    recorded_metrics,
)


def _base_evaluator() -> type:
    from sentence_transformers.base.evaluation.evaluator import BaseEvaluator

    return BaseEvaluator


class MatryoshkaIREvaluator:
    """Information-retrieval metrics of one model at several Matryoshka dims, encoding once.

    Args:
        queries: ``{query_id: text}``.
        corpus: ``{doc_id: text}``.
        relevant_docs: ``{query_id: iterable of doc_ids}``.
        dims: embedding sizes to evaluate, large to small.
        batch_size: texts per encode batch.
        name: prefix of the metric names when used as a trainer evaluator.
    """

    def __init__(
        self,
        queries: dict[str, str],
        corpus: dict[str, str],
        relevant_docs: dict[str, Any],
        dims: list[int],
        *,
        batch_size: int = 64,
        name: str = "",
        main_dim: int | None = None,
    ) -> None:
        self.query_ids = [q for q in queries if relevant_docs.get(q)]
        self.queries = [queries[q] for q in self.query_ids]
        self.corpus_ids = list(corpus)
        self.corpus = [corpus[c] for c in self.corpus_ids]
        self.relevant_docs = {q: set(relevant_docs[q]) for q in self.query_ids}
        self.dims = list(dims)
        self.batch_size = batch_size
        self.name = name
        self.main_dim = main_dim or self.dims[-1]
        self.max_k = max(*ACCURACY_AT_K, *PRECISION_RECALL_AT_K, *MRR_AT_K, *NDCG_AT_K, *MAP_AT_K)
        self.similarity_fn_name = "cosine"
        self._similarity: Any = None
        self.last_timing: dict[str, float] = {}
        #: NDCG@10 of every query at every dim, from the last :meth:`compute` (paired tests)
        self.per_query_ndcg: dict[int, list[float]] = {}

    def per_query_mean_ndcg(self) -> list[float]:
        """Each query's NDCG@10 averaged over the dims, from the last :meth:`compute`.

        What the validation choices (the checkpoint, the weight interpolation) compare two models
        by: a model is used, reported and gated at every dim, and a gain at one dim that is a loss
        at another is no gain; the average over dims is also less noisy than any one dim.
        """
        if not self.per_query_ndcg:  # not computed in this process (nothing to compare)
            return []
        per_dim = [self.per_query_ndcg[d] for d in self.dims]
        return [sum(scores) / len(per_dim) for scores in zip(*per_dim)]

    # sentence-transformers evaluator protocol (used by the trainer for checkpoint selection)
    @property
    def primary_metric(self) -> str:
        return f"dim_{self.main_dim}_{self.similarity_fn_name}_ndcg@10"

    def encode(self, model: Any) -> tuple[Any, Any]:
        """Full-size query and corpus embeddings (float32 tensors)."""
        queries = model.encode_query(
            self.queries,
            batch_size=self.batch_size,
            convert_to_tensor=True,
            show_progress_bar=False,
        )
        corpus = model.encode_document(
            self.corpus, batch_size=self.batch_size, convert_to_tensor=True, show_progress_bar=False
        )
        return queries.float(), corpus.float()

    def compute(self, model: Any) -> dict[int, dict[str, float]]:
        """Encode once and return ``{dim: {metric: value}}``."""
        started = time.perf_counter()
        self.similarity_fn_name = model.similarity_fn_name
        self._similarity = model.similarity
        query_emb, corpus_emb = self.encode(model)
        encoded = time.perf_counter()
        results = self.compute_from_embeddings(query_emb, corpus_emb)
        self.last_timing = {"encode_s": encoded - started, "score_s": time.perf_counter() - encoded}
        return results

    def compute_from_embeddings(
        self, query_emb: Any, corpus_emb: Any
    ) -> dict[int, dict[str, float]]:
        """Metrics per dim from full-size embeddings, truncated per dim.

        Cosine models (the usual case) score a normalised matrix product; other similarity
        functions (dot, euclidean, manhattan) use the model's own ``similarity`` on the truncated
        embeddings, as the reference evaluator does.
        """
        import torch.nn.functional as F

        full = query_emb.shape[1]
        results = {}
        self.per_query_ndcg = {}
        for dim in self.dims:
            if dim > full:
                raise ValueError(f"dim {dim} exceeds the model's embedding size {full}")
            q, c = query_emb[:, :dim], corpus_emb[:, :dim]
            if self.similarity_fn_name == "cosine" or self._similarity is None:
                q, c = F.normalize(q, p=2, dim=1), F.normalize(c, p=2, dim=1)
                score = None
            else:
                score = self._similarity
            results[dim] = self._metrics(self._rank(q, c, score=score))
            self.per_query_ndcg[dim] = self._last_ndcg
        return results

    def _rank(self, q: Any, c: Any, chunk: int = 1024, score: Any = None) -> list[list[int]]:
        """Top-``max_k`` corpus indices per query, ordered by (-score, corpus id)."""
        import torch

        top_k = min(self.max_k, c.shape[0])
        # Corpus position in ascending-id order, the tie-break key of the reference evaluator.
        order = sorted(range(len(self.corpus_ids)), key=self.corpus_ids.__getitem__)
        id_rank = torch.empty(len(order), dtype=torch.long)
        id_rank[torch.tensor(order, dtype=torch.long)] = torch.arange(len(order))
        rank_of = id_rank.tolist()
        ranked: list[list[int]] = []
        for start in range(0, q.shape[0], chunk):
            block = q[start : start + chunk]
            scores = block @ c.T if score is None else score(block, c)
            values, idx = torch.topk(scores, top_k, dim=1, largest=True, sorted=True)
            threshold = values[:, -1:]
            boundary_ties = ((scores >= threshold).sum(dim=1) > top_k).tolist()
            values_l, idx_l = values.tolist(), idx.tolist()
            for row, tie in enumerate(boundary_ties):
                if tie:
                    # Every score at the cutoff competes; pick by (-score, corpus id).
                    s = scores[row]
                    cand = torch.nonzero(s >= threshold[row, 0]).flatten().tolist()
                    cand_scores = s[cand].tolist()
                    best = sorted(zip(cand_scores, cand), key=lambda p: (-p[0], rank_of[p[1]]))
                    ranked.append([i for _, i in best[:top_k]])
                else:
                    pairs = sorted(
                        zip(values_l[row], idx_l[row]), key=lambda p: (-p[0], rank_of[p[1]])
                    )
                    ranked.append([i for _, i in pairs])
        return ranked

    def _metrics(self, ranked: list[list[int]]) -> dict[str, float]:
        n = len(self.query_ids)
        sums: dict[str, float] = {}
        self._last_ndcg: list[float] = []

        def add(key: str, value: float) -> None:
            sums[key] = sums.get(key, 0.0) + value

        for qi, qid in enumerate(self.query_ids):
            relevant = self.relevant_docs[qid]
            hits = [1 if self.corpus_ids[i] in relevant else 0 for i in ranked[qi]]
            for k in ACCURACY_AT_K:
                add(f"accuracy@{k}", 1.0 if any(hits[:k]) else 0.0)
            for k in PRECISION_RECALL_AT_K:
                correct = sum(hits[:k])
                add(f"precision@{k}", correct / k)
                add(f"recall@{k}", correct / len(relevant))
            for k in MRR_AT_K:
                first = next((r for r, h in enumerate(hits[:k]) if h), None)
                add(f"mrr@{k}", 0.0 if first is None else 1.0 / (first + 1))
            for k in NDCG_AT_K:
                dcg = sum(h / math.log2(r + 2) for r, h in enumerate(hits[:k]))
                idcg = sum(1.0 / math.log2(r + 2) for r in range(min(len(relevant), k)))
                add(f"ndcg@{k}", dcg / idcg)
                if k == 10:
                    self._last_ndcg.append(dcg / idcg)
            for k in MAP_AT_K:
                correct, precision_sum = 0, 0.0
                for r, h in enumerate(hits[:k]):
                    if h:
                        correct += 1
                        precision_sum += correct / (r + 1)
                add(f"map@{k}", precision_sum / min(k, len(relevant)))
        return {key: value / n for key, value in sums.items()}

    def __call__(
        self,
        model: Any,
        output_path: str | None = None,
        epoch: int = -1,
        steps: int = -1,
        *args: Any,
        **kwargs: Any,
    ) -> dict[str, float]:
        """Trainer protocol: flat ``{name_dim_D_cosine_metric: value}`` dict."""
        results = self.compute(model)
        prefix = f"{self.name}_" if self.name else ""
        return {
            f"{prefix}dim_{dim}_{self.similarity_fn_name}_{metric}": value
            for dim, metrics in results.items()
            for metric, value in metrics.items()
        }


def as_trainer_evaluator(evaluator: MatryoshkaIREvaluator) -> Any:
    """Wrap the evaluator in a sentence-transformers ``BaseEvaluator`` subclass for the trainer."""
    base = _base_evaluator()

    class _TrainerEvaluator(base):  # type: ignore[misc, valid-type]
        def __init__(self) -> None:
            super().__init__()
            self.greater_is_better = True
            self._name_primary()

        def _name_primary(self) -> None:
            # the metric names carry the model's similarity, known once a model was scored
            prefix = f"{evaluator.name}_" if evaluator.name else ""
            self.primary_metric = prefix + evaluator.primary_metric

        def __call__(
            self, model: Any, output_path: str | None = None, epoch: int = -1, steps: int = -1
        ) -> dict[str, float]:
            started = time.perf_counter()
            metrics = evaluator(model)
            self._name_primary()
            print(
                f"validation{' after epoch ' + format(epoch, '.2g') if epoch != -1 else ''}: "
                f"ndcg@10 at dim {evaluator.main_dim} = "
                f"{metrics[self.primary_metric]:.4f} ({time.perf_counter() - started:.1f}s)",
                flush=True,
            )
            return metrics

    _TrainerEvaluator.inner = evaluator  # per-query figures of the last call
    return _TrainerEvaluator()


# --- the step ----------------------------------------------------------------------------------
def evaluation_cache_file(
    model_fingerprint: str, eval_fingerprint: str, dims: list[int], max_seq_length: int = 0
) -> Path:
    """Where the evaluation of one model on one eval set (at ``dims``) is cached.

    The name holds the set of recorded metrics too: a result cached before a metric was added
    is not the result of today's evaluation (the report would miss the new metric).
    """
    dims_key = "-".join(map(str, dims))
    metrics_key = sha256_text(*recorded_metrics())[:8]
    name = f"{model_fingerprint}_{eval_fingerprint}_{dims_key}_{max_seq_length}_{metrics_key}.json"
    return cache_dir() / "evaluations" / name


def _complete(result: dict[str, Any], dims: list[int]) -> bool:
    """Whether a cached result has every recorded metric at every dim."""
    per_dim = result.get("metrics") or {}
    wanted = set(recorded_metrics())
    return all(wanted <= set(per_dim.get(str(d), {})) for d in dims)


def evaluate_for_run(
    cfg: Any,
    run_dir: Path,
    model_dir: Path,
    *,
    eval_fingerprint: str,
    model_fingerprint: str | None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """:func:`evaluate_model` on a run's eval set (``data/eval.json``) with the run's settings
    (``cfg``: a :class:`tasks.config.RunConfig`)."""
    return evaluate_model(
        model_dir,
        Path(run_dir) / "data" / "eval.json",
        cfg.matryoshka_dims,
        batch_size=cfg.eval_batch_size,
        max_seq_length=cfg.max_seq_length,
        eval_fingerprint=eval_fingerprint,
        model_fingerprint=model_fingerprint,
        use_cache=use_cache,
    )


def evaluate_model(
    model_dir: Path,
    eval_file: Path,
    dims: list[int],
    *,
    batch_size: int = 64,
    max_seq_length: int = 0,
    eval_fingerprint: str | None = None,
    model_fingerprint: str | None = None,
    use_cache: bool = True,
) -> dict[str, Any]:
    """Evaluate the model in ``model_dir`` on ``eval_file``; returns metrics and provenance.

    The result is ``{"model_fingerprint", "eval_fingerprint", "dims", "metrics": {dim: {...}},
    "timing", "cached"}``; it is cached by (model, eval set, dims, max_seq_length). Known
    fingerprints (from the manifest) save hashing the model files and the eval set again.
    """
    from tasks.data import retrieval_fingerprint

    eval_set = None if eval_fingerprint else read_json(eval_file)
    model_fp = model_fingerprint or fingerprint_dir(model_dir)
    eval_fp = eval_fingerprint or retrieval_fingerprint(eval_set)
    cache_file = evaluation_cache_file(model_fp, eval_fp, dims, max_seq_length)
    if use_cache and cache_file.exists():
        cached = read_json(cache_file)
        if _complete(cached, dims):
            cached["cached"] = True
            print(f"evaluate: cache hit for model {model_fp} on eval set {eval_fp}")
            return cached
        print(f"evaluate: cached result {cache_file.name} lacks metrics; evaluating again")

    from tasks.models import load_model

    eval_set = eval_set or read_json(eval_file)

    started = time.perf_counter()
    model = load_model(model_dir, max_seq_length=max_seq_length)
    loaded = time.perf_counter()
    evaluator = MatryoshkaIREvaluator(
        eval_set["queries"],
        eval_set["corpus"],
        eval_set["relevant_docs"],
        dims,
        batch_size=batch_size,
    )
    print(
        f"evaluate: encoding {len(evaluator.queries)} queries and {len(evaluator.corpus)} "
        f"documents once on {model.device}, scoring dims {dims}",
        flush=True,
    )
    metrics = evaluator.compute(model)
    result = {
        "model_fingerprint": model_fp,
        "eval_fingerprint": eval_fp,
        "dims": dims,
        "metrics": {str(d): m for d, m in metrics.items()},
        "timing": {"load_s": loaded - started, **evaluator.last_timing},
        "cached": False,
    }
    write_json(cache_file, result)
    return result
