"""How long to train: epochs, optimizer steps and validation points chosen from the data size.

A fixed number of epochs gives a few hundred pairs only a few dozen optimizer steps (3 epochs of
batch 32 over 300 pairs is 30 steps), too few to move the model, while large data needs no more
than the epochs asked for. :func:`plan_schedule` keeps the configured epochs unless they give
fewer than ``min_steps`` optimizer steps; then it trains more epochs, up to ``MAX_EPOCHS_FACTOR``
times the configured ones, to reach ``min_steps``. Validation (which also picks the checkpoint)
runs at most ``MAX_VALIDATIONS`` times: after every ``validate_every`` epochs and after the last.
docs/benchmarks.md holds the measurements behind the defaults.

Example::

    plan_schedule(pairs=300, batch_size=32, gradient_accumulation_steps=1, epochs=3,
                  min_steps=120)
    # Schedule(epochs=12, steps_per_epoch=10, total_steps=120, validate_every=3, ...)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

#: Small data trains at most this many times the configured epochs to reach ``min_steps``.
MAX_EPOCHS_FACTOR = 5
#: Validations (and checkpoints) per training run at most.
MAX_VALIDATIONS = 5


@dataclass(frozen=True)
class Schedule:
    """The planned schedule (recorded in ``train/summary.json``)."""

    epochs: int
    steps_per_epoch: int
    total_steps: int
    validate_every: int
    reason: str

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def steps_per_epoch(pairs: int, batch_size: int, gradient_accumulation_steps: int = 1) -> int:
    """Optimizer steps in one epoch over ``pairs`` (the last, partial batch counts)."""
    batches = math.ceil(pairs / batch_size)
    return max(1, math.ceil(batches / gradient_accumulation_steps))


def plan_schedule(
    pairs: int,
    batch_size: int,
    gradient_accumulation_steps: int,
    epochs: int,
    min_steps: int,
) -> Schedule:
    """The schedule for ``pairs`` training pairs (see the module docstring for the rule)."""
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
    return Schedule(
        epochs=planned,
        steps_per_epoch=per_epoch,
        total_steps=planned * per_epoch,
        validate_every=every,
        reason=reason,
    )
