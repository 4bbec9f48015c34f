"""The loss registry: every configurable loss has a builder, wrapped in MatryoshkaLoss."""

from __future__ import annotations

import pytest

from tasks.config import LOSSES as CONFIG_LOSSES
from tasks.config import RunConfig
from tasks.losses import LOSSES, build_loss

pytestmark = pytest.mark.unit


def test_the_registry_and_the_configs_choices_are_the_same():
    assert tuple(LOSSES) == CONFIG_LOSSES


@pytest.mark.parametrize(
    ("name", "inner"),
    [
        ("mnrl", "MultipleNegativesRankingLoss"),
        ("cached_mnrl", "CachedMultipleNegativesRankingLoss"),
    ],
)
def test_each_loss_is_built_inside_matryoshka_at_the_runs_dims(tiny_model_dir, name, inner):
    from tasks.models import load_model

    model = load_model(tiny_model_dir)
    cfg = RunConfig(
        data_path="x.jsonl", loss=name, matryoshka_dims=[64, 32], cached_mini_batch_size=8
    )
    loss = build_loss(model, cfg, processes=2)
    assert type(loss).__name__ == "MatryoshkaLoss"
    assert list(loss.matryoshka_dims) == [64, 32]
    assert type(loss.loss).__name__ == inner
    assert loss.loss.gather_across_devices is True  # several processes: the global batch
    assert build_loss(model, cfg, processes=1).loss.gather_across_devices is False
    if name == "cached_mnrl":
        assert loss.loss.mini_batch_size == 8
