"""The ``prepare`` step: load pairs, map columns, clean, split stably, fingerprint.

Outputs in ``{run_dir}/data/``:

- ``train.jsonl``: ``{"query", "document"[, "negative"]}`` rows to train on;
- ``val_pairs.jsonl`` / ``eval_pairs.jsonl``: the pairs of the two held-out splits;
- ``val.json`` / ``eval.json``: retrieval sets ``{"queries": {qid: text}, "corpus": {cid: text},
  "relevant_docs": {qid: [cid, ...]}}`` (val picks the checkpoint, eval is reported);
- ``manifest.json`` (written last): counts, rows dropped and why, fingerprints, column mapping.

The split is decided per *document* by a hash of its text, so a pair's split never changes as the
data grows and no document is in two splits.

Example::

    from tasks.config import RunConfig
    from tasks.data import prepare

    summary = prepare(RunConfig(data_path="pairs.jsonl"), run_dir=Path("runs/demo"))
"""

from __future__ import annotations

import hashlib
import json
import random
import shutil
from collections import Counter, defaultdict
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tasks.columns import ColumnMapping, resolve_columns
from tasks.config import RunConfig
from tasks.io import (
    InvalidInputError,
    NothingToDo,
    dag_id_of,
    fingerprint_dir,
    fingerprint_rows,
    last_success_file,
    read_json,
    sha256_text,
    write_json,
    write_jsonl,
)
from tasks.models import model_dimension, resolve_model
from tasks.sources import load_source
from tasks.sources.local import load_local

SPLIT_SALT = "embed-split-v1"
#: Settings left out of the run fingerprint: paths (their content is fingerprinted) and force.
RUN_KEY_IGNORES = ("force", "data_path", "eval_path", "corpus_path")


