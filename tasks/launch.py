"""Data-parallel training: one ``train`` step over several processes (torchrun).

``train_processes`` says how many processes the train step uses: ``1`` one (the default), ``0``
one per GPU the step was given (one process on a host without GPUs), ``N`` exactly N (on a host
without GPUs: N CPU processes, gloo backend; with GPUs at most one per GPU, NCCL backend).

When more than one process is wanted, ``python -m tasks train ...`` re-runs itself under the
launcher that ships with PyTorch::

    python -m torch.distributed.run --standalone --nproc_per_node N -m tasks train <same options>

torchrun rather than ``accelerate launch``: it comes with torch (no config file, no extra
command), ``--standalone`` starts its own rendezvous on a free local port, and it sets the
``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` variables that the trainer (through accelerate) reads;
``accelerate launch`` would itself call torchrun for this case.

The launching process stays the step: it streams the processes' output, and prints the one summary
line and exits with the step's code, both taken from rank 0's outcome, which rank 0 writes to the
file named by ``EMBED_TRAIN_RESULT``. That variable also marks the launched processes, so they
train instead of launching again (as does ``LOCAL_RANK``, set by every launcher).

Everything here but :func:`visible_gpus` and :func:`run_training_processes` is a pure function.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from tasks.io import (
    EXIT_FAILED,
    EXIT_INVALID_INPUT,
    EXIT_NOTHING_TO_DO,
    EXIT_OK,
    InvalidInputError,
    NothingToDo,
    StepError,
    write_json,
)

#: Set in the launched processes: the file rank 0 writes its outcome to (also the re-launch guard).
RESULT_ENV = "EMBED_TRAIN_RESULT"


def launched(env: Mapping[str, str] | None = None) -> bool:
    """True inside a process started by a launcher (ours, or torchrun/accelerate by hand)."""
    env = os.environ if env is None else env
    return RESULT_ENV in env or "LOCAL_RANK" in env


def rank(env: Mapping[str, str] | None = None) -> int:
    """This process's global rank (``RANK``; 0 outside a launcher)."""
    env = os.environ if env is None else env
    return int(env.get("RANK", "0") or 0)


def local_rank(env: Mapping[str, str] | None = None) -> int:
    """This process's rank on its host (``LOCAL_RANK``; 0 outside a launcher): its GPU index."""
    env = os.environ if env is None else env
    return int(env.get("LOCAL_RANK", "0") or 0)


def world_size(env: Mapping[str, str] | None = None) -> int:
    """The number of training processes (``WORLD_SIZE``; 1 outside a launcher)."""
    env = os.environ if env is None else env
    return max(1, int(env.get("WORLD_SIZE", "1") or 1))


def visible_gpus(env: Mapping[str, str] | None = None) -> int:
    """The number of CUDA GPUs this step may use.

    ``CUDA_VISIBLE_DEVICES`` set to nothing (or starting with an invalid id such as ``-1``) means
    none, without importing torch; otherwise ``torch.cuda.device_count()``, which honours it.
    """
    env = os.environ if env is None else env
    value = env.get("CUDA_VISIBLE_DEVICES")
    if value is not None and visible_device_ids(value) == 0:
        return 0
    import torch

    return torch.cuda.device_count()


def visible_device_ids(value: str) -> int:
    """How many devices a ``CUDA_VISIBLE_DEVICES`` value lists (CUDA stops at the first invalid id).

    Example::

        visible_device_ids("0,1")   # 2
        visible_device_ids("")      # 0
        visible_device_ids("2,-1,3")   # 1
    """
    count = 0
    for part in value.split(","):
        part = part.strip()
        if not part or part.startswith("-"):
            break
        count += 1
    return count


