"""Near-duplicate document groups: what links, what does not, and that LSH misses nothing here."""

from __future__ import annotations

import random

import pytest

from tasks.groups import group_sizes, jaccard, near_duplicate_groups, word_set

pytestmark = pytest.mark.unit

WORDS = (
    "depth estimation segmentation detection translation summarization speech audio image "
    "video text classification sentiment question answering retrieval embedding generation "
    "diffusion transformer convolution pretrained checkpoint dataset benchmark accuracy"
).split()


def _family(name: str, variants: int, rng: random.Random) -> list[str]:
    """Model cards of one family: a long shared description, a differing variant line."""
    shared = " ".join(rng.choice(WORDS) for _ in range(40)) + f" family {name} repository {name}"
    return [f"{name} variant v{i} size {i * 3}. {shared}" for i in range(variants)]


def _exact_groups(texts: list[str], threshold: float) -> list[set[int]]:
    """Connected components of the exact all-pairs Jaccard graph."""
    words = [word_set(t) for t in texts]
    parent = list(range(len(texts)))

    def root(i: int) -> int:
        while parent[i] != i:
            i = parent[i]
        return i

    for i in range(len(texts)):
        for j in range(i):
            if jaccard(words[i], words[j]) >= threshold:
                parent[root(i)] = root(j)
    comps: dict[int, set[int]] = {}
    for i in range(len(texts)):
        comps.setdefault(root(i), set()).add(i)
    return sorted(comps.values(), key=min)


def _as_sets(groups: list[int]) -> list[set[int]]:
    comps: dict[int, set[int]] = {}
    for i, label in enumerate(groups):
        comps.setdefault(label, set()).add(i)
    return sorted(comps.values(), key=min)


def test_siblings_group_and_strangers_stay_apart():
    rng = random.Random(0)
    midas, yolo = _family("midas", 4, rng), _family("yolo", 3, rng)
    loners = [f"{w} notes on {w} and nothing else {i}" for i, w in enumerate(WORDS[:5])]
    texts = midas + loners + yolo
    groups = near_duplicate_groups(texts)
    assert len({groups[i] for i in range(4)}) == 1
    assert len({groups[i] for i in range(9, 12)}) == 1
    assert groups[0] != groups[9]
    assert [groups[i] for i in range(4, 9)] == list(range(4, 9))  # each loner is its own group
    assert groups[0] == 0 and groups[9] == 9  # a group is named by its first text
    assert sorted(group_sizes(groups).values()) == [1, 1, 1, 1, 1, 3, 4]


def test_threshold_is_exact_on_both_sides():
    base = [f"w{i}" for i in range(20)]
    a = " ".join(base)
    b = " ".join(base[:14] + [f"x{i}" for i in range(6)])  # 14 shared of 26: 0.538
    assert jaccard(word_set(a), word_set(b)) == pytest.approx(14 / 26)
    assert near_duplicate_groups([a, b], threshold=0.53) == [0, 0]
    assert near_duplicate_groups([a, b], threshold=0.54) == [0, 1]
    with pytest.raises(ValueError, match="threshold"):
        near_duplicate_groups([a, b], threshold=0.0)


def test_links_chain_and_empty_texts_link_to_nothing():
    words = [f"t{i}" for i in range(30)]
    # each text shares 26 words with the next (Jaccard 0.87), the first and last 24 (0.75)
    texts = [" ".join(words[s : s + 27] + [f"own{s}"]) for s in (0, 1, 2, 3)]
    texts += ["", "!!!", " ".join(words[:27] + ["own0"])]
    groups = near_duplicate_groups(texts, threshold=0.8)
    assert groups[:4] == [0, 0, 0, 0]
    assert groups[4:6] == [4, 5]  # no words: never a sibling, not even of each other
    assert groups[6] == 0  # an exact copy


def test_same_partition_as_the_exact_all_pairs_graph_and_order_free():
    rng = random.Random(7)
    texts = []
    for f in range(12):
        texts += _family(f"fam{f}", rng.randint(1, 5), rng)
    texts += [" ".join(rng.choice(WORDS) for _ in range(30)) + f" lone {i}" for i in range(20)]
    for threshold in (0.6, 0.7, 0.85):
        assert _as_sets(near_duplicate_groups(texts, threshold)) == _exact_groups(texts, threshold)
    order = list(range(len(texts)))
    rng.shuffle(order)
    shuffled = near_duplicate_groups([texts[i] for i in order])
    comps: dict[int, set[int]] = {}
    for position, label in enumerate(shuffled):
        comps.setdefault(label, set()).add(order[position])  # back to the original indices
    assert sorted(comps.values(), key=min) == _as_sets(near_duplicate_groups(texts))
