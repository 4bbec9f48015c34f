"""Which validated checkpoint of a training run becomes the model.

Training validates and saves a checkpoint after each epoch (at most ``MAX_VALIDATIONS`` times, see
:mod:`tasks.schedule`). Taking the checkpoint with the best validation score picks the largest of
a few noisy estimates: with a few dozen validation queries an earlier checkpoint often wins by the
chance of those queries, and is then the worse model on new data (the winner's curse). On the
quality benchmark the last checkpoint scored higher than the validation-picked one on the eval set
in most runs where the two differed (docs/benchmarks.md). So ``keep_checkpoint``

- ``auto`` (default) keeps the last checkpoint unless the best earlier one (by validation NDCG@10
  at ``best_metric_dim``) beats it on the validation queries in a one-sided paired test (the test
  :mod:`tasks.wise_ft` uses) of NDCG@10 averaged over the dims, which still catches a run that went
  wrong late (a learning rate too high, a diverging loss) and does not trade the other dims for
  one;
- ``best`` keeps the best validation score (the common ``load_best_model_at_end`` recipe);
- ``last`` keeps the last checkpoint.

Pure: per-query validation scores in, a decision out; loading weights is the train step's work.

Example::

    choose_checkpoint("auto", best_step=28, last_step=42, scores={28: [...], 42: [...]})
    # Choice(step=42, reason="the last checkpoint (step 42): ...", gain=0.004, z=0.61)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from tasks.config import KEEP_CHECKPOINT as CHOICES
from tasks.wise_ft import CONFIDENCE_Z, paired_gain


@dataclass(frozen=True)
class Choice:
    """The kept checkpoint's step and why (recorded in ``train/summary.json``)."""

    step: int
    reason: str
    mode: str
    best_step: int | None
    last_step: int
    #: mean per-query gain of the best checkpoint over the last one on the validation queries
    gain: float | None = None
    #: that gain over its standard error (the paired test's statistic)
    z: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        if out["z"] is not None and not math.isfinite(out["z"]):
            out["z"] = None  # JSON has no infinity
        return out


def needs_scores(mode: str, best_step: int | None, last_step: int) -> bool:
    """Whether the choice needs the per-query validation scores of both checkpoints."""
    return mode == "auto" and best_step is not None and best_step != last_step


def choose_checkpoint(
    mode: str,
    best_step: int | None,
    last_step: int,
    scores: Mapping[int, Sequence[float]] | None = None,
    z: float = CONFIDENCE_Z,
) -> Choice:
    """The checkpoint to keep under ``mode`` (one of :data:`CHOICES`).

    ``best_step`` is the step of the best validation score (None without validation),
    ``last_step`` the run's last step, and ``scores`` the per-query validation scores by step
    (the same queries in the same order; the train step gives NDCG@10 averaged over the dims),
    needed only when :func:`needs_scores` says so.
    """
    if mode not in CHOICES:
        raise ValueError(f"keep_checkpoint must be one of {CHOICES}, got {mode!r}")
    facts = {"mode": mode, "best_step": best_step, "last_step": last_step}
    if best_step is None:
        return Choice(last_step, "the last checkpoint: no validation to choose by", **facts)
    if best_step == last_step:
        return Choice(
            last_step, "the last checkpoint, which also scored best on validation", **facts
        )
    if mode == "last":
        return Choice(last_step, "the last checkpoint (keep_checkpoint=last)", **facts)
    if mode == "best":
        return Choice(
            best_step,
            f"the best validation score, step {best_step} (keep_checkpoint=best)",
            **facts,
        )
    if not scores or best_step not in scores or last_step not in scores:
        raise ValueError("keep_checkpoint=auto needs the per-query scores of both checkpoints")
    gain, stat = paired_gain(scores[best_step], scores[last_step])
    if gain > 0 and stat >= z:
        return Choice(
            best_step,
            f"step {best_step}: it beats the last checkpoint (step {last_step}) on the validation "
            f"queries by {gain:+.4f} NDCG@10 per query (mean over the dims), paired z = "
            f"{stat:.2f} >= {z}",
            gain=gain,
            z=stat,
            **facts,
        )
    return Choice(
        last_step,
        f"the last checkpoint (step {last_step}): step {best_step} scored {gain:+.4f} NDCG@10 per "
        f"validation query (mean over the dims) over it, paired z = {stat:.2f} < {z}, within the "
        f"noise of {len(scores[last_step])} queries",
        gain=gain,
        z=stat,
        **facts,
    )


def step_of(checkpoint: str | None) -> int | None:
    """The step of a ``.../checkpoint-N`` folder (None for None)."""
    if not checkpoint:
        return None
    suffix = str(checkpoint).rstrip("/").rsplit("-", 1)[-1]
    return int(suffix) if suffix.isdigit() else None