def process_count(requested: int, gpus: int) -> int:
    """The number of training processes for ``train_processes = requested`` with ``gpus`` GPUs.

    ``1``: one; ``0``: one per GPU, one without GPUs; ``N``: N (N CPU processes without GPUs;
    with GPUs, at most one per GPU: two NCCL processes cannot share a GPU).

    Example::

        process_count(0, gpus=4)   # 4
        process_count(0, gpus=0)   # 1
        process_count(2, gpus=0)   # 2 (gloo, on the CPU)
    """
    if requested < 0:
        raise InvalidInputError(f"train_processes={requested} is negative: use 0, 1 or N")
    if requested == 0:
        return max(gpus, 1)
    if requested > 1 and 0 < gpus < requested:
        raise InvalidInputError(
            f"train_processes={requested} but the step was given only {gpus} GPU(s): set "
            f"train_processes to 0 (one per GPU) or at most {gpus}, or give the step more GPUs"
        )
    return requested


def planned_processes(requested: int, env: Mapping[str, str] | None = None) -> int:
    """:func:`process_count` for this host; 1 inside a launched process (it never re-launches)."""
    if requested == 1 or launched(env):
        return 1
    return process_count(requested, visible_gpus(env))


def per_process_batch_size(batch_size: int, processes: int) -> int:
    """Each process's share of the global ``batch_size``; it must divide evenly.

    ``batch_size`` is the global batch: with N processes each takes ``batch_size / N`` pairs per
    step and MultipleNegativesRankingLoss gathers the embeddings of all processes, so every query
    still has ``batch_size - 1`` in-batch negatives, as in a single process.
    """
    if batch_size % processes:
        raise InvalidInputError(
            f"batch_size={batch_size} does not split evenly over {processes} training processes: "
            f"set batch_size to a multiple of {processes} or change train_processes"
        )
    return batch_size // processes


def launch_command(argv: Sequence[str], processes: int, python: str | None = None) -> list[str]:
    """The torchrun command line that runs ``python -m tasks <argv>`` in ``processes`` processes.

    Example::

        launch_command(["train", "--run-dir", "runs/a"], 2, python="python")
        # ['python', '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2',
        #  '-m', 'tasks', 'train', '--run-dir', 'runs/a']
    """
    if processes < 2:
        raise ValueError(f"launching needs at least 2 processes, not {processes}")
    return [
        python or sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(processes),
        "-m",
        "tasks",
        *argv,
    ]


def launch_env(
    base: Mapping[str, str],
    result_file: Path,
    processes: int,
    cpu_count: int | None = None,
    platform: str = sys.platform,
) -> dict[str, str]:
    """The launched processes' environment: ``base`` plus the result file (the re-launch guard).

    Unless ``base`` sets them: ``OMP_NUM_THREADS`` shares the CPU cores between the processes
    (torchrun would otherwise pick 1), and on Linux the gloo backend talks over the loopback
    interface (``GLOO_SOCKET_IFNAME=lo``): every process runs on this host.
    """
    env = dict(base)
    env[RESULT_ENV] = str(result_file)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (cpu_count or 1) // processes)))
    if platform.startswith("linux"):
        env.setdefault("GLOO_SOCKET_IFNAME", "lo")
    return env


def rank_result_file(result_file: Path, process_rank: int) -> Path:
    """Where a rank hands its outcome over: rank 0 the result file itself, rank N a sibling.

    Example::

        rank_result_file(Path("/tmp/x/result.json"), 1)  # Path('/tmp/x/result.rank1.json')
    """
    if process_rank == 0:
        return result_file
    return result_file.with_name(f"{result_file.stem}.rank{process_rank}{result_file.suffix}")


def hand_over(code: int, summary: dict[str, Any] | None = None, error: str | None = None) -> bool:
    """In a launched process, pass the outcome on instead of printing the summary line.

    Rank 0 writes ``{"code", "summary", "error"}`` to the ``EMBED_TRAIN_RESULT`` file for the
    launching process; another rank writes its own file only when it failed (when every rank fails
    alike, the first to exit makes torchrun stop the others, rank 0 perhaps before it wrote).
    Returns True when this process must not print the summary line: always in a launched process,
    except rank 0 of processes launched by hand (no result file), which prints it as a single
    process would.
    """
    if not launched():
        return False
    target = os.environ.get(RESULT_ENV)
    if rank() != 0:
        if target and code != EXIT_OK:
            write_json(
                rank_result_file(Path(target), rank()),
                {"code": code, "summary": None, "error": error},
            )
        return True
    if not target:
        return False
    write_json(Path(target), {"code": code, "summary": summary, "error": error})
    return True


