"""Trainer callbacks of the train step: readable progress lines, and validation every k epochs.

The task log is read by people: tqdm bars are unreadable there, so :func:`progress_callback`
prints one plain line per logging step (step, epoch, loss, learning rate, elapsed, eta) from rank
0 only. :func:`validate_every_callback` keeps a long schedule on small data from validating (and
saving a checkpoint) after every one of many short epochs.
"""

from __future__ import annotations

import time
from typing import Any


def progress_callback(batch: int, processes: int = 1) -> Any:
    """A ``TrainerCallback`` printing plain progress lines (``batch``: the effective batch)."""
    from transformers import TrainerCallback

    class Progress(TrainerCallback):
        def __init__(self) -> None:
            self.started = time.perf_counter()
            self.start_step = 0

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.started = time.perf_counter()
            self.start_step = state.global_step
            if not state.is_world_process_zero:
                return
            share = f" ({batch // processes} in each of {processes} processes)"
            print(
                f"train: {state.max_steps} optimizer steps over {args.num_train_epochs} "
                f"epoch(s), effective batch {batch}"
                + (share if processes > 1 else "")
                + (f", resuming at step {state.global_step}" if state.global_step else ""),
                flush=True,
            )

        def on_log(
            self, args: Any, state: Any, control: Any, logs: Any = None, **kwargs: Any
        ) -> None:
            if not logs or "loss" not in logs or not state.is_world_process_zero:
                return
            elapsed = time.perf_counter() - self.started
            done = max(state.global_step - self.start_step, 1)
            left = (state.max_steps - state.global_step) * elapsed / done
            print(
                f"train: step {state.global_step}/{state.max_steps} epoch "
                f"{state.epoch:.2f} loss {logs['loss']:.4f} lr {logs.get('learning_rate', 0):.2e} "
                f"elapsed {elapsed:.0f}s eta {left:.0f}s",
                flush=True,
            )

        def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.is_world_process_zero:
                print(f"train: saved checkpoint-{state.global_step}", flush=True)

    return Progress()


def validate_every_callback(every: int, epochs: int) -> Any:
    """A ``TrainerCallback`` that lets the per-epoch validation and checkpoint happen only after
    every ``every``-th epoch and after the last one (add it after the trainer's own callbacks)."""
    from transformers import TrainerCallback

    class ValidateEvery(TrainerCallback):
        def on_epoch_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> Any:
            epoch = round(state.epoch or 0)
            if every > 1 and epoch % every and epoch < epochs:
                control.should_evaluate = False
                control.should_save = False
            return control

    return ValidateEvery()
