"""Data-parallel launch: process count, torchrun command line, hand-over of rank 0's outcome."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest

from tasks import launch
from tasks.cli import main
from tasks.io import EXIT_FAILED, EXIT_INVALID_INPUT, EXIT_OK, InvalidInputError, StepError

pytestmark = pytest.mark.unit

LAUNCH_VARS = ("LOCAL_RANK", "RANK", "WORLD_SIZE", launch.RESULT_ENV)


@pytest.fixture
def single_process(monkeypatch):
    """No launcher variables, whatever the environment the tests run in."""
    for name in LAUNCH_VARS:
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize(
    ("requested", "gpus", "expected"),
    [
        (1, 0, 1),
        (1, 8, 1),  # 1 means one process, however many GPUs
        (0, 0, 1),  # one per GPU; a single process without GPUs
        (0, 1, 1),
        (0, 4, 4),
        (2, 0, 2),  # explicit N without GPUs: N CPU processes (gloo)
        (3, 0, 3),
        (2, 2, 2),
        (2, 8, 2),  # fewer processes than GPUs: the first N
    ],
)
def test_process_count(requested, gpus, expected):
    assert launch.process_count(requested, gpus) == expected


def test_more_processes_than_gpus_is_an_input_error():
    with pytest.raises(InvalidInputError, match=r"only 2 GPU\(s\).*at most 2"):
        launch.process_count(4, 2)
    with pytest.raises(InvalidInputError, match="negative"):
        launch.process_count(-1, 0)


@pytest.mark.parametrize(
    ("value", "count"), [("0,1", 2), ("3", 1), ("", 0), ("-1", 0), ("2,-1,3", 1), (" 0 , 1 ", 2)]
)
def test_visible_device_ids_follow_cuda_rules(value, count):
    assert launch.visible_device_ids(value) == count


def test_hidden_gpus_are_counted_without_torch():
    assert launch.visible_gpus({"CUDA_VISIBLE_DEVICES": ""}) == 0
    assert launch.visible_gpus({"CUDA_VISIBLE_DEVICES": "-1"}) == 0


def test_planned_processes(monkeypatch):
    def no_count(env=None):
        raise AssertionError("GPUs must not be counted here")

    monkeypatch.setattr(launch, "visible_gpus", no_count)
    assert launch.planned_processes(1, env={}) == 1
    # a launched process never launches again
    assert launch.planned_processes(0, env={launch.RESULT_ENV: "/tmp/r.json"}) == 1
    assert launch.planned_processes(4, env={"LOCAL_RANK": "1"}) == 1
    monkeypatch.setattr(launch, "visible_gpus", lambda env=None: 4)
    assert launch.planned_processes(0, env={}) == 4
    assert launch.planned_processes(2, env={}) == 2
    monkeypatch.setattr(launch, "visible_gpus", lambda env=None: 0)
    assert launch.planned_processes(0, env={}) == 1
    assert launch.planned_processes(2, env={}) == 2


def test_batch_size_is_global_and_must_split_evenly():
    assert launch.per_process_batch_size(32, 1) == 32
    assert launch.per_process_batch_size(32, 4) == 8
    with pytest.raises(InvalidInputError, match="batch_size=30 does not split evenly over 4"):
        launch.per_process_batch_size(30, 4)


def test_launch_command_reruns_the_same_step_under_torchrun():
    argv = ["train", "--run-dir", "runs/a b", "--train-processes", "0", "--batch-size", "64"]
    assert launch.launch_command(argv, 4, python="/venv/bin/python") == [
        "/venv/bin/python",
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "4",
        "-m",
        "tasks",
        *argv,
    ]
    assert launch.launch_command(["train"], 2)[0] == sys.executable
    with pytest.raises(ValueError):
        launch.launch_command(["train"], 1)


def test_launch_env_marks_the_processes_and_shares_the_cores(tmp_path):
    base = {"PATH": "/bin", "CUDA_VISIBLE_DEVICES": "0,1"}
    env = launch.launch_env(base, tmp_path / "r.json", 2, cpu_count=16, platform="linux")
    assert env[launch.RESULT_ENV] == str(tmp_path / "r.json")
    assert env["OMP_NUM_THREADS"] == "8"
    assert env["GLOO_SOCKET_IFNAME"] == "lo"
    assert env["CUDA_VISIBLE_DEVICES"] == "0,1" and env["PATH"] == "/bin"
    assert launch.RESULT_ENV not in base  # the caller's mapping is left alone
    assert launch.launched(env)
    # what the deployment set wins; no loopback name off Linux
    mine = {"OMP_NUM_THREADS": "3", "GLOO_SOCKET_IFNAME": "eth0"}
    kept = launch.launch_env(mine, tmp_path / "r.json", 4, cpu_count=2, platform="linux")
    assert kept["OMP_NUM_THREADS"] == "3" and kept["GLOO_SOCKET_IFNAME"] == "eth0"
    mac = launch.launch_env({}, tmp_path / "r.json", 4, cpu_count=2, platform="darwin")
    assert mac["OMP_NUM_THREADS"] == "1" and "GLOO_SOCKET_IFNAME" not in mac


def test_rank_variables(monkeypatch, single_process):
    assert (launch.rank(), launch.local_rank(), launch.world_size()) == (0, 0, 1)
    assert not launch.launched()
    monkeypatch.setenv("RANK", "3")
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "4")
    assert (launch.rank(), launch.local_rank(), launch.world_size()) == (3, 1, 4)
    assert launch.launched()


def test_hand_over_rank_0_writes_others_only_failures_and_no_launched_process_prints(
    tmp_path, monkeypatch, single_process
):
    result = tmp_path / "result.json"
    assert launch.hand_over(EXIT_OK, {"step": "train"}) is False  # a single process prints
    assert not result.exists()
    monkeypatch.setenv(launch.RESULT_ENV, str(result))
    monkeypatch.setenv("LOCAL_RANK", "1")
    monkeypatch.setenv("RANK", "1")
    assert launch.hand_over(EXIT_OK, {"step": "train", "rank": 1}) is True
    assert not result.exists()
    assert not list(tmp_path.iterdir())  # a rank that succeeded leaves nothing
    assert launch.hand_over(EXIT_INVALID_INPUT, None, "rank 1 saw bad data") is True
    assert not result.exists()
    assert json.loads((tmp_path / "result.rank1.json").read_text()) == {
        "code": EXIT_INVALID_INPUT,
        "summary": None,
        "error": "rank 1 saw bad data",
    }
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    assert launch.hand_over(EXIT_INVALID_INPUT, None, "fix the data") is True
    assert json.loads(result.read_text()) == {
        "code": EXIT_INVALID_INPUT,
        "summary": None,
        "error": "fix the data",
    }
    # torchrun started by hand: no result file, so rank 0 prints the summary itself
    monkeypatch.delenv(launch.RESULT_ENV)
    assert launch.hand_over(EXIT_OK, {"step": "train"}) is False


@pytest.mark.parametrize(
    ("launcher_code", "result", "code", "summary", "error"),
    [
        (0, {"code": 0, "summary": {"steps": 6}}, EXIT_OK, {"steps": 6}, None),
        (1, {"code": 3, "error": "too few pairs"}, EXIT_INVALID_INPUT, None, "too few pairs"),
        (1, {"code": 1, "error": "boom"}, EXIT_FAILED, None, "boom"),
        (1, {"code": 0, "summary": {"steps": 6}}, EXIT_FAILED, None, "another of the 2"),
        (1, None, EXIT_FAILED, None, "torchrun exit code 1"),
        (0, None, EXIT_FAILED, None, "without a result"),
    ],
)
def test_outcome_takes_rank_0_and_the_launcher_together(
    launcher_code, result, code, summary, error
):
    got_code, got_summary, got_error = launch.outcome(launcher_code, result, 2)
    assert (got_code, got_summary) == (code, summary)
    assert (got_error is None) if error is None else (error in got_error)


def test_outcome_without_rank_0_takes_another_ranks_failure():
    """All ranks fail alike and rank 1 exits first: torchrun stops rank 0 before it writes."""
    failure = {"code": EXIT_INVALID_INPUT, "summary": None, "error": "run the prepare step first"}
    assert launch.outcome(1, None, 2, failure) == (
        EXIT_INVALID_INPUT,
        None,
        "run the prepare step first",
    )
    # rank 0's own outcome wins over another rank's
    assert launch.outcome(1, {"code": 1, "error": "boom"}, 2, failure)[2] == "boom"


def _fake_launcher(monkeypatch, script: str) -> None:
    """Replace torchrun by a Python one-liner that runs with the launch environment."""
    monkeypatch.setattr(
        launch,
        "launch_command",
        lambda argv, processes, python=None: [sys.executable, "-c", script],
    )


def test_run_training_processes_returns_rank_0_summary(monkeypatch, capfd, single_process):
    _fake_launcher(
        monkeypatch,
        f"import json, os; print('rank output'); out = open(os.environ['{launch.RESULT_ENV}'], 'w')"
        "; json.dump({'code': 0, 'summary': {'steps': 6}}, out)",
    )
    assert launch.run_training_processes(["train"], 2) == {"steps": 6}
    assert "rank output" in capfd.readouterr().out  # the processes' output is streamed through


def test_run_training_processes_raises_rank_0_error_with_its_code(monkeypatch, single_process):
    _fake_launcher(
        monkeypatch,
        f"import json, os, sys; out = open(os.environ['{launch.RESULT_ENV}'], 'w')"
        "; json.dump({'code': 3, 'error': 'add data'}, out); out.close(); sys.exit(1)",
    )
    with pytest.raises(InvalidInputError, match="add data") as caught:
        launch.run_training_processes(["train"], 2)
    assert caught.value.exit_code == EXIT_INVALID_INPUT
    _fake_launcher(monkeypatch, "import sys; sys.exit(7)")
    with pytest.raises(StepError, match="torchrun exit code 7") as caught:
        launch.run_training_processes(["train"], 2)
    assert caught.value.exit_code == EXIT_FAILED
    # rank 0 stopped before it wrote: rank 1's failure is the step's
    _fake_launcher(
        monkeypatch,
        f"import json, os, sys; path = os.environ['{launch.RESULT_ENV}']"
        "; out = open(path.replace('result.json', 'result.rank1.json'), 'w')"
        "; json.dump({'code': 3, 'error': 'run the prepare step first'}, out)"
        "; out.close(); sys.exit(1)",
    )
    with pytest.raises(InvalidInputError, match="run the prepare step first") as caught:
        launch.run_training_processes(["train"], 2)
    assert caught.value.exit_code == EXIT_INVALID_INPUT


def test_sigterm_is_passed_on_to_the_launcher():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    installed, previous = launch._forward_sigterm(proc)
    try:
        assert installed
        os.kill(os.getpid(), signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        signal.signal(signal.SIGTERM, previous)
        if proc.poll() is None:
            proc.kill()


def test_a_launched_process_hands_its_summary_over_instead_of_printing(
    tmp_path, monkeypatch, capsys, single_process
):
    result = tmp_path / "result.json"
    monkeypatch.setenv(launch.RESULT_ENV, str(result))
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("RANK", "0")
    argv = ["demo-data", "--out", str(tmp_path / "demo.jsonl")]
    assert main(argv, exit=lambda code: code) == EXIT_OK
    out = capsys.readouterr().out
    assert not any(line.startswith("{") for line in out.splitlines())
    handed = json.loads(result.read_text())
    assert handed["code"] == EXIT_OK and handed["summary"]["step"] == "demo-data"
    # a failing step: the code and the one-line reason reach the launching process
    code = main(["train", "--run-dir", str(tmp_path / "empty")], exit=lambda code: code)
    handed = json.loads(result.read_text())
    assert code == handed["code"] == EXIT_INVALID_INPUT
    assert "data_path is empty" in handed["error"] and handed["summary"] is None
    code = main(
        ["train", "--run-dir", str(tmp_path / "empty"), "--data-path", "pairs.jsonl"],
        exit=lambda code: code,
    )
    handed = json.loads(result.read_text())
    assert code == handed["code"] == EXIT_FAILED
    assert "run the prepare step first" in handed["error"]
    # other ranks neither print nor write
    result.unlink()
    monkeypatch.setenv("RANK", "1")
    assert main(argv, exit=lambda code: code) == EXIT_OK
    assert not result.exists()
    assert not any(line.startswith("{") for line in capsys.readouterr().out.splitlines())