# --- cleaning ------------------------------------------------------------------------------------
def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _text(value: Any) -> str | None:
    """Normalise a cell to stripped text (a number becomes its text); None for other values."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value.strip()
    return None


def clean_pairs(
    records: Iterable[dict[str, Any]],
    mapping: ColumnMapping,
    converted: Counter | None = None,
) -> tuple[list[dict[str, str]], Counter]:
    """Map, strip, drop empty/non-text values and duplicate pairs; returns (pairs, drop reasons).

    Numbers (e.g. an integer column of a parquet file) are used as their text; ``converted``,
    when given, counts them per column (``{"document": 3}``), for the manifest.
    """
    dropped: Counter = Counter()
    seen: set[tuple[str, str]] = set()
    pairs: list[dict[str, str]] = []
    for record in records:
        if converted is not None:
            for role in ("query", "document", "negative"):
                column = getattr(mapping, role)
                if column and _is_number(record.get(column)):
                    converted[column] += 1
        query = _text(record.get(mapping.query))
        document = _text(record.get(mapping.document))
        if query is None or document is None:
            dropped["non_text_value"] += 1
            continue
        if not query:
            dropped["empty_query"] += 1
            continue
        if not document:
            dropped["empty_document"] += 1
            continue
        key = (query, document)
        if key in seen:
            dropped["duplicate_pair"] += 1
            continue
        seen.add(key)
        pair = {"query": query, "document": document}
        if mapping.negative:
            negative = _text(record.get(mapping.negative))
            if negative and negative != document:
                pair["negative"] = negative
        pairs.append(pair)
    return pairs, dropped


# --- splitting -----------------------------------------------------------------------------------
def split_bucket(document: str) -> float:
    """Stable position in [0, 1) of a document, from a salted SHA-256 of its text."""
    digest = hashlib.sha256(f"{SPLIT_SALT}\x00{document}".encode()).hexdigest()
    return int(digest[:15], 16) / float(16**15)


def assign_split(document: str, eval_fraction: float, val_fraction: float) -> str:
    """``eval`` | ``val`` | ``train`` for a document (eval_fraction 0 = no eval band)."""
    bucket = split_bucket(document)
    if bucket < eval_fraction:
        return "eval"
    if bucket < eval_fraction + val_fraction:
        return "val"
    return "train"


def build_retrieval_set(
    pairs: list[dict[str, str]],
    corpus_docs: list[str],
    known: dict[str, set[str]] | None = None,
) -> dict[str, dict[str, Any]]:
    """Queries, corpus and relevance judgements for ``pairs`` against ``corpus_docs``.

    ``known`` maps a query to every document it is paired with anywhere in the data: those that
    are in the corpus count as relevant too, so a match that lies in another split is not scored
    as a miss. Ids are zero-padded and assigned in a stable order (by split hash), so lexical id
    order is index order.
    """
    docs = sorted(
        set(corpus_docs) | {p["document"] for p in pairs}, key=lambda d: (split_bucket(d), d)
    )
    width = max(6, len(str(len(docs))))
    doc_ids = {doc: f"d{i:0{width}d}" for i, doc in enumerate(docs)}
    queries: dict[str, str] = {}
    relevant: dict[str, list[str]] = defaultdict(list)
    query_ids: dict[str, str] = {}
    for pair in sorted(pairs, key=lambda p: (p["query"], p["document"])):
        qid = query_ids.get(pair["query"])
        if qid is None:
            qid = query_ids[pair["query"]] = f"q{len(query_ids):0{width}d}"
            queries[qid] = pair["query"]
        for doc in [pair["document"], *sorted((known or {}).get(pair["query"], ()))]:
            cid = doc_ids.get(doc)
            if cid is not None and cid not in relevant[qid]:
                relevant[qid].append(cid)
    return {
        "queries": queries,
        "corpus": {cid: doc for doc, cid in doc_ids.items()},
        "relevant_docs": dict(relevant),
    }


def validation_corpus(
    val_pairs: list[dict[str, str]], corpus_docs: list[str], size: int, seed: int = 0
) -> list[str]:
    """The documents validation retrieves from while training picks its checkpoint.

    Every document of ``corpus_docs`` when there are at most ``size`` (or ``size`` is 0); else the
    validation pairs' own documents plus a seeded sample of the others, ``size`` in all (never
    fewer than the validation documents). Validation runs once per epoch and encodes its whole
    corpus each time, so on large data the sample bounds its cost; the eval set keeps the full
    corpus.

    Example::

        validation_corpus([{"query": "q", "document": "a"}], ["a", "b", "c", "d"], size=2)
        # ["a", <one of b, c, d>]
    """
    unique = sorted(set(corpus_docs))
    if not size or len(unique) <= size:
        return corpus_docs
    own = sorted({p["document"] for p in val_pairs})
    others = sorted(set(unique) - set(own))
    take = min(len(others), max(0, size - len(own)))
    return own + random.Random(seed).sample(others, take)


def retrieval_fingerprint(rset: dict[str, Any]) -> str:
    """Fingerprint of a retrieval set's texts and judgements (ids do not matter)."""
    corpus = rset["corpus"]
    rows = [
        {"q": rset["queries"][qid], "d": sorted(corpus[c] for c in cids)}
        for qid, cids in rset["relevant_docs"].items()
    ]
    return fingerprint_rows(rows + [{"c": text} for text in corpus.values()])


def load_corpus_file(path: str | Path) -> list[str]:
    """Documents (the ``text`` field) of a BEIR-style corpus file or folder."""
    docs = []
    for record in load_local(path, "corpus_path")[0]:
        text = _text(record.get("text"))
        if not text:
            continue
        docs.append(text)
    if not docs:
        raise InvalidInputError(f"corpus_path {path} holds no documents with a 'text' field")
    return docs


