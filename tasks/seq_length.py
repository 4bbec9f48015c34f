"""The token limit of the training batches, chosen from the training texts.

With ``max_seq_length = 0`` (the default) training batches are cut at a high percentile of the
training texts' token lengths, while validation, the saved model and so the evaluate step keep
the model's own limit. Sentence-transformers pads each batch to its longest text, so the cut saves
time and memory only on the batches that hold a longer text (docs/benchmarks.md measures how much).

Example::

    length_from_data([12, 30, 41, 300], limit=256, percentile=75)   # 48
"""

from __future__ import annotations

import math
import random
from typing import Any

#: Training batches are cut at this percentile of the training texts' token lengths, rounded up
#: to a multiple of ``LENGTH_MULTIPLE`` and never above the model's limit.
LENGTH_PERCENTILE = 99.0
LENGTH_MULTIPLE = 8
#: Texts per column tokenized to find that length (a seeded sample of larger columns).
LENGTH_SAMPLE = 20_000


def length_from_data(
    lengths: list[int],
    limit: int,
    percentile: float = LENGTH_PERCENTILE,
    multiple: int = LENGTH_MULTIPLE,
) -> int:
    """The ``percentile`` of the token ``lengths``, rounded up to a multiple of ``multiple`` and at
    most ``limit`` (``limit`` when there are no lengths)."""
    if not lengths:
        return limit
    ordered = sorted(lengths)
    rank = max(0, math.ceil(percentile / 100 * len(ordered)) - 1)
    return min(limit, multiple * math.ceil(ordered[rank] / multiple))


def training_length(
    model: Any, columns: dict[str, list[str]], prompts: dict[str, str] | None, seed: int
) -> tuple[int, int]:
    """The token limit for the training batches chosen from the training texts; returns (length,
    number of texts measured).

    Every column counts (queries, documents and negatives, each with its prompt, as the trainer
    tokenizes them); a column longer than ``LENGTH_SAMPLE`` is measured on a seeded sample. Models
    without a tokenizer or a limit keep their limit.
    """
    limit = model.max_seq_length or 0
    tokenizer = getattr(model, "tokenizer", None)
    if not limit or tokenizer is None:
        return limit, 0
    rng = random.Random(seed)
    lengths: list[int] = []
    for name, texts in columns.items():
        sample = texts if len(texts) <= LENGTH_SAMPLE else rng.sample(texts, LENGTH_SAMPLE)
        prompt = (prompts or {}).get(name) or ""
        encoded = tokenizer([prompt + t for t in sample], truncation=True, max_length=limit)
        lengths += [len(ids) for ids in encoded["input_ids"]]
    return length_from_data(lengths, limit), len(lengths)
