"""The step contract as seen from Airflow: summary line, exit codes, run directory.

A step prints one JSON object as its last stdout line (the summary, returned as the task's XCom)
and exits with 0 (done), 99 (nothing to do: skip what follows), 3 (invalid input: fail without
retrying) or anything else (failure: retried). Every runner maps exit codes through
:func:`raise_for_exit_code` so they behave the same.
"""

from __future__ import annotations

import json
from typing import Any

from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException

from tasks.io import EXIT_INVALID_INPUT, EXIT_NOTHING_TO_DO, EXIT_OK, run_dir_for

__all__ = ["parse_summary", "raise_for_exit_code", "run_dir_for", "step_command"]


def parse_summary(stdout_lines: list[str]) -> dict[str, Any] | None:
    """The summary object: the last stdout line that is a JSON object (None if there is none)."""
    for line in reversed(stdout_lines):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                value = json.loads(line)
            except json.JSONDecodeError:
                continue
            if isinstance(value, dict):
                return value
    return None


def raise_for_exit_code(step: str, code: int, reason: str | None, summary: Any) -> None:
    """Turn a step's exit code into the Airflow outcome (skip, fail without retry, retry)."""
    if code == EXIT_OK:
        return
    if code == EXIT_NOTHING_TO_DO:
        why = (summary or {}).get("reason", "nothing to do")
        raise AirflowSkipException(f"{step}: {why}")
    message = f"{step} failed (exit {code}): {reason or 'no reason given; see the log above'}"
    if code == EXIT_INVALID_INPUT:
        raise AirflowFailException(message)
    raise AirflowException(message)


def step_command(python: str, step: str, run_dir: str, options: list[str]) -> list[str]:
    """``[python, -m, tasks, step, --run-dir, DIR, *options]``: the same in every runner."""
    return [python, "-m", "tasks", step, "--run-dir", run_dir, *options]
