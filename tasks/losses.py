"""The training losses: one registry, name -> builder of the inner loss.

``loss`` in the run config names the inner loss; training always wraps it in ``MatryoshkaLoss``
over the run's ``matryoshka_dims``. A new loss is one builder here plus its name in
``tasks.config.LOSSES`` (the form's and CLI's choices; a test keeps the two equal).

With several training processes the in-batch negatives are gathered across them
(``gather_across_devices``), so each query is ranked against the whole global batch, as in a
single process.

Example::

    from tasks.losses import build_loss

    loss = build_loss(model, cfg, processes=1)   # MatryoshkaLoss(MultipleNegativesRankingLoss)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from tasks.config import RunConfig

#: A builder: (model, config, number of training processes) -> the inner loss.
LossBuilder = Callable[[Any, RunConfig, int], Any]


def _mnrl(model: Any, cfg: RunConfig, processes: int) -> Any:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(model, gather_across_devices=processes > 1)


def _cached_mnrl(model: Any, cfg: RunConfig, processes: int) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
    )

    return CachedMultipleNegativesRankingLoss(
        model, mini_batch_size=cfg.cached_mini_batch_size, gather_across_devices=processes > 1
    )


#: loss name (``RunConfig.loss``) -> builder of the inner loss.
LOSSES: dict[str, LossBuilder] = {"mnrl": _mnrl, "cached_mnrl": _cached_mnrl}


def build_loss(model: Any, cfg: RunConfig, processes: int = 1) -> Any:
    """``MatryoshkaLoss`` over the inner loss ``cfg.loss`` names, at ``cfg.matryoshka_dims``."""
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    try:
        builder = LOSSES[cfg.loss]
    except KeyError:
        raise ValueError(f"unknown loss {cfg.loss!r}; use one of {', '.join(LOSSES)}") from None
    inner = builder(model, cfg, processes)
    return MatryoshkaLoss(model, inner, matryoshka_dims=cfg.matryoshka_dims)
