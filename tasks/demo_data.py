"""Demo dataset: question/passage pairs about this project's own documentation.

``make demo`` fine-tunes the demo model on the data written here. The corpus (package data,
``tasks/demo_corpus.json``) is a set of hand-written documentation passages about the
embedding-retrain pipeline itself (installation, configuration, data sources and column mapping,
the split, the step contract, the runners, triggers, training, evaluation, the promotion gate,
MLflow, Hub publishing, Argilla, troubleshooting and a FAQ), each with two to four questions
phrased the way users type them into a docs search box or a support chat. The questions paraphrase
their passage instead of quoting it, and passages of one topic are deliberately close to each
other, so that an off-the-shelf model finds retrieval non-trivial while a model fine-tuned on part
of the corpus learns its style and improves on the held-out documents.

Every row is ``{"query": question, "document": passage, "negative": other passage}``, where the
negative is a different passage from the same topic (a hard negative) drawn with the seeded RNG.
The data is synthetic: it demonstrates the pipeline and says nothing about real-world quality.

Example::

    from tasks.demo_data import demo_pairs, write_demo_dataset

    rows = demo_pairs(seed=0)          # [{"query": ..., "document": ..., "negative": ...}, ...]
    counts = write_demo_dataset(".state/demo/pairs.jsonl")   # {"pairs": ..., "documents": ...}

From a shell: ``python -m tasks.demo_data .state/demo/pairs.jsonl`` prints the counts as JSON.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import random
import sys
import tempfile
from importlib import resources
from pathlib import Path

__all__ = ["demo_pairs", "write_demo_dataset"]

#: One documentation passage and the questions it answers.
_Passage = tuple[str, tuple[str, ...]]

#: The corpus file (package data): ``{topic: [{"passage": ..., "questions": [...]}, ...]}``. Edit
#: freely, but keep every passage and every question unique (checked by :func:`_check_corpus`),
#: 2-4 questions per passage and at least two passages per topic (the hard negatives come from the
#: same topic).
CORPUS_FILE = "demo_corpus.json"


@functools.cache
def _corpus() -> dict[str, list[_Passage]]:
    """The corpus: topic -> passages, each with the questions it answers, in the file's order."""
    text = resources.files("tasks").joinpath(CORPUS_FILE).read_text(encoding="utf-8")
    return {
        topic: [(item["passage"], tuple(item["questions"])) for item in items]
        for topic, items in json.loads(text).items()
    }


def _normalized(text: str) -> str:
    return " ".join(text.casefold().split())


def _check_corpus() -> None:
    """Raise ``ValueError`` if the corpus breaks its invariants (duplicates, too few items)."""
    passages: set[str] = set()
    questions: set[str] = set()
    for topic, items in _corpus().items():
        if len(items) < 2:
            raise ValueError(f"topic {topic!r} needs at least two passages for hard negatives")
        for passage, topic_questions in items:
            key = _normalized(passage)
            if key in passages:
                raise ValueError(f"duplicate passage in topic {topic!r}: {passage[:60]!r}")
            passages.add(key)
            if not 2 <= len(topic_questions) <= 4:
                raise ValueError(f"passage needs 2-4 questions: {passage[:60]!r}")
            for question in topic_questions:
                qkey = _normalized(question)
                if qkey in questions:
                    raise ValueError(f"duplicate question: {question!r}")
                questions.add(qkey)


def demo_pairs(seed: int = 0) -> list[dict[str, str]]:
    """Return the demo rows, one per (question, passage) pair, in a seeded shuffled order.

    Args:
        seed: Seed of the ``random.Random`` that picks the hard negatives and shuffles the rows.
            The same seed always gives the same rows in the same order.

    Returns:
        A list of ``{"query": str, "document": str, "negative": str}`` dicts. ``document`` is the
        passage that answers ``query``; ``negative`` is another passage of the same topic, never
        the positive one.
    """
    _check_corpus()
    rng = random.Random(seed)
    rows: list[dict[str, str]] = []
    for items in _corpus().values():
        for index, (passage, questions) in enumerate(items):
            others = [text for position, (text, _) in enumerate(items) if position != index]
            for question in questions:
                negative = rng.choice(others)
                rows.append({"query": question, "document": passage, "negative": negative})
    rng.shuffle(rows)
    return rows


def write_demo_dataset(path: str | Path, *, seed: int = 0) -> dict[str, int]:
    """Write the demo rows to a JSON Lines file, atomically.

    The file is UTF-8 with one ``{"query", "document", "negative"}`` object per line, byte-identical
    for a given seed. It is written to a temporary file in the target directory and renamed into
    place, so readers never see a partial file. Missing parent directories are created.

    Args:
        path: Destination ``.jsonl`` file; an existing file is replaced.
        seed: Seed for the hard-negative choice and the row order (see :func:`demo_pairs`).

    Returns:
        ``{"pairs": number of rows written, "documents": number of distinct passages}``.
    """
    rows = demo_pairs(seed)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    payload = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows).encode("utf-8")
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(payload)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    return {"pairs": len(rows), "documents": len({row["document"] for row in rows})}


def _main(argv: list[str]) -> int:
    if len(argv) not in (2, 3) or argv[1] in ("-h", "--help"):
        print("usage: python -m tasks.demo_data OUTPUT.jsonl [SEED]", file=sys.stderr)
        return 2
    try:
        seed = int(argv[2]) if len(argv) == 3 else 0
    except ValueError:
        print(f"SEED must be an integer, got {argv[2]!r}", file=sys.stderr)
        return 2
    counts = write_demo_dataset(argv[1], seed=seed)
    print(json.dumps(counts))
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv))
