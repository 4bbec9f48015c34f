"""Weight interpolation between the base and the fine-tuned model (WiSE-FT).

Fine-tuning on a few thousand pairs moves a model towards the training documents' domain and away
from what it knew; averaging the weights, ``base + a x (fine-tuned - base)``, keeps much of both
and often generalizes better to documents unlike the training ones (Wortsman et al., "Robust
fine-tuning of zero-shot models", CVPR 2022). After training, the train step scores a few ``a``
on the validation split (documents held out from training) and keeps the best; ``a = 1`` is the
fine-tuned model itself, and another ``a`` is kept only when validation scores it strictly higher,
so the choice never takes a model the validation split says is worse than the fine-tuned one.

Example::

    alphas(4)                                  # [0.25, 0.5, 0.75, 1.0]
    choose_alpha({0.5: 0.61, 0.75: 0.63, 1.0: 0.62})   # 0.75
    model.load_state_dict(interpolate(base_state, tuned_state, 0.75))
"""

from __future__ import annotations

from collections.abc import Callable
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


def choose_alpha(curve: dict[float, float]) -> float:
    """The ``a`` with the best validation score; ``1.0`` unless another scores strictly higher
    (a tie keeps the fine-tuned model, and so does the larger of two tied ``a``)."""
    if 1.0 not in curve:
        raise ValueError("the curve must hold a = 1.0 (the fine-tuned model)")
    best = 1.0
    for alpha in sorted(curve, reverse=True):
        if curve[alpha] > curve[best]:
            best = alpha
    return best


def search(
    model: Any,
    base_state: dict[str, Any],
    score: Callable[[Any], float],
    points: int,
    tuned_score: float | None = None,
    say: Callable[[str], None] = print,
) -> dict[str, Any]:
    """Score each ``a`` of :func:`alphas` on ``model`` and leave it holding the chosen weights.

    ``score(model)`` returns the validation score of the model as it is; ``tuned_score`` is the
    fine-tuned model's own score when it is known already (the trainer validated it). Returns
    ``{"alpha", "curve": {a: score}, "points"}``.
    """
    tuned_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    curve: dict[float, float] = {}
    curve[1.0] = score(model) if tuned_score is None else float(tuned_score)
    for alpha in alphas(points)[:-1]:
        model.load_state_dict(interpolate(base_state, tuned_state, alpha))
        curve[alpha] = float(score(model))
        say(f"train: weight interpolation a={alpha:g}: validation {curve[alpha]:.4f}")
    chosen = choose_alpha(curve)
    model.load_state_dict(
        tuned_state if chosen == 1.0 else interpolate(base_state, tuned_state, chosen)
    )
    say(
        f"train: weight interpolation keeps a={chosen:g} (validation {curve[chosen]:.4f}; "
        f"the fine-tuned model {curve[1.0]:.4f})"
    )
    return {"alpha": chosen, "curve": {str(a): curve[a] for a in sorted(curve)}, "points": points}
