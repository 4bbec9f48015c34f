"""The ``local`` runner: a step as a subprocess on the Airflow worker.

Runs ``python -m tasks <step> --run-dir {artifact_root}/{dag_id}/{run_id} <config options>``,
streams its output into the task log line by line, returns the step's summary line as the XCom and
maps its exit code through the step contract. Before a step starts, a run directory written on
another host and missing here fails the task with one line; ``prepare`` records its host
(:mod:`embedding_ops.shared_run_dir`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from typing import Any

from airflow.sdk import BaseOperator

from embedding_ops.contract import parse_summary, raise_for_exit_code
from embedding_ops.shared_run_dir import check_inputs_here, record_writer
from embedding_ops.step_spec import command, public_env, run_dir, secret_env

PROJECT_ROOT = Path(__file__).resolve().parents[2]


def tasks_python() -> str:
    """Interpreter that runs steps: ``$EMBED_TASKS_PYTHON`` or the worker's own."""
    return os.environ.get("EMBED_TASKS_PYTHON") or sys.executable


def step_env(context: Any, step: str | None = None) -> dict[str, str]:
    """Environment of a step: Airflow ids, unbuffered output, the artifact root, the MLflow
    connection and, for ``publish`` only, the Hugging Face connection."""
    return {**public_env(context), **secret_env(step or "")}


class LocalStepOperator(BaseOperator):
    """Run one pipeline step as ``python -m tasks <step>`` in a subprocess.

    :param step: step name (prepare, train, evaluate, report, register).
    :param step_args: extra options for this step (e.g. ``["--model", "base"]``).
    """

    template_fields = ("step_args",)
    ui_color = "#e8f1fb"

    def __init__(self, *, step: str, step_args: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.step = step
        self.step_args = list(step_args or [])
        self._proc: subprocess.Popen | None = None

    def build_command(self, context: Any) -> list[str]:
        return command(context, self.step, self.step_args, tasks_python())

    def execute(self, context: Any) -> Any:
        check_inputs_here(context, self.step, run_dir(context))
        argv = self.build_command(context)
        env = {**os.environ, **step_env(context, self.step)}
        env["PYTHONPATH"] = os.pathsep.join(
            p for p in (str(PROJECT_ROOT), env.get("PYTHONPATH", "")) if p
        )
        self.log.info("Running step %s: %s", self.step, " ".join(argv[:6]) + " ...")
        stdout_tail: deque[str] = deque(maxlen=50)
        stderr_tail: deque[str] = deque(maxlen=50)
        self._proc = subprocess.Popen(
            argv,
            # the task process's stdin is Airflow's supervisor socket: a step (or a helper process
            # it leaves behind) must not hold it, or the supervisor waits for it after the task
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="replace",
            env=env,
            bufsize=1,
        )

        def pump(stream: Any, tail: deque[str], prefix: str) -> None:
            for line in stream:
                line = line.rstrip("\n")
                tail.append(line)
                if line.strip():
                    self.log.info("%s%s", prefix, line)

        readers = [
            threading.Thread(target=pump, args=(self._proc.stdout, stdout_tail, ""), daemon=True),
            threading.Thread(
                target=pump, args=(self._proc.stderr, stderr_tail, "[stderr] "), daemon=True
            ),
        ]
        for reader in readers:
            reader.start()
        code = self._proc.wait()
        for reader in readers:
            reader.join()
        summary = parse_summary(list(stdout_tail))
        reason = next((line.strip() for line in reversed(stderr_tail) if line.strip()), None)
        raise_for_exit_code(self.step, code, reason, summary)
        if self.step == "prepare":
            record_writer(context, run_dir(context))
        return summary

    def on_kill(self) -> None:
        if self._proc and self._proc.poll() is None:
            self._proc.terminate()
