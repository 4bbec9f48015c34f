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
    loss = build_loss(model, cfg_gist, guide=base_model)   # MatryoshkaLoss(GISTEmbedLoss)
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from tasks.config import RunConfig

#: A builder: (model, config, number of training processes, guide model or None) -> inner loss.
LossBuilder = Callable[[Any, RunConfig, int, Any], Any]


def _mnrl(model: Any, cfg: RunConfig, processes: int, guide: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import MultipleNegativesRankingLoss

    return MultipleNegativesRankingLoss(
        model, scale=cfg.loss_scale, gather_across_devices=processes > 1
    )


def _cached_mnrl(model: Any, cfg: RunConfig, processes: int, guide: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import (
        CachedMultipleNegativesRankingLoss,
    )

    return CachedMultipleNegativesRankingLoss(
        model,
        scale=cfg.loss_scale,
        mini_batch_size=cfg.cached_mini_batch_size,
        gather_across_devices=processes > 1,
    )


def _gist(model: Any, cfg: RunConfig, processes: int, guide: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import GISTEmbedLoss

    return GISTEmbedLoss(model, _need(guide, cfg), gather_across_devices=processes > 1)


def _cached_gist(model: Any, cfg: RunConfig, processes: int, guide: Any) -> Any:
    from sentence_transformers.sentence_transformer.losses import CachedGISTEmbedLoss

    return CachedGISTEmbedLoss(
        model,
        _need(guide, cfg),
        mini_batch_size=cfg.cached_mini_batch_size,
        gather_across_devices=processes > 1,
    )


def _need(guide: Any, cfg: RunConfig) -> Any:
    if guide is None:
        raise ValueError(f"loss {cfg.loss!r} needs a guide model (the base model)")
    return cache_guide(guide)


#: Batches a guide remembers: the anchors and the (merged) candidates of one training step, and
#: one to spare.
GUIDE_CACHE_SIZE = 3


def cache_guide(guide: Any) -> Any:
    """Make the frozen ``guide`` answer a batch it has just seen from memory, and stay in eval mode.

    MatryoshkaLoss calls its inner loss once per dim, and GISTEmbedLoss runs its guide in every
    call: without this, the guide would encode each training batch once per dim (4 times with the
    default dims) though its answer, full-size and frozen, is the same each time. Batches are
    recognised by their tokens (ids and masks), so neither the column merging of the loss, nor its
    per-call copies of the features, nor what the model's forward writes into them defeat it.
    Idempotent.
    """
    if getattr(guide.forward, "_embed_guide_cache", False):
        return guide
    forward = guide.forward
    cache: OrderedDict[str, Any] = OrderedDict()

    def cached_forward(features: dict[str, Any], *args: Any, **kwargs: Any) -> Any:
        if guide.training:
            guide.eval()  # a trainer's train() on the loss must not turn the guide's dropout on
        key = _batch_key(features) if not (args or kwargs) else None
        if key is not None and key in cache:
            cache.move_to_end(key)
            return cache[key]
        output = forward(features, *args, **kwargs)
        if key is not None:
            # only what the losses read: the token embeddings would hold a step's activations
            cache[key] = {"sentence_embedding": output["sentence_embedding"]}
            while len(cache) > GUIDE_CACHE_SIZE:
                cache.popitem(last=False)
        return output

    cached_forward._embed_guide_cache = True  # type: ignore[attr-defined]
    guide.forward = cached_forward
    return guide


def _batch_key(features: dict[str, Any]) -> str | None:
    """A digest of a batch's tokens: its integer tensors (token ids, masks), not the float ones the
    model's own forward adds to the same dicts. None when there are none."""
    digest = hashlib.blake2b(digest_size=16)
    tensors = {
        name: value
        for name, value in features.items()
        if hasattr(value, "is_floating_point") and not value.is_floating_point()
    }
    if "input_ids" not in tensors:
        return None
    for name in sorted(tensors):
        array = tensors[name].detach().cpu().contiguous().numpy()
        digest.update(f"{name}:{array.dtype}:{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


#: loss name (``RunConfig.loss``) -> builder of the inner loss.
LOSSES: dict[str, LossBuilder] = {
    "mnrl": _mnrl,
    "cached_mnrl": _cached_mnrl,
    "gist": _gist,
    "cached_gist": _cached_gist,
}
#: The losses that need a guide model: training loads the base model a second time, frozen.
GUIDED_LOSSES = frozenset({"gist", "cached_gist"})


def build_loss(model: Any, cfg: RunConfig, processes: int = 1, guide: Any = None) -> Any:
    """``MatryoshkaLoss`` over the inner loss ``cfg.loss`` names, at ``cfg.matryoshka_dims``.

    ``guide`` is the frozen base model of the GIST losses (:data:`GUIDED_LOSSES`): a negative the
    guide scores above the positive is masked out of the ranking, so in-batch or mined documents
    that are in fact relevant are not pushed away. Inside MatryoshkaLoss the student is truncated
    per dim while the guide always scores at its full size.
    """
    from sentence_transformers.sentence_transformer.losses import MatryoshkaLoss

    try:
        builder = LOSSES[cfg.loss]
    except KeyError:
        raise ValueError(f"unknown loss {cfg.loss!r}; use one of {', '.join(LOSSES)}") from None
    inner = builder(model, cfg, processes, guide)
    return MatryoshkaLoss(model, inner, matryoshka_dims=cfg.matryoshka_dims)
