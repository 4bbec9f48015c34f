"""The CeleryExecutor as several hosts run it: heavy steps on a GPU worker, the rest on a CPU one.

The ``celery_stack`` fixture runs Airflow with the CeleryExecutor on 127.0.0.1: a private
``redis-server`` as broker, PostgreSQL as metadata DB and result backend, and two
``airflow celery worker`` processes standing for two hosts: ``cpu-1`` (queue ``cpu``) and
``gpu-1`` (queue ``gpu``). Runs are triggered through the REST API; which worker ran each task
comes from the task instances' ``hostname`` and ``queue``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import (
    CELERY_HEARTBEAT_TIMEOUT,
    CPU_WORKER,
    GPU_WORKER,
    TRAINING_STEPS,
    make_pairs,
    tiny_options,
    write_jsonl,
)
from test_airflow_stack import conf_from_options

pytestmark = [pytest.mark.services, pytest.mark.dag]

RETRAIN = "retrain_embeddings"
#: The worker that replaces the killed GPU worker (a GPU host coming back, or a spare one).
SPARE_GPU_WORKER = "gpu-2"


def queue_of(task_id: str) -> str:
    """The queue a task of the retrain DAG belongs on: its step's (``evaluate_base`` runs the
    step ``evaluate``); tasks that run no step (the watermark commit) are light."""
    from embedding_ops.queues import HEAVY_STEPS

    return "gpu" if task_id.split("_")[0] in HEAVY_STEPS else "cpu"


def _conf(data: Path, model_dir: Path, **settings: Any) -> dict[str, Any]:
    return {
        **conf_from_options(tiny_options(data, model_dir)),
        "source": "local",
        "experiment_name": "celery-e2e",
        "registered_model_name": "celery-model",
        **settings,
    }


def _seconds(ti: dict[str, Any]) -> float:
    from datetime import datetime

    if not ti.get("start_date") or not ti.get("end_date"):
        return 0.0
    end, start = datetime.fromisoformat(ti["end_date"]), datetime.fromisoformat(ti["start_date"])
    return (end - start).total_seconds()


def placement_table(rows: list[dict[str, Any]]) -> str:
    """Task instances (or tries) as a table: task, try, state, queue, hostname, seconds."""
    lines = [
        "| task | try | state | queue | hostname | seconds |",
        "|---|---|---|---|---|---|",
    ]
    for ti in rows:
        lines.append(
            f"| {ti['task_id']} | {ti['try_number']} | {ti['state']} | {ti['queue']} | "
            f"{ti['hostname'] or '-'} | {_seconds(ti):.1f} |"
        )
    return "\n".join(lines)


def _run_dir(stack, run_id: str) -> Path:
    from tasks.io import run_dir_for

    return run_dir_for(RETRAIN, run_id, stack.embed_home / "runs")


def test_each_task_runs_on_a_worker_of_its_queue(celery_stack, tiny_model_dir, tmp_path, stopwatch):
    """A REST-triggered run succeeds; the heavy steps (train, the evaluations, mining) ran on the
    GPU worker, every other task (prepare, report, register, the watermark commit) on the CPU
    worker."""
    stack = celery_stack
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs())
    stack.unpause(RETRAIN)
    started = time.monotonic()
    run_id = stack.trigger(RETRAIN, _conf(data, tiny_model_dir, epochs=1))
    result = stack.wait_for_run(RETRAIN, run_id, timeout=600)
    tis = sorted(stack.task_instances(RETRAIN, run_id), key=lambda ti: ti["start_date"] or "~")
    print(f"\nrun {run_id}: {result.state} in {result.seconds:.1f}s (trigger to end "
          f"{time.monotonic() - started:.1f}s)\n{placement_table(tis)}")  # fmt: skip

    assert result.state == "success", result.tasks
    assert {step: result.tasks[step] for step in TRAINING_STEPS} == dict.fromkeys(
        TRAINING_STEPS, "success"
    )
    assert result.tasks["publish"] == "skipped"  # no hub_repo_id
    assert {queue_of(ti["task_id"]) for ti in tis} == {"gpu", "cpu"}
    worker_of = {"gpu": GPU_WORKER, "cpu": CPU_WORKER}
    for ti in tis:
        queue = queue_of(ti["task_id"])
        assert ti["queue"] == queue, ti
        if ti["hostname"] or ti["state"] != "skipped":  # a skip by the scheduler runs nowhere
            assert ti["hostname"] == worker_of[queue], ti
    # the XCom every step passes on is there, and the run directory was written by the CPU host
    assert stack.xcom(RETRAIN, run_id, "prepare")["train_pairs"] > 0
    assert stack.xcom(RETRAIN, run_id, "prepare", key="run_dir_writer")["host"] == CPU_WORKER
    assert stack.xcom(RETRAIN, run_id, "register")["registered_model"] == "celery-model"


def _wait_for_checkpoint(run_dir: Path, timeout: float) -> Path:
    """The first complete checkpoint of ``train`` (its ``trainer_state.json`` is written last)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = sorted(run_dir.glob("train/checkpoints/checkpoint-*/trainer_state.json"))
        if done:
            return done[0].parent
        time.sleep(0.2)
    raise AssertionError(f"no checkpoint in {run_dir / 'train' / 'checkpoints'} in {timeout:.0f}s")


