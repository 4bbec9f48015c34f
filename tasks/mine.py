"""The ``mine`` step: hard negatives for the training pairs, mined with the base model.

Runs after ``prepare`` and before ``train``. With ``mine_negatives``

- ``auto`` (default): mines when the training pairs bring no negatives of their own; data that
  brings negatives (``use_negatives`` and a negative column) keeps them;
- ``always``: mines, and the mined negatives replace the data's own;
- ``never``: nothing is mined.

When the data keeps its own negatives and ``filter_data_negatives`` is on, the step checks them
instead: the base model scores each row's query against its positive and its negative, and a
negative above the positive less ``mining_margin`` (the mining rule) is replaced by a random
training document at train time.

The candidate pool is every training document plus the documents of ``corpus_path``, less every
val and eval document: held-out documents never reach training, not even as negatives. The base
model encodes the queries and the pool once; :func:`tasks.mining.mine_negatives` picks
``num_negatives`` per pair, positive-aware (``mining_margin``), after skipping the
``mining_range_min`` hardest. Results are cached by (base model, training pairs, pool, settings)
in the state directory, so a retry or a nightly run on the same data does not encode again.

Outputs in ``{run_dir}/negatives/``:

- ``train.jsonl``: the training rows with ``"negatives": [text, ...]`` (only when mined or
  filtered; a filtered row without its negative has an empty list);
- ``manifest.json`` (written last): mode, whether mining ran and why, settings, counts (rows,
  negatives, rejections by rule, scores), pool size, fingerprints and the cache key.

Example::

    python -m tasks mine --run-dir runs/demo
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tasks.config import RunConfig
from tasks.io import (
    StepError,
    cache_dir,
    fingerprint_rows,
    prepared,
    read_json,
    read_jsonl,
    sha256_text,
    write_json,
    write_jsonl,
)
from tasks.mining import (
    MiningRow,
    MiningSettings,
    below_margin,
    mine_negatives,
    rounded_mean,
)

#: Bumped when the mining rule changes, so cached results of the old rule are not reused.
MINING_VERSION = "1"


def mining_settings(cfg: RunConfig) -> MiningSettings:
    """The run config's mining settings."""
    return MiningSettings(
        num_negatives=cfg.num_negatives,
        margin=cfg.mining_margin,
        range_min=cfg.mining_range_min,
        max_positive_rank=cfg.mining_max_positive_rank,
    )


def mining_decision(cfg: RunConfig, data_negatives: bool) -> tuple[bool, str]:
    """(mine?, why) for the mode ``cfg.mine_negatives`` and whether the rows bring negatives."""
    if cfg.mine_negatives == "never":
        return False, "mine_negatives=never"
    if cfg.mine_negatives == "always":
        if data_negatives:
            return True, "mine_negatives=always: mined negatives replace the data's own"
        return True, "mine_negatives=always"
    if data_negatives:
        return False, "the data brings its own negatives (mine_negatives=auto keeps them)"
    return True, "the data brings no negatives (mine_negatives=auto)"


def candidate_pool(
    train_rows: list[dict[str, Any]], corpus_docs: list[str], held_out: set[str]
) -> list[str]:
    """The documents negatives are mined from: training documents plus the extra corpus, without
    any held-out (val/eval) document, each once, in a stable order."""
    pool = {r["document"] for r in train_rows} | set(corpus_docs)
    return sorted(pool - held_out)


def mining_rows(
    train_rows: list[dict[str, Any]], pool: list[str]
) -> tuple[list[str], list[MiningRow], dict[int, set[int]]]:
    """Queries (each once), the rows in pool terms, and each query's known positives."""
    doc_index = {doc: i for i, doc in enumerate(pool)}
    query_index: dict[str, int] = {}
    rows = []
    positives: dict[int, set[int]] = {}
    for row in train_rows:
        q = query_index.setdefault(row["query"], len(query_index))
        rows.append(MiningRow(query=q, positive=doc_index[row["document"]]))
        positives.setdefault(q, set()).add(doc_index[row["document"]])
    return list(query_index), rows, positives


def with_negatives(
    train_rows: list[dict[str, Any]], picks: list[list[str]]
) -> list[dict[str, Any]]:
    """The training rows with their mined negatives (the data's own negative column dropped)."""
    return [
        {"query": r["query"], "document": r["document"], "negatives": negatives}
        for r, negatives in zip(train_rows, picks)
    ]