def outcome(
    launcher_code: int,
    result: dict[str, Any] | None,
    processes: int,
    other_failure: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any] | None, str | None]:
    """(exit code, summary, one-line error) of a launch, from torchrun's exit code, rank 0's
    result (None when rank 0 wrote none) and the first other rank's failure (None when none).

    Rank 0's code wins when it failed; a success of rank 0 counts only if torchrun succeeded too
    (another process may have failed). Without a result from rank 0, another rank's failure says
    what went wrong.
    """
    if result is None and other_failure is not None:
        code = int(other_failure.get("code", EXIT_FAILED))
        if code != EXIT_OK:
            return (
                code,
                None,
                other_failure.get("error") or f"a training process exited with {code}",
            )
    if result is None:
        reason = (
            "the training processes ended without a result"
            if launcher_code == 0
            else f"the training processes failed (torchrun exit code {launcher_code})"
        )
        return EXIT_FAILED, None, f"{reason}: see the rank logs above"
    code = int(result.get("code", EXIT_FAILED))
    if code != EXIT_OK:
        return code, result.get("summary"), result.get("error") or f"rank 0 exited with {code}"
    if launcher_code != 0:
        return (
            EXIT_FAILED,
            None,
            f"rank 0 finished but another of the {processes} training processes failed "
            f"(torchrun exit code {launcher_code}): see the rank logs above",
        )
    return EXIT_OK, result.get("summary"), None


def run_training_processes(argv: Sequence[str], processes: int) -> dict[str, Any]:
    """Run ``python -m tasks <argv>`` under torchrun in ``processes`` processes; returns rank 0's
    summary, or raises what rank 0 (or the launch) failed with.

    The processes' output goes straight to this process's stdout/stderr. A SIGTERM (a stopped
    task) is passed on to torchrun, which stops the processes.
    """
    with tempfile.TemporaryDirectory(prefix="train-launch-") as tmp:
        result_file = Path(tmp) / "result.json"
        cmd = launch_command(argv, processes)
        env = launch_env(os.environ, result_file, processes, os.cpu_count())
        print(f"train: launching {processes} training processes: {' '.join(cmd)}", flush=True)
        sys.stderr.flush()
        proc = subprocess.Popen(cmd, env=env)
        installed, previous = _forward_sigterm(proc)
        try:
            launcher_code = proc.wait()
        finally:
            if installed:
                signal.signal(signal.SIGTERM, previous)
        result = _read_result(result_file)
        other_failure = next(
            (
                found
                for r in range(1, processes)
                if (found := _read_result(rank_result_file(result_file, r))) is not None
            ),
            None,
        )
    code, summary, error = outcome(launcher_code, result, processes, other_failure)
    if code == EXIT_OK:
        return summary or {}
    if code == EXIT_NOTHING_TO_DO:
        raise NothingToDo(summary or {})
    exc = InvalidInputError(error) if code == EXIT_INVALID_INPUT else StepError(error)
    exc.exit_code = code
    raise exc


def _read_result(path: Path) -> dict[str, Any] | None:
    """A rank's handed-over outcome, or None when it wrote none."""
    if not path.exists():
        return None
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def _forward_sigterm(proc: subprocess.Popen) -> tuple[bool, Any]:
    """Pass SIGTERM on to ``proc`` while it runs; returns (installed, the previous handler)."""

    def forward(signum: int, frame: Any) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)

    try:
        return True, signal.signal(signal.SIGTERM, forward)
    except ValueError:  # not the main thread: signals cannot be handled here
        return False, None
