"""Groups of near-duplicate documents: texts that share most of their words.

Retrieval data is full of siblings: the variants of one model family, the versions of one page,
chunks cut from one template. When one sibling trains and another is held out, the held-out one
is not new to the model, and a validation score on it says more about the training documents
than about documents the model has never seen. Grouping siblings lets a split hold them out
together.

Two documents are linked when the Jaccard similarity of their word sets is at least
``threshold``; a group is a connected component of the links. Candidates come from MinHash
locality-sensitive hashing (``bands`` bands of ``rows`` hashes), so the cost grows with the
number of documents, not its square; every candidate pair is checked exactly before it links.

Example::

    near_duplicate_groups([
        "MiDaS v3 DPT_Large: monocular depth estimation, torch.hub intel-isl/MiDaS",
        "MiDaS v3 DPT_Hybrid: monocular depth estimation, torch.hub intel-isl/MiDaS",
        "YOLOv5s: object detection, torch.hub ultralytics/yolov5",
    ], threshold=0.6)
    # [0, 0, 2]: each document's group, named by its first member
"""

from __future__ import annotations

import re
import zlib
from collections import defaultdict

#: Word-set Jaccard at or above which two documents are siblings.
DEFAULT_THRESHOLD = 0.7
#: Candidate pairs checked per LSH bucket member (bounds the work on templated data).
MAX_CHECKS_PER_MEMBER = 16
_PRIME = (1 << 31) - 1
_WORD = re.compile(r"\w+")


def word_set(text: str) -> frozenset[str]:
    """The lower-cased words of ``text``."""
    return frozenset(_WORD.findall(text.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    """|a & b| / |a | b| (0 for two empty sets)."""
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def near_duplicate_groups(
    texts: list[str],
    threshold: float = DEFAULT_THRESHOLD,
    *,
    bands: int = 16,
    rows: int = 4,
    seed: int = 0,
) -> list[int]:
    """Each text's group: the index of the group's first text (a text alone is its own group).

    Deterministic for the same texts in the same order. ``bands`` x ``rows`` MinHash values per
    text; 16 x 4 makes a pair at Jaccard 0.7 a candidate with probability 0.99, at 0.5 with 0.64
    (the exact check then refuses those below ``threshold``).
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"threshold must be in (0, 1], got {threshold}")
    words = [word_set(t) for t in texts]
    signatures = _minhash(words, bands * rows, seed)
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for band in range(bands):
        buckets: dict[bytes, list[int]] = defaultdict(list)
        for i, signature in enumerate(signatures):
            if signature is not None:
                buckets[signature[band * rows : (band + 1) * rows].tobytes()].append(i)
        for members in buckets.values():
            for k in range(1, len(members)):
                i = members[k]
                for j in members[max(0, k - MAX_CHECKS_PER_MEMBER) : k]:
                    if root(i) != root(j) and jaccard(words[i], words[j]) >= threshold:
                        parent[max(root(i), root(j))] = min(root(i), root(j))
    return [root(i) for i in range(len(texts))]


def group_sizes(groups: list[int]) -> dict[int, int]:
    """Members per group label."""
    sizes: dict[int, int] = defaultdict(int)
    for label in groups:
        sizes[label] += 1
    return dict(sizes)


def _minhash(words: list[frozenset[str]], count: int, seed: int) -> list[object]:
    """``count`` MinHash values per word set (None for an empty set, which links to nothing)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    a = rng.integers(1, _PRIME, size=count, dtype=np.int64)
    b = rng.integers(0, _PRIME, size=count, dtype=np.int64)
    out: list[object] = []
    for word_set_ in words:
        if not word_set_:
            out.append(None)
            continue
        # a word's id is a hash of the word, so a text's signature does not depend on the others
        ids = np.fromiter(
            (zlib.crc32(w.encode()) & _PRIME for w in word_set_),
            dtype=np.int64,
            count=len(word_set_),
        )
        # (a * id + b) mod p for every (hash, word); a, id < 2^31 keeps the product in int64
        out.append(((np.outer(a, ids) + b[:, None]) % _PRIME).min(axis=1))
    return out