def mine(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the mine step into ``run_dir/negatives`` and return its summary.

    Idempotent: a manifest written for the same settings is returned as is.
    """
    out = Path(run_dir) / "negatives"
    manifest_path = out / "manifest.json"
    data_manifest = read_json(prepared(Path(run_dir) / "data" / "manifest.json"))
    key = _settings_key(cfg, data_manifest)
    if manifest_path.exists() and read_json(manifest_path).get("settings_key") == key:
        print(f"mine: {manifest_path} already complete; nothing to redo")
        return _summary(read_json(manifest_path), manifest_path)
    train_rows = read_jsonl(Path(run_dir) / "data" / "train.jsonl")
    data_negatives = bool(data_manifest.get("negatives", {}).get("used"))
    wanted, why = mining_decision(cfg, data_negatives)
    print(f"mine: {'mining' if wanted else 'not mining'}: {why}", flush=True)
    manifest: dict[str, Any] = {
        "settings_key": key,
        "mode": cfg.mine_negatives,
        "used": wanted,
        "reason": why,
        "settings": mining_settings(cfg).as_dict(),
    }
    if not wanted and data_negatives and cfg.filter_data_negatives:
        manifest.update(_filter_rows(cfg, data_manifest, train_rows, out))
        manifest["used"] = manifest["filtered"] = True
        manifest["source"] = "the data's own, filtered with the base model"
        manifest["reason"] = f"{why}; filter_data_negatives checks them with the base model"
        if manifest["counts"]["negatives"] == 0:  # the rows file trains on the pairs alone
            manifest["reason"] = (
                f"the base model scores every one of the data's negatives above its positive "
                f"less mining_margin={cfg.mining_margin}: training on the pairs alone; lower "
                f"mining_margin or turn filter_data_negatives off"
            )
            print(f"mine: warning: {manifest['reason']}", flush=True)
    if wanted:
        manifest.update(_mine_rows(cfg, Path(run_dir), data_manifest, train_rows, out))
        if manifest["counts"]["negatives"] == 0:
            manifest["used"] = False
            manifest["reason"] = (
                f"no document of the pool of {manifest['pool_documents']} passed the filters "
                f"(known positives, mining_margin={cfg.mining_margin}): training without mined "
                f"negatives; add documents (corpus_path) or lower mining_margin"
            )
            print(f"mine: warning: {manifest['reason']}", flush=True)
    write_json(manifest_path, manifest)
    return _summary(manifest, manifest_path)


def _mine_rows(
    cfg: RunConfig,
    run_dir: Path,
    data_manifest: dict[str, Any],
    train_rows: list[dict[str, Any]],
    out: Path,
) -> dict[str, Any]:
    """Mine (or take from the cache) and write ``negatives/train.jsonl``; the manifest's part."""
    held_out = _held_out_documents(run_dir)
    pool = candidate_pool(train_rows, _extra_corpus(cfg), held_out)
    model_fp = data_manifest["base_model"]["fingerprint"]
    cache_key = sha256_text(
        MINING_VERSION,
        model_fp,
        # the rows in their order: the cached picks are matched to them by position
        sha256_text(*(json.dumps([r["query"], r["document"]]) for r in train_rows)),
        sha256_text(*pool),
        json.dumps(mining_settings(cfg).as_dict(), sort_keys=True),
        str(cfg.max_seq_length),
    )[:20]
    result, cached = _cached(
        cache_key,
        "negatives of these pairs",
        lambda: _mine_with_base_model(cfg, data_manifest, train_rows, pool),
        rows=len(train_rows),
        per_row="picks",
    )
    picks, stats = result["picks"], result["stats"]
    write_jsonl(out / "train.jsonl", with_negatives(train_rows, picks))
    print(
        f"mine: {stats['negatives']} negatives for {stats['rows']} pairs from a pool of "
        f"{len(pool)} documents ({len(held_out)} held-out documents left out); "
        f"{stats['rejected_by_margin']} candidates rejected by the margin, "
        f"{stats['rejected_known_positive']} as known positives",
        flush=True,
    )
    return {
        "cache_key": cache_key,
        "cached": cached,
        "pool_documents": len(pool),
        "held_out_documents_excluded": len(held_out),
        "counts": stats,
        "fingerprints": {
            "base_model": model_fp,
            "train": fingerprint_rows(with_negatives(train_rows, picks)),
        },
    }


def _cached(
    cache_key: str,
    what: str,
    compute: Callable[[], dict[str, Any]],
    *,
    rows: int,
    per_row: str,
) -> tuple[dict[str, Any], bool]:
    """``(result, from the cache?)``: the state directory's cached result for ``cache_key``, else
    ``compute()``, stored there. A cached result whose ``per_row`` list is not ``rows`` long was
    made for other rows: an error."""
    cache_file = cache_dir() / "negatives" / f"{cache_key}.json"
    if not cache_file.exists():
        result = compute()
        write_json(cache_file, result)
        return result, False
    print(f"mine: {what} found in the cache ({cache_file.name})")
    result = read_json(cache_file)
    if len(result[per_row]) != rows:
        raise StepError(f"the mining cache {cache_file} does not match the rows: delete it")
    return result, True


def filtered_rows(
    train_rows: list[dict[str, Any]],
    positive_scores: list[float],
    negative_scores: list[float],
    margin: float,
) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The training rows with their own negative kept where the base model scores it below the
    positive less ``margin`` (``"negatives": [it]``) and dropped elsewhere (``[]``); and stats."""
    rows, kept_scores, dropped = [], [], 0
    for row, pos, neg in zip(train_rows, positive_scores, negative_scores):
        keep = below_margin(neg, pos, margin)
        rows.append(
            {
                "query": row["query"],
                "document": row["document"],
                "negatives": [row["negative"]] if keep else [],
            }
        )
        if keep:
            kept_scores.append(neg)
        dropped += not keep
    stats = {
        "rows": len(rows),
        "negatives": len(rows) - dropped,
        "rejected_by_margin": dropped,
        "mean_positive_score": rounded_mean(positive_scores),
        "mean_negative_score": rounded_mean(kept_scores),
        "mean_rejected_score": rounded_mean(
            [n for n, r in zip(negative_scores, rows) if not r["negatives"]]
        ),
    }
    return rows, stats


def _filter_rows(
    cfg: RunConfig,
    data_manifest: dict[str, Any],
    train_rows: list[dict[str, Any]],
    out: Path,
) -> dict[str, Any]:
    """Check the data's own negatives (or take the check from the cache) and write
    ``negatives/train.jsonl``; the manifest's part."""
    model_fp = data_manifest["base_model"]["fingerprint"]
    cache_key = sha256_text(
        MINING_VERSION,
        "filter",
        model_fp,
        sha256_text(*(json.dumps([r["query"], r["document"], r["negative"]]) for r in train_rows)),
        str(cfg.max_seq_length),
    )[:20]
    scores, cached = _cached(
        cache_key,
        "scores of these negatives",
        lambda: _score_pairs(cfg, data_manifest, train_rows),
        rows=len(train_rows),
        per_row="positive",
    )
    rows, stats = filtered_rows(
        train_rows, scores["positive"], scores["negative"], cfg.mining_margin
    )
    stats["seconds"] = scores.get("seconds")
    write_jsonl(out / "train.jsonl", rows)
    print(
        f"mine: kept {stats['negatives']} of the data's {stats['rows']} negatives; "
        f"{stats['rejected_by_margin']} scored above their positive less "
        f"mining_margin={cfg.mining_margin} and train with a random document instead",
        flush=True,
    )
    return {
        "cache_key": cache_key,
        "cached": cached,
        "counts": stats,
        "fingerprints": {"base_model": model_fp, "train": fingerprint_rows(rows)},
    }


def _score_pairs(
    cfg: RunConfig, data_manifest: dict[str, Any], train_rows: list[dict[str, Any]]
) -> dict[str, Any]:
    """The base model's cosine score of every row's query with its positive and its negative."""
    started = time.perf_counter()
    queries = sorted({r["query"] for r in train_rows})
    docs = sorted({r[k] for r in train_rows for k in ("document", "negative")})
    query_emb, doc_emb = _encode(cfg, data_manifest, queries, docs, "scoring the data's negatives")
    q_index = {q: i for i, q in enumerate(queries)}
    d_index = {d: i for i, d in enumerate(docs)}
    row_queries = query_emb[[q_index[r["query"]] for r in train_rows]]
    scores: dict[str, Any] = {}
    for name, column in (("positive", "document"), ("negative", "negative")):
        row_docs = doc_emb[[d_index[r[column]] for r in train_rows]]
        scores[name] = [round(v, 6) for v in (row_queries * row_docs).sum(dim=1).tolist()]
    scores["seconds"] = round(time.perf_counter() - started, 2)
    return scores


def _encode(
    cfg: RunConfig, data_manifest: dict[str, Any], queries: list[str], docs: list[str], what: str
) -> tuple[Any, Any]:
    """L2-normalised base-model embeddings of the queries and the documents, as float tensors
    where the model runs (the GPU when there is one)."""
    from tasks.models import load_model, prepared_base_model

    model_dir, _ = prepared_base_model(data_manifest, cfg.base_model)
    model = load_model(model_dir, max_seq_length=cfg.max_seq_length)
    print(
        f"mine: {what}: encoding {len(queries)} queries and {len(docs)} documents with the base "
        f"model on {model.device}",
        flush=True,
    )
    encode = {"batch_size": cfg.eval_batch_size, "convert_to_tensor": True}
    query_emb = model.encode_query(queries, normalize_embeddings=True, **encode).float()
    doc_emb = model.encode_document(docs, normalize_embeddings=True, **encode).float()
    return query_emb, doc_emb


def _mine_with_base_model(
    cfg: RunConfig,
    data_manifest: dict[str, Any],
    train_rows: list[dict[str, Any]],
    pool: list[str],
) -> dict[str, Any]:
    """Encode the queries and the pool with the base model and mine: ``{"picks": negatives per
    row, "stats": ...}``."""
    started = time.perf_counter()
    queries, rows, positives = mining_rows(train_rows, pool)
    # scored where they were encoded (the GPU when there is one), in query chunks
    query_emb, doc_emb = _encode(cfg, data_manifest, queries, pool, "mining")
    encoded = time.perf_counter()
    picked, stats = mine_negatives(query_emb, doc_emb, rows, positives, mining_settings(cfg))
    del query_emb, doc_emb
    stats["seconds"] = {
        "encode": round(encoded - started, 2),
        "mine": round(time.perf_counter() - encoded, 2),
    }
    return {"picks": [[pool[i] for i in p] for p in picked], "stats": stats}


def _held_out_documents(run_dir: Path) -> set[str]:
    docs: set[str] = set()
    for name in ("val_pairs.jsonl", "eval_pairs.jsonl"):
        path = run_dir / "data" / name
        if path.exists():
            docs |= {r["document"] for r in read_jsonl(path)}
    return docs


def _extra_corpus(cfg: RunConfig) -> list[str]:
    if not cfg.corpus_path:
        return []
    from tasks.data import load_corpus_file

    return load_corpus_file(cfg.corpus_path)


def _settings_key(cfg: RunConfig, data_manifest: dict[str, Any]) -> str:
    """What the step's output depends on besides the files: the prepared data and the settings."""
    return sha256_text(
        MINING_VERSION,
        # the training pairs, the held-out documents (data) and the extra corpus (eval set)
        *(data_manifest["fingerprints"][k] for k in ("train", "data", "eval")),
        data_manifest["base_model"]["fingerprint"],
        cfg.mine_negatives,
        json.dumps(mining_settings(cfg).as_dict(), sort_keys=True),
        f"filter={cfg.filter_data_negatives}",
        str(cfg.max_seq_length),
    )[:16]


def _summary(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    counts = manifest.get("counts") or {}
    return {
        "step": "mine",
        "manifest": str(path),
        "mined": manifest["used"] and not manifest.get("filtered"),
        "filtered": bool(manifest.get("filtered")),
        "reason": manifest["reason"],
        "negatives": counts.get("negatives", 0),
        "pool_documents": manifest.get("pool_documents", 0),
        "cached": manifest.get("cached", False),
    }


def ensure_mined(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """The mine step's manifest, running the step first when it has not run for this config (a
    run driven step by step from the command line may skip it; train needs its decision)."""
    path = Path(run_dir) / "negatives" / "manifest.json"
    data_manifest = read_json(prepared(Path(run_dir) / "data" / "manifest.json"))
    if not path.exists() or read_json(path).get("settings_key") != _settings_key(
        cfg, data_manifest
    ):
        print("train: the mine step has not run for these settings; running it first", flush=True)
        mine(cfg, run_dir)
    return read_json(path)
