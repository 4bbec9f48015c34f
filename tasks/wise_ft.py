"""Weight interpolation between the base and the fine-tuned model (WiSE-FT).

Fine-tuning on a few thousand pairs moves a model towards the training documents' domain and away
from what it knew; averaging the weights, ``base + a x (fine-tuned - base)``, keeps much of both
and often generalizes better to documents unlike the training ones (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022). After training, the train step scores a few ``a``
on the validation split (documents held out from training) and keeps the best; ``a = 1`` is the
fine-tuned model itself, and another ``a`` is kept only when validation scores it higher *and* the
per-query gain passes a paired test, so the choice never takes a model the validation split says
is worse than the fine-tuned one, nor one that won by the chance of a few validation queries.

Example::

    alphas(4)                                  # [0.25, 0.5, 0.75, 1.0]
    choose_alpha({0.5: [0.6, 0.7], 0.75: [0.8, 0.9], 1.0: [0.5, 0.6]})   # 0.75
    model.load_state_dict(interpolate(base_state, tuned_state, 0.75))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any


def alphas(points: int) -> list[float]:
    """``points`` evenly spaced mixing weights in (0, 1], ending at 1 (the fine-tuned model)."""
    if points < 1:
        raise ValueError(f"points must be at least 1, got {points}")
    return [round(i / points, 4) for i in range(1, points + 1)]


def interpolate(base: dict[str, Any], tuned: dict[str, Any], alpha: float) -> dict[str, Any]:
    """The state dict ``base + alpha x (tuned - base)`` for floating-point tensors (computed in
    float32, stored in the fine-tuned weights' dtype); other entries (integer buffers such as
    position ids) are the fine-tuned model's.

    Both state dicts must have the same keys and shapes (the fine-tuned model is the base model
    trained further).
    """
    if set(base) != set(tuned):
        missing = sorted(set(base) ^ set(tuned))[:3]
        raise ValueError(f"the models' weights differ in names (e.g. {missing})")
    import torch

    out = {}
    for name, value in tuned.items():
        start = base[name]
        if value.is_floating_point():
            if start.shape != value.shape:
                raise ValueError(f"weight {name} has shape {start.shape} vs {value.shape}")
            mixed = start.to(value.device, torch.float32).lerp(value.float(), alpha)
            out[name] = mixed.to(value.dtype)
        else:
            out[name] = value
    return out


#: One-sided z of the paired test a mix must pass to replace the fine-tuned model (95%).
CONFIDENCE_Z = 1.645


def paired_gain(mixed: Sequence[float], tuned: Sequence[float]) -> tuple[float, float]:
    """(mean, z) of the per-query gain ``mixed - tuned``: its mean and the mean over its standard
    error (0 when every gain is equal, ``inf`` when they are all equal and positive)."""
    if len(mixed) != len(tuned) or not tuned:
        raise ValueError("the per-query scores must be of the same queries")
    gains = [m - t for m, t in zip(mixed, tuned)]
    n = len(gains)
    mean = sum(gains) / n
    var = sum((g - mean) ** 2 for g in gains) / (n - 1) if n > 1 else 0.0
    if var < 1e-12:  # equal gains, up to float rounding
        return mean, (math.inf if mean > 0 else 0.0)
    return mean, mean / math.sqrt(var / n)


def choose_alpha(curve: dict[float, Sequence[float]], z: float = CONFIDENCE_Z) -> float:
    """The ``a`` to keep, from each ``a``'s per-query validation scores (the same queries).

    ``1.0`` (the fine-tuned model) unless a mix scores higher on average *and* that gain passes a
    one-sided paired test at ``z`` (a few dozen validation queries are noisy: a mix that wins by
    chance would be a worse model); among the mixes that pass, the best mean, and of tied means
    the larger ``a``.
    """
    if 1.0 not in curve:
        raise ValueError("the curve must hold a = 1.0 (the fine-tuned model)")
    best, best_mean = 1.0, _mean(curve[1.0])
    for alpha in sorted(curve, reverse=True):
        if alpha == 1.0:
            continue
        gain, stat = paired_gain(curve[alpha], curve[1.0])
        if gain > 0 and stat >= z and _mean(curve[alpha]) > best_mean:
            best, best_mean = alpha, _mean(curve[alpha])
    return best


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def search(
    model: Any,
    base_state: dict[str, Any],
    score: Callable[[Any], Sequence[float]],
    points: int,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score each ``a`` of :func:`alphas` on ``model`` and leave it holding the chosen weights.

    ``score(model)`` returns the per-query validation scores of the model as it is (the same
    queries each time). Returns ``{"alpha", "curve": {a: mean score}, "gain_z": {a: z}, "points"}``
    (``gain_z``: the paired test of each mix against ``a = 1``, see :func:`choose_alpha`).
    """
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    per_query: dict[float, Sequence[float]] = {1.0: list(score(model))}
    for alpha in alphas(points)[:-1]:
        model.load_state_dict(interpolate(base_state, tuned_state, alpha))
        per_query[alpha] = list(score(model))
        say(f"train: weight interpolation a={alpha:g}: validation {_mean(per_query[alpha]):.4f}")
    chosen = choose_alpha(per_query)
    model.load_state_dict(
        tuned_state if chosen == 1.0 else interpolate(base_state, tuned_state, chosen)
    )
    z = {a: paired_gain(v, per_query[1.0])[1] for a, v in per_query.items() if a != 1.0}
    say(
        f"train: weight interpolation keeps a={chosen:g} (validation "
        f"{_mean(per_query[chosen]):.4f}; the fine-tuned model {_mean(per_query[1.0]):.4f}; "
        f"a mix must win a paired test at z >= {CONFIDENCE_Z})"
    )
    return {
        "alpha": chosen,
        "curve": {str(a): _mean(per_query[a]) for a in sorted(per_query)},
        "gain_z": {
            str(a): (round(v, 3) if math.isfinite(v) else None) for a, v in sorted(z.items())
        },
        "points": points,
    }
