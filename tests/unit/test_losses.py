"""The loss registry: every configurable loss has a builder, wrapped in MatryoshkaLoss."""

from __future__ import annotations

import pytest

from tasks.config import LOSSES as CONFIG_LOSSES
from tasks.config import RunConfig
from tasks.losses import GUIDED_LOSSES, LOSSES, build_loss

pytestmark = pytest.mark.unit


def test_the_registry_and_the_configs_choices_are_the_same():
    assert tuple(LOSSES) == CONFIG_LOSSES


@pytest.mark.parametrize(
    ("name", "inner"),
    [
        ("mnrl", "MultipleNegativesRankingLoss"),
        ("cached_mnrl", "CachedMultipleNegativesRankingLoss"),
        ("gist", "GISTEmbedLoss"),
        ("cached_gist", "CachedGISTEmbedLoss"),
    ],
)
def test_each_loss_is_built_inside_matryoshka_at_the_runs_dims(tiny_model_dir, name, inner):
    from tasks.models import load_model

    model = load_model(tiny_model_dir)
    cfg = RunConfig(
        data_path="x.jsonl",
        loss=name,
        matryoshka_dims=[64, 32],
        cached_mini_batch_size=8,
        loss_scale=12.5,
    )
    guide = load_model(tiny_model_dir) if name in GUIDED_LOSSES else None
    loss = build_loss(model, cfg, processes=2, guide=guide)
    assert type(loss).__name__ == "MatryoshkaLoss"
    assert list(loss.matryoshka_dims) == [64, 32]
    assert type(loss.loss).__name__ == inner
    assert loss.loss.gather_across_devices is True  # several processes: the global batch
    assert build_loss(model, cfg, processes=1, guide=guide).loss.gather_across_devices is False
    if name.startswith("cached_"):
        assert loss.loss.mini_batch_size == 8
    if name in ("mnrl", "cached_mnrl"):
        assert loss.loss.scale == 12.5
    if guide is not None:
        assert loss.loss.guide is guide


@pytest.mark.parametrize("scale", [20.0, 7.0])
def test_mnrl_is_cross_entropy_over_the_batch_at_the_configured_scale(tiny_model_dir, scale):
    """The loss a run trains with is softmax cross-entropy of scale x cosine over the batch's
    documents, the positive being the query's own: computed here by hand from the embeddings."""
    import torch

    from tasks.models import load_model

    model = load_model(tiny_model_dir)
    model.eval()
    cfg = RunConfig(data_path="x.jsonl", loss="mnrl", matryoshka_dims=[64], loss_scale=scale)
    inner = build_loss(model, cfg).loss
    queries = ["red apple", "fast car", "old book"]
    docs = ["an apple that is red", "a car that is fast", "a book that is old"]
    features = [model.tokenize(queries), model.tokenize(docs)]
    with torch.no_grad():
        got = inner(features, torch.tensor([])).item()
        q = torch.nn.functional.normalize(model.encode(queries, convert_to_tensor=True), dim=-1)
        d = torch.nn.functional.normalize(model.encode(docs, convert_to_tensor=True), dim=-1)
        want = torch.nn.functional.cross_entropy(scale * q @ d.T, torch.arange(3)).item()
    assert got == pytest.approx(want, rel=1e-4)


def test_a_guided_loss_without_its_guide_says_so(tiny_model_dir):
    from tasks.models import load_model

    cfg = RunConfig(data_path="x.jsonl", loss="gist", matryoshka_dims=[64, 32])
    with pytest.raises(ValueError, match="loss 'gist' needs a guide model"):
        build_loss(load_model(tiny_model_dir), cfg)


def test_gist_masks_the_negatives_its_guide_finds_relevant(tiny_model_dir):
    """A "negative" that is the query itself is a false negative: plain MNRL is punished hard for
    it (the query scores itself highest), GIST's guide masks it, so it adds far less loss."""
    import torch

    from tasks.models import load_model

    model = load_model(tiny_model_dir)
    queries = [f"how do I configure setting {i}" for i in range(6)]
    docs = [f"setting {i} is configured in the file number {i}" for i in range(6)]

    def loss_of(name: str, columns: list[list[str]]) -> float:
        cfg = RunConfig(data_path="x.jsonl", loss=name, matryoshka_dims=[64, 32])
        guide = load_model(tiny_model_dir) if name in GUIDED_LOSSES else None
        loss = build_loss(model, cfg, guide=guide)
        features = [model.tokenize(texts) for texts in columns]
        with torch.no_grad():
            return float(loss(features, None))

    mnrl_cost = loss_of("mnrl", [queries, docs, queries]) - loss_of("mnrl", [queries, docs])
    gist_cost = loss_of("gist", [queries, docs, queries]) - loss_of("gist", [queries, docs])
    assert mnrl_cost > 1.0
    assert gist_cost < mnrl_cost / 4, (gist_cost, mnrl_cost)


def test_the_guide_encodes_each_batch_once_whatever_the_number_of_dims(tiny_model_dir):
    """MatryoshkaLoss calls its inner loss once per dim; the GIST guide, frozen and full-size,
    answers the repeated batches from memory instead of encoding them again."""
    import torch

    from tasks.models import load_model

    model, guide = load_model(tiny_model_dir), load_model(tiny_model_dir)
    calls = []
    forward = guide.forward
    guide.forward = lambda features, *a, **k: calls.append(1) or forward(features, *a, **k)
    cfg = RunConfig(data_path="x.jsonl", loss="gist", matryoshka_dims=[64, 32, 16])
    loss = build_loss(model, cfg, guide=guide)
    texts = [[f"query {i}" for i in range(4)], [f"document {i}" for i in range(4)]]
    features = [model.tokenize(t) for t in texts]
    guide.train()  # as a trainer's train() on the loss module would
    value = loss(features, None)
    assert torch.isfinite(value)
    assert len(calls) == 2  # one encoding per column, not one per column per dim
    assert guide.training is False  # the guide's dropout stays off
    loss([model.tokenize([t + " changed" for t in texts[0]]), features[1]], None)
    assert len(calls) == 3  # a new batch is encoded


def test_gist_with_several_mined_negatives_is_refused_in_the_config():
    from tasks.config import ConfigError

    with pytest.raises(ConfigError, match="use loss cached_gist"):
        RunConfig.from_mapping({"data_path": "x", "loss": "gist", "num_negatives": 2})
    RunConfig.from_mapping({"data_path": "x", "loss": "cached_gist", "num_negatives": 2})
