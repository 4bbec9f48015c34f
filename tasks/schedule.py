"""How long and how fast to train: epochs, optimizer steps, learning rate and validation points
chosen from the data size.

A fixed schedule gives a few hundred pairs only a few dozen optimizer steps (3 epochs of batch 32
over 300 pairs is 30 steps), too few to move the model at a learning rate set for large data.
Two rules, both measured in docs/benchmarks.md:

- **learning rate** (``lr_reference_steps``): a schedule of fewer optimizer steps than the
  reference trains at ``learning_rate x sqrt(reference / steps)``, at most ``MAX_LR_FACTOR``
  times ``learning_rate``; at or above the reference, at ``learning_rate``. This costs no time;
- **epochs** (``min_steps``): when the epochs give fewer optimizer steps than ``min_steps``, more
  epochs, up to ``MAX_EPOCHS_FACTOR`` times those asked for. This costs time.

Validation (which also picks the checkpoint) runs at most ``MAX_VALIDATIONS`` times: after every
``validate_every`` epochs and after the last.

Example::

    plan_schedule(pairs=300, batch_size=32, gradient_accumulation_steps=1, epochs=3,
                  min_steps=0, learning_rate=2e-5, lr_reference_steps=270)
    # Schedule(epochs=3, steps_per_epoch=10, total_steps=30, learning_rate=6e-05, ...)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Small data trains at most this many times the configured epochs to reach ``min_steps``.
MAX_EPOCHS_FACTOR = 5
#: Validations (and checkpoints) per training run at most.
MAX_VALIDATIONS = 5
#: A short schedule trains at most this many times the configured learning rate.
MAX_LR_FACTOR = 4.0


@dataclass(frozen=True)
class Schedule:
    """The planned schedule (recorded in ``train/summary.json``)."""

    epochs: int
    steps_per_epoch: int
    total_steps: int
    validate_every: int
    reason: str
    learning_rate: float = 0.0
    lr_reason: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_per_epoch(pairs: int, batch_size: int, gradient_accumulation_steps: int = 1) -> int:
    """Optimizer steps in one epoch over ``pairs`` (the last, partial batch counts)."""
    batches = math.ceil(pairs / batch_size)
    return max(1, math.ceil(batches / gradient_accumulation_steps))


def scaled_learning_rate(
    learning_rate: float, steps: int, reference_steps: int
) -> tuple[float, str]:
    """``(peak learning rate, why)`` for a schedule of ``steps`` optimizer steps: ``learning_rate``
    times ``sqrt(reference_steps / steps)``, between 1 and ``MAX_LR_FACTOR`` (``reference_steps``
    0 = always ``learning_rate``)."""
    if not reference_steps or steps >= reference_steps:
        return learning_rate, f"learning rate {learning_rate:g} as configured"
    factor = min(MAX_LR_FACTOR, math.sqrt(reference_steps / max(steps, 1)))
    scaled = float(f"{learning_rate * factor:.3g}")
    return scaled, (
        f"learning rate {scaled:g}: {steps} optimizer steps are fewer than lr_reference_steps="
        f"{reference_steps}, so {learning_rate:g} x {factor:.2f}"
        + (f" (at most {MAX_LR_FACTOR:g}x)" if factor == MAX_LR_FACTOR else "")
    )


def plan_schedule(
    pairs: int,
    batch_size: int,
    gradient_accumulation_steps: int,
    epochs: int,
    min_steps: int,
    learning_rate: float = 0.0,
    lr_reference_steps: int = 0,
) -> Schedule:
    """The schedule for ``pairs`` training pairs (see the module docstring for the rules)."""
    per_epoch = steps_per_epoch(pairs, batch_size, gradient_accumulation_steps)
    planned = epochs
    reason = f"{epochs} epoch(s) as configured"
    if min_steps and per_epoch * epochs < min_steps:
        planned = min(math.ceil(min_steps / per_epoch), epochs * MAX_EPOCHS_FACTOR)
        reason = (
            f"{epochs} epoch(s) of {per_epoch} steps are fewer than min_steps={min_steps}: "
            f"{planned} epochs"
            + (
                f" (at most {MAX_EPOCHS_FACTOR}x the configured epochs)"
                if planned < math.ceil(min_steps / per_epoch)
                else ""
            )
        )
    every = math.ceil(planned / MAX_VALIDATIONS)
    lr, lr_reason = scaled_learning_rate(learning_rate, planned * per_epoch, lr_reference_steps)
    return Schedule(
        epochs=planned,
        steps_per_epoch=per_epoch,
        total_steps=planned * per_epoch,
        validate_every=every,
        reason=reason,
        learning_rate=lr,
        lr_reason=lr_reason,
    )