def select_negatives(
    train: list[dict[str, str]],
    splits: dict[str, list[dict[str, str]]],
    cfg: RunConfig,
    mapping: ColumnMapping,
) -> tuple[list[dict[str, str]], dict[str, Any]]:
    """Decide the hard negatives of the training rows.

    A negative that is a val/eval document is removed (training on it would leak held-out
    documents). Negatives are used when ``use_negatives`` is on and at least half of the rows
    still have one; the other rows get a random training document (seeded) so every row has the
    same columns. Otherwise the negative column is dropped. Returns (rows, manifest info).
    """
    held_out = {p["document"] for name in ("val", "eval") for p in splits[name]}
    rows = []
    leaked = 0
    for pair in train:
        row = dict(pair)
        if row.get("negative") in held_out:
            del row["negative"]
            leaked += 1
        rows.append(row)
    with_negative = sum(1 for r in rows if "negative" in r)
    use = (
        cfg.use_negatives
        and mapping.negative is not None
        and len(rows) > 0
        and with_negative >= 0.5 * len(rows)
    )
    filled = 0
    if use:
        rng = random.Random(cfg.seed)
        docs = sorted({r["document"] for r in rows})
        for row in rows:
            if "negative" not in row and len(docs) > 1:
                choice = rng.choice(docs)
                while choice == row["document"]:
                    choice = rng.choice(docs)
                row["negative"] = choice
                filled += 1
    else:
        rows = [{"query": r["query"], "document": r["document"]} for r in rows]
    info = {
        "column": mapping.negative,
        "train_rows_with_negative": with_negative,
        "removed_held_out_negatives": leaked,
        "filled_with_random_train_document": filled,
        "used": bool(use),
    }
    return rows, info


# --- the step ----------------------------------------------------------------------------------
def _config_key(cfg: RunConfig) -> str:
    return sha256_text(json.dumps(cfg.to_dict(), sort_keys=True))[:16]


def prepare(cfg: RunConfig, run_dir: Path) -> dict[str, Any]:
    """Run the prepare step into ``run_dir/data`` and return its summary.

    Idempotent: when a manifest for the same config is already there, it is returned as is.
    """
    data_dir = Path(run_dir) / "data"
    done = _already_prepared(cfg, data_dir / "manifest.json")
    if done is not None:
        return done
    # New data for this run: results of later steps computed from older data are void.
    for later in ("negatives", "train", "eval", "report", "register"):
        shutil.rmtree(Path(run_dir) / later, ignore_errors=True)
    model_dir, dim = _checked_base_model(cfg)
    records, source_info = load_source(cfg)
    mapping, where = _mapping(records, source_info, cfg)
    pairs, dropped, converted = _clean(records, mapping, where)
    splits = split_pairs(pairs, cfg, dropped)
    _check_splits(splits, len(pairs), cfg)
    train, negatives_info = select_negatives(splits["train"], splits, cfg, mapping)
    eval_set, val_set = retrieval_sets(pairs, splits, cfg)
    fingerprints = {
        "data": data_fingerprint(splits, source_info),
        "train": fingerprint_rows(train),
        "eval": retrieval_fingerprint(eval_set),
    }
    _write_splits(data_dir, train, splits, eval_set, val_set)
    manifest = build_manifest(
        cfg,
        source_info=source_info,
        mapping=mapping,
        base_model={"path": model_dir, "dimension": dim, "fingerprint": fingerprint_dir(model_dir)},
        counts=_counts(records, pairs, train, splits, eval_set, val_set),
        dropped=dropped,
        converted=converted,
        negatives=negatives_info,
        fingerprints=fingerprints,
    )
    _stop_if_unchanged(cfg, Path(run_dir), manifest)
    write_json(data_dir / "manifest.json", manifest)
    _print_counts(manifest["counts"], dropped)
    return _summary(manifest, data_dir / "manifest.json")