def test_a_gpu_worker_killed_during_train_is_replaced_and_training_resumes(
    celery_stack, tiny_model_dir, tmp_path, stopwatch
):
    """SIGKILL the GPU worker (and everything under it) once ``train`` saved a checkpoint: the
    scheduler fails the silent task, a new GPU worker comes up, the retry runs there on the same
    queue and resumes from the checkpoint, and the run succeeds."""
    stack = celery_stack
    data = write_jsonl(tmp_path / "pairs.jsonl", make_pairs(n_docs=60, seed=1))
    stack.unpause(RETRAIN)
    started = time.monotonic()
    # a checkpoint per epoch: the kill lands after the first, two epochs are left to resume
    run_id = stack.trigger(RETRAIN, _conf(data, tiny_model_dir, epochs=3))
    run_dir = _run_dir(stack, run_id)
    checkpoint = _wait_for_checkpoint(run_dir, timeout=300)
    killed_at = time.monotonic()
    finished_before_kill = (run_dir / "train" / "summary.json").exists()
    pids = stack.kill_worker(GPU_WORKER)
    print(f"\n{checkpoint.name} saved {killed_at - started:.1f}s after the trigger: "
          f"SIGKILL to {GPU_WORKER} and its {len(pids) - 1} processes")  # fmt: skip
    assert not finished_before_kill, "train ended before the kill: train longer"
    stack.start_worker(SPARE_GPU_WORKER, "gpu")
    print(f"{SPARE_GPU_WORKER} ready {time.monotonic() - killed_at:.1f}s after the kill")

    result = stack.wait_for_run(RETRAIN, run_id, timeout=600)
    tries = stack.task_tries(RETRAIN, run_id, "train")
    tis = sorted(stack.task_instances(RETRAIN, run_id), key=lambda ti: ti["start_date"] or "~")
    print(f"run {run_id}: {result.state} in {result.seconds:.1f}s (trigger to end "
          f"{time.monotonic() - started:.1f}s)\ntries of train:\n{placement_table(tries)}\n"
          f"task instances:\n{placement_table(tis)}")  # fmt: skip

    assert result.state == "success", result.tasks
    # the first try died with its worker; the retry ran on the other worker of the same queue
    assert len(tries) >= 2, tries
    first, last = tries[0], tries[-1]
    assert (first["hostname"], first["queue"], first["state"]) == (GPU_WORKER, "gpu", "failed")
    assert (last["hostname"], last["queue"], last["state"]) == (SPARE_GPU_WORKER, "gpu", "success")
    assert last["try_number"] > 1
    # the tasks after the kill ran on the new GPU worker or on the CPU worker, by queue
    for ti in tis:
        queue = queue_of(ti["task_id"])
        assert ti["queue"] == queue, ti
        if ti["hostname"] or ti["state"] != "skipped":
            assert ti["hostname"] in (
                {GPU_WORKER, SPARE_GPU_WORKER} if queue == "gpu" else {CPU_WORKER}
            ), ti
    # training went on from the checkpoint the killed try saved
    summary = json.loads((run_dir / "train" / "summary.json").read_text())
    assert summary["resumed_from"] and Path(summary["resumed_from"]).name.startswith("checkpoint-")
    retry_log = stack.task_log(RETRAIN, run_id, "train", last["try_number"])
    resumed = [line for line in retry_log.splitlines() if "resuming from" in line]
    assert resumed, retry_log[-3000:]
    failed_log = [
        line
        for line in stack.task_log(RETRAIN, run_id, "train", first["try_number"]).splitlines()
        if "saved checkpoint" in line
    ]
    scheduler = (stack.log_dir / "scheduler.log").read_text(errors="replace")
    detected = [
        line.strip()
        for line in scheduler.splitlines()
        if "without heartbeat" in line or ("train" in line and "heartbeat" in line.lower())
    ]
    print("kill test log lines:")
    for line in [*failed_log[-1:], *detected[:3]]:
        print(f"  {line[:300]}")
    start = max(0, resumed[0].index("resuming from") - 60)
    print(f"  ...{resumed[0][start : start + 300]}")
    print(f"heartbeat timeout {CELERY_HEARTBEAT_TIMEOUT}s; resumed from {summary['resumed_from']}")
