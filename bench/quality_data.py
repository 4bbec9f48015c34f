"""The data sets of the quality benchmark: the shared ones, a domain-shift split, any BEIR folder.

A data set resolves to a :class:`Dataset`: a training file of (query, positive[, negative])
pairs, an eval file (or none: then ``prepare`` holds out documents by its hash split) and a
corpus of extra documents the eval retrieves among. Sources:

- ``gorilla`` / ``zenml``: the folders of ``../shared/data`` (``zenml`` has only a test split, so
  its pairs are split by ``prepare`` and the eval fraction is raised to 0.3 for more eval queries);
- ``gorilla-shift``: gorilla split by API provider: train on the PyTorch Hub queries, evaluate on
  the Hugging Face ones (other documents, other vocabulary), a test of generalization;
- any folder in BEIR layout (``corpus.jsonl``, ``queries.jsonl``, ``qrels/<split>.tsv``) or with
  ``pairs_<split>.jsonl`` files, like the shared ones.

Example::

    ds = resolve("gorilla", work=Path("/tmp/q"))
    ds.train, ds.eval, ds.corpus
"""

from __future__ import annotations

import csv
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tasks.io import read_jsonl, write_jsonl

SHARED = Path(__file__).resolve().parent.parent.parent / "shared" / "data"
#: Names of the shared data sets and of the splits made from them.
SHARED_SETS = {"gorilla": "gorilla_apibench", "zenml": "zenml_docs_qa"}
DERIVED_SETS = ("gorilla-shift",)


@dataclass(frozen=True)
class Dataset:
    """One benchmark data set: files and the settings every arm gets for it."""

    name: str
    train: str
    eval: str = ""
    corpus: str = ""
    settings: dict[str, Any] = field(default_factory=dict)


def available(names: list[str]) -> list[str]:
    """The names among ``names`` whose data is here (shared sets need ``../shared/data``)."""
    out = []
    for name in names:
        folder = _shared_folder(name)
        if folder is None or folder.exists():
            out.append(name)
    return out


def resolve(name: str, work: Path, max_train_pairs: int = 0, seed: int = 0) -> Dataset:
    """The :class:`Dataset` for a shared name, a derived split or a folder path; files it has to
    write (pairs from BEIR qrels, a split, a subsample) go under ``work``."""
    work = Path(work) / "data" / _slug(name)
    if name == "gorilla-shift":
        ds = _provider_shift(SHARED / SHARED_SETS["gorilla"], work)
    elif name in SHARED_SETS:
        ds = _folder(SHARED / SHARED_SETS[name], work, name)
    else:
        ds = _folder(Path(name), work, Path(name).name)
    if max_train_pairs:
        ds = _subsample(ds, work, max_train_pairs, seed)
    return ds


def _shared_folder(name: str) -> Path | None:
    if name in SHARED_SETS:
        return SHARED / SHARED_SETS[name]
    if name in DERIVED_SETS:
        return SHARED / SHARED_SETS["gorilla"]
    return None


def _folder(folder: Path, work: Path, name: str) -> Dataset:
    """A BEIR-style folder: its pairs files, or pairs built from queries, corpus and qrels."""
    if not folder.is_dir():
        raise SystemExit(f"data set {folder} is not a folder (or one of {list(SHARED_SETS)})")
    corpus = _corpus_file(folder)
    train = _pairs_file(folder, "train", work)
    test = _pairs_file(folder, "test", work) or _pairs_file(folder, "dev", work)
    if train and test:
        return Dataset(name, train=train, eval=test, corpus=corpus)
    only = train or test
    if not only:
        raise SystemExit(f"{folder} has no pairs_<split>.jsonl and no qrels/<split>.tsv")
    # one split only: prepare holds documents out by its hash split
    return Dataset(name, train=only, corpus=corpus, settings={"eval_fraction": 0.3})


def _corpus_file(folder: Path) -> str:
    for name in ("corpus_with_distractors.jsonl", "corpus.jsonl"):
        if (folder / name).exists():
            return str(folder / name)
    return ""


def _pairs_file(folder: Path, split: str, work: Path) -> str:
    """``pairs_<split>.jsonl``, or pairs written from BEIR ``qrels/<split>.tsv``; "" if neither."""
    pairs = folder / f"pairs_{split}.jsonl"
    if pairs.exists():
        return str(pairs)
    qrels = folder / "qrels" / f"{split}.tsv"
    if not qrels.exists():
        return ""
    queries = {r["_id"]: r["text"] for r in read_jsonl(folder / "queries.jsonl")}
    docs = {r["_id"]: _doc_text(r) for r in read_jsonl(folder / "corpus.jsonl")}
    rows = [
        {"query": queries[q], "positive": docs[d]}
        for q, d, score in _qrels(qrels)
        if score > 0 and q in queries and d in docs
    ]
    return str(write_jsonl(work / f"pairs_{split}.jsonl", rows))


def _qrels(path: Path) -> list[tuple[str, str, float]]:
    with open(path, encoding="utf-8") as fh:
        reader = csv.reader(fh, delimiter="\t")
        out = []
        for row in reader:
            if len(row) >= 3 and row[0] != "query-id":
                out.append((row[0], row[1], float(row[2])))
        return out


def _doc_text(record: dict[str, Any]) -> str:
    title, text = record.get("title") or "", record.get("text") or ""
    return f"{title}\n{text}" if title and not text.startswith(title) else text


def _provider_shift(folder: Path, work: Path) -> Dataset:
    """gorilla by provider: PyTorch Hub pairs train, Hugging Face pairs evaluate."""
    rows = read_jsonl(folder / "pairs_train.jsonl") + read_jsonl(folder / "pairs_test.jsonl")
    by_hub: dict[str, list[dict[str, Any]]] = {"torchhub": [], "huggingface": []}
    for row in rows:
        hub = row["positive_ids"][0].split("-", 1)[0]
        by_hub.setdefault(hub, []).append(row)
    train = write_jsonl(work / "pairs_torchhub.jsonl", by_hub["torchhub"])
    test = write_jsonl(work / "pairs_huggingface.jsonl", by_hub["huggingface"])
    return Dataset("gorilla-shift", train=str(train), eval=str(test), corpus=_corpus_file(folder))


def _subsample(ds: Dataset, work: Path, n: int, seed: int) -> Dataset:
    """The data set with a seeded sample of ``n`` training pairs (for quick runs on a CPU)."""
    rows = read_jsonl(Path(ds.train))
    if len(rows) <= n:
        return ds
    sample = random.Random(seed).sample(rows, n)
    path = write_jsonl(work / f"train_sample_{n}_{seed}.jsonl", sample)
    return Dataset(ds.name, str(path), ds.eval, ds.corpus, {**ds.settings})


def _slug(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in name.strip("/"))[-60:]


def describe(ds: Dataset) -> dict[str, Any]:
    """The data set's files and settings, for the result JSON."""
    return {"train": ds.train, "eval": ds.eval, "corpus": ds.corpus, "settings": ds.settings}