def split_pairs(
    pairs: list[dict[str, str]], cfg: RunConfig, dropped: Counter
) -> dict[str, list[dict[str, str]]]:
    """The train / val / eval splits of ``pairs`` (by document hash; ``eval_path`` is the eval set
    when given). No query is in two splits: a query of the eval split leaves train and val, one of
    val leaves train; ``dropped`` counts every pair removed and why."""
    splits: dict[str, list[dict[str, str]]] = {"train": [], "val": [], "eval": []}
    if cfg.eval_path:
        splits["eval"] = _eval_file_pairs(cfg)
        eval_queries = {p["query"] for p in splits["eval"]}
        eval_docs = {p["document"] for p in splits["eval"]}
        for pair in pairs:
            if pair["document"] in eval_docs:
                dropped["document_in_eval_set"] += 1
            elif pair["query"] in eval_queries:
                dropped["query_in_eval_set"] += 1
            else:
                splits[assign_split(pair["document"], 0.0, cfg.val_fraction)].append(pair)
    else:
        for pair in pairs:
            splits[assign_split(pair["document"], cfg.eval_fraction, cfg.val_fraction)].append(pair)
        # A query must not be trained on and evaluated: drop its train/val pairs.
        eval_queries = {p["query"] for p in splits["eval"]}
        for name in ("train", "val"):
            kept = [p for p in splits[name] if p["query"] not in eval_queries]
            dropped["query_in_eval_set"] += len(splits[name]) - len(kept)
            splits[name] = kept
    # Likewise a validation query must not be trained on: it picks the checkpoint.
    val_queries = {p["query"] for p in splits["val"]}
    kept = [p for p in splits["train"] if p["query"] not in val_queries]
    dropped["query_in_val_set"] += len(splits["train"]) - len(kept)
    splits["train"] = kept
    return splits


def retrieval_sets(
    pairs: list[dict[str, str]], splits: dict[str, list[dict[str, str]]], cfg: RunConfig
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """The eval and val retrieval sets (val None without validation pairs).

    The corpus is every document of the data (``eval_corpus=all``) or none of them (``eval``),
    plus ``corpus_path``; the validation corpus is bounded by ``val_corpus_size``. Every known
    match of a query that is in the corpus counts as relevant.
    """
    extra_docs = load_corpus_file(cfg.corpus_path) if cfg.corpus_path else []
    all_docs = sorted({p["document"] for s in splits.values() for p in s})
    corpus_docs = (all_docs if cfg.eval_corpus == "all" else []) + extra_docs
    known: dict[str, set[str]] = defaultdict(set)
    for pair in [*pairs, *splits["eval"]]:
        known[pair["query"]].add(pair["document"])
    eval_set = build_retrieval_set(splits["eval"], corpus_docs, known)
    if not splits["val"]:
        return eval_set, None
    val_corpus = validation_corpus(splits["val"], corpus_docs, cfg.val_corpus_size, cfg.seed)
    return eval_set, build_retrieval_set(splits["val"], val_corpus, known)


def data_fingerprint(splits: dict[str, list[dict[str, str]]], source_info: dict[str, Any]) -> str:
    """The data's content fingerprint; annotated data adds its annotations' fingerprint, so any
    change to a submitted annotation is a change of data."""
    data_fp = fingerprint_rows([p for s in splits.values() for p in s])
    if source_info.get("annotations_fingerprint"):
        data_fp = sha256_text(data_fp, source_info["annotations_fingerprint"])[:16]
    return data_fp


def build_manifest(
    cfg: RunConfig,
    *,
    source_info: dict[str, Any],
    mapping: ColumnMapping,
    base_model: dict[str, Any],
    counts: dict[str, int],
    dropped: Counter,
    converted: Counter,
    negatives: dict[str, Any],
    fingerprints: dict[str, str],
) -> dict[str, Any]:
    """``data/manifest.json``: where the data came from, how it was read, counts, drops and why,
    fingerprints, the split rule and the run fingerprint (data, eval set, settings, base model)."""
    manifest = {
        "config_key": _config_key(cfg),
        "source": source_info,
        "eval_path": cfg.eval_path or None,
        "corpus_path": cfg.corpus_path or None,
        "columns": {
            "query": mapping.query,
            "document": mapping.document,
            "negative": mapping.negative,
            "preset": mapping.preset,
        },
        "watermark": source_info.get("watermark"),
        "base_model": {
            "ref": cfg.base_model,
            "path": str(base_model["path"]),
            "dimension": base_model["dimension"],
            "fingerprint": base_model["fingerprint"],
        },
        "counts": counts,
        "dropped": {k: v for k, v in sorted(dropped.items()) if v},
        # numbers used as their text, per column (a parquet/JSON column of integers, say)
        "converted_to_text": dict(sorted(converted.items())),
        "negatives": negatives,
        "fingerprints": dict(fingerprints),
        "split": {
            "method": "sha256(document) bucket",
            "salt": SPLIT_SALT,
            "eval_fraction": 0.0 if cfg.eval_path else cfg.eval_fraction,
            "val_fraction": cfg.val_fraction,
        },
    }
    manifest["fingerprints"]["run"] = run_fingerprint(cfg, fingerprints, base_model["fingerprint"])
    return manifest


def run_fingerprint(cfg: RunConfig, fingerprints: dict[str, str], model_fp: str) -> str:
    """What a training run depends on: the data's content (not where it lies), the eval set, the
    settings and the base model's files. Unchanged since the last success = nothing to do."""
    settings = {k: v for k, v in cfg.to_dict().items() if k not in RUN_KEY_IGNORES}
    return sha256_text(
        fingerprints["data"], fingerprints["eval"], json.dumps(settings, sort_keys=True), model_fp
    )[:16]


# --- the step's parts --------------------------------------------------------------------------
def _already_prepared(cfg: RunConfig, manifest_path: Path) -> dict[str, Any] | None:
    """The summary of a manifest written for this config (NothingToDo for a no-op run's)."""
    if not manifest_path.exists():
        return None
    manifest = read_json(manifest_path)
    if manifest.get("config_key") != _config_key(cfg):
        return None
    if manifest.get("nothing_to_do"):
        raise NothingToDo(_nothing_to_do_summary(manifest))
    print(f"prepare: {manifest_path} already complete; nothing to redo")
    return _summary(manifest, manifest_path)


def _checked_base_model(cfg: RunConfig) -> tuple[Path, int | None]:
    model_dir = resolve_model(cfg.base_model)
    dim = model_dimension(model_dir)
    if dim is not None and max(cfg.matryoshka_dims) > dim:
        too_big = [d for d in cfg.matryoshka_dims if d > dim]
        raise InvalidInputError(
            f"matryoshka_dims {too_big} exceed the dimension {dim} of base model "
            f"{cfg.base_model!r}: use dims <= {dim}"
        )
    return model_dir, dim


def _mapping(
    records: list[dict[str, Any]], source_info: dict[str, Any], cfg: RunConfig
) -> tuple[ColumnMapping, str]:
    where = str(source_info.get("path") or source_info.get("dataset") or "data")
    columns = set().union(*(r.keys() for r in records[:1000]))
    mapping = resolve_columns(columns, cfg, where=where)
    print(
        f"prepare: read {len(records)} records from {where}; columns query={mapping.query!r} "
        f"document={mapping.document!r} negative={mapping.negative!r} (preset {mapping.preset})"
    )
    return mapping, where


def _clean(
    records: list[dict[str, Any]], mapping: ColumnMapping, where: str
) -> tuple[list[dict[str, str]], Counter, Counter]:
    converted: Counter = Counter()
    pairs, dropped = clean_pairs(records, mapping, converted)
    if converted:
        print(
            "prepare: numbers used as text in column(s) "
            + ", ".join(f"{column!r} ({n} values)" for column, n in sorted(converted.items()))
        )
    if not pairs:
        reasons = ", ".join(f"{k}={v}" for k, v in dropped.items()) or "none"
        raise InvalidInputError(f"no usable pairs in {where} after cleaning (dropped: {reasons})")
    return pairs, dropped, converted


def _eval_file_pairs(cfg: RunConfig) -> list[dict[str, str]]:
    eval_records, _ = load_local(cfg.eval_path, "eval_path")
    eval_cols = set().union(*(r.keys() for r in eval_records[:1000]))
    eval_mapping = resolve_columns(eval_cols, cfg, where=cfg.eval_path)
    eval_pairs, _ = clean_pairs(eval_records, eval_mapping)
    if not eval_pairs:
        raise InvalidInputError(f"eval_path {cfg.eval_path} has no usable pairs")
    return eval_pairs


def _check_splits(splits: dict[str, list[dict[str, str]]], pairs: int, cfg: RunConfig) -> None:
    if not splits["eval"]:
        raise InvalidInputError(
            f"the eval split is empty ({pairs} pairs): raise eval_fraction, add data or "
            f"give eval_path"
        )
    if len(splits["train"]) < cfg.batch_size:
        raise InvalidInputError(
            f"only {len(splits['train'])} training pairs after cleaning and splitting, fewer than "
            f"batch_size={cfg.batch_size}: add data or lower batch_size"
        )


def _write_splits(
    data_dir: Path,
    train: list[dict[str, str]],
    splits: dict[str, list[dict[str, str]]],
    eval_set: dict[str, Any],
    val_set: dict[str, Any] | None,
) -> None:
    write_jsonl(data_dir / "train.jsonl", train)
    write_jsonl(data_dir / "val_pairs.jsonl", splits["val"])
    write_jsonl(data_dir / "eval_pairs.jsonl", splits["eval"])
    write_json(data_dir / "eval.json", eval_set)
    if val_set:
        write_json(data_dir / "val.json", val_set)
    else:
        (data_dir / "val.json").unlink(missing_ok=True)


def _counts(
    records: list[dict[str, Any]],
    pairs: list[dict[str, str]],
    train: list[dict[str, str]],
    splits: dict[str, list[dict[str, str]]],
    eval_set: dict[str, Any],
    val_set: dict[str, Any] | None,
) -> dict[str, int]:
    return {
        "records": len(records),
        "pairs": len(pairs),
        "train_pairs": len(train),
        "val_pairs": len(splits["val"]),
        "eval_pairs": len(splits["eval"]),
        "val_queries": len(val_set["queries"]) if val_set else 0,
        "val_corpus": len(val_set["corpus"]) if val_set else 0,
        "eval_queries": len(eval_set["queries"]),
        "eval_corpus": len(eval_set["corpus"]),
        "train_documents": len({p["document"] for p in train}),
    }


def _stop_if_unchanged(cfg: RunConfig, run_dir: Path, manifest: dict[str, Any]) -> None:
    """NothingToDo (after writing the manifest) when the run fingerprint equals the last
    successful run's and ``force`` is off."""
    last_file = last_success_file(dag_id_of(run_dir))
    last = read_json(last_file) if last_file.exists() else None
    if not last or last.get("run_fingerprint") != manifest["fingerprints"]["run"] or cfg.force:
        return
    manifest["nothing_to_do"] = (
        f"data, config and base model unchanged since successful run "
        f"{last.get('airflow_run_id')} (set force to train anyway)"
    )
    manifest["last_success"] = last
    write_json(run_dir / "data" / "manifest.json", manifest)
    raise NothingToDo(_nothing_to_do_summary(manifest))


def _print_counts(counts: dict[str, int], dropped: Counter) -> None:
    print(
        f"prepare: {counts['train_pairs']} train / {counts['val_pairs']} val / "
        f"{counts['eval_pairs']} eval pairs; {counts['eval_queries']} eval queries over "
        f"{counts['eval_corpus']} documents; dropped {dict(dropped) or 'nothing'}"
    )


def _nothing_to_do_summary(manifest: dict[str, Any]) -> dict[str, Any]:
    print(f"prepare: nothing to do: {manifest['nothing_to_do']}")
    summary = {
        "step": "prepare",
        "nothing_to_do": True,
        "reason": manifest["nothing_to_do"],
        "run_fingerprint": manifest["fingerprints"]["run"],
    }
    if manifest.get("watermark") is not None:
        summary["annotation_watermark"] = manifest["watermark"]
    return summary


def _summary(manifest: dict[str, Any], path: Path) -> dict[str, Any]:
    summary = {
        "step": "prepare",
        "manifest": str(path),
        "train_pairs": manifest["counts"]["train_pairs"],
        "eval_queries": manifest["counts"]["eval_queries"],
        "eval_corpus": manifest["counts"]["eval_corpus"],
        "data_fingerprint": manifest["fingerprints"]["data"],
        "eval_fingerprint": manifest["fingerprints"]["eval"],
        "run_fingerprint": manifest["fingerprints"]["run"],
    }
    if manifest.get("watermark") is not None:
        summary["annotation_watermark"] = manifest["watermark"]
    return summary
